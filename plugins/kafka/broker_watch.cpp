#include "broker_watch.hpp"

#include <chrono>

namespace spillway::plugins::kafka {

void BrokerWatch::start(rd_kafka_t* producer, std::function<bool()> down, std::function<void()> answered) {
    producer_ = producer;
    down_ = std::move(down);
    answered_ = std::move(answered);
    {
        std::lock_guard lock(mutex_);
        stopping_ = false;
        asked_ = false;
    }
    thread_ = std::thread(&BrokerWatch::run, this);
}

void BrokerWatch::stop() {
    if (!thread_.joinable()) return;
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    cv_.notify_all();
    thread_.join();
}

void BrokerWatch::sink_went_down() {
    {
        std::lock_guard lock(mutex_);
        asked_ = true;
    }
    cv_.notify_all();
}

void BrokerWatch::run() {
    std::unique_lock lock(mutex_);
    for (;;) {
        cv_.wait(lock, [&] { return stopping_ || asked_; });
        if (stopping_) return;
        asked_ = false;
        lock.unlock();
        while (down_()) {
            const rd_kafka_metadata_t* md = nullptr;
            const rd_kafka_resp_err_t err = rd_kafka_metadata(producer_, 0, nullptr, &md, kAskTimeoutMs);
            if (md) rd_kafka_metadata_destroy(md);
            if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
                if (down_()) answered_();
                break;
            }
            std::unique_lock pause(mutex_);
            if (cv_.wait_for(pause, std::chrono::milliseconds(kAskPauseMs), [&] { return stopping_; })) return;
        }
        lock.lock();
    }
}

}  // namespace spillway::plugins::kafka
