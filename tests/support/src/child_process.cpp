#include "spillway/test_support/child_process.hpp"

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <fcntl.h>
#include <fstream>
#include <functional>
#include <future>
#include <grp.h>
#include <iterator>
#include <pwd.h>
#include <sstream>
#include <stdexcept>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <thread>
#include <utility>
#include <unistd.h>

#include "spillway/test_support/wait.hpp"

extern char** environ;

namespace spillway::test_support {
namespace {

// PR_SET_PDEATHSIG fires when the thread that forked the child exits. Tests create servers from
// whatever thread they like (gtest's main thread, a worker that ends early), so every fork runs on
// this one thread, which lives as long as the process. Deliberately never destroyed: it must
// outlive every static that might still spawn or stop a child during exit.
class Spawner {
 public:
  static Spawner& instance() {
    static Spawner* spawner = new Spawner;
    return *spawner;
  }

  pid_t run(std::function<pid_t()> fn) {
    std::packaged_task<pid_t()> task(std::move(fn));
    auto result = task.get_future();
    {
      std::lock_guard lock(mutex_);
      queue_.push_back(std::move(task));
    }
    cv_.notify_one();
    return result.get();
  }

 private:
  Spawner() { std::thread([this] { loop(); }).detach(); }

  void loop() {
    for (;;) {
      std::unique_lock lock(mutex_);
      cv_.wait(lock, [this] { return !queue_.empty(); });
      auto task = std::move(queue_.front());
      queue_.pop_front();
      lock.unlock();
      task();
    }
  }

  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<std::packaged_task<pid_t()>> queue_;
};

// What the child reports through the CLOEXEC pipe when it fails before exec.
struct ChildFailure {
  int step;
  int error;
};
constexpr const char* kSteps[] = {"redirect output", "switch user", "set death signal",
                                  "parent already gone", "chdir", "exec"};

[[noreturn]] void child_fail(int pipe_fd, int step) {
  const ChildFailure failure{step, errno};
  [[maybe_unused]] auto ignored = ::write(pipe_fd, &failure, sizeof failure);
  ::_exit(127);
}

struct Prepared {
  std::vector<std::string> args;
  std::vector<char*> argv;
  std::vector<std::string> env_storage;
  std::vector<char*> envp;
  int log_fd = -1;
  int null_fd = -1;
  bool switch_user = false;
  uid_t uid = 0;
  gid_t gid = 0;
  std::string working_dir;
  int death_signal = SIGTERM;
};

// Runs between fork and exec in the child: async-signal-safe calls only (the parent has threads).
[[noreturn]] void run_child(const Prepared& p, int pipe_fd, pid_t parent) {
  ::setpgid(0, 0);
  if (::dup2(p.null_fd, 0) < 0 || ::dup2(p.log_fd, 1) < 0 || ::dup2(p.log_fd, 2) < 0)
    child_fail(pipe_fd, 0);
  // Leak no test descriptors (listening sockets!) into the server. The pipe stays open until exec.
  if (::close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) != 0) {
    const long max_fd = std::min(::sysconf(_SC_OPEN_MAX), 65536L);
    for (int fd = 3; fd < max_fd; ++fd) ::fcntl(fd, F_SETFD, FD_CLOEXEC);
  }
  if (p.switch_user) {
    if (::setgroups(1, &p.gid) != 0 || ::setgid(p.gid) != 0 || ::setuid(p.uid) != 0)
      child_fail(pipe_fd, 1);
  }
  // After the user switch: changing credentials clears the parent-death signal.
  if (::prctl(PR_SET_PDEATHSIG, p.death_signal) != 0) child_fail(pipe_fd, 2);
  if (::getppid() != parent) {
    errno = ESRCH;
    child_fail(pipe_fd, 3);
  }
  if (::chdir(p.working_dir.c_str()) != 0) child_fail(pipe_fd, 4);
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  ::signal(SIGPIPE, SIG_DFL);  // an ignored disposition would survive exec
  ::execve(p.argv[0], p.argv.data(), p.envp.data());
  child_fail(pipe_fd, 5);
}

}  // namespace

