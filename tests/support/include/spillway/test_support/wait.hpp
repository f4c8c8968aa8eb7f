// wait_until: the one sanctioned way for a test to wait for something.
//
// Tests never sleep for a fixed time; they wait for a condition with a generous deadline and
// assert that it held: EXPECT_TRUE(wait_until([&] { return sink.count() == 3; }, 10s));
#pragma once

#include <algorithm>
#include <chrono>
#include <thread>

namespace spillway::test_support {

// Checks pred() until it returns true (-> true) or `deadline` has passed (-> false). pred is
// always checked once more at the deadline, so a condition that becomes true just in time counts.
template <class Pred>
bool wait_until(Pred pred, std::chrono::milliseconds deadline,
                std::chrono::milliseconds poll = std::chrono::milliseconds(2)) {
  const auto until = std::chrono::steady_clock::now() + deadline;
  for (;;) {
    if (pred()) return true;
    const auto now = std::chrono::steady_clock::now();
    if (now >= until) return false;
    std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(poll, until - now));
  }
}

}  // namespace spillway::test_support
