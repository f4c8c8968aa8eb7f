// inproc doorbell: the conformance suite, and a ping-pong across threads that would hang on any
// lost wake-up.
#include <spillway/testkit/host.hpp>
#include <spillway/testkit/notifier_suite.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

namespace spillway::testkit {
namespace {

INSTANTIATE_TEST_SUITE_P(Inproc, NotifierConformance,
                         ::testing::Values(NotifierCase{"inproc", [] { return Config{}; }, 10'000}));

// Two threads hand a turn back and forth 10,000 times through two channels. Every ring must reach
// the other side whether it lands before or during the wait; a lost one stalls the exchange until
// the generous per-wait deadline and fails the test.
TEST(InprocNotifier, PingPongAcrossThreadsLosesNoWakeUp) {
    Plugin plugin(plugin_file("inproc"));
    NotifierInstance n(plugin, Config{});
    constexpr int kRounds = 10'000;
    std::atomic<int> missed{0};
    std::thread pong([&] {
        for (int i = 0; i < kRounds; ++i) {
            int woken = 0;
            n.vt().wait(n.get(), "ping", 10'000, &woken);
            if (!woken) ++missed;
            n.vt().notify(n.get(), "pong");
        }
    });
    for (int i = 0; i < kRounds; ++i) {
        n.vt().notify(n.get(), "ping");
        int woken = 0;
        n.vt().wait(n.get(), "pong", 10'000, &woken);
        if (!woken) ++missed;
    }
    pong.join();
    EXPECT_EQ(missed, 0);
}

TEST(InprocNotifier, StartAfterInterruptWaitsAgain) {
    Plugin plugin(plugin_file("inproc"));
    NotifierInstance n(plugin, Config{});
    n.vt().interrupt(n.get());
    int woken = 1;
    n.vt().notify(n.get(), "p");
    EXPECT_EQ(n.vt().wait(n.get(), "p", 10'000, &woken), SW_OK);
    EXPECT_EQ(woken, 0);  // interrupted: shutdown wins over a pending ring
    n.stop();
    n.start();
    EXPECT_EQ(n.vt().wait(n.get(), "p", 10'000, &woken), SW_OK);
    EXPECT_EQ(woken, 1);  // the ring was kept across the restart
}

}  // namespace
}  // namespace spillway::testkit
