// spillway/testkit/notifier_suite.hpp — what every notifier (doorbell) plugin must do.
//
// Include once in a test file and instantiate for your plugin. The config is a function so that a
// server the tests start lazily is running (and its port known) when a test builds its instance:
//
//   INSTANTIATE_TEST_SUITE_P(Mine, spillway::testkit::NotifierConformance,
//       ::testing::Values(spillway::testkit::NotifierCase{"mine", [] { return Config{...}; }}));
//
// The rules: a ring wakes a wait on the same channel, also across threads; a ring before the wait
// is kept (no lost wake-up); rings coalesce (a burst is one wake, not one per ring); channels are
// independent; a wait that is not rung returns false after its timeout, not before and not much
// later; interrupt() releases a blocked wait promptly and keeps later waits from blocking; notify
// is safe from many threads while a wait blocks. No test depends on fine timing: bounds are wide.
#ifndef SPILLWAY_TESTKIT_NOTIFIER_SUITE_HPP
#define SPILLWAY_TESTKIT_NOTIFIER_SUITE_HPP

#include <spillway/testkit/descriptor_checks.hpp>
#include <spillway/testkit/host.hpp>

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace spillway::testkit {

struct NotifierCase {
    std::string plugin;              // plugin name, resolved with plugin_file()
    std::function<Config()> config;  // called by each test, after any server it needs is up
    int burst = 1000;                // rings in the coalescing test
};

inline void PrintTo(const NotifierCase& c, std::ostream* os) { *os << c.plugin; }

class NotifierConformance : public ::testing::TestWithParam<NotifierCase> {
protected:
    using Clock = std::chrono::steady_clock;

    static Plugin& plugin(const std::string& name) { return checks::loaded_plugin(plugin_file(name)); }
    std::unique_ptr<NotifierInstance> make() {
        const NotifierCase& c = GetParam();
        return std::make_unique<NotifierInstance>(plugin(c.plugin), c.config ? c.config() : Config{});
    }
    // A channel of this test alone (servers are shared between tests and test processes); short,
    // so that prefixes still fit in backends with short names (PostgreSQL: 63 bytes).
    static std::string channel(const char* tag) {
        static std::atomic<int> n{0};
        return std::string(tag) + "_" + std::to_string(::getpid()) + "_" + std::to_string(n++);
    }
    static sw_status notify(NotifierInstance& n, const std::string& ch) {
        const sw_status st = n.vt().notify(n.get(), ch.c_str());
        EXPECT_EQ(st, SW_OK) << n.host().last_error();
        return st;
    }
    struct Waited {
        sw_status status;
        bool woken;
        std::chrono::milliseconds elapsed;
    };
    static Waited wait(NotifierInstance& n, const std::string& ch, int64_t timeout_ms) {
        int woken = -1;
        const auto t0 = Clock::now();
        const sw_status st = n.vt().wait(n.get(), ch.c_str(), timeout_ms, &woken);
        return {st, woken == 1, std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0)};
    }
};

TEST_P(NotifierConformance, DescriptorIsAThreadSafeNotifier) {
    const Plugin& p = plugin(GetParam().plugin);
    EXPECT_EQ(p.descriptor().kind, static_cast<uint32_t>(SW_KIND_NOTIFIER));
    EXPECT_TRUE(p.descriptor().flags & SW_PLUGIN_THREAD_SAFE) << "notify is called from many publisher threads";
    const auto* vt = static_cast<const sw_notifier_vtable*>(p.descriptor().vtable);
    ASSERT_NE(vt, nullptr);
    EXPECT_GE(vt->struct_size, sizeof(sw_notifier_vtable));
    EXPECT_NE(vt->notify, nullptr);
    EXPECT_NE(vt->wait, nullptr);
    EXPECT_NE(vt->interrupt, nullptr);
}

