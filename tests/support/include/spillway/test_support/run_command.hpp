// A command run to completion, as a user would run it from a shell: its exit code and both
// output streams. For the tests of the `spillway` binary's commands.
#pragma once

#include <string>
#include <vector>

namespace spillway::test_support {

struct CommandResult {
  int code = -1;  // the exit status; -1 if the command did not exit normally
  std::string out, err;
};

// Runs `argv` (argv[0] the program; every argument passed as is, however it is spelled) with
// `input` on stdin, the `env` entries ("NAME=value") added to the environment and the `unset`
// names removed from it.
CommandResult run_command(const std::vector<std::string>& argv, const std::string& input = {},
                          const std::vector<std::string>& env = {}, const std::vector<std::string>& unset = {});

}  // namespace spillway::test_support
