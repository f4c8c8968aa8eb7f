// redis doorbell against a real redis-server (tests/support): the conformance suite, coalescing of
// a 10,000-ring burst, Redis killed mid-wait and restarted, credentials checked at start.
#include "doorbell_test_support.hpp"

#include <spillway/test_support/ports.hpp>
#include <spillway/test_support/redis.hpp>
#include <spillway/test_support/wait.hpp>
#include <spillway/testkit/host.hpp>
#include <spillway/testkit/notifier_suite.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

namespace spillway::testkit {
namespace {

using namespace std::chrono_literals;
using spillway::doorbell_test::health;
using spillway::doorbell_test::wait;
using spillway::doorbell_test::Waited;
using spillway::test_support::Redis;
using spillway::test_support::RedisOptions;
using spillway::test_support::wait_until;
using Clock = std::chrono::steady_clock;

Plugin& redis_plugin() {
    static Plugin plugin(plugin_file("redis"));
    return plugin;
}

Config config_for(const Redis& r) { return Config{{"host", r.host()}, {"port", std::to_string(r.port())}}; }

INSTANTIATE_TEST_SUITE_P(Redis, NotifierConformance,
                         ::testing::Values(NotifierCase{"redis", [] { return config_for(Redis::shared()); }, 1000}));

sw_status notify(NotifierInstance& n, const std::string& channel) { return n.vt().notify(n.get(), channel.c_str()); }
// True once redis-server shows a client blocked in BLPOP.
bool blpop_blocked(Redis& r) {
    try {
        return r.cli({"CLIENT", "LIST"}).find("cmd=blpop") != std::string::npos;
    } catch (const std::exception&) {
        return false;
    }
}

TEST(RedisNotifier, TenThousandRingsLeaveOneToken) {
    Redis& r = Redis::shared();
    NotifierInstance n(redis_plugin(), config_for(r));
    const std::string channel = "burst10k";
    r.cli({"DEL", "spillway:wake:" + channel});
    for (int i = 0; i < 10'000; ++i) ASSERT_EQ(notify(n, channel), SW_OK) << n.host().last_error();
    EXPECT_EQ(r.cli({"LLEN", "spillway:wake:" + channel}), "1");
    EXPECT_TRUE(wait(n, channel, 5000).woken);
    EXPECT_FALSE(wait(n, channel, 300).woken);
    EXPECT_EQ(r.cli({"LLEN", "spillway:wake:" + channel}), "0");
}

TEST(RedisNotifier, KeyPrefixNamesTheList) {
    Redis& r = Redis::shared();
    NotifierInstance n(redis_plugin(), config_for(r).set("key_prefix", "myapp:bell:"));
    ASSERT_EQ(notify(n, "orders"), SW_OK) << n.host().last_error();
    EXPECT_EQ(r.cli({"LLEN", "myapp:bell:orders"}), "1");
    EXPECT_TRUE(wait(n, "orders", 5000).woken);
}

TEST(RedisNotifier, WaiterBlockedInBlpopIsWokenByARing) {
    Redis& r = Redis::shared();
    NotifierInstance n(redis_plugin(), config_for(r));
    const std::string channel = "blocked";
    r.cli({"DEL", "spillway:wake:" + channel});
    Waited w{};
    std::thread waiter([&] { w = wait(n, channel, 30'000); });
    ASSERT_TRUE(wait_until([&] { return blpop_blocked(r); }, 10s));
    ASSERT_EQ(notify(n, channel), SW_OK);
    waiter.join();
    EXPECT_TRUE(w.woken);
    EXPECT_LT(w.elapsed, 20s);
}

// Kill redis-server while the relay waits: the wait ends at its timeout (no error, no spin), one
// warning for the whole outage, notify fails fast; after a restart the next ring wakes the waiter.
TEST(RedisNotifier, SurvivesRedisKilledMidWaitAndRestarted) {
    Redis r;
    NotifierInstance n(redis_plugin(), config_for(r));
    const std::string channel = "outage";

    Waited w{};
    std::thread waiter([&] { w = wait(n, channel, 2000); });
    ASSERT_TRUE(wait_until([&] { return blpop_blocked(r); }, 10s));
    r.kill();
    waiter.join();
    EXPECT_EQ(w.status, SW_OK) << n.host().last_error();
    EXPECT_FALSE(w.woken);
    EXPECT_GE(w.elapsed, 1500ms) << "the wait returned long before its timeout";
    EXPECT_LT(w.elapsed, 6s);

    // While it is down: waits sleep (never spin), notifies fail fast, nothing floods the log.
    for (int i = 0; i < 3; ++i) {
        const Waited down = wait(n, channel, 300);
        EXPECT_EQ(down.status, SW_OK);
        EXPECT_FALSE(down.woken);
        EXPECT_GE(down.elapsed, 250ms);
    }
    const auto t0 = Clock::now();
    for (int i = 0; i < 50; ++i) EXPECT_EQ(notify(n, channel), SW_RETRY);
    EXPECT_LT(Clock::now() - t0, 3s) << "notify is on the publisher's path: it must fail fast";
    EXPECT_NE(n.host().last_error().find("redis"), std::string::npos);
    EXPECT_EQ(health(n).state, SW_HEALTH_DOWN);
    EXPECT_EQ(n.host().count_logs(SW_LOG_WARN), 1u);
    EXPECT_EQ(n.host().count_logs(SW_LOG_ERROR), 0u);

    r.start();
    Waited woken{};
    std::thread again([&] { woken = wait(n, channel, 30'000); });
    EXPECT_TRUE(wait_until([&] { return notify(n, channel) == SW_OK; }, 15s, 20ms)) << n.host().last_error();
    again.join();
    EXPECT_TRUE(woken.woken);
    EXPECT_LT(woken.elapsed, 20s);
    EXPECT_EQ(health(n).state, SW_HEALTH_UP);
    EXPECT_EQ(n.host().count_logs(SW_LOG_WARN), 1u);
    EXPECT_EQ(n.host().count_logs(SW_LOG_INFO, "reachable again"), 1u);
}

// A hung Redis (here: CLIENT PAUSE, which holds every command but still accepts connections)
// costs a publisher at most one connect_timeout; later rings fail at once until it answers again.
TEST(RedisNotifier, NotifyFailsFastWhenRedisHangs) {
    Redis r;
    NotifierInstance n(redis_plugin(), config_for(r).set("connect_timeout", "200ms"));
    ASSERT_EQ(notify(n, "hung"), SW_OK) << n.host().last_error();
    r.cli({"CLIENT", "PAUSE", "3000", "ALL"});
    auto t0 = Clock::now();
    EXPECT_EQ(notify(n, "hung"), SW_RETRY);
    EXPECT_LT(Clock::now() - t0, 1500ms) << "a hung Redis held the publisher";
    EXPECT_NE(n.host().last_error().find("no answer"), std::string::npos) << n.host().last_error();
    t0 = Clock::now();
    for (int i = 0; i < 20; ++i) EXPECT_EQ(notify(n, "hung"), SW_RETRY);
    EXPECT_LT(Clock::now() - t0, 1500ms) << "rings during an outage must not each wait for the timeout";
    EXPECT_EQ(n.host().count_logs(SW_LOG_WARN), 1u);
    // Once the pause ends, rings go through again.
    EXPECT_TRUE(wait_until([&] { return notify(n, "hung") == SW_OK; }, 15s, 20ms)) << n.host().last_error();
    EXPECT_TRUE(wait(n, "hung", 5000).woken);
}

TEST(RedisNotifier, RedisDownAtStartIsNotFatal) {
    const int closed = spillway::test_support::free_port();
    NotifierInstance n(redis_plugin(), Config{{"port", std::to_string(closed)}});
    EXPECT_EQ(health(n).state, SW_HEALTH_DOWN);
    EXPECT_EQ(notify(n, "p"), SW_RETRY);
    const Waited w = wait(n, "p", 300);
    EXPECT_EQ(w.status, SW_OK);
    EXPECT_FALSE(w.woken);
    EXPECT_GE(w.elapsed, 250ms);
    EXPECT_EQ(n.host().count_logs(SW_LOG_WARN), 1u);

    // interrupt() also cuts a degraded wait's sleep short.
    Waited cut{};
    std::thread waiter([&] { cut = wait(n, "p", 60'000); });
    n.vt().interrupt(n.get());
    waiter.join();
    EXPECT_LT(cut.elapsed, 5s);
}

// Credentials are checked when the notifier starts, with a message that says what is wrong.
std::pair<std::string, std::string> start_error(const Config& config) {
    NotifierInstance n(redis_plugin(), config, /*start_it=*/false);
    try {
        n.start();
    } catch (const std::exception&) {
        const auto errors = n.host().config_errors();
        return errors.empty() ? std::pair<std::string, std::string>{"", n.host().last_error()} : errors.front();
    }
    ADD_FAILURE() << "start succeeded";
    return {};
}

TEST(RedisNotifier, WrongPasswordIsAClearErrorAtStart) {
    Redis locked(RedisOptions{.password = "s3cret"});
    const auto [key, message] = start_error(config_for(locked).set("password", "hunter2-not-it"));
    EXPECT_EQ(key, "password");
    EXPECT_NE(message.find("rejected AUTH"), std::string::npos) << message;
    EXPECT_NE(message.find("WRONGPASS"), std::string::npos) << message;
    EXPECT_EQ(message.find("hunter2"), std::string::npos) << "the password leaked into the message: " << message;

    const auto [key2, message2] = start_error(config_for(locked));
    EXPECT_EQ(key2, "password");
    EXPECT_NE(message2.find("requires a password"), std::string::npos) << message2;

    NotifierInstance ok(redis_plugin(), config_for(locked).set("password", "s3cret"));
    ASSERT_EQ(notify(ok, "p"), SW_OK) << ok.host().last_error();
    EXPECT_TRUE(wait(ok, "p", 5000).woken);
}

TEST(RedisNotifier, DatabaseOutOfRangeIsAClearErrorAtStart) {
    const auto [key, message] = start_error(config_for(Redis::shared()).set("db", "99"));
    EXPECT_EQ(key, "db");
    EXPECT_NE(message.find("SELECT 99"), std::string::npos) << message;
}

TEST(RedisNotifier, DatabaseSelectsWhereTheListLives) {
    Redis& r = Redis::shared();
    NotifierInstance n(redis_plugin(), config_for(r).set("db", "3"));
    ASSERT_EQ(notify(n, "dbsel"), SW_OK) << n.host().last_error();
    EXPECT_EQ(r.cli({"LLEN", "spillway:wake:dbsel"}), "0");  // not in db 0
    EXPECT_TRUE(wait(n, "dbsel", 5000).woken);
}

}  // namespace
}  // namespace spillway::testkit
