// The record timestamp: with timestamp = "accepted" (the default) a record carries the time the
// engine accepted its event (sw_event.created_at_us, in ms), so an event sent an hour late still
// says when it happened; with "sent" librdkafka stamps the time of producing. Read back by an
// independent librdkafka consumer, with the timestamp type it reports.
#include "sink_test_support.hpp"

#include <spillway/test_support/mock_kafka.hpp>

#include <gtest/gtest.h>

#include <array>
#include <chrono>
#include <memory>
#include <stdexcept>

namespace spillway::kafka_test {
namespace {

using namespace std::chrono_literals;
using test_support::MockKafka;

constexpr int64_t kHourMs = 3600 * 1000;

int64_t unix_us() {
    return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}
int64_t unix_ms() { return unix_us() / 1000; }

struct StampedRecord {
    std::string event_id;
    int64_t timestamp = -1;
    rd_kafka_timestamp_type_t type = RD_KAFKA_TIMESTAMP_NOT_AVAILABLE;
};

void conf_set(rd_kafka_conf_t* conf, const char* key, const char* value) {
    std::array<char, 512> errstr{};
    if (rd_kafka_conf_set(conf, key, value, errstr.data(), errstr.size()) != RD_KAFKA_CONF_OK)
        throw std::runtime_error(std::string(key) + ": " + errstr.data());
}

// Reads partition 0 of `topic` (the tests' topics have one) from the beginning until `expected`
// records arrived or `deadline` passed: event_id header, timestamp and timestamp type, in offset
// order. (MockKafka::consume_all's records carry no timestamp.)
std::vector<StampedRecord> read_stamped(const MockKafka& kafka, const std::string& topic, size_t expected,
                                        std::chrono::milliseconds deadline) {
    const auto until = std::chrono::steady_clock::now() + deadline;
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    conf_set(conf, "bootstrap.servers", kafka.bootstraps().c_str());
    conf_set(conf, "group.id", "spillway-timestamp-reader");  // assign() below never joins it
    conf_set(conf, "enable.auto.commit", "false");
    conf_set(conf, "fetch.wait.max.ms", "5");
    conf_set(conf, "log_level", "3");
    std::array<char, 512> errstr{};
    rd_kafka_t* raw = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr.data(), errstr.size());
    if (!raw) {
        rd_kafka_conf_destroy(conf);
        throw std::runtime_error(std::string("consumer: ") + errstr.data());
    }
    std::unique_ptr<rd_kafka_t, decltype(&rd_kafka_destroy)> consumer(raw, &rd_kafka_destroy);
    std::unique_ptr<rd_kafka_topic_partition_list_t, decltype(&rd_kafka_topic_partition_list_destroy)> assignment(
        rd_kafka_topic_partition_list_new(1), &rd_kafka_topic_partition_list_destroy);
    rd_kafka_topic_partition_list_add(assignment.get(), topic.c_str(), 0)->offset = RD_KAFKA_OFFSET_BEGINNING;
    if (rd_kafka_resp_err_t err = rd_kafka_assign(consumer.get(), assignment.get()))
        throw std::runtime_error(std::string("assign: ") + rd_kafka_err2str(err));

