// What one send() waits on: a slot per event, filled from librdkafka's delivery reports.
//
// A send may give up at its deadline while librdkafka still holds some of its messages; their
// reports arrive later on the poll thread. So the completion is reference-counted: one reference
// for the sender and one per message librdkafka accepted, and whoever drops the last frees it.
// Once the sender has left (`abandoned`), late reports touch only the completion, never the
// caller's result array.
#ifndef SPILLWAY_PLUGINS_KAFKA_DELIVERY_HPP
#define SPILLWAY_PLUGINS_KAFKA_DELIVERY_HPP

#include <spillway/plugin.h>

#include <librdkafka/rdkafka.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

namespace spillway::plugins::kafka {

// The sink's verdict on one librdkafka outcome.
struct Verdict {
    sw_status status;
    uint32_t flags;  // SW_RESULT_*
};

// Maps a delivery report's error and persistence status to a result status:
// no error → OK; permanent errors (too large, unknown/invalid topic, authorization, invalid record)
// → REJECT; the fatal error → FATAL; anything else → RETRY, flagged possibly-delivered unless
// librdkafka knows the message was not persisted.
Verdict classify_delivery(rd_kafka_resp_err_t err, rd_kafka_msg_status_t status);
// Same for a produce() call that failed before librdkafka took the message (never delivered).
Verdict classify_produce_failure(rd_kafka_resp_err_t err);
// "Broker: Message size too large (MSG_SIZE_TOO_LARGE)".
std::string describe(rd_kafka_resp_err_t err);

class Completion;

struct Slot {
    Completion* owner;
    // Set by the sender when produce() refused the message: librdkafka never saw it.
    rd_kafka_resp_err_t refused = RD_KAFKA_RESP_ERR_NO_ERROR;
    // Set from the delivery report.
    bool done = false;
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
    rd_kafka_msg_status_t persisted = RD_KAFKA_MSG_STATUS_NOT_PERSISTED;
    int32_t partition = -1;
    int64_t offset = -1;
};

class Completion {
public:
    // Starts with the sender's reference.
    static Completion* create(size_t n);

    Slot& slot(size_t i) { return slots_[i]; }
    size_t size() const { return slots_.size(); }

    // Sender, just before produce(): librdkafka is about to hold a slot (adds its reference).
    void accepted();
    // Sender: produce() refused the message after all; takes the reference back.
    void refused();
    // Delivery report for `slot`; returns false when the sender already left (a late report).
    // May free the completion: do not touch it afterwards.
    static bool deliver(Slot& slot, const rd_kafka_message_t& msg);
    // Sender: whether every accepted message is reported.
    bool done();
    // Sender: blocks until done() or `until`; returns done().
    bool wait_done_until(std::chrono::steady_clock::time_point until);
    // Held while the sender reads the slots after waiting.
    std::mutex& mutex() { return mutex_; }
    // Sender leaves (lock released first); frees the completion when no message is outstanding.
    void abandon();

private:
    explicit Completion(size_t n);

    std::mutex mutex_;
    std::condition_variable cv_;
    std::vector<Slot> slots_;
    size_t outstanding_ = 0;  // accepted and not yet reported
    size_t refs_ = 1;
    bool abandoned_ = false;
};

}  // namespace spillway::plugins::kafka

#endif
