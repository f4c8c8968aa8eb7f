// coordination = "shards": N `spillway run` engines on one PostgreSQL outbox and one Kafka, each
// relaying the rows of the shards it owns, with scaled-down timings (heartbeat 250 ms, shard lease
// 2 s, claim guard 1.2 s). Load is causally sequenced per key and each key's next event goes to
// another engine than its previous one. An independent consumer checks what reached Kafka: 0 lost,
// 0 per-key first-delivery reorders, duplicates counted. Faults: an engine killed, an engine
// paused past its lease, stopped, added; Kafka down for all. An engine cut off the database or off
// Kafka alone: test_shards_faults.cpp.
#include "shards_cluster.hpp"

#include <spillway/test_support/ports.hpp>
#include <spillway/test_support/wait.hpp>

#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include <csignal>
#include <thread>

namespace spillway::e2e {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using test_support::wait_until;

class Shards : public ::testing::TestWithParam<std::string> {};

TEST_P(Shards, ThreeEnginesSplitTheShardsAndKeepEveryKeyInOrder) {
    Cluster c("split", GetParam());
    for (const char* m : {"r1", "r2", "r3"}) ASSERT_TRUE(c.add(m).start()) << c.log_tails();
    // Every shard owned by the three, and each holding more than 40 of 256: the third to join
    // takes its share over a few heartbeats, so an early look can see it halfway.
    const auto balanced = [&] {
        if (!c.owned_by({"r1", "r2", "r3"})) return false;
        for (const auto& [m, n] : c.owners())
            if (n <= 40) return false;
        return true;
    };
    ASSERT_TRUE(wait_until(balanced, 20s)) << "owners: " << testing::PrintToString(c.owners()) << "\n" << c.log_tails();
    // What an operator sees of it: GET /v1/pipelines/orders/shards on any engine.
    {
        httplib::Client http(c.engines["r2"]->base_url());
        auto res = http.Get("/v1/pipelines/orders/shards");
        ASSERT_TRUE(res) << "no answer";
        ASSERT_EQ(res->status, 200) << res->body;
        const auto j = nlohmann::json::parse(res->body);
        EXPECT_EQ(j.value("coordination", ""), "shards");
        EXPECT_EQ(j.value("member", ""), "r2");
        ASSERT_EQ(j.at("members").size(), 3u) << res->body.substr(0, 500);
        int64_t total = 0;
        for (const auto& m : j.at("members")) total += m.value("shards", int64_t{0});
        EXPECT_EQ(total, kShards);
        EXPECT_EQ(j.at("shards").size(), static_cast<size_t>(kShards));
    }

    CausalLoad::Options lo;
    lo.keys = 30;
    lo.events_per_key = 20;
    lo.threads = 6;
    CausalLoad load(c.urls(), lo);
    load.start();
    load.wait_done();
    ASSERT_EQ(load.accepted_count(), 600u);
    const auto d = await_records(c.kafka, c.topic, load.accepted(), 60s);
    EXPECT_EQ(d.lost, 0u) << d.first_problem << "\n" << c.log_tails();
    EXPECT_EQ(d.order_violations, 0u) << d.first_problem;
    std::printf("3 engines, %s: %zu events, %zu duplicates\n", GetParam().c_str(), d.unique, d.duplicates);
    for (auto& [m, e] : c.engines) EXPECT_TRUE(e->stop()) << e->log_tail();
}

// SIGKILL: the engine's database session closes with its process, a survivor finds its member lock
// free at its next heartbeat and frees its shards at once, instead of waiting out their lease.
TEST_P(Shards, AKilledEnginesShardsMoveWithinAFewHeartbeatsAndComeBackWithIt) {
    Cluster c("kill", GetParam());
    ASSERT_TRUE(c.start_three()) << c.log_tails();

    const CausalLoad::Options lo = paced_load(30, 40);
    CausalLoad load(c.urls(), lo);
    load.start();
    ASSERT_TRUE(wait_until([&] { return load.accepted_count() >= 300; }, 60s));
    const auto killed = Clock::now();
    c.engines["r2"]->kill();
    ASSERT_TRUE(wait_until([&] { return c.owned_by({"r1", "r3"}); }, 30s)) << c.log_tails();
    const double failover = std::chrono::duration<double>(Clock::now() - killed).count();
    // The same member comes back (a restarted pod keeps its name): it joins again and gets its
    // share, whatever its predecessor's rows and leases left behind.
    ASSERT_TRUE(c.engines["r2"]->start()) << c.log_tails();
    ASSERT_TRUE(wait_until([&] { return c.owned_by({"r1", "r2", "r3"}); }, 30s)) << c.log_tails();
    load.wait_done();
    const auto d = await_records(c.kafka, c.topic, load.accepted(), 60s);
    EXPECT_EQ(d.lost, 0u) << d.first_problem << "\n" << c.log_tails();
    EXPECT_EQ(d.order_violations, 0u) << d.first_problem;
    std::printf("SIGKILL of 1 of 3 (%s): its shards owned by the others %.2f s later (ttl 2 s), then it restarted and "
                "took its share again; %zu accepted, %zu duplicates\n",
                GetParam().c_str(), failover, load.accepted_count(), d.duplicates);
    RecordProperty("failover_seconds", std::to_string(failover));
}

// SIGSTOP past the shard lease: the paused engine's shards expire and move; once resumed it is a
// zombie whose claims and settlements find no shard and no lease: duplicates at most, no reorder.
TEST_P(Shards, APausedEngineLosesItsShardsAndComesBackWithoutReorderingAKey) {
    Cluster c("pause", GetParam());
    ASSERT_TRUE(c.start_three()) << c.log_tails();

    const CausalLoad::Options lo = paced_load(30, 40);
    CausalLoad load(c.urls(), lo);  // calls to the paused engine time out and go to another
    load.start();
    ASSERT_TRUE(wait_until([&] { return load.accepted_count() >= 300; }, 60s));
    auto& paused = *c.engines["r1"];
    const pid_t pid = paused.pid();
    ASSERT_GT(pid, 0);
    const auto stopped = Clock::now();
    ::kill(pid, SIGSTOP);
    ASSERT_TRUE(wait_until([&] { return c.owned_by({"r2", "r3"}); }, 30s)) << c.log_tails();
    const double failover = std::chrono::duration<double>(Clock::now() - stopped).count();
    // The fault lasts three lease lengths (the scenario's length, not a wait for a state).
    std::this_thread::sleep_until(stopped + 6s);
    ::kill(pid, SIGCONT);
    ASSERT_TRUE(wait_until([&] { return c.owned_by({"r1", "r2", "r3"}); }, 30s)) << c.log_tails();
    load.wait_done();
    const auto d = await_records(c.kafka, c.topic, load.accepted(), 90s);
    EXPECT_EQ(d.lost, 0u) << d.first_problem << "\n" << c.log_tails();
    EXPECT_EQ(d.order_violations, 0u) << d.first_problem;
    std::printf("SIGSTOP of 1 of 3 for 3 leases (%s): its shards owned by the others %.2f s later (ttl 2 s); %zu "
                "accepted, %zu duplicates\n",
                GetParam().c_str(), failover, load.accepted_count(), d.duplicates);
}

// SIGTERM hands the engine's shards over: the relay settles what it holds, the store releases the
// shards, the others take them at their next heartbeat. No duplicates (nothing was in flight).
// Then scale 2 -> 3 -> 4 -> 3 under load: each join and leave moves about 1/N of the shards.
TEST_P(Shards, GracefulStopAndScalingMoveShardsWithoutLossOrReorder) {
    Cluster c("scale", GetParam());
    ASSERT_TRUE(c.start_three()) << c.log_tails();

    const CausalLoad::Options lo = paced_load(30, 60);
    CausalLoad load(c.urls(), lo);  // calls to a stopped engine fail and go to the next one
    load.start();
    ASSERT_TRUE(wait_until([&] { return load.accepted_count() >= 200; }, 60s));
    const auto stopping = Clock::now();
    EXPECT_TRUE(c.engines["r3"]->stop()) << c.engines["r3"]->log_tail();
    ASSERT_TRUE(wait_until([&] { return c.owned_by({"r1", "r2"}); }, 20s)) << c.log_tails();
    const double handoff = std::chrono::duration<double>(Clock::now() - stopping).count();

    ASSERT_TRUE(wait_until([&] { return load.accepted_count() >= 600; }, 60s));
    ASSERT_TRUE(c.engines["r3"]->start()) << c.log_tails();
    ASSERT_TRUE(c.add("r4").start()) << c.log_tails();
    ASSERT_TRUE(wait_until([&] { return c.owned_by({"r1", "r2", "r3", "r4"}); }, 20s)) << c.log_tails();
    ASSERT_TRUE(wait_until([&] { return load.accepted_count() >= 1000; }, 60s));
    EXPECT_TRUE(c.engines["r4"]->stop()) << c.engines["r4"]->log_tail();
    ASSERT_TRUE(wait_until([&] { return c.owned_by({"r1", "r2", "r3"}); }, 20s)) << c.log_tails();

    load.wait_done();
    const auto d = await_records(c.kafka, c.topic, load.accepted(), 90s);
    EXPECT_EQ(d.lost, 0u) << d.first_problem << "\n" << c.log_tails();
    EXPECT_EQ(d.order_violations, 0u) << d.first_problem;
    std::printf("SIGTERM of 1 of 3 (%s): exited and its shards owned by the others %.2f s after the signal; then 3 -> 4 "
                "-> 3; %zu accepted, %zu duplicates\n",
                GetParam().c_str(), handoff, load.accepted_count(), d.duplicates);
}

// Kafka down for every engine, then back: the relays back off on their shards and resume; the
// shards stay where they are (no member has a working sink to give them to).
TEST_P(Shards, KafkaDownForEveryEngineThenBack) {
    Cluster c("kafka", GetParam());
    ASSERT_TRUE(c.start_three()) << c.log_tails();
    const CausalLoad::Options lo = paced_load(30, 30);
    CausalLoad load(c.urls(), lo);
    load.start();
    ASSERT_TRUE(wait_until([&] { return load.accepted_count() >= 200; }, 60s));
    c.kafka.all_down();
    ASSERT_TRUE(wait_until([&] { return load.accepted_count() >= 500; }, 60s)) << "publishing stopped with Kafka down";
    c.kafka.all_up();
    load.wait_done();
    const auto d = await_records(c.kafka, c.topic, load.accepted(), 90s);
    EXPECT_EQ(d.lost, 0u) << d.first_problem << "\n" << c.log_tails();
    EXPECT_EQ(d.order_violations, 0u) << d.first_problem;
    EXPECT_TRUE(c.owned_by({"r1", "r2", "r3"})) << testing::PrintToString(c.owners());
    std::printf("Kafka down for all 3 (%s), then up: %zu accepted, %zu duplicates\n", GetParam().c_str(),
                load.accepted_count(), d.duplicates);
}

// SCALE-OUT.md's S1, the reorder the single-mode guard exists for, now with three direct-first
// engines: r1 cannot reach Kafka, so it spills every event; each key's next event goes to another
// engine, which asks the outbox (pending_among) and spills it behind the first instead of sending
// it straight to Kafka. r1's sink stays down, so after two shard leases it gives its shards to
// the engines whose sink works, which relay everything.
TEST(ShardsDirectFirst, AKeySpilledByAnEngineCutOffFromKafkaIsNotOvertakenByAnother) {
    Cluster c("cutoff", "direct-first");
    const std::string nowhere = "127.0.0.1:" + std::to_string(test_support::free_port());
    ASSERT_TRUE(c.add("r1", nowhere).start()) << c.log_tails();
    for (const char* m : {"r2", "r3"}) ASSERT_TRUE(c.add(m).start()) << c.log_tails();
    // r1's sink is down from the start: the shards go to r2 and r3 (sink_ok) within 2 ttl.
    ASSERT_TRUE(wait_until([&] { return c.owned_by({"r2", "r3"}); }, 30s))
        << testing::PrintToString(c.owners()) << "\n" << c.log_tails();

    CausalLoad::Options lo;
    lo.keys = 12;
    lo.events_per_key = 6;
    lo.threads = 6;
    CausalLoad load(c.urls(), lo);
    load.start();
    load.wait_done();
    ASSERT_EQ(load.accepted_count(), 72u);
    const auto d = await_records(c.kafka, c.topic, load.accepted(), 60s);
    EXPECT_EQ(d.lost, 0u) << d.first_problem << "\n" << c.log_tails();
    EXPECT_EQ(d.order_violations, 0u) << "a key's event sent direct by one engine overtook the one another engine "
                                         "spilled: "
                                      << d.first_problem;
    std::printf("shards, direct-first, one engine cut off from Kafka: %zu events, %zu keys out of order, %zu "
                "duplicates\n",
                d.unique, d.order_violations, d.duplicates);
}

INSTANTIATE_TEST_SUITE_P(E2E, Shards, ::testing::Values("outbox-first", "direct-first"),
                         [](const auto& info) { return info.param == "outbox-first" ? "outbox_first" : "direct_first"; });

}  // namespace
}  // namespace spillway::e2e
