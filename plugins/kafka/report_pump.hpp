// Who calls rd_kafka_poll, the only way delivery reports, errors and statistics are served.
//
// A waiting sender polls librdkafka itself when nobody else does ("the poll role"): its own report
// then reaches it in one thread hop, as in a plain librdkafka program, instead of two (poll thread,
// then the sender). Other senders wait on their completion and are woken by whoever serves their
// reports. A background thread serves whatever arrives while no sender waits (late reports, errors,
// statistics), ticking every few milliseconds rather than blocking in rd_kafka_poll, so it never
// sits on the role when a sender arrives.
#ifndef SPILLWAY_PLUGINS_KAFKA_REPORT_PUMP_HPP
#define SPILLWAY_PLUGINS_KAFKA_REPORT_PUMP_HPP

#include "delivery.hpp"

#include <librdkafka/rdkafka.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>

namespace spillway::plugins::kafka {

class ReportPump {
public:
    ReportPump() = default;
    ~ReportPump() { stop(); }
    ReportPump(const ReportPump&) = delete;
    ReportPump& operator=(const ReportPump&) = delete;

    void start(rd_kafka_t* producer);
    void stop();  // joins the background thread; the producer must outlive the pump

    // Outages that settle every waiting send at once (all brokers down, a fatal error). A sender
    // reads outage_epoch() before it produces; its wait ends as soon as the epoch moved on.
    uint64_t outage_epoch() const { return outage_epoch_.load(std::memory_order_acquire); }
    // Called from librdkafka's error callback (on whichever thread polls, maybe a waiting sender).
    // Waiters notice within one retry or poll slice (at most ~10 ms): no wake-up list to keep on
    // the hot path.
    void outage() { outage_epoch_.fetch_add(1, std::memory_order_acq_rel); }

    // Returns once every message of `completion` is reported, `until` has passed or an outage
    // was declared after `epoch` was read; says whether the outage ended it.
    bool wait(Completion& completion, std::chrono::steady_clock::time_point until, uint64_t epoch);
    // For a sender whose produce() found librdkafka's queue full: serves reports until some were
    // served (each frees a place in the queue) or `until`. When another thread holds the poll
    // role it is serving them already: this only pauses briefly.
    void make_room(std::chrono::steady_clock::time_point until);

private:
    void background();

    rd_kafka_t* producer_ = nullptr;
    std::mutex role_;                 // held by whoever is inside rd_kafka_poll
    std::atomic<int> waiters_{0};     // senders inside wait()
    std::atomic<bool> stopping_{false};
    std::atomic<uint64_t> outage_epoch_{0};
    std::mutex idle_mutex_;
    std::condition_variable idle_cv_;
    std::thread thread_;
};

}  // namespace spillway::plugins::kafka

#endif
