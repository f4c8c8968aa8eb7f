// The sink's configuration: the plugin's own keys, and every other key of the component's table
// passed through to librdkafka, which validates it (its error text is what the user sees).
#ifndef SPILLWAY_PLUGINS_KAFKA_PRODUCER_CONFIG_HPP
#define SPILLWAY_PLUGINS_KAFKA_PRODUCER_CONFIG_HPP

#include <spillway/options.hpp>

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
// Topic handles the sink keeps (least recently used dropped first).
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

// The plugin's own keys are kOptions' (defaults and bounds there; the engine fills unset ones).
struct ProducerSettings {
    std::string bootstrap_servers;  // the brokers, or "embedded"
    int embedded_brokers;
    size_t max_topic_handles;
    bool embedded = false;  // bootstrap.servers = "embedded"
    // librdkafka properties as the user wrote them (own keys removed), in table order.
    std::vector<std::pair<std::string, std::string>> properties;
};

// The plugin's own keys: the rows the engine validates them against, and the reading of them.
// The sink takes open options: every key not declared here is passed through to librdkafka.
inline const sdk::Options<ProducerSettings> kOptions{
    sdk::option<&ProducerSettings::bootstrap_servers>(
        kBootstrapServers, kEmbedded,
        "Kafka brokers, \"host:port,host:port\". \"embedded\" starts librdkafka's in-process mock cluster "
        "(quickstart and demos; refused in the production environment) and logs its address for kcat."),
    sdk::option<&ProducerSettings::embedded_brokers>(
        kEmbeddedBrokers, "1", "Number of brokers of the embedded mock cluster; only with bootstrap.servers = \"embedded\"")
        .range(1, 16),
    sdk::option<&ProducerSettings::max_topic_handles>(
        kMaxTopicHandles, "1000",
        "Topic handles the sink keeps, least recently used dropped first: clients may name a topic per event, so "
        "the names seen are theirs to choose. A pipeline publishing to more topics than this still works, with "
        "one metadata round trip each time a dropped topic comes back")
        .range(1, kMaxTopicHandlesLimit),
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