TEST_P(NotifierConformance, RingBeforeTheWaitIsKept) {
    auto n = make();
    const std::string ch = channel("kept");
    notify(*n, ch);
    const Waited w = wait(*n, ch, 10'000);
    EXPECT_EQ(w.status, SW_OK) << n->host().last_error();
    EXPECT_TRUE(w.woken);
    EXPECT_LT(w.elapsed, std::chrono::seconds(5));
}

TEST_P(NotifierConformance, WaitNotRungTimesOut) {
    auto n = make();
    const std::string ch = channel("idle");
    const Waited w = wait(*n, ch, 300);
    EXPECT_EQ(w.status, SW_OK) << n->host().last_error();
    EXPECT_FALSE(w.woken);
    EXPECT_GE(w.elapsed, std::chrono::milliseconds(250)) << "returned before its timeout: the relay would spin";
    EXPECT_LT(w.elapsed, std::chrono::seconds(5));
}

TEST_P(NotifierConformance, RingWakesAWaiterInAnotherThread) {
    auto n = make();
    const std::string ch = channel("xthread");
    std::atomic<bool> waiting{false};
    Waited w{};
    std::thread waiter([&] {
        waiting = true;
        w = wait(*n, ch, 20'000);
    });
    while (!waiting) std::this_thread::yield();
    notify(*n, ch);
    waiter.join();
    EXPECT_EQ(w.status, SW_OK) << n->host().last_error();
    EXPECT_TRUE(w.woken);
    EXPECT_LT(w.elapsed, std::chrono::seconds(10)) << "woken by its timeout, not by the ring";
}

TEST_P(NotifierConformance, BurstOfRingsCoalescesIntoOneWake) {
    auto n = make();
    const std::string ch = channel("burst");
    for (int i = 0; i < GetParam().burst; ++i)
        if (notify(*n, ch) != SW_OK) break;
    EXPECT_TRUE(wait(*n, ch, 10'000).woken);
    const Waited again = wait(*n, ch, 300);
    EXPECT_EQ(again.status, SW_OK);
    EXPECT_FALSE(again.woken) << "more than one token left after a burst";
}

TEST_P(NotifierConformance, ChannelsAreIndependent) {
    auto n = make();
    const std::string a = channel("a"), b = channel("b");
    notify(*n, a);
    EXPECT_FALSE(wait(*n, b, 300).woken);
    EXPECT_TRUE(wait(*n, a, 10'000).woken);
}

TEST_P(NotifierConformance, InterruptReleasesABlockedWaitAndLaterWaits) {
    auto n = make();
    const std::string ch = channel("intr");
    std::atomic<bool> waiting{false};
    Waited w{};
    std::thread waiter([&] {
        waiting = true;
        w = wait(*n, ch, 60'000);
    });
    while (!waiting) std::this_thread::yield();
    // Give the wait a moment to block; interrupt must work whether it has or not.
    std::this_thread::yield();
    n->vt().interrupt(n->get());
    waiter.join();
    EXPECT_FALSE(w.woken);
    EXPECT_LT(w.elapsed, std::chrono::seconds(5)) << "interrupt did not release the wait";
    const Waited later = wait(*n, ch, 60'000);
    EXPECT_FALSE(later.woken);
    EXPECT_LT(later.elapsed, std::chrono::seconds(5)) << "a wait after interrupt blocked";
}

TEST_P(NotifierConformance, ManyThreadsRingWhileAWaitBlocks) {
    auto n = make();
    const std::string ch = channel("many");
    std::atomic<bool> done{false};
    std::atomic<int> wakes{0}, failures{0};
    std::thread waiter([&] {
        while (!done) {
            int woken = 0;
            if (n->vt().wait(n->get(), ch.c_str(), 200, &woken) != SW_OK) ++failures;
            if (woken) ++wakes;
        }
    });
    std::vector<std::thread> publishers;
    for (int t = 0; t < 4; ++t)
        publishers.emplace_back([&] {
            for (int i = 0; i < 250; ++i)
                if (n->vt().notify(n->get(), ch.c_str()) != SW_OK) ++failures;
        });
    for (auto& p : publishers) p.join();
    const auto until = Clock::now() + std::chrono::seconds(10);
    while (wakes == 0 && Clock::now() < until) std::this_thread::yield();
    done = true;
    waiter.join();
    EXPECT_EQ(failures, 0) << n->host().last_error();
    EXPECT_GE(wakes, 1);
    EXPECT_LE(wakes, 1000);
}

TEST_P(NotifierConformance, HealthIsUpOnceStarted) {
    auto n = make();
    const std::string ch = channel("health");
    notify(*n, ch);
    wait(*n, ch, 1000);
    sw_health h{};
    h.struct_size = sizeof(h);
    EXPECT_EQ(n->vt().health(n->get(), &h), SW_OK);
    EXPECT_EQ(h.state, SW_HEALTH_UP) << h.message;
    EXPECT_EQ(n->host().count_logs(SW_LOG_WARN), 0u);
    EXPECT_EQ(n->host().count_logs(SW_LOG_ERROR), 0u);
}

}  // namespace spillway::testkit

#endif
