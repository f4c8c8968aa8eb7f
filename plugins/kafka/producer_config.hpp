// The sink's configuration: the plugin's own keys, and every other key of the component's table
// passed through to librdkafka, which validates it (its error text is what the user sees).
#ifndef SPILLWAY_PLUGINS_KAFKA_PRODUCER_CONFIG_HPP
#define SPILLWAY_PLUGINS_KAFKA_PRODUCER_CONFIG_HPP

#include <spillway/sdk.hpp>

#include <librdkafka/rdkafka.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace spillway::plugins::kafka {

// The plugin's own option names (everything else goes to librdkafka).
inline constexpr const char* kBootstrapServers = "bootstrap.servers";
inline constexpr const char* kEmbeddedBrokers = "embedded.brokers";
inline constexpr const char* kEmbedded = "embedded";
// Topic handles the sink keeps (least recently used dropped first); its default is in the option
// table (plugin.cpp).
inline constexpr const char* kMaxTopicHandles = "max.topic.handles";
inline constexpr int64_t kMaxTopicHandlesLimit = 1000000;

// Defaults the plugin puts under the user's properties (the user may override all but the two
// that make delivery reports mean "persisted": enable.idempotence and acks).
inline constexpr const char* kDefaultLingerMs = "0";
inline constexpr const char* kDefaultMessageTimeoutMs = "2000";
inline constexpr const char* kDefaultStatsIntervalMs = "1000";

struct ConfDeleter {
    void operator()(rd_kafka_conf_t* c) const noexcept { rd_kafka_conf_destroy(c); }
};
using ConfPtr = std::unique_ptr<rd_kafka_conf_t, ConfDeleter>;

struct ProducerSettings {
    bool embedded = false;           // bootstrap.servers = "embedded"
    int embedded_brokers = 1;
    size_t max_topic_handles = 1000;  // read from the option (its default there)
    std::string bootstrap_servers;   // when not embedded
    // librdkafka properties as the user wrote them (own keys removed), in table order.
    std::vector<std::pair<std::string, std::string>> properties;
};

// Reads and checks the plugin's own keys; throws sdk::ConfigError naming the key.
ProducerSettings read_settings(const sdk::Host& host);

// Builds the librdkafka configuration: plugin defaults, then the user's properties, then
// bootstrap.servers (`bootstrap` overrides it, used for the embedded cluster). A property
// librdkafka refuses throws sdk::ConfigError(key, librdkafka's own message).
ConfPtr build_conf(const ProducerSettings& settings, const std::string& client_id,
                   const std::string& bootstrap);

}  // namespace spillway::plugins::kafka

#endif
