#include "delivery.hpp"

namespace spillway::plugins::kafka {

namespace {

bool permanent(rd_kafka_resp_err_t err) {
    switch (err) {
        case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
        case RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE:
        case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
        case RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION:           // invalid topic name
        case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
        case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:     // surfaces only once librdkafka gave up on it
        case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
        case RD_KAFKA_RESP_ERR_INVALID_RECORD:
        case RD_KAFKA_RESP_ERR_INVALID_TIMESTAMP:
        case RD_KAFKA_RESP_ERR__INVALID_ARG:
            return true;
        default:
            return false;
    }
}

}  // namespace

Verdict classify_delivery(rd_kafka_resp_err_t err, rd_kafka_msg_status_t status) {
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) return {SW_OK, 0};
    if (err == RD_KAFKA_RESP_ERR__FATAL) return {SW_FATAL, status == RD_KAFKA_MSG_STATUS_NOT_PERSISTED ? 0u : SW_RESULT_POSSIBLY_DELIVERED};
    if (permanent(err)) return {SW_REJECT, 0};
    return {SW_RETRY, status == RD_KAFKA_MSG_STATUS_NOT_PERSISTED ? 0u : SW_RESULT_POSSIBLY_DELIVERED};
}

Verdict classify_produce_failure(rd_kafka_resp_err_t err) {
    if (err == RD_KAFKA_RESP_ERR__FATAL) return {SW_FATAL, 0};
    if (permanent(err)) return {SW_REJECT, 0};
    return {SW_RETRY, 0};
}

std::string describe(rd_kafka_resp_err_t err) {
    return std::string(rd_kafka_err2str(err)) + " (" + rd_kafka_err2name(err) + ")";
}

Completion* Completion::create(size_t n) { return new Completion(n); }

Completion::Completion(size_t n) : n_(n), slots_(new Slot[n]), outstanding_(n), refs_(n + 1) {
    for (size_t i = 0; i < n; ++i) slots_[i].owner = this;
}

void Completion::release() {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
}

void Completion::refused(size_t i, rd_kafka_resp_err_t err) {
    slots_[i].refused = err;
    // Only the sender can bring the count to zero here, and it is not waiting: no wake-up.
    outstanding_.fetch_sub(1, std::memory_order_acq_rel);
    refs_.fetch_sub(1, std::memory_order_acq_rel);  // the sender's own reference keeps it alive
}

bool Completion::deliver(Slot& slot, const rd_kafka_message_t& msg) {
    Completion* c = slot.owner;
    slot.err = msg.err;
    slot.persisted = rd_kafka_message_status(&msg);
    slot.partition = msg.partition;
    slot.offset = msg.offset;
    int pending = Slot::Pending;
    const bool in_time = slot.state.compare_exchange_strong(pending, Slot::Delivered, std::memory_order_acq_rel);
    if (c->outstanding_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        // Under the mutex, so a sender between checking done() and sleeping cannot miss it.
        std::lock_guard lock(c->mutex_);
        c->cv_.notify_one();
    }
    c->release();
    return in_time;
}

bool Completion::wait_done_until(std::chrono::steady_clock::time_point until) {
    if (done()) return true;
    std::unique_lock lock(mutex_);
    return cv_.wait_until(lock, until, [this] { return done(); });
}

bool Completion::settle(size_t i) {
    int pending = Slot::Pending;
    if (slots_[i].state.compare_exchange_strong(pending, Slot::Expired, std::memory_order_acq_rel)) return false;
    return pending == Slot::Delivered;
}

void Completion::abandon() { release(); }

}  // namespace spillway::plugins::kafka
