// The delivery contract end to end, with real plugins and an independent consumer: for each
// scenario, nothing accepted is lost, per-key order of first deliveries holds, and duplicates
// appear only around faults.
#include "pipeline_harness.hpp"

#include <spillway/test_support/redis.hpp>
#include <spillway/test_support/spillway_run.hpp>
#include <spillway/test_support/wait.hpp>

#include <gtest/gtest.h>

#include <fstream>
#include <thread>

namespace spillway::e2e {
namespace {

using namespace std::chrono_literals;
using test_support::wait_until;
using pipeline::Path;
using pipeline::Reason;

std::string store_name(const ::testing::TestParamInfo<StoreKind>& info) {
    return info.param == StoreKind::Sqlite ? "sqlite" : "postgres";
}

class Pipeline : public ::testing::TestWithParam<StoreKind> {
protected:
    HarnessOptions options(std::string extra_pipeline = "") {
        HarnessOptions o;
        o.store = GetParam();
        o.extra_pipeline = std::move(extra_pipeline);
        return o;
    }
};

TEST_P(Pipeline, KafkaUpEverythingGoesDirectAndNothingTouchesTheOutbox) {
    Harness h(options());
    constexpr int kEvents = 5000;
    for (int batch = 0; batch < kEvents / 100; ++batch) {
        std::vector<pipeline::Event> events(100);
        for (int i = 0; i < 100; ++i) {
            events[i].key = "k" + std::to_string(i % 50);
            events[i].payload = "{\"n\":" + std::to_string(batch * 100 + i) + "}";
        }
        auto out = h.publish_batch(std::move(events));
        for (size_t i = 0; i < out.size(); ++i) {
            ASSERT_EQ(out[i].path, Path::Direct) << "batch " << batch << " event " << i << ": " << pipeline::reason_name(out[i].reason) << " " << out[i].message;
        }
    }
    for (int i = 0; i < 200; ++i) ASSERT_EQ(h.publish("single").path, Path::Direct);
    EXPECT_EQ(h.pending(), 0);
    const auto st = h.pipeline().status();
    EXPECT_EQ(st.outbox, 0u);
    EXPECT_EQ(st.direct, static_cast<uint64_t>(kEvents + 200));
    // The independent consumer sees every single-key event, in order, with its event_id header.
    auto d = h.await_delivery(30s);
    EXPECT_EQ(d.lost, 0u) << d.first_problem;
    EXPECT_EQ(d.order_violations, 0u) << d.first_problem;
    EXPECT_EQ(d.duplicates, 0u);
}

TEST_P(Pipeline, OutageSpillsToTheOutboxAndDrainsInOrderWhenKafkaReturns) {
    // The scenario: Kafka down for 5 s in the middle of 20,000 events.
    Harness h(options());
    constexpr int kEvents = 20000, kBefore = 5000, kAfterAtLeast = 2000;
    const int keys = 20;
    int n = 0;
    auto publish_some = [&](int count) {
        for (int i = 0; i < count; ++i, ++n) {
            auto o = h.publish("k" + std::to_string(n % keys));
            ASSERT_TRUE(o.accepted()) << o.message;
        }
    };
    publish_some(kBefore);
    EXPECT_EQ(h.pipeline().status().outbox, 0u);

    h.kafka().all_down();
    const auto outage_until = std::chrono::steady_clock::now() + 5s;
    // Publishing goes on: the first events wait out direct_timeout and spill, then the circuit
    // opens and callers no longer wait for Kafka at all.
    ASSERT_TRUE(wait_until(
        [&] {
            publish_some(5);
            return h.pipeline().circuit() == pipeline::Circuit::State::Open;
        },
        60s, 1ms));
    size_t waited_on_kafka = 0;
    while (std::chrono::steady_clock::now() < outage_until && n < kEvents - kAfterAtLeast) {
        auto o = h.publish("k" + std::to_string(n++ % keys));
        ASSERT_TRUE(o.accepted()) << o.message;
        EXPECT_EQ(o.path, Path::Outbox);
        if (o.reason == Reason::DirectFailed) ++waited_on_kafka;
    }
    EXPECT_EQ(waited_on_kafka, 0u) << "with the circuit open no caller should wait for a Kafka timeout";
    EXPECT_GT(h.pending(), 0);
    // A fast machine reaches its share of events early; the outage still lasts its 5 s.
    std::this_thread::sleep_until(outage_until);

    h.kafka().all_up();
    publish_some(kEvents - n);  // keyed events follow their backlog (sticky) until it has drained
    ASSERT_TRUE(wait_until([&] { return h.pending() == 0; }, 60s, 20ms)) << "pending " << h.pending();
    ASSERT_TRUE(wait_until([&] { return h.pipeline().circuit() == pipeline::Circuit::State::Closed; }, 30s, 10ms));
    auto d = h.await_delivery(60s);
    EXPECT_EQ(h.accepted().size(), static_cast<size_t>(kEvents));
    EXPECT_EQ(d.lost, 0u) << d.first_problem;
    EXPECT_EQ(d.order_violations, 0u) << d.first_problem;
    RecordProperty("duplicates", static_cast<int>(d.duplicates));
    // After the drain, publishing is direct again.
    EXPECT_EQ(h.publish("after").path, Path::Direct);
}

TEST_P(Pipeline, FlappingKafkaLosesNothingAndKeepsOrder) {
    Harness h(options());
    std::atomic<bool> done{false};
    std::thread flapper([&] {
        bool down = false;
        while (!done) {
            down ? h.kafka().all_up() : h.kafka().all_down();
            down = !down;
            std::this_thread::sleep_for(300ms);  // the fault's rhythm, not a wait for anything
        }
        h.kafka().all_up();
    });
    // The 10 s of flapping under a steady load of 2,000 events/s. Unpaced, a fast machine
    // publishes 100k events and more, and the mock broker keeps only the newest 5 MiB of each
    // partition: the consumer would miss the oldest events although Kafka acknowledged them.
    const auto start = std::chrono::steady_clock::now(), until = start + 10s;
    constexpr double kPerSecond = 2000;
    int n = 0;
    for (auto now = start; now < until; now = std::chrono::steady_clock::now()) {
        if (n > std::chrono::duration<double>(now - start).count() * kPerSecond) {
            std::this_thread::sleep_for(1ms);  // the load's rhythm, not a wait for anything
            continue;
        }
        auto o = h.publish("k" + std::to_string(n++ % 10));
        ASSERT_TRUE(o.accepted()) << o.message;
    }
    RecordProperty("events", n);
    done = true;
    flapper.join();
    ASSERT_TRUE(wait_until([&] { return h.pending() == 0; }, 60s, 20ms));
    auto d = h.await_delivery(60s);
    EXPECT_EQ(d.lost, 0u) << d.first_problem;
    EXPECT_EQ(d.order_violations, 0u) << d.first_problem;
    RecordProperty("duplicates", static_cast<int>(d.duplicates));
}

TEST_P(Pipeline, PoisonEventGoesDeadWithoutBlockingItsKeyOrOthers) {
    // librdkafka refuses records over message.max.bytes: a permanent error for that event only.
    HarnessOptions o = options();
    o.extra_sink = "\"message.max.bytes\" = 4000\n";
    Harness h(o);
    const std::string huge(20000, 'x');

    // Direct path: refused at once, with Kafka's reason; the key goes on.
    auto refused = h.publish("p", "{\"blob\":\"" + huge + "\"}");
    EXPECT_EQ(refused.path, Path::Refused);
    EXPECT_EQ(refused.reason, Reason::Rejected);
    EXPECT_NE(refused.message.find("sink.kafka rejected the event"), std::string::npos) << refused.message;
    EXPECT_EQ(h.publish("p").path, Path::Direct);

    // Relay path: a poison row in the outbox is parked as dead; later events of its key and all
    // other keys are delivered.
    h.kafka().all_down();
    ASSERT_TRUE(wait_until([&] {
        h.publish("other");
        return h.pipeline().circuit() == pipeline::Circuit::State::Open;
    }, 60s, 1ms));
    pipeline::Event poison;
    poison.key = "p";
    poison.payload = "{\"blob\":\"" + huge + "\"}";
    auto parked = h.pipeline().publish(std::move(poison));
    ASSERT_EQ(parked.path, Path::Outbox);  // with the circuit open it is not even tried
    for (int i = 0; i < 50; ++i) {
        ASSERT_TRUE(h.publish("p").accepted());
        ASSERT_TRUE(h.publish("q" + std::to_string(i % 5)).accepted());
    }
    h.kafka().all_up();
    ASSERT_TRUE(wait_until([&] { return h.pending() == 0; }, 60s, 20ms)) << "pending " << h.pending();
    EXPECT_EQ(h.pipeline().status().dead, 1);
    auto d = h.await_delivery(60s);
    EXPECT_EQ(d.lost, 0u) << d.first_problem;
    EXPECT_EQ(d.order_violations, 0u) << d.first_problem;
}

TEST_P(Pipeline, OutboxFirstPublishesGoThroughTheRelay) {
    HarnessOptions o = options();
    o.mode = "outbox-first";
    Harness h(o);
    for (int i = 0; i < 300; ++i) {
        auto o = h.publish("k" + std::to_string(i % 7));
        ASSERT_EQ(o.path, Path::Outbox);
        ASSERT_EQ(o.reason, Reason::Relayed);
    }
    auto d = h.await_delivery(30s);
    EXPECT_EQ(d.lost, 0u) << d.first_problem;
    EXPECT_EQ(d.order_violations, 0u) << d.first_problem;
    EXPECT_TRUE(wait_until([&] { return h.pending() == 0; }, 30s, 10ms));
}

INSTANTIATE_TEST_SUITE_P(E2E, Pipeline, ::testing::Values(StoreKind::Sqlite, StoreKind::Postgres), store_name);

TEST(PipelinePostgres, StoreDownDoesNotStopDirectPublishing_BothDownRefusesHonestly) {
    HarnessOptions o;
    o.store = StoreKind::Postgres;
    Harness h(o);
    ASSERT_EQ(h.publish("a").path, Path::Direct);
    test_support::Postgres::shared().stop();
    for (int i = 0; i < 50; ++i) {
        auto out = h.publish("a");
        ASSERT_EQ(out.path, Path::Direct) << out.message;
    }
    // Kafka down too: nothing can take the event, so the caller is told, with both reasons.
    h.kafka().all_down();
    pipeline::Outcome refused;
    ASSERT_TRUE(wait_until([&] {
        refused = h.pipeline().publish(pipeline::Event{"", "", std::string("b"), "{}", false, {}, "", "", "", "", 0});
        return refused.path == Path::Refused;
    }, 60s, 1ms));
    EXPECT_EQ(refused.reason, Reason::Unavailable);
    EXPECT_NE(refused.message.find("outbox: "), std::string::npos) << refused.message;
    test_support::Postgres::shared().start();
    h.kafka().all_up();
    // Everything that was accepted arrives.
    auto d = h.await_delivery(60s);
    EXPECT_EQ(d.lost, 0u) << d.first_problem;
    EXPECT_EQ(d.order_violations, 0u) << d.first_problem;
}

TEST(PipelinePostgres, RowsInsertedByTheApplicationWithTheNotifyTriggerReachKafka) {
    HarnessOptions o;
    o.store = StoreKind::Postgres;
    o.mode = "outbox-first";
    o.notifier = "pgnotify";
    o.pg_conninfo = test_support::Postgres::shared().create_database("e2e_notify");
    o.extra_notifier = "url = \"" + o.pg_conninfo + "\"\n";
    Harness h(o);  // starting the store created the table; now the application's trigger
    std::ifstream trig(std::string(SPILLWAY_SOURCE_DIR) + "/plugins/pgnotify/trigger.sql");
    std::stringstream sql;
    sql << trig.rdbuf();
    test_support::Postgres::shared().psql("e2e_notify", sql.str());

    std::vector<std::pair<std::string, std::string>> inserted;
    for (int i = 0; i < 20; ++i) {
        const std::string id = "app-" + std::to_string(i);
        const std::string key = "k" + std::to_string(i % 3);
        // The application's own transaction: a business write would sit beside this INSERT.
        test_support::Postgres::shared().psql(
            "e2e_notify", "BEGIN; INSERT INTO spillway_outbox (event_id, pipeline, topic, key, payload) VALUES ('" + id +
                              "', 'orders', '" + h.topic() + "', '" + key + "', '{\"i\":" + std::to_string(i) + "}'); COMMIT;");
        inserted.emplace_back(id, key);
    }
    // A rolled-back insert never reaches Kafka.
    test_support::Postgres::shared().psql("e2e_notify",
                                          "BEGIN; INSERT INTO spillway_outbox (event_id, pipeline, topic, key, payload) VALUES "
                                          "('rolled-back', 'orders', '" + h.topic() + "', 'k0', '{}'); ROLLBACK;");
    auto d = await_records(h.kafka(), h.topic(), inserted, 30s);
    EXPECT_EQ(d.lost, 0u) << d.first_problem;
    EXPECT_EQ(d.order_violations, 0u) << d.first_problem;
    for (const auto& r : h.kafka().consume_all(h.topic(), inserted.size() + 1, 1s))
        EXPECT_NE(r.header("event_id"), std::optional<std::string>("rolled-back"));
    // The doorbell, not only the poll, woke the relay.
    EXPECT_GT(h.engine().metrics().value("relay_wakeups_total", {{"cause", "doorbell"}, {"pipeline", "orders"}}), 0.0);
}

TEST(PipelineRedis, RedisDownDuringAnOutageTheRelayStillDrainsByPolling) {
    test_support::Redis redis;
    HarnessOptions o;
    o.notifier = "redis";
    o.extra_notifier = "port = " + std::to_string(redis.port()) + "\n";
    Harness h(o);
    ASSERT_EQ(h.publish("a").path, Path::Direct);
    redis.kill();
    h.kafka().all_down();
    ASSERT_TRUE(wait_until([&] {
        EXPECT_TRUE(h.publish("k" + std::to_string(h.accepted().size() % 4)).accepted());
        return h.pipeline().circuit() == pipeline::Circuit::State::Open;
    }, 60s, 1ms));
    for (int i = 0; i < 200; ++i) ASSERT_TRUE(h.publish("k" + std::to_string(i % 4)).accepted());
    // Every spill rang a doorbell that was down: counted, by the engine and by the notifier.
    const observe::Labels orders{{"pipeline", "orders"}};
    EXPECT_GE(h.engine().metrics().value("doorbell_failures_total", orders), 200.0);
    EXPECT_EQ(h.engine().metrics().value("notifier_outages_total", {{"component", "notifier.bell"}}), 1.0)
        << h.engine().metrics().render();
    h.kafka().all_up();
    ASSERT_TRUE(wait_until([&] { return h.pending() == 0; }, 60s, 20ms)) << "pending " << h.pending();
    auto d = h.await_delivery(60s);
    EXPECT_EQ(d.lost, 0u) << d.first_problem;
    EXPECT_EQ(d.order_violations, 0u) << d.first_problem;
}

TEST(PipelineSink, FatalSinkIsRebuiltAndNothingIsLost) {
    // The idempotent producer cannot get a producer id: librdkafka raises a fatal error, and that
    // producer can never send again. The engine replaces the sink; the new producer gets its id.
    HarnessOptions o;
    o.before_start = [](test_support::MockKafka& kafka) {
        constexpr int16_t kInitProducerIdApiKey = 22;
        kafka.push_request_errors(kInitProducerIdApiKey, {RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED});
    };
    Harness h(o);
    // The harder order: the sink already says DOWN when the first event comes, so the circuit
    // opens before anything is sent to it, and only the relay's check can find it fatal.
    ASSERT_TRUE(wait_until([&] {
        sw_health health{};
        plugin::Instance* sink = h.engine().instance("orders", "sink");
        return sink && sink->health(health) == SW_OK && health.state == SW_HEALTH_DOWN;
    }, 20s, 1ms));
    bool saw_outbox = false;
    ASSERT_TRUE(wait_until([&] {
        const auto out = h.publish("k" + std::to_string(h.accepted().size() % 4));
        EXPECT_TRUE(out.accepted()) << out.message;
        saw_outbox = saw_outbox || out.path == Path::Outbox;
        return saw_outbox && out.path == Path::Direct;
    }, 60s, 5ms)) << "the sink never came back after its fatal error";
    // Counted once the swap is done, which publishers may already have used.
    EXPECT_TRUE(wait_until([&] { return h.engine().metrics().value("sink_rebuilds_total", {{"pipeline", "orders"}}) >= 1.0; },
                           10s, 5ms));
    for (int i = 0; i < 50; ++i) ASSERT_TRUE(h.publish("k" + std::to_string(i % 4)).accepted());
    ASSERT_TRUE(wait_until([&] { return h.pending() == 0; }, 60s, 20ms)) << "pending " << h.pending();
    auto d = h.await_delivery(60s);
    EXPECT_EQ(d.lost, 0u) << d.first_problem;
    EXPECT_EQ(d.order_violations, 0u) << d.first_problem;
}

// The engine as a separate process, SIGKILLed in the middle of draining a backlog, then restarted.
class Crash : public ::testing::TestWithParam<StoreKind> {};

TEST_P(Crash, EngineKilledMidDrainDeliversEverythingAfterRestart) {
    test_support::TempDir dir("crash");
    test_support::MockKafka kafka(1);
    const std::string topic = "orders.events";
    kafka.create_topic(topic, 4, 1);
    HarnessOptions o;
    o.store = GetParam();
    o.mode = "outbox-first";
    if (o.store == StoreKind::Postgres)
        o.pg_conninfo = test_support::Postgres::shared().create_database("e2e_crash_" + std::to_string(getpid()));
    const std::string path = dir.path() + "/pipeline.toml";
    std::ofstream(path) << pipeline_toml(o, kafka.bootstraps(), dir.path() + "/outbox.db", topic);

    // Fill the outbox while Kafka is down (the in-process engine only probes, claims nothing).
    std::vector<std::pair<std::string, std::string>> accepted;
    kafka.all_down();
    {
        config::LoadOptions lo;
        lo.environment = "testing";
        Engine engine(prepare(path, lo));
        engine.start();
        for (int batch = 0; batch < 40; ++batch) {
            std::vector<pipeline::Event> events(500);
            for (int i = 0; i < 500; ++i) {
                events[i].key = "k" + std::to_string(i % 25);
                events[i].payload = "{\"n\":" + std::to_string(batch * 500 + i) + "}";
            }
            auto keys = events;
            auto out = engine.pipeline("orders")->publish(std::move(events));
            for (size_t i = 0; i < out.size(); ++i) {
                ASSERT_TRUE(out[i].accepted()) << out[i].message;
                accepted.emplace_back(out[i].event_id, *keys[i].key);
            }
        }
        engine.stop();
    }
    kafka.all_up();

    const std::string log = dir.path() + "/run.log";
    auto spawn = [&] {
        return test_support::spawn_spillway_run({.binary = SPILLWAY_BIN, .config_path = path, .log_path = log});
    };
    {
        auto child = spawn();
        // Kill it once part of the backlog is out.
        ASSERT_TRUE(wait_until([&] { return kafka.consume_all(topic, 3000, 1s).size() >= 3000; }, 60s, 20ms))
            << test_support::file_tail(log);
        child.signal(SIGKILL);
        ASSERT_TRUE(child.wait_exit(10s));
    }
    auto child = spawn();
    auto d = await_records(kafka, topic, accepted, 120s);
    ASSERT_EQ(d.lost, 0u) << d.first_problem << "\n" << test_support::file_tail(log);
    EXPECT_EQ(d.order_violations, 0u) << d.first_problem;
    RecordProperty("duplicates", static_cast<int>(d.duplicates));
    child.stop(SIGTERM, 20s);
}

INSTANTIATE_TEST_SUITE_P(E2E, Crash, ::testing::Values(StoreKind::Sqlite, StoreKind::Postgres), store_name);

}  // namespace
}  // namespace spillway::e2e
