// The kafka sink passes the sink conformance suite, delivery checked by reading the mock cluster
// back with an independent consumer.
#include <spillway/test_support/mock_kafka.hpp>
#include <spillway/testkit/sink_suite.hpp>

#include <chrono>

namespace {

using spillway::test_support::MockKafka;
using spillway::testkit::Config;

// One cluster for the whole binary: every test writes to a topic of its own.
MockKafka& cluster() {
    static MockKafka kafka(3);
    return kafka;
}

// A second cluster for the failure path: unreachable() takes every broker down, restore brings
// them back.
MockKafka& outage() {
    static MockKafka kafka(1);
    return kafka;
}

std::vector<std::string> delivered(const Config&, const std::string& topic, size_t expected) {
    std::vector<std::string> ids;
    for (const auto& r : cluster().consume_all(topic, expected, std::chrono::seconds(60)))
        if (auto id = r.header("event_id")) ids.push_back(*id);
    return ids;
}

}  // namespace

SPILLWAY_SINK_CONFORMANCE(Kafka, (spillway::testkit::SinkFactory{
                                     .name = "kafka",
                                     .plugin = "",
                                     .config = [] {
                                         return Config{{"bootstrap.servers", cluster().bootstraps()},
                                                       {"reconnect.backoff.ms", "10"},
                                                       {"reconnect.backoff.max.ms", "200"}};
                                     },
                                     .delivered = delivered,
                                     .unreachable = [] {
                                         outage().all_down();
                                         return Config{{"bootstrap.servers", outage().bootstraps()},
                                                       {"reconnect.backoff.ms", "10"},
                                                       {"reconnect.backoff.max.ms", "200"}};
                                     },
                                     .restore = [](const Config&) { outage().all_up(); }}));
