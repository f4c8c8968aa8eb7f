// What one send() waits on: a slot per event, filled from librdkafka's delivery reports.
//
// A send may give up at its deadline while librdkafka still holds some of its messages; their
// reports arrive later on the poll thread. So the completion is reference-counted: one reference
// for the sender and one per message librdkafka accepted, and whoever drops the last frees it.
// Once the sender has left, late reports touch only the completion, never the caller's result
// array.
#ifndef SPILLWAY_PLUGINS_KAFKA_DELIVERY_HPP
#define SPILLWAY_PLUGINS_KAFKA_DELIVERY_HPP

#include <spillway/plugin.h>

#include <librdkafka/rdkafka.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

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

// One message's outcome. The delivering thread writes the fields, then publishes them through
// `state`; the sender reads them only after seeing Delivered. A sender that stops waiting claims
// the slot (Pending → Expired), so a report that comes later knows it is late.
struct Slot {
    enum State : int { Pending = 0, Delivered = 1, Expired = 2 };

    Completion* owner = nullptr;
    // Set by the sender when produce() refused the message: librdkafka never saw it.
    rd_kafka_resp_err_t refused = RD_KAFKA_RESP_ERR_NO_ERROR;
    // Set from the delivery report.
    std::atomic<int> state{Pending};
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
    rd_kafka_msg_status_t persisted = RD_KAFKA_MSG_STATUS_NOT_PERSISTED;
    int32_t partition = -1;
    int64_t offset = -1;
};

// Counters are atomics, not a mutex: a batch of 1,000 took 2,000 lock round trips on the sender
// and 1,000 on the poll thread, for state that is written once per message. The mutex is only
// for the condition variable, taken by the last report and by a waiting sender.
class Completion {
public:
    // Starts with the sender's reference and one per slot: every message is counted as accepted
    // up front, so reports that arrive while the sender is still producing cannot reach zero early.
    static Completion* create(size_t n);

    Slot& slot(size_t i) { return slots_[i]; }
    size_t size() const { return n_; }

    // Sender: produce() refused the message; takes its count and reference back.
    void refused(size_t i, rd_kafka_resp_err_t err);
    // Delivery report for `slot`; returns false when the sender already gave up on it (a late
    // report). May free the completion: do not touch it afterwards.
    static bool deliver(Slot& slot, const rd_kafka_message_t& msg);
    // Sender: whether every accepted message is reported.
    bool done() const { return outstanding_.load(std::memory_order_acquire) == 0; }
    // Sender: blocks until done() or `until`; returns done().
    bool wait_done_until(std::chrono::steady_clock::time_point until);
    // Sender, after waiting: whether slot i's report is in (its fields may then be read). If it
    // is not, the slot is marked expired, and a report arriving later counts as late.
    bool settle(size_t i);
    // Sender leaves; frees the completion when no message is outstanding.
    void abandon();

private:
    explicit Completion(size_t n);
    void release();

    std::mutex mutex_;
    std::condition_variable cv_;
    const size_t n_;
    std::unique_ptr<Slot[]> slots_;  // not a vector: a Slot holds an atomic and cannot move
    std::atomic<size_t> outstanding_;  // accepted and not yet reported
    std::atomic<size_t> refs_;         // the sender's, plus one per message librdkafka holds
};

}  // namespace spillway::plugins::kafka

#endif
