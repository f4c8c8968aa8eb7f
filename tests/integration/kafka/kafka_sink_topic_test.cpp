// Topics the sink is asked to produce to: a bounded handle cache (more names than its bound keep
// working), and names the cluster does not have, refused at once per event (issue 19, class 5).
#include "sink_test_support.hpp"
#include "topic_handles.hpp"

#include <spillway/test_support/mock_kafka.hpp>
#include <spillway/test_support/wait.hpp>

#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <chrono>
#include <string>
#include <vector>

namespace spillway::kafka_test {
namespace {

using namespace std::chrono_literals;
using plugins::kafka::TopicHandles;
using test_support::MockKafka;
using test_support::wait_until;
using Clock = std::chrono::steady_clock;

// A bare librdkafka producer counting its delivery reports, for the cache on its own.
class RawProducer {
public:
    explicit RawProducer(const MockKafka& kafka) {
        rd_kafka_conf_t* conf = rd_kafka_conf_new();
        std::array<char, 256> err{};
        rd_kafka_conf_set(conf, "bootstrap.servers", kafka.bootstraps().c_str(), err.data(), err.size());
        rd_kafka_conf_set_opaque(conf, this);
        rd_kafka_conf_set_dr_msg_cb(conf, [](rd_kafka_t*, const rd_kafka_message_t* m, void* self) {
            auto* p = static_cast<RawProducer*>(self);
            if (m->err) ++p->failed;
            else ++p->delivered;
        });
        rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err.data(), err.size());
        if (!rk) rd_kafka_conf_destroy(conf);
    }
    ~RawProducer() {
        if (rk) rd_kafka_destroy(rk);
    }
    rd_kafka_resp_err_t produce(rd_kafka_topic_t* topic, const std::string& payload) {
        return rd_kafka_producev(rk, RD_KAFKA_V_RKT(topic), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                 RD_KAFKA_V_VALUE(const_cast<char*>(payload.data()), payload.size()), RD_KAFKA_V_END);
    }

    rd_kafka_t* rk = nullptr;
    std::atomic<int> delivered{0}, failed{0};
};

// A client for the cache's one-topic checks, as the sink makes it (minus logging).
rd_kafka_t* checking_client(const MockKafka& kafka) {
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    std::array<char, 256> err{};
    rd_kafka_conf_set(conf, "bootstrap.servers", kafka.bootstraps().c_str(), err.data(), err.size());
    rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err.data(), err.size());
    if (!rk) rd_kafka_conf_destroy(conf);
    return rk;
}

TEST(TopicHandles, KeepsAtMostItsBoundAndEvictedHandlesStayUsable) {
    MockKafka kafka(1);
    constexpr size_t kBound = 8, kTopics = 30;
    // The topics are auto-created by the checks' metadata requests.
    RawProducer producer(kafka);
    ASSERT_NE(producer.rk, nullptr);
    const auto deadline = [] { return Clock::now() + 10s; };
    int produced = 0;
    {
        TopicHandles cache(kBound);
        cache.attach(producer.rk, nullptr, [&] { return checking_client(kafka); });
        EXPECT_TRUE(cache.asks_auto_create()) << "a producer asks for auto-creation by default";

        // A sender that got t0's handle before it was evicted keeps a working handle.
        const TopicHandles::Lookup first = cache.get("t0", deadline());
        ASSERT_TRUE(first.handle) << rd_kafka_err2name(first.err);
        rd_kafka_topic_t* const t0 = first.handle.get();
        for (size_t round = 0; round < 3; ++round)
            for (size_t i = 0; i < kTopics; ++i) {
                const auto got = cache.get("t" + std::to_string(i), deadline());
                ASSERT_TRUE(got.handle) << "t" << i << ": " << rd_kafka_err2name(got.err);
                ASSERT_EQ(producer.produce(got.handle.get(), "r" + std::to_string(round)), RD_KAFKA_RESP_ERR_NO_ERROR);
                ++produced;
                EXPECT_LE(cache.size(), kBound);
            }
        EXPECT_EQ(cache.size(), kBound);
        ASSERT_EQ(producer.produce(first.handle.get(), "after eviction"), RD_KAFKA_RESP_ERR_NO_ERROR);
        ++produced;
        // Asked again, an evicted name gives librdkafka's same topic object back.
        const auto again = cache.get("t0", deadline());
        ASSERT_TRUE(again.handle);
        EXPECT_EQ(again.handle.get(), t0);
        EXPECT_EQ(cache.checkers_made(), 1u);
        cache.release();
        EXPECT_EQ(cache.size(), 0u);
        // `first` and `again` are released here, after the cache: still before the producer.
    }
    EXPECT_EQ(rd_kafka_flush(producer.rk, 20000), RD_KAFKA_RESP_ERR_NO_ERROR);
    EXPECT_EQ(producer.delivered.load(), produced);
    EXPECT_EQ(producer.failed.load(), 0);
    EXPECT_EQ(kafka.consume_all("t0", 4, 20s).size(), 4u);  // three rounds and the one after eviction
}

