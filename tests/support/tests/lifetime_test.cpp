// The servers' lifetime is tied to the test process: a SIGKILLed test leaves nothing listening.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "spillway/test_support/child_process.hpp"
#include "spillway/test_support/postgres.hpp"
#include "spillway/test_support/redis.hpp"
#include "spillway/test_support/temp_dir.hpp"
#include "spillway/test_support/wait.hpp"

namespace spillway::test_support {
namespace {

using namespace std::chrono_literals;
constexpr const char* kHelperEnv = "SPILLWAY_SUPPORT_HELPER_OUT";  // see main.cpp

bool accepts_connections(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return ok;
}

bool gone(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return true;
  const auto close = line.rfind(')');
  return close != std::string::npos && close + 2 < line.size() && line[close + 2] == 'Z';
}

TEST(Lifetime, SigkilledTestLeavesNoServerBehind) {
  TempDir dir("lifetime");
  const std::string out = dir.path() + "/ports";
  ChildProcess helper(ChildSpec{{std::filesystem::read_symlink("/proc/self/exe").string(),
                                 "--hold-servers"},
                                dir.path() + "/helper.log", "/", "", SIGKILL, {std::string(kHelperEnv) + "=" + out}});
  ASSERT_TRUE(wait_until([&] { return std::filesystem::exists(out) || !helper.running(); }, 60s, 10ms));
  ASSERT_TRUE(helper.running()) << helper.describe_exit() << "\n" << file_tail(dir.path() + "/helper.log");
  int pg_port = 0, redis_port = 0;
  pid_t pg_pid = 0, redis_pid = 0;
  std::string pg_data, redis_log;
  std::ifstream(out) >> pg_port >> redis_port >> pg_pid >> redis_pid >> pg_data >> redis_log;
  ASSERT_TRUE(accepts_connections(pg_port));
  ASSERT_TRUE(accepts_connections(redis_port));

  helper.stop(SIGKILL, 10s);  // no destructor, no atexit: only PR_SET_PDEATHSIG is left

  EXPECT_TRUE(wait_until([&] { return !accepts_connections(pg_port); }, 30s, 10ms));
  EXPECT_TRUE(wait_until([&] { return !accepts_connections(redis_port); }, 30s, 10ms));
  // The servers are orphans now; whoever adopted them may not reap, so a zombie counts as gone.
  EXPECT_TRUE(wait_until([&] { return gone(pg_pid) && gone(redis_pid); }, 30s, 10ms));

  // Their files stay until a test process sweeps dirs whose owner is dead. Any test process
  // starting in parallel may be sweeping them at this moment (its remove_all racing ours), and
  // a server's last child may still be writing as it exits, so one sweep may leave the dir
  // behind: sweep until it is gone, within a deadline (it failed once in CI with one sweep).
  const auto pg_dir = std::filesystem::path(pg_data).parent_path();
  const auto redis_dir = std::filesystem::path(redis_log).parent_path();
  EXPECT_TRUE(wait_until(
      [&] {
        TempDir::remove_orphans();
        return !std::filesystem::exists(pg_dir) && !std::filesystem::exists(redis_dir);
      },
      30s, 20ms))
      << pg_dir << " or " << redis_dir << " is still there";
  EXPECT_TRUE(std::filesystem::exists(dir.path()));  // ours: the owner is alive
}

TEST(Lifetime, ForkedChildDoesNotStopTheParentsServers) {
  auto& redis = Redis::shared();
  const pid_t child = ::fork();
  if (child == 0) std::exit(0);  // runs the exit hooks in the child, as a gtest death test would
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_TRUE(redis.running());
  EXPECT_EQ(redis.cli({"PING"}), "PONG");
}

TEST(ChildProcessTest, ReportsAProgramThatCannotStart) {
  EXPECT_THROW(ChildProcess(ChildSpec{{"/nonexistent/program"}}), std::runtime_error);
}

TEST(ChildProcessTest, PassesEnvironmentAndCapturesOutput) {
  TempDir dir("child");
  const std::string log = dir.path() + "/out.log";
  ChildProcess p(ChildSpec{{"/bin/sh", "-c", "echo \"value=$SPILLWAY_X\"; exit 3"}, log, "/", "", SIGTERM,
                           {"SPILLWAY_X=42"}});
  ASSERT_TRUE(p.wait_exit(30s));
  EXPECT_EQ(p.describe_exit(), "exited with status 3");
  EXPECT_FALSE(p.exited_ok());
  EXPECT_EQ(file_tail(log), "value=42\n");
}

}  // namespace
}  // namespace spillway::test_support
