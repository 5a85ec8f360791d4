// The .og format: tokens -> statements and expressions -> a Graph; and back to text.
#include <opgraph/frontends/model_format.hpp>
#include <opgraph/frontends/onnx/onnx.hpp>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <deque>
#include <cmath>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <set>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <opgraph/datasets/read_file.hpp>
#include <opgraph/graph/op.hpp>
#include <opgraph/graph/random.hpp>
#include <opgraph/graph/registry.hpp>

namespace opgraph {

namespace {

// ---- tokens ----

enum class Tok : std::uint8_t {
  ident, number, string, lparen, rparen, lbracket, rbracket, comma, equals, colon, plus, minus, star, slash, newline, end
};

struct Loc {
  int line = 0, col = 0;
  int file = 0;  // index into the parse's file names: 0 the model, others included files
};

struct Token {
  Tok kind;
  std::string text;
  Loc loc;
};

std::string describe(const Token& t) {
  switch (t.kind) {
    case Tok::newline: return "the end of the line";
    case Tok::end: return "the end of the file";
    case Tok::string: return "\"" + t.text + "\"";
    default: return "'" + t.text + "'";
  }
}

class Lexer {
 public:
  Lexer(std::string_view text, const std::string& file, int file_index = 0)
      : s_(text), file_(file), file_index_(file_index) {}

  std::vector<Token> run() {
    std::vector<Token> out;
    if (s_.substr(0, 3) == "\xEF\xBB\xBF") i_ = 3;  // a UTF-8 byte-order mark, as some editors write
    while (i_ < s_.size()) {
      const char c = s_[i_];
      const Loc loc{line_, col_, file_index_};
      if (c == ' ' || c == '\t' || c == '\r') {
        advance();
      } else if (c == '#') {
        while (i_ < s_.size() && s_[i_] != '\n') advance();
      } else if (c == '\n') {
        out.push_back({Tok::newline, "\\n", loc});
        advance();
      } else if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
        const std::size_t start = i_;
        while (i_ < s_.size() && (std::isalnum(static_cast<unsigned char>(s_[i_])) || s_[i_] == '_' || s_[i_] == '.'))
          advance();
        out.push_back({Tok::ident, std::string(s_.substr(start, i_ - start)), loc});
      } else if (std::isdigit(static_cast<unsigned char>(c)) ||
                 (c == '.' && i_ + 1 < s_.size() && std::isdigit(static_cast<unsigned char>(s_[i_ + 1])))) {
        const std::size_t start = i_;
        while (i_ < s_.size() && (std::isdigit(static_cast<unsigned char>(s_[i_])) || s_[i_] == '.')) advance();
        if (i_ < s_.size() && (s_[i_] == 'e' || s_[i_] == 'E')) {
          advance();
          if (i_ < s_.size() && (s_[i_] == '+' || s_[i_] == '-')) advance();
          while (i_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[i_]))) advance();
        }
        out.push_back({Tok::number, std::string(s_.substr(start, i_ - start)), loc});
      } else if (c == '"') {
        advance();
        std::string value;
        while (i_ < s_.size() && s_[i_] != '"' && s_[i_] != '\n') {
          if (s_[i_] == '\\' && i_ + 1 < s_.size()) advance();
          value += s_[i_];
          advance();
        }
        if (i_ >= s_.size() || s_[i_] != '"') fail(loc, "unterminated string");
        advance();
        out.push_back({Tok::string, value, loc});
      } else {
        static const std::string punct = "()[],=:+-*/";
        const auto p = punct.find(c);
        if (p == std::string::npos) {
          const auto u = static_cast<unsigned char>(c);
          if (const std::size_t n = utf8_length(s_, i_); n > 0)
            fail(loc, fmt::format("unexpected character '{}': names use ASCII letters, digits, '_' and '.' (other "
                                  "characters may appear in comments and strings)",
                                  s_.substr(i_, n)));
          fail(loc, std::isprint(u) ? fmt::format("unexpected character '{}'", c)
                                    : fmt::format("unexpected byte 0x{:02x}: not a text model file", u));
        }
        static const Tok kinds[] = {Tok::lparen, Tok::rparen, Tok::lbracket, Tok::rbracket, Tok::comma,
                                    Tok::equals, Tok::colon,  Tok::plus,     Tok::minus,    Tok::star, Tok::slash};
        out.push_back({kinds[p], std::string(1, c), loc});
        advance();
      }
    }
    out.push_back({Tok::newline, "\\n", {line_, col_}});
    out.push_back({Tok::end, "", {line_, col_}});
    return out;
  }

 private:
  void advance() {
    if (s_[i_] == '\n') {
      ++line_;
      col_ = 1;
    } else {
      ++col_;
    }
    ++i_;
  }
  [[noreturn]] void fail(Loc loc, const std::string& what) {
    throw ParseError(fmt::format("{}:{}:{}", file_, loc.line, loc.col), what);
  }

  std::string_view s_;
  const std::string& file_;
  int file_index_ = 0;
  std::size_t i_ = 0;
  int line_ = 1, col_ = 1;
};

// ---- syntax ----

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Arg {
  std::string name;  // empty: positional
  ExprPtr value;
  Loc loc;
};

struct Expr {
  enum class Kind : std::uint8_t { name, number, string, call, binary, list } kind = Kind::name;
  Loc loc;
  std::string text;  // name, string, callee, or operator
  double number = 0.0;
  bool integer = false;
  int depth = 0;          // levels of calls and operators down to the leaves (a leaf: 0)
  std::vector<Arg> args;  // call arguments; binary: the two operands; list: the items
};

struct Statement {
  enum class Kind : std::uint8_t { input, labels, param, assign, output, loss, ret } kind = Kind::assign;
  Loc loc;
  std::string name;
  Loc name_loc;
  std::vector<std::pair<std::string, Loc>> names;  // `a, b = split(...)`: the parts' names
  bool index = false;                               // `input ids [N, T] i64`
  std::vector<ExprPtr> shape;
  ExprPtr init;
  ExprPtr value;
};

struct BlockDef {
  std::string name;
  Loc loc;
  std::vector<std::pair<std::string, ExprPtr>> params;  // name, default (or null)
  std::vector<Statement> body;
};

struct Program {
  std::vector<Statement> statements;
  std::map<std::string, BlockDef, std::less<>> blocks;
};

/// The files of one parse: the model (index 0) and those it includes, with the text a
/// checkpoint keeps (the model's, included blocks appended).
struct Sources {
  std::deque<std::string> names;                   // file names for messages, by Loc::file
  std::vector<std::string> stack;                  // the include chain, as canonical paths
  std::vector<std::pair<int, std::string>> inlined;  // model lines replaced, and the blocks' text
  std::set<std::string> included;                  // canonical paths already read: read once
};

inline constexpr int kMaxIncludeDepth = 16;

class Parser {
 public:
  Parser(std::vector<Token> tokens, const std::string& file, std::shared_ptr<Sources> sources = nullptr)
      : t_(std::move(tokens)), sources_(sources ? std::move(sources) : std::make_shared<Sources>()) {
    if (sources_->names.empty()) {
      sources_->names.push_back(file);
      std::error_code ec;  // the model itself, when it is a file: including it back is a cycle
      if (!file.empty() && file.front() != '<')
        sources_->stack.push_back(std::filesystem::weakly_canonical(file, ec).string());
    }
  }