// The sink with a bound of 4 and 12 topics, round-robin: every event is delivered to its own topic,
// and the cache never holds more than 4 handles.
TEST(KafkaSinkTopics, MoreTopicsThanTheBoundAllDeliver) {
    MockKafka kafka(1);
    auto config = config_for(kafka);
    config.set("max.topic.handles", "4");
    testkit::SinkInstance sink(kafka_plugin(), config);
    constexpr size_t kTopics = 12, kRounds = 3;
    for (size_t round = 0; round < kRounds; ++round) {
        EventBatch batch;
        for (size_t t = 0; t < kTopics; ++t)
            batch.add({"e-" + std::to_string(round) + "-" + std::to_string(t), "many." + std::to_string(t), "k",
                       "p" + std::to_string(round), {}, {}, {}});
        std::vector<sw_result> results;
        ASSERT_EQ(send(sink, batch, results, 20000), SW_OK) << sink.host().last_error();
        for (size_t t = 0; t < kTopics; ++t) EXPECT_EQ(results[t].status, SW_OK) << "many." << t << ": " << results[t].message;
    }
    for (size_t t = 0; t < kTopics; ++t) {
        const auto records = kafka.consume_all("many." + std::to_string(t), kRounds, 20s);
        ASSERT_EQ(records.size(), kRounds) << "many." << t;
        for (size_t round = 0; round < kRounds; ++round)
            EXPECT_EQ(records[round].payload.value_or(""), "p" + std::to_string(round));
    }
    // The statistics (every second) report the cache's size.
    ASSERT_TRUE(wait_until([&] { return sink.host().metric("kafka_topic_handles") > 0; }, 10s));
    EXPECT_LE(sink.host().metric("kafka_topic_handles"), 4.0);
}

TEST(KafkaSinkTopics, BoundOutOfRangeIsAConfigError) {
    for (const char* bad : {"0", "-1", "1000001"}) {
        testkit::HostContext host(kafka_plugin(), {{"bootstrap.servers", "127.0.0.1:9092"}, {"max.topic.handles", bad}});
        EXPECT_EQ(testkit::validate(kafka_plugin(), host), SW_INVALID_CONFIG) << bad;
        ASSERT_EQ(host.config_errors().size(), 1u) << bad;
        EXPECT_EQ(host.config_errors()[0].first, "max.topic.handles");
    }
    ASSERT_NE(kafka_plugin().option("max.topic.handles"), nullptr);
    EXPECT_STREQ(kafka_plugin().option("max.topic.handles")->default_value, "1000");
}

// The default client asks the broker to auto-create; this broker answers UNKNOWN_TOPIC_OR_PART
// for "ghost" (as one with auto.create.topics.enable=false does). Before the check, its event sat
// in librdkafka until message.timeout.ms and came back RETRY (a failure the circuit counts).
TEST(KafkaSinkTopics, UnknownTopicIsRejectedAtOnceAndItsNeighboursDelivered) {
    MockKafka kafka(1);
    kafka.create_topic("real", 1);
    kafka.set_topic_error("ghost", RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART);
    testkit::SinkInstance sink(kafka_plugin(), config_for(kafka));
    EventBatch batch;
    batch.add({"a", "real", "k", "1", {}, {}, {}});
    batch.add({"b", "ghost", "k", "2", {}, {}, {}});
    batch.add({"c", "ghost", "k", "3", {}, {}, {}});
    batch.add({"d", "real", "k", "4", {}, {}, {}});
    std::vector<sw_result> results;
    const auto started = Clock::now();
    ASSERT_EQ(send(sink, batch, results, 10000), SW_OK) << sink.host().last_error();
    EXPECT_LT(Clock::now() - started, 2s) << "answered at once, not at a deadline";
    EXPECT_EQ(results[0].status, SW_OK) << results[0].message;
    EXPECT_EQ(results[3].status, SW_OK) << results[3].message;
    for (size_t i : {1u, 2u}) {
        EXPECT_EQ(results[i].status, SW_REJECT) << status_name(results[i].status) << ": " << results[i].message;
        EXPECT_EQ(std::string(results[i].message),
                  "topic \"ghost\" does not exist in the Kafka cluster: Broker: Unknown topic or partition "
                  "(UNKNOWN_TOPIC_OR_PART)");
    }
    EXPECT_EQ(sink.host().metric("kafka_unknown_topic_total"), 2.0);
    EXPECT_EQ(sink.host().metric("kafka_delivery_total", "result=reject"), 2.0);
    EXPECT_EQ(kafka.consume_all("real", 2, 20s).size(), 2u);

    // Once the cluster has it, the topic works again (checked anew after the recheck interval).
    kafka.set_topic_error("ghost", RD_KAFKA_RESP_ERR_NO_ERROR);
    EXPECT_TRUE(wait_until(
        [&] {
            EventBatch one;
            one.add({"e", "ghost", "k", "5", {}, {}, {}});
            std::vector<sw_result> r;
            return send(sink, one, r, 10000) == SW_OK && r[0].status == SW_OK;
        },
        10s, 100ms));
}