ChildProcess::ChildProcess(const ChildSpec& spec) : owner_(::getpid()) {
  if (spec.argv.empty()) throw std::invalid_argument("ChildProcess: empty argv");
  Prepared p;
  p.args = spec.argv;
  for (auto& a : p.args) p.argv.push_back(a.data());
  p.argv.push_back(nullptr);
  // The environment: inherited entries whose name spec.env does not set, then spec.env.
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string entry = *e;
    const std::string name = entry.substr(0, entry.find('=') + 1);
    const bool replaced = std::any_of(spec.env.begin(), spec.env.end(),
                                      [&](const std::string& v) { return v.rfind(name, 0) == 0; });
    if (!replaced) p.env_storage.push_back(entry);
  }
  p.env_storage.insert(p.env_storage.end(), spec.env.begin(), spec.env.end());
  for (auto& e : p.env_storage) p.envp.push_back(e.data());
  p.envp.push_back(nullptr);
  p.working_dir = spec.working_dir.empty() ? "/" : spec.working_dir;
  p.death_signal = spec.death_signal;
  const std::string& program = spec.argv.front();

  if (!spec.run_as_user.empty() && ::geteuid() == 0) {
    const passwd* pw = ::getpwnam(spec.run_as_user.c_str());
    if (pw == nullptr) throw std::runtime_error("ChildProcess: no such user '" + spec.run_as_user + "'");
    p.switch_user = true;
    p.uid = pw->pw_uid;
    p.gid = pw->pw_gid;
  }
  const std::string log = spec.log_path.empty() ? "/dev/null" : spec.log_path;
  p.log_fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (p.log_fd < 0) throw std::runtime_error("ChildProcess: open " + log + ": " + std::strerror(errno));
  p.null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  int pipe_fds[2] = {-1, -1};
  if (p.null_fd < 0 || ::pipe2(pipe_fds, O_CLOEXEC) != 0) {
    const int err = errno;
    ::close(p.log_fd);
    if (p.null_fd >= 0) ::close(p.null_fd);
    throw std::runtime_error(std::string("ChildProcess: ") + std::strerror(err));
  }

  const pid_t parent = ::getpid();
  int fork_errno = 0;
  const pid_t pid = Spawner::instance().run([&]() -> pid_t {
    const pid_t child = ::fork();
    if (child == 0) run_child(p, pipe_fds[1], parent);
    if (child < 0) fork_errno = errno;
    return child;
  });
  ::close(pipe_fds[1]);
  ::close(p.log_fd);
  ::close(p.null_fd);
  if (pid < 0) {
    ::close(pipe_fds[0]);
    throw std::runtime_error("ChildProcess: fork for " + program + ": " + std::strerror(fork_errno));
  }

  // The pipe closes on a successful exec; otherwise the child tells us what went wrong.
  ChildFailure failure{};
  ssize_t n;
  do n = ::read(pipe_fds[0], &failure, sizeof failure);
  while (n < 0 && errno == EINTR);
  ::close(pipe_fds[0]);
  if (n == static_cast<ssize_t>(sizeof failure)) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    throw std::runtime_error("ChildProcess: cannot start " + program + ": " + kSteps[failure.step] +
                             ": " + std::strerror(failure.error));
  }
  pid_ = pid;
}

ChildProcess::~ChildProcess() { kill_and_reap(); }

void ChildProcess::kill_and_reap() {
  if (pid_ > 0 && ::getpid() == owner_ && running()) {
    ::kill(pid_, SIGKILL);
    int status = 0;
    if (::waitpid(pid_, &status, 0) == pid_) status_ = status;
  }
}

ChildProcess::ChildProcess(ChildProcess&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)), owner_(other.owner_), status_(other.status_) {}

ChildProcess& ChildProcess::operator=(ChildProcess&& other) noexcept {
  if (this != &other) {
    kill_and_reap();
    pid_ = std::exchange(other.pid_, -1);
    owner_ = other.owner_;
    status_ = other.status_;
  }
  return *this;
}

bool ChildProcess::running() {
  if (pid_ <= 0 || status_ || ::getpid() != owner_) return false;
  int status = 0;
  const pid_t r = ::waitpid(pid_, &status, WNOHANG);
  if (r == 0) return true;
  status_ = r == pid_ ? status : -1;  // -1: reaped elsewhere (ECHILD)
  return false;
}

bool ChildProcess::wait_exit(std::chrono::milliseconds deadline) {
  return wait_until([this] { return !running(); }, deadline, std::chrono::milliseconds(5));
}

void ChildProcess::signal(int sig) {
  if (running()) ::kill(pid_, sig);
}

bool ChildProcess::stop(int sig, std::chrono::milliseconds grace) {
  if (!running()) return true;
  ::kill(pid_, sig);
  if (wait_exit(grace)) return true;
  ::kill(pid_, SIGKILL);
  int status = 0;
  if (::waitpid(pid_, &status, 0) == pid_) status_ = status;
  return false;
}

bool ChildProcess::exited_ok() const {
  return status_ && *status_ != -1 && WIFEXITED(*status_) && WEXITSTATUS(*status_) == 0;
}

std::string ChildProcess::describe_exit() const {
  if (pid_ <= 0) return "not started";
  if (!status_) return "running";
  if (*status_ == -1) return "exited (status unknown)";
  if (WIFEXITED(*status_)) return "exited with status " + std::to_string(WEXITSTATUS(*status_));
  if (WIFSIGNALED(*status_)) return "killed by signal " + std::to_string(WTERMSIG(*status_));
  return "stopped";
}

std::string file_tail(const std::string& path, std::size_t lines, std::size_t from) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "(no " + path + ")";
  in.seekg(static_cast<std::streamoff>(from));
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::size_t pos = text.size();
  if (pos > 0 && text[pos - 1] == '\n') --pos;
  for (std::size_t seen = 0; pos > 0; --pos) {
    if (text[pos - 1] == '\n' && ++seen == lines) break;
  }
  return text.substr(pos);
}

}  // namespace spillway::test_support
