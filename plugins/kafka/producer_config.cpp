#include "producer_config.hpp"

#include <algorithm>
#include <array>
#include <cctype>

namespace spillway::plugins::kafka {

namespace {

bool own_key(const std::string& key) {
    for (const auto& o : kOptions.options())
        if (key == o.name()) return true;
    return false;
}

std::string lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
    return s;
}

void set(rd_kafka_conf_t* conf, const std::string& key, const std::string& value) {
    std::array<char, 512> errstr{};
    if (rd_kafka_conf_set(conf, key.c_str(), value.c_str(), errstr.data(), errstr.size()) != RD_KAFKA_CONF_OK)
        throw sdk::ConfigError(key, errstr.data());
}

// The sink reports OK only for what every in-sync replica has (acks=all) and relies on the
// idempotent producer to keep per-partition order across its internal retries: refuse to weaken.
void check_guarantees(const std::string& key, const std::string& value) {
    const std::string v = lower(value);
    if ((key == "enable.idempotence") && v != "true")
        throw sdk::ConfigError(key, "the kafka sink requires enable.idempotence=true (ordered, de-duplicated "
                                    "retries inside librdkafka); remove the key");
    if ((key == "acks" || key == "request.required.acks" || key == "topic.acks" ||
         key == "topic.request.required.acks") &&
        v != "all" && v != "-1")
        throw sdk::ConfigError(key, "the kafka sink requires acks=all: an event is reported delivered only once "
                                    "all in-sync replicas have it; remove the key");
    if (key == "transactional.id")
        throw sdk::ConfigError(key, "the kafka sink does not use Kafka transactions (each event is confirmed by its "
                                    "own delivery report); remove the key");
}

}  // namespace

ProducerSettings read_settings(const sdk::Host& host) {
    ProducerSettings s = kOptions.read(host);
    if (s.bootstrap_servers.empty())
        throw sdk::ConfigError(kBootstrapServers, "must list the Kafka brokers (host:port,...) or be \"embedded\"");
    s.embedded = s.bootstrap_servers == kEmbedded;
    s.accepted_timestamps = s.timestamp == kTimestampAccepted;  // the option's choices checked the value
    if (s.embedded && host.environment() == "production")
        throw sdk::ConfigError(kBootstrapServers,
                               "\"embedded\" starts an in-process mock Kafka cluster and is refused in the "
                               "production environment; set the real brokers");

    for (auto& [key, value] : host.entries()) {
        if (own_key(key)) continue;
        check_guarantees(key, value);
        s.properties.emplace_back(key, value);
    }
    return s;
}

ConfPtr build_conf(const ProducerSettings& settings, const std::string& client_id, const std::string& bootstrap) {
    ConfPtr conf(rd_kafka_conf_new());
    // Plugin defaults first, so the user's table overrides them.
    set(conf.get(), "enable.idempotence", "true");
    set(conf.get(), "acks", "all");
    set(conf.get(), "linger.ms", kDefaultLingerMs);
    set(conf.get(), "message.timeout.ms", kDefaultMessageTimeoutMs);
    set(conf.get(), "statistics.interval.ms", kDefaultStatsIntervalMs);
    set(conf.get(), "client.id", client_id);
    for (const auto& [key, value] : settings.properties) set(conf.get(), key, value);
    set(conf.get(), kBootstrapServers, bootstrap.empty() ? settings.bootstrap_servers : bootstrap);
    return conf;
}

}  // namespace spillway::plugins::kafka