// The default client, 600 names the broker does not have: each is refused, none becomes a topic
// object of the producer (librdkafka keeps those for the producer's life), and the checking
// clients that asked about them are replaced as they fill.
TEST(KafkaSinkTopics, UnknownNamesAreNotKeptByTheProducer) {
    MockKafka kafka(1);
    kafka.create_topic("real", 1);
    constexpr size_t kUnknown = 600, kPerBatch = 50;
    std::vector<std::string> names;
    for (size_t i = 0; i < kUnknown; ++i) names.push_back("unknown." + std::to_string(i));
    kafka.set_unknown_topics(names);
    testkit::SinkInstance sink(kafka_plugin(), config_for(kafka));
    for (size_t b = 0; b < kUnknown / kPerBatch; ++b) {
        EventBatch batch;
        for (size_t i = b * kPerBatch; i < (b + 1) * kPerBatch; ++i) batch.add({"u-" + std::to_string(i), names[i], "k", "x", {}, {}, {}});
        batch.add({"r-" + std::to_string(b), "real", "k", "y", {}, {}, {}});
        std::vector<sw_result> results;
        ASSERT_EQ(send(sink, batch, results, 10000), SW_OK) << sink.host().last_error();
        for (size_t i = 0; i < kPerBatch; ++i) ASSERT_EQ(results[i].status, SW_REJECT) << results[i].message;
        EXPECT_EQ(results[kPerBatch].status, SW_OK) << results[kPerBatch].message;
    }
    EXPECT_EQ(sink.host().metric("kafka_unknown_topic_total"), static_cast<double>(kUnknown));
    // After the burst, a topic the broker auto-creates: once the statistics show it, they show the
    // producer's topic objects after the burst: "real" and "fresh" only.
    std::vector<sw_result> r;
    EventBatch fresh;
    fresh.add({"f-1", "fresh", "k", "z", {}, {}, {}});
    ASSERT_EQ(send(sink, fresh, r, 10000), SW_OK);
    EXPECT_EQ(r[0].status, SW_OK) << r[0].message;
    ASSERT_TRUE(wait_until([&] { return sink.host().metric("kafka_client_topics") >= 2; }, 10s));
    EXPECT_EQ(sink.host().metric("kafka_client_topics"), 2.0);
}

// allow.auto.create.topics=false: names are checked against the cluster's topic list, so 500
// unknown names are refused without a librdkafka topic object each (librdkafka would keep every
// one until the producer is destroyed), and a topic created afterwards is found. (The mock speaks
// Metadata v2 only, never sees AllowAutoTopicCreation and would create any topic a client names:
// here none is named to it.)
TEST(KafkaSinkTopics, WithoutAutoCreateUnknownNamesNeverReachLibrdkafka) {
    MockKafka kafka(1);
    kafka.create_topic("real", 1);
    constexpr size_t kUnknown = 500, kPerBatch = 50;
    auto config = config_for(kafka);
    config.set("allow.auto.create.topics", "false");
    testkit::SinkInstance sink(kafka_plugin(), config);
    const auto started = Clock::now();
    for (size_t b = 0; b < kUnknown / kPerBatch; ++b) {
        EventBatch batch;
        for (size_t i = b * kPerBatch; i < (b + 1) * kPerBatch; ++i)
            batch.add({"u-" + std::to_string(i), "unknown." + std::to_string(i), "k", "x", {}, {}, {}});
        batch.add({"r-" + std::to_string(b), "real", "k", "y", {}, {}, {}});
        std::vector<sw_result> results;
        ASSERT_EQ(send(sink, batch, results, 10000), SW_OK) << sink.host().last_error();
        for (size_t i = 0; i < kPerBatch; ++i) {
            ASSERT_EQ(results[i].status, SW_REJECT) << results[i].message;
            ASSERT_NE(std::string(results[i].message).find("UNKNOWN_TOPIC_OR_PART"), std::string::npos) << results[i].message;
        }
        EXPECT_EQ(results[kPerBatch].status, SW_OK) << results[kPerBatch].message;
    }
    EXPECT_LT(Clock::now() - started, 5s);
    EXPECT_EQ(sink.host().metric("kafka_unknown_topic_total"), static_cast<double>(kUnknown));

    kafka.create_topic("late", 1);
    EXPECT_TRUE(wait_until(
        [&] {
            EventBatch one;
            one.add({"late-1", "late", "k", "z", {}, {}, {}});
            std::vector<sw_result> r;
            return send(sink, one, r, 10000) == SW_OK && r[0].status == SW_OK;
        },
        10s, 100ms));
    // librdkafka's own topic objects, from its statistics: "real" and "late" only, once the
    // statistics show "late".
    ASSERT_TRUE(wait_until([&] { return sink.host().metric("kafka_client_topics") >= 2; }, 10s));
    EXPECT_EQ(sink.host().metric("kafka_client_topics"), 2.0);
}

}  // namespace
}  // namespace spillway::kafka_test