  /// `blocks_only`: an included file, which may define blocks (and include others) only.
  Program run(bool blocks_only = false) {
    Program p;
    for (;;) {
      skip_newlines();
      if (peek().kind == Tok::end) break;
      if (peek().kind == Tok::ident && peek().text == "include" && peek(1).kind == Tok::string) {
        include(p);
      } else if (peek().kind == Tok::ident && peek().text == "block" && peek(1).kind == Tok::ident) {
        add_block(p, block());
      } else if (blocks_only) {
        fail(peek().loc, fmt::format("an included file defines blocks only (and includes others), got {}: move the "
                                     "statement into the model",
                                     describe(peek())));
      } else {
        p.statements.push_back(statement(false));
      }
    }
    return p;
  }

  std::string where(Loc loc) const {
    return fmt::format("{}:{}:{}", sources_->names[static_cast<std::size_t>(loc.file)], loc.line, loc.col);
  }
  const Sources& sources() const { return *sources_; }

 private:
  const Token& peek(std::size_t ahead = 0) const { return t_[std::min(pos_ + ahead, t_.size() - 1)]; }
  const Token& take() { return t_[std::min(pos_++, t_.size() - 1)]; }
  void skip_newlines() {
    while (peek().kind == Tok::newline) ++pos_;
  }
  [[noreturn]] void fail(Loc loc, const std::string& what) const { throw ParseError(where(loc), what); }
  const Token& expect(Tok kind, const char* what) {
    if (peek().kind != kind) fail(peek().loc, fmt::format("expected {}, got {}", what, describe(peek())));
    return take();
  }
  void end_of_statement() {
    if (peek().kind != Tok::newline && peek().kind != Tok::end)
      fail(peek().loc, fmt::format("expected the end of the line, got {}", describe(peek())));
  }

  void add_block(Program& p, BlockDef b) {
    if (p.blocks.count(b.name))
      fail(b.loc, fmt::format("block '{}' is defined twice (first at {})", b.name, where(p.blocks[b.name].loc)));
    const std::string name = b.name;
    p.blocks.emplace(name, std::move(b));
  }

  /// include "PATH": the blocks of another .og file, PATH relative to this file's folder.
  void include(Program& p) {
    const Loc at = take().loc;
    const Token& path_token = take();
    end_of_statement();
    namespace fs = std::filesystem;
    const std::string& self = sources_->names[static_cast<std::size_t>(at.file)];
    const fs::path base = self.empty() || self.front() == '<' ? fs::path() : fs::path(self).parent_path();
    const fs::path path = fs::path(path_token.text).is_absolute() ? fs::path(path_token.text) : base / path_token.text;
    std::error_code ec;
    const std::string canonical = fs::weakly_canonical(path, ec).string();
    if (std::find(sources_->stack.begin(), sources_->stack.end(), canonical) != sources_->stack.end())
      fail(path_token.loc, fmt::format("an include cycle: {} -> {}", fmt::join(sources_->stack, " -> "), canonical));
    if (sources_->included.count(canonical)) return;  // its blocks are here already
    if (static_cast<int>(sources_->stack.size()) >= kMaxIncludeDepth)
      fail(path_token.loc, fmt::format("includes nested more than {} deep", kMaxIncludeDepth));
    std::string text;
    try {
      text = read_file(path.string(), {kMaxModelFileBytes, "an included model file", "include a file of blocks"});
    } catch (const std::exception& e) {
      fail(path_token.loc, fmt::format("cannot include \"{}\": {}", path_token.text, e.what()));
    }
    const int index = static_cast<int>(sources_->names.size());
    sources_->names.push_back(path.string());
    sources_->stack.push_back(canonical);
    Parser sub(Lexer(text, sources_->names.back(), index).run(), sources_->names.back(), sources_);
    Program inner = sub.run(true);
    sources_->stack.pop_back();
    sources_->included.insert(canonical);
    for (auto& [name, b] : inner.blocks) add_block(p, std::move(b));
    if (at.file == 0) sources_->inlined.emplace_back(at.line, text);
    else sources_->inlined.emplace_back(0, text);  // nested: appended all the same
  }

  BlockDef block() {
    BlockDef b;
    b.loc = take().loc;  // 'block'
    b.name = expect(Tok::ident, "a block name").text;
    expect(Tok::lparen, "'(' after the block name");
    std::set<std::string> seen;
    while (peek().kind != Tok::rparen) {
      const Token& p = expect(Tok::ident, "a parameter name");
      if (!seen.insert(p.text).second) fail(p.loc, fmt::format("parameter '{}' appears twice", p.text));
      ExprPtr def;
      if (peek().kind == Tok::equals) {
        take();
        def = expr();
      }
      b.params.emplace_back(p.text, std::move(def));
      if (peek().kind != Tok::comma) break;
      take();
    }
    expect(Tok::rparen, "')' or ','");
    if (peek().kind == Tok::colon) take();
    end_of_statement();
    for (;;) {
      skip_newlines();
      if (peek().kind == Tok::end) fail(b.loc, fmt::format("block '{}' has no 'end'", b.name));
      if (peek().kind == Tok::ident && peek().text == "end" && peek(1).kind != Tok::equals) {
        take();
        end_of_statement();
        break;
      }
      b.body.push_back(statement(true));
    }
    const Statement* first_return = nullptr;
    for (const Statement& s : b.body) {
      if (s.kind != Statement::Kind::ret) continue;
      if (first_return)
        fail(s.loc, fmt::format("block '{}' returns twice (first at {}): a block has one 'return'", b.name,
                                where(first_return->loc)));
      first_return = &s;
    }
    if (!first_return) fail(b.loc, fmt::format("block '{}' has no 'return'", b.name));
    if (&b.body.back() != first_return)
      fail(b.body.back().loc, fmt::format("statement after 'return' in block '{}': 'return' comes last", b.name));
    if (Registry::global().find(b.name))
      fail(b.loc, fmt::format("block '{}' has the name of a registered op: rename the block (an op of that name "
                              "would be hidden)",
                              b.name));
    return b;
  }

