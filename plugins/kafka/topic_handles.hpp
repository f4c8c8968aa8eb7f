// librdkafka topic handles, one per topic name, kept for the producer's lifetime.
//
// Producing by name (RD_KAFKA_V_TOPIC) makes librdkafka look the topic up under the client's
// write lock and take and drop a reference, for every message; its broker threads take the same
// lock. A held handle (RD_KAFKA_V_RKT) skips both. send() asks for a handle once per run of
// events with the same topic.
#ifndef SPILLWAY_PLUGINS_KAFKA_TOPIC_HANDLES_HPP
#define SPILLWAY_PLUGINS_KAFKA_TOPIC_HANDLES_HPP

#include <librdkafka/rdkafka.h>

#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

namespace spillway::plugins::kafka {

class TopicHandles {
public:
    TopicHandles() = default;
    TopicHandles(const TopicHandles&) = delete;
    TopicHandles& operator=(const TopicHandles&) = delete;
    ~TopicHandles() { release(); }

    // The handle for `name` on `producer`, made on first use; nullptr when librdkafka refuses the
    // name (the error is then rd_kafka_last_error()).
    rd_kafka_topic_t* get(rd_kafka_t* producer, std::string_view name);
    // Drops every handle: before the producer is destroyed.
    void release();

private:
    std::mutex mutex_;
    std::unordered_map<std::string, rd_kafka_topic_t*> by_name_;
};

}  // namespace spillway::plugins::kafka

#endif
