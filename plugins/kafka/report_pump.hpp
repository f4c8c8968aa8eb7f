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

    // Returns once every message of `completion` is reported or `until` has passed.
    void wait(Completion& completion, std::chrono::steady_clock::time_point until);
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
    std::mutex idle_mutex_;
    std::condition_variable idle_cv_;
    std::thread thread_;
};

}  // namespace spillway::plugins::kafka

#endif