  Statement statement(bool in_block) {
    Statement s;
    const Token& first = peek();
    s.loc = first.loc;
    if (first.kind != Tok::ident) fail(first.loc, fmt::format("expected a statement, got {}", describe(first)));
    if (peek(1).kind == Tok::comma) {  // A, B, ... = expr: the outputs of an op with several
      s.kind = Statement::Kind::assign;
      s.name_loc = s.loc;
      for (;;) {
        const Token& n = expect(Tok::ident, "a name");
        for (const auto& [seen, at] : s.names)
          if (seen == n.text) fail(n.loc, fmt::format("'{}' is named twice on the left of '='", n.text));
        s.names.emplace_back(n.text, n.loc);
        if (peek().kind != Tok::comma) break;
        take();
      }
      expect(Tok::equals, "'=' after the names");
      s.value = expr();
      end_of_statement();
      return s;
    }
    if (peek(1).kind == Tok::equals) {  // NAME = expr, whatever NAME is
      s.kind = Statement::Kind::assign;
      s.name = take().text;
      s.name_loc = s.loc;
      take();
      s.value = expr();
      end_of_statement();
      return s;
    }
    const std::string kw = take().text;
    if (kw == "input" || kw == "labels" || kw == "param") {
      if (in_block && kw != "param") fail(s.loc, fmt::format("'{}' cannot appear inside a block", kw));
      s.kind = kw == "input" ? Statement::Kind::input : kw == "labels" ? Statement::Kind::labels : Statement::Kind::param;
      s.name_loc = peek().loc;
      s.name = expect(Tok::ident, "a name").text;
      s.shape = shape();
      if (s.kind == Statement::Kind::param && peek().kind == Tok::ident) s.init = primary();
      if (s.kind != Statement::Kind::param && peek().kind == Tok::ident) {
        const Token& t = take();
        if (t.text == "i64" || t.text == "int64") s.index = true;
        else if (t.text != "f32" && t.text != "float32" && t.text != "real")
          fail(t.loc, fmt::format("unknown element type '{}': an input holds real values (the default) or i64 "
                                  "indices (write i64)",
                                  t.text));
      }
    } else if (kw == "output" || kw == "loss") {
      if (in_block) fail(s.loc, fmt::format("'{}' cannot appear inside a block", kw));
      s.kind = kw == "output" ? Statement::Kind::output : Statement::Kind::loss;
      s.name_loc = peek().loc;
      s.name = expect(Tok::ident, "a node name").text;
      if (peek().kind == Tok::equals) {
        take();
        s.value = expr();
      }
    } else if (kw == "return") {
      if (!in_block) fail(s.loc, "'return' outside a block");
      s.kind = Statement::Kind::ret;
      s.value = expr();
    } else if (kw == "block") {
      fail(s.loc, in_block ? "blocks cannot be defined inside blocks" : "expected a block name after 'block'");
    } else {
      fail(peek().loc, fmt::format("expected '=' after '{}', got {}", kw, describe(peek())));
    }
    end_of_statement();
    return s;
  }

  std::vector<ExprPtr> shape() {
    std::vector<ExprPtr> dims;
    expect(Tok::lbracket, "a shape such as [N, 784]");
    while (peek().kind != Tok::rbracket) {
      dims.push_back(expr());
      if (peek().kind != Tok::comma) break;
      take();
    }
    expect(Tok::rbracket, "']' or ','");
    return dims;
  }

  ExprPtr expr() {
    ExprPtr lhs = term();
    while (peek().kind == Tok::plus || peek().kind == Tok::minus) {
      const Token& op = take();
      lhs = binary(op, std::move(lhs), term());
    }
    return lhs;
  }

  ExprPtr term() {
    ExprPtr lhs = primary();
    while (peek().kind == Tok::star || peek().kind == Tok::slash) {
      const Token& op = take();
      lhs = binary(op, std::move(lhs), primary());
    }
    return lhs;
  }

  /// Parsing, evaluating and freeing an expression recurse once per level: a bound on the
  /// depth keeps a hostile file from overflowing the stack. No real model comes near it.
  static constexpr int kMaxDepth = 200;
  [[noreturn]] void too_deep(Loc loc) const {
    fail(loc, fmt::format("expression nested more than {} levels deep: name some of its parts", kMaxDepth));
  }
  void check_depth(const Expr& e) const {
    if (e.depth > kMaxDepth) too_deep(e.loc);
  }
  /// Counts the open parentheses and calls around what is being parsed.
  struct Nesting {
    explicit Nesting(Parser& p, Loc loc) : parser(p) {
      if (++parser.open_ > kMaxDepth) parser.too_deep(loc);
    }
    ~Nesting() { --parser.open_; }
    Nesting(const Nesting&) = delete;
    Nesting& operator=(const Nesting&) = delete;
    Parser& parser;
  };

  ExprPtr binary(const Token& op, ExprPtr lhs, ExprPtr rhs) const {
    auto e = std::make_unique<Expr>();
    e->kind = Expr::Kind::binary;
    e->loc = op.loc;
    e->text = op.text;
    e->depth = 1 + std::max(lhs->depth, rhs->depth);
    e->args.push_back({"", std::move(lhs), op.loc});
    e->args.push_back({"", std::move(rhs), op.loc});
    check_depth(*e);
    return e;
  }

  ExprPtr number(const Token& t, bool negative) {
    auto e = std::make_unique<Expr>();
    e->kind = Expr::Kind::number;
    e->loc = t.loc;
    const auto [ptr, ec] = std::from_chars(t.text.data(), t.text.data() + t.text.size(), e->number);
    if (ec != std::errc() || ptr != t.text.data() + t.text.size()) fail(t.loc, fmt::format("bad number '{}'", t.text));
    e->integer = t.text.find_first_of(".eE") == std::string::npos;
    if (negative) e->number = -e->number;
    e->text = (negative ? "-" : "") + t.text;
    return e;
  }

  ExprPtr primary() {
    const Token& t = peek();
    if (t.kind == Tok::number) return number(take(), false);
    if (t.kind == Tok::minus && peek(1).kind == Tok::number) {
      const Loc minus = take().loc;
      ExprPtr e = number(take(), true);
      e->loc = minus;
      return e;
    }
    if (t.kind == Tok::string) {
      auto e = std::make_unique<Expr>();
      e->kind = Expr::Kind::string;
      e->loc = t.loc;
      e->text = take().text;
      return e;
    }
    if (t.kind == Tok::lparen) {
      const Nesting nesting(*this, t.loc);
      take();
      ExprPtr e = expr();
      expect(Tok::rparen, "')'");
      return e;
    }
    if (t.kind == Tok::lbracket) {  // a list attribute: [3, 3], [0.5, 2.0]
      auto e = std::make_unique<Expr>();
      e->kind = Expr::Kind::list;
      e->loc = take().loc;
      while (peek().kind != Tok::rbracket) {
        Arg a;
        a.loc = peek().loc;
        a.value = primary();
        if (a.value->kind != Expr::Kind::number && a.value->kind != Expr::Kind::name)
          fail(a.loc, "a list holds numbers: [3, 3], [0.5, 2.0]");
        e->args.push_back(std::move(a));
        if (peek().kind != Tok::comma) break;
        take();
      }
      expect(Tok::rbracket, "']' or ','");
      return e;
    }
    if (t.kind != Tok::ident) fail(t.loc, fmt::format("expected a value, got {}", describe(t)));
    auto e = std::make_unique<Expr>();
    e->loc = t.loc;
    e->text = take().text;
    if (peek().kind != Tok::lparen) {
      e->kind = Expr::Kind::name;
      return e;
    }
    e->kind = Expr::Kind::call;
    e->depth = 1;  // a call is a level, with or without arguments
    const Nesting nesting(*this, e->loc);
    take();
    while (peek().kind != Tok::rparen) {
      Arg a;
      a.loc = peek().loc;
      if (peek().kind == Tok::ident && peek(1).kind == Tok::equals) {
        a.name = take().text;
        take();
      }
      a.value = expr();
      e->depth = std::max(e->depth, 1 + a.value->depth);
      e->args.push_back(std::move(a));
      if (peek().kind != Tok::comma) break;
      take();
    }
    expect(Tok::rparen, "')' or ','");
    check_depth(*e);
    return e;
  }

