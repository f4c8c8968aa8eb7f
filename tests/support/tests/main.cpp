// The smoke tests' main. With SPILLWAY_SUPPORT_HELPER_OUT set, the binary is instead the helper
// process Lifetime.SigkilledTestLeavesNoServerBehind starts and SIGKILLs: it starts both servers,
// writes where they are to that file, and waits to be killed.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "spillway/test_support/postgres.hpp"
#include "spillway/test_support/redis.hpp"
#include "spillway/test_support/wait.hpp"

namespace {

int hold_servers_until_killed(const std::string& out) {
  using namespace spillway::test_support;
  auto& pg = Postgres::shared();
  auto& redis = Redis::shared();
  const std::string tmp = out + ".tmp";
  std::ofstream(tmp) << pg.port() << ' ' << redis.port() << ' ' << pg.pid() << ' ' << redis.pid() << ' '
                     << pg.data_dir() << ' ' << redis.log_path() << '\n';
  std::filesystem::rename(tmp, out);  // the test reads it only once complete
  wait_until([] { return false; }, std::chrono::minutes(2), std::chrono::milliseconds(100));
  return 1;  // the test SIGKILLs us long before this
}

}  // namespace

int main(int argc, char** argv) {
  if (const char* out = std::getenv("SPILLWAY_SUPPORT_HELPER_OUT"); out != nullptr)
    return hold_servers_until_killed(out);
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
