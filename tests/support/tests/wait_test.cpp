#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "spillway/test_support/ports.hpp"
#include "spillway/test_support/wait.hpp"

namespace spillway::test_support {
namespace {

using namespace std::chrono_literals;

TEST(WaitUntil, ReturnsFalseAtTheDeadlineWhenThePredicateNeverHolds) {
  int checks = 0;
  const auto begin = std::chrono::steady_clock::now();
  EXPECT_FALSE(wait_until([&] { return ++checks < 0; }, 100ms));
  const auto waited = std::chrono::steady_clock::now() - begin;
  EXPECT_GE(waited, 100ms);
  EXPECT_GT(checks, 1);  // it polled, it did not just check once and sleep
}

TEST(WaitUntil, ReturnsTrueWhenThePredicateBecomesTrue) {
  std::atomic<bool> flag{false};
  std::thread setter([&] { flag = true; });
  EXPECT_TRUE(wait_until([&] { return flag.load(); }, 10s));
  setter.join();
}

TEST(WaitUntil, ReturnsTrueAtOnceWhenThePredicateAlreadyHolds) {
  int checks = 0;
  EXPECT_TRUE(wait_until([&] { return ++checks > 0; }, 0ms));
  EXPECT_EQ(checks, 1);
}

TEST(FreePort, GivesALoopbackPortThatIsNotInUse) {
  const int port = free_port();
  EXPECT_GT(port, 0);
  EXPECT_LT(port, 65536);
}

}  // namespace
}  // namespace spillway::test_support
