// Kafka record timestamps through the real pipeline (kafka on the mock cluster, a SQLite outbox):
// a record carries the time the engine accepted its event (the kafka sink's default,
// timestamp = "accepted"), whether it went straight to Kafka or spilled to the outbox during an
// outage and was relayed after Kafka came back. The publish outcome does not expose the accept
// time, so each publish is bracketed by the wall clock read just before and after the call.
#include "pipeline_harness.hpp"

#include <spillway/test_support/wait.hpp>

#include <gtest/gtest.h>

#include <array>
#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <stdexcept>

namespace spillway::e2e {
namespace {

using namespace std::chrono_literals;
using pipeline::Path;
using test_support::wait_until;

// The record timestamp may differ from the accepted time by this much (the accept time is known
// only to lie within the bracket; the timestamp is that time cut to milliseconds).
constexpr int64_t kSlackMs = 5;

int64_t unix_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

// The wall clock just before and just after a publish call, in unix milliseconds.
struct Bracket {
    int64_t before_ms = 0, after_ms = 0;
};

struct StampedRecord {
    int64_t timestamp = -1;
    rd_kafka_timestamp_type_t type = RD_KAFKA_TIMESTAMP_NOT_AVAILABLE;
};

void conf_set(rd_kafka_conf_t* conf, const char* key, const char* value) {
    std::array<char, 512> errstr{};
    if (rd_kafka_conf_set(conf, key, value, errstr.data(), errstr.size()) != RD_KAFKA_CONF_OK)
        throw std::runtime_error(std::string(key) + ": " + errstr.data());
}

// Reads every partition of `topic` from the beginning with an independent consumer until each of
// `ids` was seen or `deadline` passed: event_id -> every record of it (duplicates included), with
// the timestamp and its type. (MockKafka::consume_all's records carry no timestamp.)
std::map<std::string, std::vector<StampedRecord>> read_stamped(const test_support::MockKafka& kafka,
                                                               const std::string& topic,
                                                               const std::set<std::string>& ids,
                                                               std::chrono::milliseconds deadline) {
    const auto until = std::chrono::steady_clock::now() + deadline;
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    conf_set(conf, "bootstrap.servers", kafka.bootstraps().c_str());
    conf_set(conf, "group.id", "spillway-e2e-timestamp-reader");  // assign() below never joins it
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

    int partitions = 0;
    wait_until(
        [&] {
            const rd_kafka_metadata_t* md = nullptr;
            std::unique_ptr<rd_kafka_topic_t, decltype(&rd_kafka_topic_destroy)> rkt(
                rd_kafka_topic_new(consumer.get(), topic.c_str(), nullptr), &rd_kafka_topic_destroy);
            if (rd_kafka_metadata(consumer.get(), 0, rkt.get(), &md, 2000) != RD_KAFKA_RESP_ERR_NO_ERROR) return false;
            if (md->topic_cnt == 1 && md->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR)
                partitions = md->topics[0].partition_cnt;
            rd_kafka_metadata_destroy(md);
            return partitions > 0;
        },
        deadline, 50ms);
    if (partitions == 0) throw std::runtime_error("topic " + topic + " not available");
    std::unique_ptr<rd_kafka_topic_partition_list_t, decltype(&rd_kafka_topic_partition_list_destroy)> assignment(
        rd_kafka_topic_partition_list_new(partitions), &rd_kafka_topic_partition_list_destroy);
    for (int p = 0; p < partitions; ++p)
        rd_kafka_topic_partition_list_add(assignment.get(), topic.c_str(), p)->offset = RD_KAFKA_OFFSET_BEGINNING;
    if (rd_kafka_resp_err_t err = rd_kafka_assign(consumer.get(), assignment.get()))
        throw std::runtime_error(std::string("assign: ") + rd_kafka_err2str(err));

    std::map<std::string, std::vector<StampedRecord>> records;
    size_t missing = ids.size();
    while (missing > 0 && std::chrono::steady_clock::now() < until) {
        rd_kafka_message_t* msg = rd_kafka_consumer_poll(consumer.get(), 100);
        if (!msg) continue;
        rd_kafka_headers_t* hdrs = nullptr;
        const void* value = nullptr;
        size_t size = 0;
        if (msg->err == RD_KAFKA_RESP_ERR_NO_ERROR && rd_kafka_message_headers(msg, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR &&
            rd_kafka_header_get_last(hdrs, "event_id", &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR && value) {
            const std::string id(static_cast<const char*>(value), size);
            StampedRecord r;
            r.timestamp = rd_kafka_message_timestamp(msg, &r.type);
            auto& seen = records[id];
            if (seen.empty() && ids.count(id)) --missing;
            seen.push_back(r);
        }
        rd_kafka_message_destroy(msg);
    }
    rd_kafka_consumer_close(consumer.get());
    return records;
}

// Every record of `id` carries a CreateTime within its publish's bracket (+-kSlackMs) and, when
// given, before `stamped_before_ms`.
::testing::AssertionResult carries_accepted_time(const std::map<std::string, std::vector<StampedRecord>>& records,
                                                 const std::string& id, const Bracket& b,
                                                 std::optional<int64_t> stamped_before_ms = std::nullopt) {
    const auto it = records.find(id);
    if (it == records.end() || it->second.empty()) return ::testing::AssertionFailure() << "no record of " << id;
    for (const StampedRecord& r : it->second) {
        if (r.type != RD_KAFKA_TIMESTAMP_CREATE_TIME)
            return ::testing::AssertionFailure() << id << ": timestamp type " << r.type << ", CreateTime expected";
        if (r.timestamp < b.before_ms - kSlackMs || r.timestamp > b.after_ms + kSlackMs)
            return ::testing::AssertionFailure()
                   << id << ": timestamp " << r.timestamp << " outside its publish call [" << b.before_ms << ", "
                   << b.after_ms << "] +-" << kSlackMs << " ms";
        if (stamped_before_ms && r.timestamp >= *stamped_before_ms)
            return ::testing::AssertionFailure() << id << ": timestamp " << r.timestamp << " is not before "
                                                 << *stamped_before_ms << " (when Kafka came back)";
    }
    return ::testing::AssertionSuccess();
}

class RecordTimestamp : public ::testing::Test {
protected:
    // Publishes one event of `key`, bracketed by the wall clock; expects it accepted on `path`
    // (any accepted path when nullopt).
    std::string publish(Harness& h, const std::string& key, std::optional<Path> path = std::nullopt) {
        Bracket b;
        b.before_ms = unix_ms();
        const pipeline::Outcome o = h.publish(key);
        b.after_ms = unix_ms();
        EXPECT_TRUE(o.accepted()) << o.message;
        if (path) {
            EXPECT_EQ(o.path, *path) << pipeline::reason_name(o.reason) << " " << o.message;
        }
        if (o.accepted()) brackets_[o.event_id] = b;
        return o.event_id;
    }
    std::set<std::string> ids() const {
        std::set<std::string> out;
        for (const auto& [id, b] : brackets_) out.insert(id);
        return out;
    }
    std::map<std::string, Bracket> brackets_;
};

TEST_F(RecordTimestamp, DirectEventCarriesItsAcceptedTime) {
    Harness h;
    const std::string id = publish(h, "direct", Path::Direct);
    const auto records = read_stamped(h.kafka(), h.topic(), ids(), 30s);
    EXPECT_TRUE(carries_accepted_time(records, id, brackets_[id]));
}

TEST_F(RecordTimestamp, EventRelayedAfterAnOutageCarriesItsAcceptedTimeNotTheRelays) {
    Harness h;
    h.kafka().all_down();
    // Publishing goes on: the first events wait out direct_timeout and spill to the outbox, then
    // the circuit opens and events go to the outbox at once.
    ASSERT_TRUE(wait_until(
        [&] {
            publish(h, "filler", Path::Outbox);
            return h.pipeline().circuit() == pipeline::Circuit::State::Open;
        },
        60s, 1ms));
    // With the circuit open the publish call is short: its bracket pins the accepted time.
    const std::string id = publish(h, "spilled", Path::Outbox);
    EXPECT_GT(h.pending(), 0);

    // Kafka comes back in a later millisecond than every accept, so a record stamped when it was
    // sent (after Kafka returned) cannot pass for one stamped when it was accepted.
    const int64_t last_accept_ms = brackets_[id].after_ms;
    ASSERT_TRUE(wait_until([&] { return unix_ms() > last_accept_ms; }, 1s, 1ms));
    const int64_t kafka_back_ms = unix_ms();
    h.kafka().all_up();
    ASSERT_TRUE(wait_until([&] { return h.pending() == 0; }, 60s, 20ms)) << "pending " << h.pending();

    const auto records = read_stamped(h.kafka(), h.topic(), ids(), 60s);
    EXPECT_TRUE(carries_accepted_time(records, id, brackets_[id], kafka_back_ms));
    // Every spilled event, including those that waited out direct_timeout, carries its own accept time.
    for (const auto& [event_id, bracket] : brackets_)
        EXPECT_TRUE(carries_accepted_time(records, event_id, bracket, kafka_back_ms));
}

}  // namespace
}  // namespace spillway::e2e
