// Kafka record timestamps through the real pipeline (kafka on the mock cluster, a SQLite outbox):
// a record carries the time the engine accepted its event (the kafka sink's default,
// timestamp = "accepted"), whether it went straight to Kafka or spilled to the outbox during an
// outage and was relayed after Kafka came back. The publish outcome does not expose the accept
// time, so each publish is bracketed by the wall clock read just before and after the call.
#include "pipeline_harness.hpp"

#include <spillway/test_support/wait.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

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

using RecordsById = std::map<std::string, std::vector<test_support::KafkaRecord>>;

// Reads `topic` until each of `ids` was seen or `deadline` passed: event_id -> every record of it,
// duplicates included.
RecordsById read_by_event_id(const test_support::MockKafka& kafka, const std::string& topic,
                             const std::set<std::string>& ids, std::chrono::milliseconds deadline) {
    RecordsById by_id;
    size_t expected = ids.size();
    wait_until(
        [&] {
            const auto records = kafka.consume_all(topic, expected, 2s);
            by_id.clear();
            for (const auto& r : records)
                if (auto id = r.header("event_id")) by_id[*id].push_back(r);
            size_t missing = 0;
            for (const auto& id : ids) missing += by_id.count(id) == 0;
            // Duplicates make the topic longer than the ids: read further next time.
            expected = std::max(expected, records.size() + missing);
            return missing == 0;
        },
        deadline, 50ms);
    return by_id;
}

// Every record of `id` carries a CreateTime within its publish's bracket (+-kSlackMs) and, when
// given, before `stamped_before_ms`.
::testing::AssertionResult carries_accepted_time(const RecordsById& records, const std::string& id, const Bracket& b,
                                                 std::optional<int64_t> stamped_before_ms = std::nullopt) {
    const auto it = records.find(id);
    if (it == records.end() || it->second.empty()) return ::testing::AssertionFailure() << "no record of " << id;
    for (const test_support::KafkaRecord& r : it->second) {
        if (r.timestamp_type != RD_KAFKA_TIMESTAMP_CREATE_TIME)
            return ::testing::AssertionFailure()
                   << id << ": timestamp type " << r.timestamp_type << ", CreateTime expected";
        if (r.timestamp_ms < b.before_ms - kSlackMs || r.timestamp_ms > b.after_ms + kSlackMs)
            return ::testing::AssertionFailure()
                   << id << ": timestamp " << r.timestamp_ms << " outside its publish call [" << b.before_ms << ", "
                   << b.after_ms << "] +-" << kSlackMs << " ms";
        if (stamped_before_ms && r.timestamp_ms >= *stamped_before_ms)
            return ::testing::AssertionFailure() << id << ": timestamp " << r.timestamp_ms << " is not before "
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
    const auto records = read_by_event_id(h.kafka(), h.topic(), ids(), 30s);
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

    const auto records = read_by_event_id(h.kafka(), h.topic(), ids(), 60s);
    EXPECT_TRUE(carries_accepted_time(records, id, brackets_[id], kafka_back_ms));
    // Every spilled event, including those that waited out direct_timeout, carries its own accept time.
    for (const auto& [event_id, bracket] : brackets_)
        EXPECT_TRUE(carries_accepted_time(records, event_id, bracket, kafka_back_ms));
}

}  // namespace
}  // namespace spillway::e2e
