// redis doorbell against a real redis-server (tests/support): the conformance suite in both modes,
// coalescing of a 10,000-ring burst, Redis killed mid-wait and restarted, credentials checked at
// start; and fan_out = "all", where one ring wakes every engine waiting on the pipeline.
#include "doorbell_test_support.hpp"

#include <spillway/test_support/ports.hpp>
#include <spillway/test_support/redis.hpp>
#include <spillway/test_support/wait.hpp>
#include <spillway/testkit/host.hpp>
#include <spillway/testkit/notifier_suite.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <thread>
#include <vector>

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

Config fan_out_all(const Redis& r) { return config_for(r).set("fan_out", "all"); }

INSTANTIATE_TEST_SUITE_P(Redis, NotifierConformance,
                         ::testing::Values(NotifierCase{"redis", [] { return config_for(Redis::shared()); }, 1000}));
INSTANTIATE_TEST_SUITE_P(RedisFanOutAll, NotifierConformance,
                         ::testing::Values(NotifierCase{"redis", [] { return fan_out_all(Redis::shared()); }, 1000}));

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
    EXPECT_EQ(n.host().metric("notifier_outages_total"), 1) << "one outage, counted once";
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

TEST(RedisNotifier, FanOutIsOneOrAll) {
    HostContext host(redis_plugin(), Config{{"fan_out", "every"}});
    EXPECT_EQ(validate(redis_plugin(), host), SW_INVALID_CONFIG);
    const auto errors = host.config_errors();
    ASSERT_FALSE(errors.empty()) << host.last_error();
    EXPECT_EQ(errors.front().first, "fan_out");
    EXPECT_NE(errors.front().second.find("one of: one, all"), std::string::npos) << errors.front().second;
}

// --- fan_out = "all": several engines on one outbox, each waiting on the same pipeline's channel.

// How many connections redis-server has subscribed to `key`; -1 when it cannot say.
int subscribers(Redis& r, const std::string& key) {
    try {
        const std::string reply = r.cli({"PUBSUB", "NUMSUB", key});  // "<key>\n<count>"
        return std::stoi(reply.substr(reply.rfind('\n') + 1));
    } catch (const std::exception&) {
        return -1;
    }
}

// How many clients redis-server shows blocked in BLPOP.
int blpop_waiters(Redis& r) {
    try {
        const std::string list = r.cli({"CLIENT", "LIST"});
        int n = 0;
        for (size_t at = list.find("cmd=blpop"); at != std::string::npos; at = list.find("cmd=blpop", at + 1)) ++n;
        return n;
    } catch (const std::exception&) {
        return 0;
    }
}

using Instances = std::vector<std::unique_ptr<NotifierInstance>>;
Instances instances(int count, const Config& config) {
    Instances out;
    for (int i = 0; i < count; ++i) out.push_back(std::make_unique<NotifierInstance>(redis_plugin(), config));
    return out;
}

// Every instance waits on `channel` in a thread of its own; the waits are joined by join().
class Waiting {
public:
    Waiting(Instances& engines, const std::string& channel, int64_t timeout_ms) : waited_(engines.size()) {
        for (size_t i = 0; i < engines.size(); ++i)
            threads_.emplace_back([&, i, channel, timeout_ms] { waited_[i] = wait(*engines[i], channel, timeout_ms); });
    }
    ~Waiting() { join(); }
    std::vector<Waited> join() {
        for (auto& t : threads_)
            if (t.joinable()) t.join();
        return waited_;
    }

private:
    std::vector<Waited> waited_;
    std::vector<std::thread> threads_;
};