    std::vector<StampedRecord> records;
    while (records.size() < expected && std::chrono::steady_clock::now() < until) {
        rd_kafka_message_t* msg = rd_kafka_consumer_poll(consumer.get(), 100);
        if (!msg) continue;
        if (msg->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            StampedRecord r;
            r.timestamp = rd_kafka_message_timestamp(msg, &r.type);
            rd_kafka_headers_t* hdrs = nullptr;
            const void* value = nullptr;
            size_t size = 0;
            if (rd_kafka_message_headers(msg, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR &&
                rd_kafka_header_get_last(hdrs, "event_id", &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR && value)
                r.event_id.assign(static_cast<const char*>(value), size);
            records.push_back(std::move(r));
        }
        rd_kafka_message_destroy(msg);
    }
    rd_kafka_consumer_close(consumer.get());
    return records;
}

// Events with their created_at_us set (0: none), sent through the C ABI.
class StampedBatch {
public:
    void add(const std::string& event_id, const std::string& topic, int64_t created_at_us) {
        batch_.add({event_id, topic, "k", "p", std::nullopt, std::nullopt, {}});
        created_.push_back(created_at_us);
        events_.assign(batch_.data(), batch_.data() + batch_.size());
        for (size_t i = 0; i < events_.size(); ++i) events_[i].created_at_us = created_[i];
    }
    // Sends through the C ABI with the created_at_us values set; expects every event OK.
    void send_ok(testkit::SinkInstance& sink) const {
        std::vector<sw_result> results(events_.size(), sw_result{});
        ASSERT_EQ(sink.vt().send(sink.get(), events_.data(), events_.size(), results.data(), 20000), SW_OK)
            << sink.host().last_error();
        for (size_t i = 0; i < results.size(); ++i)
            ASSERT_EQ(results[i].status, SW_OK) << "event " << i << ": " << results[i].message;
    }

private:
    EventBatch batch_;  // owns the bytes
    std::vector<int64_t> created_;
    std::vector<sw_event> events_;  // batch_'s views with created_at_us set
};

TEST(KafkaSinkTimestamp, AcceptedIsTheDefaultAndRecordsCarryTheTimeTheEngineAcceptedThem) {
    MockKafka kafka(1);
    kafka.create_topic("stamped", 1, 1);
    testkit::SinkInstance sink(kafka_plugin(), config_for(kafka));  // no timestamp key: "accepted"

    // Microseconds that do not fall on a millisecond: Kafka's timestamp is the millisecond they are in.
    const int64_t hour_ago_us = (unix_ms() - kHourMs) * 1000 + 789;
    const int64_t two_hours_ago_us = hour_ago_us - kHourMs * 1000 - 123;  // an older one after it
    const int64_t before_send_ms = unix_ms();
    StampedBatch batch;
    batch.add("evt-hour", "stamped", hour_ago_us);
    batch.add("evt-unstamped", "stamped", 0);  // no accept time: librdkafka's send time
    batch.add("evt-older", "stamped", two_hours_ago_us);
    ASSERT_NO_FATAL_FAILURE(batch.send_ok(sink));
    const int64_t after_send_ms = unix_ms();

    const auto records = read_stamped(kafka, "stamped", 3, 30s);
    ASSERT_EQ(records.size(), 3u);
    EXPECT_EQ(records[0].event_id, "evt-hour");
    EXPECT_EQ(records[0].timestamp, hour_ago_us / 1000) << "exactly the accepted millisecond";
    EXPECT_EQ(records[0].type, RD_KAFKA_TIMESTAMP_CREATE_TIME);

    EXPECT_EQ(records[1].event_id, "evt-unstamped");
    EXPECT_EQ(records[1].type, RD_KAFKA_TIMESTAMP_CREATE_TIME);
    EXPECT_GE(records[1].timestamp, before_send_ms);
    EXPECT_LE(records[1].timestamp, after_send_ms);

    EXPECT_EQ(records[2].event_id, "evt-older");
    EXPECT_EQ(records[2].timestamp, two_hours_ago_us / 1000) << "an older timestamp after a newer one, in one batch";
    EXPECT_EQ(records[2].type, RD_KAFKA_TIMESTAMP_CREATE_TIME);
}

TEST(KafkaSinkTimestamp, SentLeavesTheTimestampToLibrdkafkasSendTime) {
    MockKafka kafka(1);
    kafka.create_topic("sent", 1, 1);
    auto cfg = config_for(kafka);
    cfg.set("timestamp", "sent");
    testkit::SinkInstance sink(kafka_plugin(), cfg);

    const int64_t hour_ago_us = (unix_ms() - kHourMs) * 1000 + 789;
    const int64_t before_send_ms = unix_ms();
    StampedBatch batch;
    batch.add("evt-hour", "sent", hour_ago_us);
    ASSERT_NO_FATAL_FAILURE(batch.send_ok(sink));
    const int64_t after_send_ms = unix_ms();

    const auto records = read_stamped(kafka, "sent", 1, 30s);
    ASSERT_EQ(records.size(), 1u);
    EXPECT_EQ(records[0].event_id, "evt-hour");
    EXPECT_EQ(records[0].type, RD_KAFKA_TIMESTAMP_CREATE_TIME);
    // The send's time, bracketed by the wall clock around the call: an hour after the accept time.
    EXPECT_GE(records[0].timestamp, before_send_ms);
    EXPECT_LE(records[0].timestamp, after_send_ms);
    EXPECT_GE(records[0].timestamp - hour_ago_us / 1000, kHourMs) << "later than the accepted time by an hour";
    EXPECT_LT(records[0].timestamp - hour_ago_us / 1000, kHourMs + 10 * 60 * 1000) << "by about an hour";
}

}  // namespace
}  // namespace spillway::kafka_test