  std::vector<Token> t_;
  std::size_t pos_ = 0;
  int open_ = 0;  // parentheses and calls open at this point
  std::shared_ptr<Sources> sources_;
};

// ---- meaning ----

/// For a name nothing close to which exists: it may be an op of a plugin not loaded.
std::string plugin_hint(const std::string& suggestion) {
  if (suggestion.find("did you mean") != std::string::npos) return {};
  return ": if an op of that name comes from a plugin, load it (opgraph --plugin FILE.so; load_plugin in C++)";
}

/// What a name or expression stands for while a program runs.
struct Value {
  enum class Kind : std::uint8_t { node, number, string, callable, list } kind = Kind::node;
  NodeId node = 0;
  double number = 0.0;
  bool integer = false;
  std::string text;  // string value, or the op/block a callable names
  std::vector<double> items = {};  // a list of numbers (`integer`: all whole)

  std::string describe(const Graph& g) const {
    switch (kind) {
      case Kind::node: return fmt::format("node '{}'", g.node(node).name);
      case Kind::number: return fmt::format("the number {}", number);
      case Kind::string: return fmt::format("the string \"{}\"", text);
      case Kind::callable: return fmt::format("'{}'", text);
      case Kind::list: return fmt::format("the list [{}]", fmt::join(items, ", "));
    }
    return "?";
  }
};

struct Scope {
  std::string prefix;  // "" at top level, "h1" inside the block instance h1
  std::map<std::string, Value, std::less<>> vars;
  std::vector<std::string> chain;  // blocks being expanded, outermost first
  std::map<std::string, int> counters;
  bool top() const { return prefix.empty() && chain.empty(); }
};

class Runner {
 public:
  Runner(const Program& program, Parser& parser, ModelFile& out) : p_(program), parser_(parser), out_(out) {}

  void run() {
    Scope top;
    for (const Statement& s : p_.statements) exec(s, top);
  }

 private:
  Graph& g() { return out_.graph; }
  /// The graph, for adding one node: refuses past kMaxNodes, whether the nodes come from
  /// blocks or are written out one per line.
  static constexpr std::size_t kMaxNodes = 100'000;
  void room(Loc loc, const Scope& scope) {
    if (g().size() >= kMaxNodes) fail(loc, scope, fmt::format("the model expands to more than {} nodes", kMaxNodes));
  }
  Graph& grow(Loc loc, const Scope& scope) {
    room(loc, scope);
    return g();
  }
  std::string where(Loc loc, const Scope&) const { return parser_.where(loc); }
  [[noreturn]] void fail(Loc loc, const Scope& scope, const std::string& what) const {
    throw ParseError(where(loc, scope), what);
  }
  std::string full_name(const Scope& scope, const std::string& name) const {
    return scope.prefix.empty() ? name : scope.prefix + "." + name;
  }

  /// Runs one statement; returns the value of a `return`.
  std::optional<Value> exec(const Statement& s, Scope& scope) {
    switch (s.kind) {
      case Statement::Kind::input:
      case Statement::Kind::labels: {
        const NodeId id = grow(s.loc, scope).add_input(s.name, shape(s, scope), where(s.loc, scope), s.index);
        scope.vars[s.name] = Value{Value::Kind::node, id, 0.0, false, {}};
        if (s.kind == Statement::Kind::labels) {
          if (!out_.labels.empty())
            fail(s.loc, scope, fmt::format("a second labels input '{}' (the first is '{}')", s.name, out_.labels));
          out_.labels = s.name;
        } else if (out_.input.empty()) {
          out_.input = s.name;
        }
        return std::nullopt;
      }
      case Statement::Kind::param: {
        const Shape sh = shape(s, scope);
        const Init init = s.init ? initialiser(*s.init, scope) : sh.rank() >= 2 ? Init::xavier() : Init::zeros();
        const NodeId id = grow(s.loc, scope).add_param(full_name(scope, s.name), sh, init, where(s.loc, scope));
        scope.vars[s.name] = Value{Value::Kind::node, id, 0.0, false, {}};
        return std::nullopt;
      }
      case Statement::Kind::assign: {
        if (!s.names.empty()) {
          assign_parts(s, scope);
          return std::nullopt;
        }
        const Value v = named_node(*s.value, scope, full_name(scope, s.name), s.loc);
        scope.vars[s.name] = v;
        return std::nullopt;
      }
      case Statement::Kind::output:
      case Statement::Kind::loss: {
        NodeId id;
        if (s.value) {
          id = named_node(*s.value, scope, s.name, s.loc).node;
          scope.vars[s.name] = Value{Value::Kind::node, id, 0.0, false, {}};
        } else {
          id = node_named(s.name, s.name_loc, scope);
        }
        if (s.kind == Statement::Kind::output) {
          g().add_output(id);
        } else {
          if (g().loss()) fail(s.loc, scope, fmt::format("a second loss '{}' (the first is '{}')", s.name,
                                                         g().node(*g().loss()).name));
          // Training reads one number: say so here, not at the first step.
          const Shape& shape = g().node(id).shape;
          if (shape.has_batch() || shape.numel() != 1)
            fail(s.loc, scope, fmt::format("the loss '{}' has shape {}: a loss is one number; reduce it with mean(...) "
                                           "or sum(...), or use a loss op",
                                           s.name, shape));
          g().set_loss(id);
        }
        return std::nullopt;
      }
      case Statement::Kind::ret:
        return eval(*s.value, scope, {});
    }
    return std::nullopt;
  }

  /// `a, b = op(...)`: the op's parts take the names on the left.
  void assign_parts(const Statement& s, Scope& scope) {
    const Value v = eval(*s.value, scope, {});
    const std::size_t want = s.names.size();
    const Node* n = v.kind == Value::Kind::node ? &g().node(v.node) : nullptr;
    if (!n || n->parts.size() != want) {
      const std::string got = !n                  ? v.describe(g())
                              : n->parts.empty() ? fmt::format("one output ({} of {})", n->name, n->op ? n->op->name : "")
                                                  : fmt::format("{} outputs", n->parts.size());
      fail(s.loc, scope, fmt::format("{} names on the left of '=' need an op with {} outputs; the right side gives {}",
                                     want, want, got));
    }
    const std::vector<NodeId> parts = n->parts;
    for (std::size_t k = 0; k < want; ++k) {
      const auto& [name, loc] = s.names[k];
      const std::string full = full_name(scope, name);
      if (auto other = g().find(full); other && *other != parts[k])
        fail(loc, scope, fmt::format("duplicate node name '{}' (first declared at {})", full, g().node(*other).origin));
      g().rename(parts[k], full);
      scope.vars[name] = node_value(parts[k]);
    }
  }

  /// Evaluates `e` into a node called `name`: the outermost op of the expression gets the
  /// name; a bare value gets an identity node so that the name exists.
  Value named_node(const Expr& e, Scope& scope, const std::string& name, Loc loc) {
    Value v = eval(e, scope, name);
    if (v.kind != Value::Kind::node)
      fail(e.loc, scope, fmt::format("'{}' must be a value (a node), got {}", name, v.describe(g())));
    if (g().node(v.node).name != name) {
      const NodeId id = grow(loc, scope).add_op("identity", {v.node}, {}, name, where(loc, scope));
      v.node = id;
    }
    return v;
  }

