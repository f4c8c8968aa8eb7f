#include <spillway/test_support/run_command.hpp>
#include <spillway/test_support/temp_dir.hpp>

#include <sys/wait.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

namespace spillway::test_support {

namespace {

std::string quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

CommandResult run_command(const std::vector<std::string>& argv, const std::string& input,
                          const std::vector<std::string>& env, const std::vector<std::string>& unset) {
  TempDir dir("command");
  const std::string in = dir.path() + "/in", out = dir.path() + "/out", err = dir.path() + "/err";
  std::ofstream(in) << input;
  // env(1) sets and unsets the environment for the one command, not for the test process.
  std::string cmd = "env";
  for (const auto& name : unset) cmd += " -u " + quote(name);
  for (const auto& entry : env) cmd += " " + quote(entry);
  for (const auto& arg : argv) cmd += " " + quote(arg);
  cmd += " <" + quote(in) + " >" + quote(out) + " 2>" + quote(err);
  const int status = std::system(cmd.c_str());
  CommandResult r;
  r.code = status != -1 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = slurp(out);
  r.err = slurp(err);
  return r;
}

}  // namespace spillway::test_support
