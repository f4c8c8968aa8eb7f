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

Completion::Completion(size_t n) : slots_(n, Slot{this}) {}

void Completion::accepted() {
    std::lock_guard lock(mutex_);
    ++outstanding_;
    ++refs_;
}

void Completion::refused() {
    std::lock_guard lock(mutex_);
    --outstanding_;
    --refs_;
}

bool Completion::deliver(Slot& slot, const rd_kafka_message_t& msg) {
    Completion* c = slot.owner;
    bool last = false;
    bool late = false;
    {
        std::lock_guard lock(c->mutex_);
        slot.done = true;
        slot.err = msg.err;
        slot.persisted = rd_kafka_message_status(&msg);
        slot.partition = msg.partition;
        slot.offset = msg.offset;
        late = c->abandoned_;
        if (--c->outstanding_ == 0 && !late) c->cv_.notify_one();
        last = --c->refs_ == 0;
    }
    if (last) delete c;
    return !late;
}

bool Completion::done() {
    std::lock_guard lock(mutex_);
    return outstanding_ == 0;
}

bool Completion::wait_done_until(std::chrono::steady_clock::time_point until) {
    std::unique_lock lock(mutex_);
    return cv_.wait_until(lock, until, [this] { return outstanding_ == 0; });
}

void Completion::abandon() {
    bool last = false;
    {
        std::lock_guard lock(mutex_);
        abandoned_ = true;
        last = --refs_ == 0;
    }
    if (last) delete this;
}

}  // namespace spillway::plugins::kafka