  NodeId node_named(const std::string& name, Loc loc, const Scope& scope) {
    if (auto it = scope.vars.find(name); it != scope.vars.end() && it->second.kind == Value::Kind::node)
      return it->second.node;
    if (auto id = g().find(name)) return *id;
    fail(loc, scope, fmt::format("unknown name '{}'{}", name, suggestion(name, known_names(scope))));
  }

  /// Names a value may refer to here: the scope's own, then every node (blocks see globals).
  std::vector<std::string> known_names(const Scope& scope) const {
    std::vector<std::string> names = out_.graph.names();
    for (const auto& [k, v] : scope.vars) names.push_back(k);
    std::sort(names.begin(), names.end());
    names.erase(std::unique(names.begin(), names.end()), names.end());
    return names;
  }

  std::int64_t dimension(const Expr& e, const Scope& scope) {
    if (e.kind == Expr::Kind::name && e.text == "N") return N;
    // Any other bare name not bound to a number is a named dimension, bound when a plan is
    // compiled: [N, T, 64].
    if (e.kind == Expr::Kind::name && !scope.vars.count(e.text)) return dim(e.text);
    const Value v = eval_constant(e, scope);
    if (v.kind != Value::Kind::number || !v.integer || v.number < 0)
      fail(e.loc, scope, fmt::format("a dimension must be a whole number >= 0 or a name (N, T, ...), got {}",
                                     v.describe(g())));
    // Numbers are doubles: past 2^53 they are no longer exact, and no tensor is that long.
    if (v.number > kMaxExactInteger)
      fail(e.loc, scope, fmt::format("a dimension must be at most 2^53, got {}", v.describe(g())));
    return static_cast<std::int64_t>(v.number);
  }

  Shape shape(const Statement& s, const Scope& scope) {
    std::vector<std::int64_t> dims;
    for (const auto& d : s.shape) dims.push_back(dimension(*d, scope));
    return Shape(std::move(dims));
  }

  /// A number, string or callable (no nodes are created).
  Value eval_constant(const Expr& e, const Scope& scope) {
    if (e.kind == Expr::Kind::number) return Value{Value::Kind::number, 0, e.number, e.integer, {}};
    if (e.kind == Expr::Kind::list) {
      Value list{Value::Kind::list, 0, 0.0, true, {}};
      for (const Arg& a : e.args) {
        const Value item = eval_constant(*a.value, scope);
        if (item.kind != Value::Kind::number)
          fail(a.loc, scope, fmt::format("a list holds numbers, got {}", item.describe(g())));
        list.items.push_back(item.number);
        list.integer = list.integer && item.integer;
      }
      return list;
    }
    if (e.kind == Expr::Kind::string) return Value{Value::Kind::string, 0, 0.0, false, e.text};
    if (e.kind == Expr::Kind::name) {
      if (auto it = scope.vars.find(e.text); it != scope.vars.end()) return it->second;
      return Value{Value::Kind::string, 0, 0.0, false, e.text};  // bare words: mean, sum, relu, ...
    }
    fail(e.loc, scope, "expected a number or a name here");
  }

  Init initialiser(const Expr& e, const Scope& scope) {
    std::vector<double> a;
    for (const auto& arg : e.args) {
      const Value v = eval_constant(*arg.value, scope);
      if (v.kind != Value::Kind::number) fail(arg.loc, scope, fmt::format("'{}' takes numbers", e.text));
      a.push_back(v.number);
    }
    auto want = [&](std::size_t n) {
      if (a.size() != n)
        fail(e.loc, scope, fmt::format("'{}' takes {} number{}, got {}", e.text, n, n == 1 ? "" : "s", a.size()));
    };
    if (e.text == "zeros") return want(0), Init::zeros();
    if (e.text == "constant") return want(1), Init::constant(a[0]);
    if (e.text == "normal") {
      want(2);
      if (!(a[1] >= 0))
        fail(e.loc, scope, fmt::format("normal({}, {}): the standard deviation must be >= 0", a[0], a[1]));
      return Init::normal(a[0], a[1]);
    }
    if (e.text == "uniform") {
      want(2);
      if (!(a[0] < a[1])) fail(e.loc, scope, fmt::format("uniform({}, {}): the low bound must be below the high one", a[0], a[1]));
      return Init::uniform(a[0], a[1]);
    }
    if (e.text == "xavier" || e.text == "glorot") return want(0), Init::xavier();
    if (e.text == "he") return want(0), Init::he();
    static const std::vector<std::string> known = {"zeros", "constant", "normal", "uniform", "xavier", "glorot", "he"};
    fail(e.loc, scope, fmt::format("unknown initialiser '{}'{}", e.text, suggestion(e.text, known)));
  }

  std::string auto_name(Scope& scope, const std::string& base) {
    if (scope.prefix.empty()) return {};  // the graph picks <op>_<k>
    for (;;) {
      const std::string name = fmt::format("{}.{}_{}", scope.prefix, base, ++scope.counters[base]);
      if (!g().find(name)) return name;
    }
  }

  Value node_value(NodeId id) { return Value{Value::Kind::node, id, 0.0, false, {}}; }

  Value eval(const Expr& e, Scope& scope, const std::string& name) {
    switch (e.kind) {
      case Expr::Kind::number:
      case Expr::Kind::string:
      case Expr::Kind::list: return eval_constant(e, scope);
      case Expr::Kind::name: {
        if (auto it = scope.vars.find(e.text); it != scope.vars.end()) return it->second;
        if (auto id = g().find(e.text)) return node_value(*id);
        if (p_.blocks.count(e.text) || Registry::global().find(e.text))
          return Value{Value::Kind::callable, 0, 0.0, false, e.text};
        const std::string near = suggestion(e.text, known_names(scope));
        fail(e.loc, scope, fmt::format("unknown name '{}'{}{}", e.text, near, plugin_hint(near)));
      }
      case Expr::Kind::binary: {
        static const std::map<std::string, std::string> ops = {{"+", "add"}, {"-", "sub"}, {"*", "mul"}, {"/", "div"}};
        const Value lhs = eval(*e.args[0].value, scope, {}), rhs = eval(*e.args[1].value, scope, {});
        // A node and a number: factor * x + offset, one scale node (`x / 2`, `x + 1e-5`, `1 - x`).
        const bool lnum = lhs.kind == Value::Kind::number, rnum = rhs.kind == Value::Kind::number;
        if ((lnum && rhs.kind == Value::Kind::node) || (rnum && lhs.kind == Value::Kind::node)) {
          const double c = lnum ? lhs.number : rhs.number;
          const NodeId x = lnum ? rhs.node : lhs.node;
          double factor = 1.0, offset = 0.0;
          if (e.text == "+") offset = c;
          else if (e.text == "-") (lnum ? (factor = -1.0, offset = c) : (offset = -c));
          else if (e.text == "*") factor = c;
          else if (rnum) factor = 1.0 / c;
          else
            fail(e.loc, scope, fmt::format("{} / {}: dividing a number by a node needs div(a, b) with both as nodes",
                                           lhs.describe(g()), rhs.describe(g())));
          return node_value(grow(e.loc, scope).add_op("scale", {x}, {{"factor", factor}, {"offset", offset}},
                                                      name.empty() ? auto_name(scope, "scale") : name,
                                                      where(e.loc, scope)));
        }
        std::vector<NodeId> in;
        in.push_back(as_node(lhs, *e.args[0].value, scope, ops.at(e.text)));
        in.push_back(as_node(rhs, *e.args[1].value, scope, ops.at(e.text)));
        const std::string op = ops.at(e.text);
        return node_value(
            grow(e.loc, scope).add_op(op, in, {}, name.empty() ? auto_name(scope, op) : name, where(e.loc, scope)));
      }
      case Expr::Kind::call: return call(e, scope, name);
    }
    fail(e.loc, scope, "cannot evaluate this expression");
  }

