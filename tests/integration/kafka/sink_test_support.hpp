// Helpers shared by the kafka sink tests and the benchmark: events with owned storage, the plugin
// loaded once per process, and the sink's configuration for a test cluster.
#pragma once

#include <spillway/plugin.h>
#include <spillway/test_support/mock_kafka.hpp>
#include <spillway/testkit/host.hpp>

#include <deque>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace spillway::kafka_test {

struct EventSpec {
    std::string event_id;
    std::string topic;
    std::optional<std::string> key;
    std::string payload;
    std::optional<std::string> event_type;
    std::optional<std::string> correlation_id;
    std::vector<std::pair<std::string, std::string>> headers;
};

// sw_events whose spans point into storage this object owns.
class EventBatch {
public:
    EventBatch() = default;
    EventBatch(const EventBatch&) = delete;
    EventBatch& operator=(const EventBatch&) = delete;

    void add(const EventSpec& spec);
    const sw_event* data() const { return events_.data(); }
    size_t size() const { return events_.size(); }
    const sw_event& operator[](size_t i) const { return events_[i]; }

private:
    sw_bytes keep(const std::string& s);
    std::deque<std::string> strings_;
    std::deque<std::vector<sw_header>> headers_;
    std::vector<sw_event> events_;
};

const testkit::Plugin& kafka_plugin();

// The sink's configuration for these brokers, reconnecting within 200 ms: a test that stops and
// restarts brokers sees them back without waiting out librdkafka's default backoff.
testkit::Config config_for(const std::string& bootstrap_servers);
testkit::Config config_for(const test_support::MockKafka& kafka);

// Sends the batch through the C ABI; results.size() == batch.size().
sw_status send(testkit::SinkInstance& sink, const EventBatch& batch, std::vector<sw_result>& results,
               int64_t timeout_ms);

// Health as the plugin reports it.
sw_health health(testkit::SinkInstance& sink);

const char* status_name(int32_t status);

}  // namespace spillway::kafka_test
