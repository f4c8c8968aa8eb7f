// The record timestamp: with timestamp = "accepted" (the default) a record carries the time the
// engine accepted its event (sw_event.created_at_us, in ms), so an event sent an hour late still
// says when it happened; with "sent" librdkafka stamps the time of producing. Read back by
// MockKafka's independent consumer, with the timestamp type librdkafka reports.
#include "sink_test_support.hpp"

#include <spillway/test_support/mock_kafka.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

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

    const auto records = kafka.consume_all("stamped", 3, 30s);
    ASSERT_EQ(records.size(), 3u);
    EXPECT_EQ(records[0].header("event_id"), "evt-hour");
    EXPECT_EQ(records[0].timestamp_ms, hour_ago_us / 1000) << "exactly the accepted millisecond";
    EXPECT_EQ(records[0].timestamp_type, RD_KAFKA_TIMESTAMP_CREATE_TIME);

    EXPECT_EQ(records[1].header("event_id"), "evt-unstamped");
    EXPECT_EQ(records[1].timestamp_type, RD_KAFKA_TIMESTAMP_CREATE_TIME);
    EXPECT_GE(records[1].timestamp_ms, before_send_ms);
    EXPECT_LE(records[1].timestamp_ms, after_send_ms);

    EXPECT_EQ(records[2].header("event_id"), "evt-older");
    EXPECT_EQ(records[2].timestamp_ms, two_hours_ago_us / 1000) << "an older timestamp after a newer one, in one batch";
    EXPECT_EQ(records[2].timestamp_type, RD_KAFKA_TIMESTAMP_CREATE_TIME);
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

    const auto records = kafka.consume_all("sent", 1, 30s);
    ASSERT_EQ(records.size(), 1u);
    EXPECT_EQ(records[0].header("event_id"), "evt-hour");
    EXPECT_EQ(records[0].timestamp_type, RD_KAFKA_TIMESTAMP_CREATE_TIME);
    // The send's time, bracketed by the wall clock around the call: an hour after the accept time.
    EXPECT_GE(records[0].timestamp_ms, before_send_ms);
    EXPECT_LE(records[0].timestamp_ms, after_send_ms);
    EXPECT_GE(records[0].timestamp_ms - hour_ago_us / 1000, kHourMs) << "later than the accepted time by an hour";
    EXPECT_LT(records[0].timestamp_ms - hour_ago_us / 1000, kHourMs + 10 * 60 * 1000) << "by about an hour";
}

}  // namespace
}  // namespace spillway::kafka_test
