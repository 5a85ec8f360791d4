// opgraph dump / ops / data.
#include <cstdio>

#include <fmt/format.h>

#include <opgraph/frontends/data_spec.hpp>
#include <opgraph/frontends/dump.hpp>
#include <opgraph/frontends/files.hpp>
#include <opgraph/frontends/json.hpp>
#include <opgraph/frontends/model_format.hpp>
#include <opgraph/graph/registry.hpp>

#include "cli.hpp"

namespace opgraph::cli {

int dump(int argc, char** argv) {
  const std::vector<Option> options = {
      {"format", "og|dot|svg|json", "what to write (default og: the model with inferred shapes as comments)"},
      {"batch", "N", "show shapes with the batch dimension bound to N"},
      {"backward", "", "show the reverse pass: each vjp, what it reads, where gradients are summed"},
      {"collapse", "", "draw each block instance (h1.*) as one box (dot, svg)"},
      {"hide-identity", "", "leave out identity nodes (dot, svg)"},
      {"out", "FILE", "write to FILE instead of stdout"},
      {"profile", "", "time a few training steps and colour the DOT/SVG nodes by time"},
      {"data", "SPEC", "with --profile: the data to time on (default: random values)"},
      {"data-dir", "DIR", "the data folder (default $OPGRAPH_DATA)"},
  };
  const Args a("dump", argc, argv, 2, options);
  if (a.help()) {
    std::fputs(help_text("opgraph dump MODEL.og [--format og|dot|svg|json] [--batch N] [--backward] [--collapse] "
                         "[--hide-identity] [--out FILE]",
                         "Shows the graph of a model for debugging: as annotated .og text, Graphviz DOT (or SVG "
                         "rendered with dot), or JSON for tools.",
                         options)
                   .c_str(),
               stdout);
    return 0;
  }
  const std::string model_path = a.one_positional("MODEL.og");
  DumpOptions o;
  o.batch = a.integer("batch", 0, 1);
  protect_input(model_path, "the model file");
  check_outputs({{"--out", a.get("out")}});
  const ModelFile file = load_model(model_path);
  o.backward = a.has("backward");
  o.collapse = a.has("collapse");
  o.hide_identity = a.has("hide-identity");
  o.labels = file.labels;
  const std::string format = a.get("format", "og");
  if ((o.collapse || o.hide_identity) && format != "dot" && format != "svg")
    a.fail(fmt::format("--{} changes the drawing: use it with --format dot or svg",
                       o.collapse ? "collapse" : "hide-identity"));
  if (a.has("profile")) {
    if (format != "dot" && format != "svg") a.fail("--profile colours the drawing: use it with --format dot or svg");
    Model model{file.graph, file.graph.init_params(0), file.input, file.labels};
    Trainer trainer(model);
    const std::int64_t batch = o.batch > 0 ? o.batch : 64;
    const Dataset data = a.has("data") ? spec("dump", [&] { return load_data(a.get("data"), a.get("data-dir")); }).train
                                       : random_data(model, trainer, std::max<std::int64_t>(batch, 256));
    for (const auto& n : trainer.profile(data, batch, 5)) o.node_seconds[n.name] = (n.forward_seconds + n.backward_seconds) / 5;
  }
  std::string text;
  if (format == "og") {
    if (o.backward) a.fail("--backward draws the reverse pass: use it with --format dot, svg or json");
    text = dump_og(file.graph, o);
  } else if (format == "dot") {
    text = dump_dot(file.graph, o);
  } else if (format == "svg") {
    text = render_svg(dump_dot(file.graph, o));
  } else if (format == "json") {
    text = dump_json(file.graph, o);
  } else {
    const std::string close = closest_name(format, std::vector<std::string>{"og", "dot", "svg", "json"});
    a.fail(fmt::format("--format: expected og, dot, svg or json, got '{}'{}", format,
                       close.empty() ? "" : " (did you mean '" + close + "'?)"));
  }
  if (a.has("out")) write_file_atomic(a.get("out"), text);
  else std::fputs(text.c_str(), stdout);
  return 0;
}

int ops(int argc, char** argv) {
  const std::vector<Option> options = {{"json", "", "print the ops as a JSON array"}};
  const Args a("ops", argc, argv, 2, options);
  if (a.help()) {
    std::fputs(help_text("opgraph ops [--json]", "Lists every registered op with its inputs, attributes and doc.",
                         options)
                   .c_str(),
               stdout);
    return 0;
  }
  if (!a.positional().empty()) a.fail(fmt::format("unexpected argument '{}'", a.positional()[0]));
  const auto all = Registry::global().ops();
  if (a.has("json")) {
    std::vector<std::string> items;
    for (const OpDef* op : all) {
      std::vector<std::string> inputs, attrs;
      for (const auto& in : op->inputs)
        inputs.push_back(json::Object().add("name", in.name).add("differentiable", in.differentiable).str());
      for (const auto& at : op->attrs) {
        json::Object o;
        o.add("name", at.name).add("type", std::string(to_string(at.type))).add("default", at.default_value.str());
        if (!at.choices.empty()) {
          std::vector<std::string> c;
          for (const auto& ch : at.choices) c.push_back(json::quote(ch));
          o.raw("choices", json::array(c));
        }
        if (!at.doc.empty()) o.add("doc", at.doc);
        attrs.push_back(o.str());
      }
      items.push_back(json::Object()
                          .add("name", op->name)
                          .add("signature", op->signature())
                          .add("doc", op->doc)
                          .raw("inputs", json::array(inputs))
                          .raw("attrs", json::array(attrs))
                          .add("vjp", op->has_vjp())
                          .add("source", op->source)
                          .str());
    }
    std::printf("%s\n", json::array(items).c_str());
    return 0;
  }
  for (const OpDef* op : all) {
    std::string line = fmt::format("{:<56} {}", op->signature(), op->doc);
    std::vector<std::string> notes;
    for (const auto& in : op->inputs)
      if (!in.differentiable) notes.push_back(in.name + " takes no gradient");
    if (!op->has_vjp()) notes.push_back("no vjp");
    if (op->source != "built-in") notes.push_back("from " + op->source);
    if (!notes.empty()) line += fmt::format(" [{}]", fmt::join(notes, "; "));
    std::printf("%s\n", line.c_str());
  }
  return 0;
}

int data(int argc, char** argv) {
  const Args a("data", argc, argv, 2, {});
  if (a.help()) {
    std::fputs(help_text("opgraph data", "Lists the dataset sources opgraph knows and how to name them.", {}).c_str(),
               stdout);
    return 0;
  }
  if (!a.positional().empty()) a.fail(fmt::format("unexpected argument '{}'", a.positional()[0]));
  std::fputs(data_spec_help().c_str(), stdout);
  return 0;
}

}  // namespace opgraph::cli
