// Notices that Kafka is back after an outage within milliseconds of the reconnect.
//
// librdkafka says at once when every broker is down (error callback) but has no event for a broker
// coming back: a statistics report tells, up to statistics.interval.ms later (1 s by default), and
// a delivery report tells only if something is sent — and the pipeline sends nothing to a sink
// that says it is down, because every probe left queued would reach Kafka later as a duplicate.
// So while the sink is down this thread asks for metadata, which needs a live broker connection
// and carries no event; the first answer marks the sink up. It sleeps while the sink is up.
#ifndef SPILLWAY_PLUGINS_KAFKA_BROKER_WATCH_HPP
#define SPILLWAY_PLUGINS_KAFKA_BROKER_WATCH_HPP

#include <librdkafka/rdkafka.h>

#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

namespace spillway::plugins::kafka {

class BrokerWatch {
public:
    BrokerWatch() = default;
    ~BrokerWatch() { stop(); }
    BrokerWatch(const BrokerWatch&) = delete;
    BrokerWatch& operator=(const BrokerWatch&) = delete;

    // `down` says whether there is still something to find out (down and not fatal); `answered`
    // is called on the watch thread when a broker answered while `down` held.
    void start(rd_kafka_t* producer, std::function<bool()> down, std::function<void()> answered);
    void stop();  // joins the thread (at most one metadata timeout); the producer must outlive it
    void sink_went_down();  // cheap, callable from librdkafka's callbacks

    static constexpr int kAskTimeoutMs = 100;  // one metadata request's wait for a broker
    static constexpr int kAskPauseMs = 20;     // between requests that failed at once

private:
    void run();

    rd_kafka_t* producer_ = nullptr;
    std::function<bool()> down_;
    std::function<void()> answered_;
    std::mutex mutex_;
    std::condition_variable cv_;
    bool asked_ = false;  // guarded by mutex_
    bool stopping_ = false;
    std::thread thread_;
};

}  // namespace spillway::plugins::kafka

#endif
