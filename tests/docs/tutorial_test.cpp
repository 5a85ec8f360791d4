// docs/adding-an-op.md, followed literally: every block marked file=PATH is written,
// every block marked run is executed line by line against the installed package.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <opgraph/datasets/read_file.hpp>

#include "../check_formats.hpp"
#include "../test_files.hpp"

using namespace opgraph;

TEST_CASE("docs: adding-an-op.md works when followed word for word") {
  std::istringstream doc(read_file(OPGRAPH_SOURCE_DIR "/docs/adding-an-op.md"));
  test::ScratchDir dir("tutorial");
  const std::string prefix = OPGRAPH_TEST_PREFIX;
  std::string line, last_output;
  int files = 0, commands = 0;
  while (std::getline(doc, line)) {
    if (line.rfind("```", 0) != 0 || line.size() == 3) continue;
    const std::string info = line.substr(3);
    std::vector<std::string> body;
    while (std::getline(doc, line) && line != "```") body.push_back(line);
    if (const auto at = info.find("file="); at != std::string::npos) {
      const std::filesystem::path path = std::filesystem::path(dir.path()) / info.substr(at + 5);
      std::filesystem::create_directories(path.parent_path());
      std::ofstream out(path);
      for (const auto& l : body) out << l << "\n";
      ++files;
    } else if (info == "sh run") {
      for (const auto& command : body) {
        if (command.empty() || command[0] == '#') continue;
        const std::string out = dir.file(".out");
        const std::string shell = "cd '" + dir.path() + "' && export OPGRAPH_PREFIX='" + prefix + "' PATH='" + prefix +
                                  "/bin':\"$PATH\" && " + command + " > '" + out + "' 2>&1";
        const int rc = std::system(shell.c_str());
        last_output = read_file(out);
        CAPTURE(command);
        CAPTURE(last_output);
        REQUIRE((WIFEXITED(rc) && WEXITSTATUS(rc) == 0));
        ++commands;
      }
    }
  }
  CHECK(files == 3);
  CHECK(commands >= 5);
  std::string error;
  const test::Json result = test::parse_json(last_output.substr(last_output.find('{')), error);
  REQUIRE(error.empty());
  MESSAGE("the tutorial's model reached test accuracy " << result["test_accuracy"].number);
  CHECK(result["test_accuracy"].number >= 0.95);
}
