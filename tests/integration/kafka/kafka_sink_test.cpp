// The kafka sink delivering: everything it reports OK is in Kafka with the right key, payload,
// headers and per-partition order, read back by an independent consumer.
#include "sink_test_support.hpp"

#include <spillway/test_support/mock_kafka.hpp>
#include <spillway/test_support/wait.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <thread>

namespace spillway::kafka_test {
namespace {

using namespace std::chrono_literals;
using test_support::MockKafka;

size_t index_of(const std::string& event_id) { return std::stoul(event_id.substr(event_id.find('-') + 1)); }

TEST(KafkaSink, TenThousandKeyedEventsArriveWithKeyPayloadHeadersAndOrder) {
    MockKafka kafka(3);
    kafka.create_topic("orders", 4, 3);
    testkit::SinkInstance sink(kafka_plugin(), config_for(kafka));

    constexpr size_t kEvents = 10000, kBatch = 500, kKeys = 64;
    std::vector<EventSpec> specs;
    for (size_t i = 0; i < kEvents; ++i) {
        EventSpec s;
        s.event_id = "evt-" + std::to_string(i);
        s.topic = "orders";
        s.key = "customer-" + std::to_string(i % kKeys);
        s.payload = "{\"n\":" + std::to_string(i) + "}";
        if (i % 2 == 0) s.event_type = "OrderPlaced";
        if (i % 3 == 0) s.correlation_id = "corr-" + std::to_string(i);
        s.headers = {{"source", "test"}, {"seq", std::to_string(i)}};
        specs.push_back(std::move(s));
    }

    std::map<size_t, std::pair<int32_t, int64_t>> acked;  // index -> partition, offset
    for (size_t start = 0; start < kEvents; start += kBatch) {
        EventBatch batch;
        for (size_t i = start; i < start + kBatch; ++i) batch.add(specs[i]);
        std::vector<sw_result> results;
        ASSERT_EQ(send(sink, batch, results, 30000), SW_OK) << sink.host().last_error();
        for (size_t j = 0; j < kBatch; ++j) {
            ASSERT_EQ(results[j].status, SW_OK) << "event " << start + j << ": " << results[j].message;
            ASSERT_GE(results[j].partition, 0);
            ASSERT_GE(results[j].offset, 0);
            acked[start + j] = {results[j].partition, results[j].offset};
        }
    }
    EXPECT_EQ(sink.host().metric("kafka_delivery_total", "result=ok"), static_cast<double>(kEvents));

    const auto records = kafka.consume_all("orders", kEvents, 60s);
    ASSERT_EQ(records.size(), kEvents);
    std::map<std::string, int32_t> partition_of_key;
    std::map<std::pair<int32_t, std::string>, size_t> last_index;  // (partition, key) -> last index seen
    for (const auto& r : records) {
        ASSERT_TRUE(r.header("event_id"));
        ASSERT_FALSE(r.headers.empty());
        EXPECT_EQ(r.headers.front().first, "event_id") << "event_id is the first header";
        const size_t i = index_of(*r.header("event_id"));
        ASSERT_LT(i, kEvents);
        const EventSpec& s = specs[i];
        EXPECT_EQ(r.key, s.key);
        EXPECT_EQ(r.payload, s.payload);
        EXPECT_EQ(r.header("event_type"), s.event_type);
        EXPECT_EQ(r.header("correlation_id"), s.correlation_id);
        EXPECT_EQ(r.header("source"), "test");
        EXPECT_EQ(r.header("seq"), std::to_string(i));
        EXPECT_EQ(acked[i], std::make_pair(r.partition, r.offset)) << "result partition/offset of event " << i;
        // One key, one partition, and its events in the order they were sent.
        auto [it, fresh] = partition_of_key.emplace(*r.key, r.partition);
        EXPECT_EQ(it->second, r.partition) << "key " << *r.key << " spread over partitions";
        auto [last, first_of_key] = last_index.emplace(std::make_pair(r.partition, *r.key), i);
        if (!first_of_key) {
            EXPECT_LT(last->second, i) << "key " << *r.key << " out of order at offset " << r.offset;
            last->second = i;
        }
    }
}

TEST(KafkaSink, ConcurrentSingleEventSendsAreAllAcknowledged) {
    MockKafka kafka(1);
    testkit::SinkInstance sink(kafka_plugin(), config_for(kafka));
    constexpr int kThreads = 8, kPerThread = 100;
    std::atomic<int> ok{0}, failed{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([&, t] {
            for (int i = 0; i < kPerThread; ++i) {
                EventBatch batch;
                batch.add({"evt-" + std::to_string(t * kPerThread + i), "direct", "k" + std::to_string(t), "p", {}, {}, {}});
                std::vector<sw_result> results;
                if (send(sink, batch, results, 20000) == SW_OK && results[0].status == SW_OK) ++ok;
                else ++failed;
            }
        });
    }
    for (auto& th : threads) th.join();
    EXPECT_EQ(ok.load(), kThreads * kPerThread);
    EXPECT_EQ(failed.load(), 0);
    EXPECT_EQ(kafka.consume_all("direct", kThreads * kPerThread, 30s).size(), static_cast<size_t>(kThreads * kPerThread));
    EXPECT_EQ(health(sink).state, SW_HEALTH_UP);
}

// librdkafka's queue holds 10 messages here: a batch of 300 waits for room (queue full is
// backpressure within the deadline, not an error) and every event arrives, in order per key.
TEST(KafkaSink, BatchLargerThanTheProducerQueueWaitsForRoom) {
    MockKafka kafka(1);
    auto cfg = config_for(kafka);
    cfg.set("queue.buffering.max.messages", "10");
    testkit::SinkInstance sink(kafka_plugin(), cfg);
    EventBatch batch;
    for (int i = 0; i < 300; ++i) batch.add({"evt-" + std::to_string(i), "small", "k", "p", {}, {}, {}});
    std::vector<sw_result> results;
    ASSERT_EQ(send(sink, batch, results, 20000), SW_OK) << sink.host().last_error();
    for (size_t i = 0; i < results.size(); ++i) ASSERT_EQ(results[i].status, SW_OK) << "event " << i << ": " << results[i].message;
    std::vector<std::string> ids;
    for (const auto& r : kafka.consume_all("small", 300, 30s)) ids.push_back(r.header("event_id").value_or(""));
    ASSERT_EQ(ids.size(), 300u);
    for (size_t i = 0; i < ids.size(); ++i) EXPECT_EQ(ids[i], "evt-" + std::to_string(i));
}

// The sink holds one librdkafka topic handle per topic and switches as a batch's topics change.
TEST(KafkaSink, OneBatchOverSeveralTopicsPutsEachEventOnItsOwnTopic) {
    MockKafka kafka(1);
    testkit::SinkInstance sink(kafka_plugin(), config_for(kafka));
    const std::vector<std::string> topics = {"alpha", "beta", "beta", "alpha", "", "gamma", "alpha", "beta"};
    EventBatch batch;
    for (size_t i = 0; i < topics.size(); ++i)
        batch.add({"evt-" + std::to_string(i), topics[i], "k", "p" + std::to_string(i), {}, {}, {}});
    for (int round = 0; round < 2; ++round) {  // the second round finds every handle made
        std::vector<sw_result> results;
        ASSERT_EQ(send(sink, batch, results, 20000), SW_OK) << sink.host().last_error();
        for (size_t i = 0; i < topics.size(); ++i) {
            if (topics[i].empty()) {
                EXPECT_EQ(results[i].status, SW_REJECT) << "an event without a topic";
                EXPECT_NE(std::string(results[i].message).find("produce refused"), std::string::npos) << results[i].message;
            } else {
                EXPECT_EQ(results[i].status, SW_OK) << "event " << i << ": " << results[i].message;
            }
        }
    }
    const std::map<std::string, std::vector<std::string>> expected = {
        {"alpha", {"evt-0", "evt-3", "evt-6", "evt-0", "evt-3", "evt-6"}},
        {"beta", {"evt-1", "evt-2", "evt-7", "evt-1", "evt-2", "evt-7"}},
        {"gamma", {"evt-5", "evt-5"}}};
    for (const auto& [topic, ids] : expected) {
        std::vector<std::string> got;
        for (const auto& r : kafka.consume_all(topic, ids.size(), 30s)) got.push_back(r.header("event_id").value_or(""));
        EXPECT_EQ(got, ids) << "topic " << topic;
    }
}

TEST(KafkaSink, AbsentKeyAndEmptyPayloadAreKept) {
    MockKafka kafka(1);
    testkit::SinkInstance sink(kafka_plugin(), config_for(kafka));
    EventBatch batch;
    batch.add({"evt-0", "misc", std::nullopt, "", std::nullopt, std::nullopt, {}});
    std::vector<sw_result> results;
    ASSERT_EQ(send(sink, batch, results, 20000), SW_OK);
    ASSERT_EQ(results[0].status, SW_OK) << results[0].message;
    const auto records = kafka.consume_all("misc", 1, 30s);
    ASSERT_EQ(records.size(), 1u);
    EXPECT_FALSE(records[0].key.has_value());
    EXPECT_EQ(records[0].payload.value_or("<null>"), "");
    EXPECT_EQ(records[0].header("event_id"), "evt-0");
    EXPECT_FALSE(records[0].header("event_type"));
}

TEST(KafkaSink, EmbeddedClusterIsStartedAndLogged) {
    testkit::SinkInstance sink(kafka_plugin(), testkit::Config{});  // bootstrap.servers defaults to "embedded"
    EXPECT_EQ(sink.host().count_logs(SW_LOG_INFO, "embedded Kafka mock cluster at 127.0.0.1:"), 1u);
    EventBatch batch;
    batch.add({"evt-1", "quickstart", "k", "hello", std::nullopt, std::nullopt, {}});
    std::vector<sw_result> results;
    ASSERT_EQ(send(sink, batch, results, 20000), SW_OK);
    EXPECT_EQ(results[0].status, SW_OK) << results[0].message;
    EXPECT_GE(results[0].offset, 0);
    EXPECT_EQ(sink.stop(5000), SW_OK);
}

TEST(KafkaSink, StopFlushesWithinItsDeadline) {
    MockKafka kafka(1);
    testkit::SinkInstance sink(kafka_plugin(), config_for(kafka));
    EventBatch batch;
    for (int i = 0; i < 50; ++i) batch.add({"evt-" + std::to_string(i), "flushed", "k", "p", {}, {}, {}});
    std::vector<sw_result> results;
    // A zero deadline reports every event RETRY+possibly-delivered; stop then flushes them out.
    ASSERT_EQ(send(sink, batch, results, 0), SW_OK);
    for (const auto& r : results) {
        if (r.status == SW_OK) continue;  // a report may beat a zero deadline
        EXPECT_EQ(r.status, SW_RETRY);
        EXPECT_TRUE(r.flags & SW_RESULT_POSSIBLY_DELIVERED);
    }
    EXPECT_EQ(sink.stop(10000), SW_OK) << sink.host().last_error();
    EXPECT_EQ(kafka.consume_all("flushed", 50, 30s).size(), 50u);
}

}  // namespace
}  // namespace spillway::kafka_test
