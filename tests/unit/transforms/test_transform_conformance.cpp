// The transform conformance suite for each in-tree transform, with a working configuration and
// events that configuration accepts.
#include <spillway/testkit/transform_suite.hpp>

#include <string>
#include <vector>

namespace {

using spillway::testkit::Config;
using spillway::testkit::TransformFactory;
using spillway::testkit::transform_suite::EventSpec;

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