// The reason for the mode: today's list wakes one of the engines waiting, whichever BLPOP'd first.
TEST(RedisNotifier, InOneModeARingWakesOneOfTwoWaiters) {
    Redis& r = Redis::shared();
    const std::string channel = "one_of_two";
    r.cli({"DEL", "spillway:wake:" + channel});
    NotifierInstance ringer(redis_plugin(), config_for(r));
    Instances engines = instances(2, config_for(r));
    Waiting waiting(engines, channel, 3000);
    EXPECT_TRUE(wait_until([&] { return blpop_waiters(r) == 2; }, 10s));
    EXPECT_EQ(notify(ringer, channel), SW_OK) << ringer.host().last_error();
    const auto& waited = waiting.join();
    EXPECT_EQ(waited[0].woken + waited[1].woken, 1);
}

// Two, then three, engines blocked in a wait on one channel; another engine rings once.
void one_ring_wakes_every_waiter(int count) {
    Redis& r = Redis::shared();
    const std::string channel = "fanout" + std::to_string(count);
    NotifierInstance ringer(redis_plugin(), fan_out_all(r));
    Instances engines = instances(count, fan_out_all(r));
    Waiting waiting(engines, channel, 30'000);
    EXPECT_TRUE(wait_until([&] { return subscribers(r, "spillway:wake:" + channel) == count; }, 10s));
    EXPECT_EQ(notify(ringer, channel), SW_OK) << ringer.host().last_error();
    const auto& waited = waiting.join();
    for (int i = 0; i < count; ++i) {
        EXPECT_EQ(waited[i].status, SW_OK) << "engine " << i << ": " << engines[i]->host().last_error();
        EXPECT_TRUE(waited[i].woken) << "engine " << i;
        EXPECT_LT(waited[i].elapsed, 20s) << "engine " << i << " was woken by its timeout, not by the ring";
    }
}

TEST(RedisFanOutAll, OneRingWakesBothWaitingEngines) { one_ring_wakes_every_waiter(2); }
TEST(RedisFanOutAll, OneRingWakesAllThreeWaitingEngines) { one_ring_wakes_every_waiter(3); }

// The relay is busy between two waits: the subscription stays, so the ring waits on the socket.
TEST(RedisFanOutAll, RingBetweenWaitsIsSeenByTheNextWaitOfEveryEngine) {
    Redis& r = Redis::shared();
    const std::string channel = "between";
    NotifierInstance ringer(redis_plugin(), fan_out_all(r));
    Instances engines = instances(3, fan_out_all(r));
    for (auto& e : engines) {
        const Waited first = wait(*e, channel, 0);
        EXPECT_EQ(first.status, SW_OK) << e->host().last_error();
        EXPECT_FALSE(first.woken);
    }
    EXPECT_EQ(subscribers(r, "spillway:wake:" + channel), 3) << "a wait that returned dropped its subscription";
    ASSERT_EQ(notify(ringer, channel), SW_OK) << ringer.host().last_error();
    for (size_t i = 0; i < engines.size(); ++i) {
        const Waited next = wait(*engines[i], channel, 10'000);
        EXPECT_TRUE(next.woken) << "engine " << i << " lost the ring sent between its waits";
        EXPECT_LT(next.elapsed, 5s) << "engine " << i;
    }
    for (size_t i = 0; i < engines.size(); ++i)
        EXPECT_FALSE(wait(*engines[i], channel, 300).woken) << "engine " << i << ": one ring woke it twice";
}

TEST(RedisFanOutAll, InterruptCutsAWaitBlockedOnItsSubscription) {
    Redis& r = Redis::shared();
    const std::string channel = "interrupted";
    NotifierInstance n(redis_plugin(), fan_out_all(r));
    Waited w{};
    std::thread waiter([&] { w = wait(n, channel, 60'000); });
    EXPECT_TRUE(wait_until([&] { return subscribers(r, "spillway:wake:" + channel) == 1; }, 10s));
    n.vt().interrupt(n.get());
    waiter.join();
    EXPECT_EQ(w.status, SW_OK);
    EXPECT_FALSE(w.woken);
    EXPECT_LT(w.elapsed, 5s) << "interrupt did not cut the wait";
    const Waited later = wait(n, channel, 60'000);
    EXPECT_FALSE(later.woken);
    EXPECT_LT(later.elapsed, 5s) << "a wait after interrupt blocked";
}

// Redis killed while two engines wait, then restarted: the waits end at their timeout meanwhile,
// the first wait after the reconnect counts as rung (rings sent while down are gone), and once
// subscribed again a ring wakes both.
TEST(RedisFanOutAll, WaitsResumeAfterRedisRestarts) {
    Redis r;
    const std::string channel = "restart";
    const std::string key = "spillway:wake:" + channel;
    NotifierInstance ringer(redis_plugin(), fan_out_all(r));
    Instances engines = instances(2, fan_out_all(r));
    {
        Waiting waiting(engines, channel, 2000);
        EXPECT_TRUE(wait_until([&] { return subscribers(r, key) == 2; }, 10s));
        r.kill();
        for (const Waited& w : waiting.join()) {
            EXPECT_EQ(w.status, SW_OK);
            EXPECT_FALSE(w.woken);
            EXPECT_LT(w.elapsed, 6s);
        }
    }
    for (auto& e : engines) {
        const Waited down = wait(*e, channel, 300);
        EXPECT_EQ(down.status, SW_OK);
        EXPECT_FALSE(down.woken);
        EXPECT_GE(down.elapsed, 250ms) << "a wait while Redis is down must sleep, not spin";
        EXPECT_EQ(health(*e).state, SW_HEALTH_DOWN);
    }

    r.start();
    for (const Waited& w : Waiting(engines, channel, 30'000).join()) {
        EXPECT_TRUE(w.woken) << "the first wait after a reconnect counts as rung";
        EXPECT_LT(w.elapsed, 20s);
    }
    {
        Waiting waiting(engines, channel, 30'000);
        EXPECT_TRUE(wait_until([&] { return subscribers(r, key) == 2; }, 15s));
        EXPECT_TRUE(wait_until([&] { return notify(ringer, channel) == SW_OK; }, 15s, 20ms))
            << ringer.host().last_error();
        for (const Waited& w : waiting.join()) {
            EXPECT_TRUE(w.woken);
            EXPECT_LT(w.elapsed, 20s);
        }
    }
    for (auto& e : engines) {
        EXPECT_EQ(health(*e).state, SW_HEALTH_UP);
        EXPECT_EQ(e->host().count_logs(SW_LOG_WARN), 1u) << "one warning per outage";
        EXPECT_EQ(e->host().count_logs(SW_LOG_INFO, "reachable again"), 1u);
        EXPECT_EQ(e->host().count_logs(SW_LOG_ERROR), 0u);
    }
}

// A hung Redis (CLIENT PAUSE holds every command) sends nothing on a subscription: the wait's PING
// after a second of silence goes unanswered, the connection counts as lost, and once Redis answers
// again the wait reconnects and returns rung.
TEST(RedisFanOutAll, UnansweredPingEndsTheSubscription) {
    Redis r;
    const std::string channel = "hung_all";
    NotifierInstance n(redis_plugin(), fan_out_all(r).set("connect_timeout", "200ms"));
    ASSERT_EQ(wait(n, channel, 0).status, SW_OK) << n.host().last_error();
    ASSERT_EQ(subscribers(r, "spillway:wake:" + channel), 1);
    r.cli({"CLIENT", "PAUSE", "5000", "ALL"});
    const Waited w = wait(n, channel, 30'000);
    EXPECT_EQ(w.status, SW_OK);
    EXPECT_TRUE(w.woken) << "the first wait after a reconnect counts as rung";
    EXPECT_LT(w.elapsed, 20s);
    EXPECT_EQ(n.host().count_logs(SW_LOG_WARN, "no answer to PING"), 1u) << n.host().last_error();
    EXPECT_EQ(n.host().count_logs(SW_LOG_INFO, "reachable again"), 1u);
    EXPECT_EQ(health(n).state, SW_HEALTH_UP);
}

}  // namespace
}  // namespace spillway::testkit
