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
// Which time a record carries as its Kafka timestamp (CreateTime).
inline constexpr const char* kTimestamp = "timestamp";
// Whether a record starts with the engine's envelope headers (event_id, event_type, correlation_id).
inline constexpr const char* kEnvelopeHeaders = "envelope_headers";
inline constexpr const char* kTimestampAccepted = "accepted";  // sw_event.created_at_us, in ms
inline constexpr const char* kTimestampSent = "sent";          // none given: librdkafka's send time

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
    std::string timestamp;  // kTimestampAccepted or kTimestampSent
    bool accepted_timestamps = true;  // timestamp = "accepted"
    bool envelope_headers = true;
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
    sdk::option<&ProducerSettings::timestamp>(
        kTimestamp, kTimestampAccepted,
        "The timestamp a record carries (CreateTime). \"accepted\": the time the engine accepted the event (its "
        "created_at, kept with an outbox row), in milliseconds (Kafka's resolution), so an event relayed after an "
        "outage carries the time it was published, not the relay's. \"sent\": none is given and librdkafka stamps "
        "the time it produces the record. A topic with message.timestamp.type=LogAppendTime replaces either with the "
        "broker's append time. With \"accepted\" a relayed record is as old as the outage: a topic that bounds how "
        "far in the past a timestamp may be (message.timestamp.before.max.ms, or message.timestamp.difference.max.ms "
        "on brokers before 3.6; unlimited by default) refuses an older one with INVALID_TIMESTAMP, which the sink "
        "reports REJECT (a dead letter); and time-based retention deletes a log segment once its newest timestamp is "
        "older than retention.ms, so records older than that may be deleted at the broker's next retention check "
        "(log.retention.check.interval.ms, 5 minutes by default), before anyone reads them, unless newer records "
        "share their segment. Choose \"sent\" when an outage may outlast either bound")
        .one_of({kTimestampAccepted, kTimestampSent}),
    sdk::option<&ProducerSettings::envelope_headers>(
        kEnvelopeHeaders, "true",
        "true: a record's first headers are the event's event_id (consumers dedupe on it), then its event_type and "
        "correlation_id when it has them, then its own headers. false: only its own headers, for consumers that "
        "expect another layout exactly (a transform such as debezium or cloudevents puts the identity they read "
        "into headers of its own: id, ce_id)"),
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