  NodeId as_node(const Value& v, const Expr& e, const Scope& scope, const std::string& op) {
    if (v.kind == Value::Kind::node) return v.node;
    fail(e.loc, scope, fmt::format("{}: expected a value (a node), got {}", op, v.describe(g())));
  }

  Value call(const Expr& e, Scope& scope, const std::string& name) {
    std::string callee = e.text;
    if (auto it = scope.vars.find(callee); it != scope.vars.end()) {
      if (it->second.kind != Value::Kind::callable && it->second.kind != Value::Kind::string)
        fail(e.loc, scope, fmt::format("'{}' is {}, not an op or a block", callee, it->second.describe(g())));
      callee = it->second.text;
    }
    if (auto b = p_.blocks.find(callee); b != p_.blocks.end()) return instantiate(b->second, e, scope, name);
    const OpDef* op = Registry::global().find(callee);
    if (!op) {
      std::vector<std::string> known = Registry::global().names();
      for (const auto& [k, v] : p_.blocks) known.push_back(k);
      const std::string near = suggestion(callee, known);
      fail(e.loc, scope, fmt::format("unknown op '{}'{}{}", callee, near, plugin_hint(near)));
    }
    std::vector<NodeId> inputs;
    Attrs attrs;
    for (const Arg& a : e.args) {
      if (a.name.empty()) {
        if (!attrs.empty()) fail(a.loc, scope, fmt::format("{}: inputs come before attributes", callee));
        const Value v = eval(*a.value, scope, {});
        if (v.kind != Value::Kind::node) {
          // slice(x, 0, 1): a number where an input was expected is most likely an
          // attribute given by position.
          const std::size_t fixed = op->inputs.size() - (op->variadic() ? 1 : 0);
          const std::size_t at = inputs.size() >= fixed ? inputs.size() - fixed : 0;
          std::string hint;
          if (!op->variadic() && inputs.size() >= op->inputs.size() && at < op->attrs.size())
            hint = fmt::format(": attributes are given by name, e.g. {}={} ({} takes {})", op->attrs[at].name,
                               a.value->kind == Expr::Kind::number ? a.value->text : v.describe(g()), callee,
                               op->signature());
          else
            hint = fmt::format(" ({} takes {})", callee, op->signature());
          fail(a.loc, scope, fmt::format("{}: expected a value (a node), got {}{}", callee, v.describe(g()), hint));
        }
        inputs.push_back(v.node);
      } else {
        const Value v = eval_constant(*a.value, scope);
        if (v.kind == Value::Kind::node)
          fail(a.loc, scope, fmt::format("{}: attribute '{}' takes a number or a word, got {}", callee, a.name,
                                         v.describe(g())));
        if (v.kind == Value::Kind::list) {
          if (v.integer) {
            IntList ints;
            for (double d : v.items) {
              if (std::abs(d) > kMaxExactInteger)
                fail(a.loc, scope, fmt::format("{}: attribute '{}' holds {}, past 2^53", callee, a.name, d));
              ints.push_back(static_cast<std::int64_t>(d));
            }
            attrs.emplace_back(a.name, std::move(ints));
          } else {
            attrs.emplace_back(a.name, RealList(v.items));
          }
        } else if (v.kind == Value::Kind::number) {
          if (v.integer && std::abs(v.number) > kMaxExactInteger)
            fail(a.loc, scope, fmt::format("{}: attribute '{}' must be at most 2^53 in size, got {}", callee, a.name,
                                           v.describe(g())));
          if (v.integer) attrs.emplace_back(a.name, static_cast<std::int64_t>(v.number));
          else attrs.emplace_back(a.name, v.number);
        } else if (v.text == "true" || v.text == "false") {
          attrs.emplace_back(a.name, v.text == "true");
        } else if (v.text == "none") {
          attrs.emplace_back(a.name, AttrValue());
        } else {
          attrs.emplace_back(a.name, v.text);
        }
      }
    }
    const std::string node_name = name.empty() ? auto_name(scope, callee) : name;
    return node_value(grow(e.loc, scope).add_op(callee, inputs, attrs, node_name, where(e.loc, scope)));
  }

  static constexpr std::size_t kMaxBlockDepth = 64;

  Value instantiate(const BlockDef& b, const Expr& e, Scope& outer, const std::string& name) {
    if (std::find(outer.chain.begin(), outer.chain.end(), b.name) != outer.chain.end()) {
      std::string cycle;
      for (const auto& c : outer.chain) cycle += c + " -> ";
      fail(e.loc, outer, fmt::format("block '{}' calls itself: {}{}", b.name, cycle, b.name));
    }
    // Blocks calling blocks twice over grow as 2^depth: bound what a file can expand to.
    if (outer.chain.size() >= kMaxBlockDepth)
      fail(e.loc, outer, fmt::format("blocks nested more than {} deep", kMaxBlockDepth));
    room(e.loc, outer);
    // A call sure to pass the bound is refused here, from the block's text, instead of
    // after expanding 100 000 nodes of it (seconds; minutes under a sanitizer).
    if (const std::uint64_t least = least_nodes(b); least > kMaxNodes - g().size())
      fail(e.loc, outer, fmt::format("the model expands to more than {} nodes: block '{}' makes at least {}", kMaxNodes,
                                     b.name, least));
    Scope inner;
    inner.chain = outer.chain;
    inner.chain.push_back(b.name);
    if (!name.empty()) {
      inner.prefix = name;
    } else {
      int& k = next_instance_[(outer.prefix.empty() ? "" : outer.prefix + ".") + b.name];
      do inner.prefix = (outer.prefix.empty() ? "" : outer.prefix + ".") + fmt::format("{}_{}", b.name, ++k);
      while (g().find(inner.prefix) || used_prefixes_.count(inner.prefix));
    }
    used_prefixes_.insert(inner.prefix);
    bind_arguments(b, e, outer, inner);
    // Errors inside the instance keep their own place and say which call expanded it: the
    // three innermost calls and the outermost one, so that the line stays readable.
    const std::size_t depth = outer.chain.size();  // 0: called from the top level
    const std::string here = fmt::format(" (in block '{}' at {})", b.name, parser_.where(e.loc));
    auto context = [&] {
      if (!error_depth_) error_depth_ = depth;  // the innermost call sees the error first
      const std::size_t k = *error_depth_ - depth;
      std::string c = k < 3 || depth == 0 ? here : "";
      if (k == 3 && depth > 0) c = fmt::format(" (in {} more blocks)", depth);
      if (depth == 0) error_depth_.reset();
      return c;
    };
    try {
      return expand(b, inner);
    } catch (const ShapeError& err) {
      throw ShapeError(err.where(), err.detail() + context());
    } catch (const ParseError& err) {
      throw ParseError(err.where(), err.detail() + context());
    } catch (const GraphError& err) {
      throw GraphError(err.where(), err.detail() + context());
    }
  }

