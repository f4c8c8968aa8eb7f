// A server (or any program) run as a child of the test process, tied to its lifetime.
#pragma once

#include <chrono>
#include <cstddef>
#include <csignal>
#include <optional>
#include <string>
#include <sys/types.h>
#include <vector>

namespace spillway::test_support {

struct ChildSpec {
  std::vector<std::string> argv{};  // argv[0] is the program's absolute path
  std::string log_path{};         // stdout and stderr are appended here; empty: /dev/null
  std::string working_dir = "/";
  std::string run_as_user{};      // when the test runs as root, drop to this user; empty: stay
  int death_signal = SIGTERM;     // what the child receives when the test process dies
  std::vector<std::string> env{};  // "NAME=value" entries added to (or replacing) the inherited ones
};

// Spawns with fork+exec. The child gets PR_SET_PDEATHSIG (set after the user switch, which would
// clear it), its own process group (a terminal's Ctrl-C reaches only the test, whose death then
// stops the child), no inherited descriptors beyond 0-2. fork() runs on one long-lived harness
// thread, because PDEATHSIG fires when the *thread* that forked exits, not the process.
class ChildProcess {
 public:
  ChildProcess() = default;
  explicit ChildProcess(const ChildSpec& spec);  // throws std::runtime_error if fork/exec fails
  ~ChildProcess();                               // SIGKILLs and reaps a child still running
  ChildProcess(ChildProcess&& other) noexcept;
  ChildProcess& operator=(ChildProcess&& other) noexcept;

  pid_t pid() const { return pid_; }
  bool running();                                    // reaps the child if it has exited
  bool wait_exit(std::chrono::milliseconds deadline);  // true once the child has exited
  void signal(int sig);                              // no-op when not running
  // Sends `sig`, waits up to `grace` for the exit, then SIGKILLs and reaps. Returns true when the
  // child went away within the grace period.
  bool stop(int sig, std::chrono::milliseconds grace);
  bool exited_ok() const;             // exited normally with status 0
  std::string describe_exit() const;  // "exited with status 1", "killed by signal 9", "running"

 private:
  void kill_and_reap();

  pid_t pid_ = -1;
  pid_t owner_ = -1;  // process that spawned it: fork()ed copies (death tests) leave it alone
  std::optional<int> status_;
};

// Last `lines` lines of a text file (a server log) from byte `from` on, for error messages.
std::string file_tail(const std::string& path, std::size_t lines = 30, std::size_t from = 0);

}  // namespace spillway::test_support
