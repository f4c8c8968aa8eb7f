// The transform conformance suite for each in-tree transform, with a working configuration and
// events that configuration accepts.
#include <spillway/testkit/transform_suite.hpp>

#include <string>
#include <vector>

namespace {

using spillway::testkit::Config;
using spillway::testkit::TransformFactory;
using spillway::testkit::transform_suite::EventSpec;

// The suite's default events as outbox rows of the aggregate `Order` arrive: its type in a header.
std::vector<EventSpec> outbox_rows() {
    auto events = spillway::testkit::transform_suite::default_events();
    for (EventSpec& e : events) e.headers.emplace_back("aggregatetype", "Order");
    return events;
}

}  // namespace

SPILLWAY_TRANSFORM_CONFORMANCE(Route, (TransformFactory{
    .name = "route",
    .plugin = {},
    .config = [] {
        return Config{{"topic", "\"events.${event_type}\""}, {"key", "\"${payload.n}\""}}
            .set_list("headers", {"x-correlation=${correlation_id}"});
    },
    .events = nullptr}));

SPILLWAY_TRANSFORM_CONFORMANCE(CloudEventsBinary, (TransformFactory{
    .name = "cloudevents",
    .plugin = {},
    .config = [] { return Config{{"source", "\"/conformance\""}}; },
    .events = nullptr}));

SPILLWAY_TRANSFORM_CONFORMANCE(CloudEventsStructured, (TransformFactory{
    .name = "cloudevents",
    .plugin = {},
    .config = [] { return Config{{"source", "\"/conformance\""}, {"mode", "\"structured\""}}; },
    .events = nullptr}));

SPILLWAY_TRANSFORM_CONFORMANCE(Debezium, (TransformFactory{
    .name = "debezium",
    .plugin = {},
    .config = [] { return Config{}; },
    .events = outbox_rows}));

SPILLWAY_TRANSFORM_CONFORMANCE(DebeziumEnvelope, (TransformFactory{
    .name = "debezium",
    .plugin = {},
    .config = [] {
        return Config{{"table.fields.additional.placement", "\"type:envelope:eventType,seq:header\""},
                      {"table.expand.json.payload", "true"}};
    },
    .events = outbox_rows}));