  /// A lower bound on the nodes one instance of `b` adds, read from its text (memoised):
  /// every op call, operator and param counts one, every call of another block what that
  /// block makes. A call through a name the block binds (a parameter, an assignment) and
  /// a block that calls itself (refused when expanded) count nothing; sums saturate.
  static constexpr std::uint64_t kManyNodes = std::uint64_t{1} << 62;
  static std::uint64_t plus(std::uint64_t a, std::uint64_t b) { return std::min(a + b, kManyNodes); }

  std::uint64_t least_nodes(const BlockDef& b) {
    if (auto it = least_.find(&b); it != least_.end()) return it->second;
    least_[&b] = 0;
    std::set<std::string, std::less<>> locals;
    for (const auto& p : b.params) locals.insert(p.first);
    for (const Statement& s : b.body) {
      if (!s.name.empty()) locals.insert(s.name);
      for (const auto& n : s.names) locals.insert(n.first);
    }
    std::uint64_t n = 0;
    for (const Statement& s : b.body) {
      if (s.kind == Statement::Kind::param || s.kind == Statement::Kind::input || s.kind == Statement::Kind::labels)
        n = plus(n, 1);
      if (s.value) n = plus(n, least_nodes(*s.value, locals));
    }
    return least_[&b] = n;
  }

  std::uint64_t least_nodes(const Expr& e, const std::set<std::string, std::less<>>& locals) {
    std::uint64_t n = 0;
    if (e.kind == Expr::Kind::binary) n = 1;
    if (e.kind == Expr::Kind::call && !locals.count(e.text)) {
      if (auto b = p_.blocks.find(e.text); b != p_.blocks.end()) n = least_nodes(b->second);
      else if (Registry::global().find(e.text)) n = 1;
    }
    if (e.kind == Expr::Kind::binary || e.kind == Expr::Kind::call)
      for (const Arg& a : e.args) n = plus(n, least_nodes(*a.value, locals));
    return n;
  }

  /// Binds a call's arguments to the block's parameters: positional in order, then by
  /// name, then defaults.
  void bind_arguments(const BlockDef& b, const Expr& e, Scope& outer, Scope& inner) {
    std::vector<std::optional<Value>> bound(b.params.size());
    std::size_t next = 0;
    for (const Arg& a : e.args) {
      std::size_t index = next;
      if (!a.name.empty()) {
        const auto it = std::find_if(b.params.begin(), b.params.end(), [&](const auto& p) { return p.first == a.name; });
        if (it == b.params.end()) {
          std::vector<std::string> names;
          for (const auto& p : b.params) names.push_back(p.first);
          fail(a.loc, outer, fmt::format("block '{}' has no parameter '{}'{}", b.name, a.name, suggestion(a.name, names)));
        }
        index = static_cast<std::size_t>(it - b.params.begin());
      } else {
        ++next;
      }
      if (index >= b.params.size())
        fail(a.loc, outer, fmt::format("block '{}' takes {} argument{}, got more", b.name, b.params.size(),
                                       b.params.size() == 1 ? "" : "s"));
      if (bound[index]) fail(a.loc, outer, fmt::format("block '{}': '{}' given twice", b.name, b.params[index].first));
      bound[index] = eval(*a.value, outer, {});
    }
    for (std::size_t i = 0; i < b.params.size(); ++i) {
      if (!bound[i]) {
        if (!b.params[i].second)
          fail(e.loc, outer, fmt::format("block '{}' needs argument '{}'", b.name, b.params[i].first));
        bound[i] = eval(*b.params[i].second, outer, {});
      }
      inner.vars[b.params[i].first] = *bound[i];
    }
  }

  Value expand(const BlockDef& b, Scope& inner) {
    for (const Statement& s : b.body) {
      if (auto result = exec(s, inner)) {
        if (result->kind != Value::Kind::node)
          fail(s.loc, inner, fmt::format("block '{}' must return a value (a node), got {}", b.name,
                                         result->describe(g())));
        const Node& n = g().node(result->node);
        // The block's result carries the instance's name: rename a node the instance made,
        // or name anything else through an identity node.
        if (n.kind == NodeKind::op && n.name.rfind(inner.prefix + ".", 0) == 0) {
          g().rename(result->node, inner.prefix);
          return *result;
        }
        return node_value(grow(s.loc, inner).add_op("identity", {result->node}, {}, inner.prefix, where(s.loc, inner)));
      }
    }
    fail(b.loc, inner, fmt::format("block '{}' ended without 'return'", b.name));
  }

  const Program& p_;
  Parser& parser_;
  ModelFile& out_;
  std::set<std::string> used_prefixes_;
  std::map<std::string, int> next_instance_;  // per block (and prefix): the k of "<block>_<k>" to try next
  std::optional<std::size_t> error_depth_;  // chain depth of the innermost block call an error left
  std::map<const BlockDef*, std::uint64_t> least_;  // least_nodes per block
};

}  // namespace

namespace {
[[noreturn]] void too_large(const std::string& name, std::size_t bytes) {
  throw ParseError(name, fmt::format("{:.1f} MiB is too large for a model file (the limit is {} MiB): an .og file "
                                     "declares the architecture; trained weights go in checkpoints",
                                     static_cast<double>(bytes) / (1 << 20), kMaxModelFileBytes >> 20));
}
}  // namespace

namespace {
/// The model's text with its included blocks appended and the include lines commented
/// out, so that a checkpoint rebuilds the model without the files (line numbers kept).
std::string self_contained(std::string_view text, const Sources& sources) {
  auto comment_includes = [](std::string_view t, int only_line) {
    std::string out;
    int line = 1;
    std::size_t start = 0;
    while (start <= t.size()) {
      const std::size_t end = std::min(t.find('\n', start), t.size());
      std::string_view l = t.substr(start, end - start);
      const std::size_t first = l.find_first_not_of(" \t");
      const bool is_include = first != std::string_view::npos && l.substr(first).starts_with("include \"");
      if (is_include && (only_line < 0 || line == only_line)) out += "# (included below) ";
      out += l;
      if (end < t.size()) out += '\n';
      start = end + 1;
      ++line;
    }
    return out;
  };
  std::string out(text);
  for (const auto& [line, _] : sources.inlined)
    if (line > 0) out = comment_includes(out, line);
  for (const auto& [line, blocks] : sources.inlined) {
    if (!out.empty() && out.back() != '\n') out += '\n';
    out += "# ---- included blocks ----\n" + comment_includes(blocks, -1);
  }
  return out;
}
}  // namespace

ModelFile parse_model(std::string_view text, const std::string& name) {
  ModelFile out;
  if (text.size() > kMaxModelFileBytes) too_large(name, text.size());
  out.name = name;
  out.text = std::string(text);
  Parser parser(Lexer(text, name).run(), name);
  const Program program = parser.run();
  if (!parser.sources().inlined.empty()) out.text = self_contained(text, parser.sources());
  Runner(program, parser, out).run();
  if (out.input.empty() && !out.graph.inputs().empty()) out.input = out.graph.node(out.graph.inputs().front()).name;
  return out;
}

ModelFile load_model(const std::string& path) {
  if (is_onnx_path(path)) {
    OnnxModel m = load_onnx(path);
    m.file.initial = std::move(m.params);
    return std::move(m.file);
  }
  const std::string text =
      read_file(path, {kMaxModelFileBytes, "a model file",
                       "an .og file declares the architecture; trained weights go in checkpoints"});
  if (text.empty()) throw ParseError(path, "empty model file: declare at least an input and a loss");
  return parse_model(text, path);
}

void apply_initial(const ModelFile& file, Params& params) {
  for (const auto& [name, t] : file.initial) params.at(name).copy_from(t);
}

std::string print_model(const Graph& g, const PrintOptions& options) {
  std::string out;
  auto shape_text = [](const Shape& s) {
    std::string t = "[";
    for (int i = 0; i < s.rank(); ++i) t += (i ? ", " : "") + (is_dim_symbol(s[i]) ? dim_name(s[i]) : std::to_string(s[i]));
    return t + "]";
  };
  auto comment = [&](const Node& n) {
    if (!options.shapes) return std::string();
    return "  # " + (options.batch > 0 ? n.shape.bind(options.batch) : n.shape).str();
  };
  for (NodeId id : g.topological_order()) {
    const Node& n = g.node(id);
    if (n.kind == NodeKind::input) {
      out += fmt::format("{} {} {}{}\n", n.name == options.labels ? "labels" : "input", n.name, shape_text(n.shape),
                         n.index ? " i64" : "");
    } else if (n.kind == NodeKind::param) {
      out += fmt::format("param {} {} {}{}\n", n.name, shape_text(n.shape), n.init.str(), comment(n));
    } else if (n.kind == NodeKind::part) {
      continue;  // made by its op's line
    } else {
      std::vector<std::string> args;
      for (NodeId in : n.inputs) args.push_back(g.node(in).name);
      for (std::size_t i = 0; i < n.op->attrs.size(); ++i)
        if (!(n.attrs[i] == n.op->attrs[i].default_value)) args.push_back(n.op->attrs[i].name + "=" + n.attrs[i].str());
      // An op with several outputs: `s = split(...)` when its parts keep the names the op
      // gives them (s.0, s.1 or s.<output>), else `a, b = split(...)`.
      std::string lhs = n.name;
      bool renamed = false;
      std::vector<std::string> part_names;
      for (std::size_t k = 0; k < n.parts.size(); ++k) {
        const std::string& pn = g.node(n.parts[k]).name;
        part_names.push_back(pn);
        const std::string given = n.op->output(k).variadic
                                      ? fmt::format("{}.{}", n.name, k - (n.op->outputs.size() - 1))
                                      : n.name + "." + n.op->outputs[k].name;
        renamed = renamed || pn != given;
      }
      if (renamed) lhs = fmt::format("{}", fmt::join(part_names, ", "));
      std::string shapes;
      if (options.shapes && !n.parts.empty()) {
        std::vector<std::string> each;
        for (NodeId p : n.parts) each.push_back((options.batch > 0 ? g.node(p).shape.bind(options.batch) : g.node(p).shape).str());
        shapes = "  # " + fmt::format("{}", fmt::join(each, " "));
      }
      out += fmt::format("{} = {}({}){}\n", lhs, n.op->name, fmt::join(args, ", "), n.parts.empty() ? comment(n) : shapes);
    }
  }
  for (NodeId id : g.outputs()) out += fmt::format("output {}\n", g.node(id).name);
  if (g.loss()) out += fmt::format("loss {}\n", g.node(*g.loss()).name);
  return out;
}

std::string graph_fingerprint(const Graph& graph) {
  return fmt::format("{:016x}", stable_hash(print_model(graph)));
}

std::vector<std::string> plugins_used(const Graph& graph) {
  std::set<std::string> files;
  for (NodeId id = 0; id < graph.size(); ++id) {
    const Node& n = graph.node(id);
    if (n.kind == NodeKind::op && n.op->source != "built-in" && !n.op->source.empty()) files.insert(n.op->source);
  }
  return {files.begin(), files.end()};
}

bool same_graph(const Graph& a, const Graph& b, std::string* why) {
  auto differ = [&](const std::string& what) {
    if (why) *why = what;
    return false;
  };
  for (NodeId id = 0; id < a.size(); ++id) {
    const Node& x = a.node(id);
    const auto other = b.find(x.name);
    if (!other) return differ(fmt::format("node '{}' is missing", x.name));
    const Node& y = b.node(*other);
    if (x.kind != y.kind) return differ(fmt::format("node '{}' is of another kind", x.name));
    if (x.shape != y.shape) return differ(fmt::format("node '{}': shape {} against {}", x.name, x.shape, y.shape));
    if (x.op != y.op)
      return differ(fmt::format("node '{}': op {} against {}", x.name, x.op ? x.op->name : "none", y.op ? y.op->name : "none"));
    if (x.attrs != y.attrs) {
      for (std::size_t i = 0; i < x.attrs.size() && i < y.attrs.size(); ++i)
        if (!(x.attrs[i] == y.attrs[i]))
          return differ(fmt::format("node '{}': {}={} against {}", x.name, x.op->attrs[i].name, x.attrs[i].str(),
                                    y.attrs[i].str()));
      return differ(fmt::format("node '{}': other attributes", x.name));
    }
    if (!(x.init == y.init)) return differ(fmt::format("node '{}': initialiser {} against {}", x.name, x.init.str(), y.init.str()));
    if (x.inputs.size() != y.inputs.size()) return differ(fmt::format("node '{}': another number of inputs", x.name));
    for (std::size_t i = 0; i < x.inputs.size(); ++i)
      if (a.node(x.inputs[i]).name != b.node(y.inputs[i]).name)
        return differ(fmt::format("node '{}': input {} is '{}' against '{}'", x.name, i, a.node(x.inputs[i]).name,
                                  b.node(y.inputs[i]).name));
  }
  if (a.size() != b.size()) return differ(fmt::format("{} nodes against {}", a.size(), b.size()));
  auto names = [](const Graph& g, const std::vector<NodeId>& ids) {
    std::vector<std::string> out;
    for (NodeId id : ids) out.push_back(g.node(id).name);
    return out;
  };
  if (names(a, a.outputs()) != names(b, b.outputs())) return differ("different outputs");
  const std::string la = a.loss() ? a.node(*a.loss()).name : "", lb = b.loss() ? b.node(*b.loss()).name : "";
  if (la != lb) return differ(fmt::format("loss '{}' against '{}'", la, lb));
  return true;
}

}  // namespace opgraph
