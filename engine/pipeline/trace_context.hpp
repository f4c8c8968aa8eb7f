// W3C Trace Context (https://www.w3.org/TR/trace-context/): the `traceparent` and `tracestate`
// values a caller's trace travels in. The engine checks them and carries them to Kafka as record
// headers of the same names, on the direct path and through the outbox (stored with the row); it
// starts and exports no spans (OpenTelemetry C++ is not packaged in Debian 12).
#pragma once

#include <string>
#include <string_view>

namespace spillway::pipeline {

inline constexpr std::string_view kTraceparent = "traceparent";
inline constexpr std::string_view kTracestate = "tracestate";

// Why `value` is not a traceparent the engine passes on, or "" when it is one: version 00 exactly
// "00-<32 hex>-<16 hex>-<2 hex>" in lowercase, neither id all zeros; a later version at least that
// (what follows it starts with '-'); version ff never.
std::string traceparent_problem(std::string_view value);

// Why `value` is not a tracestate, or "" when it is one: at most 512 bytes and 32 list members
// "key=value" (OWS around commas; empty members allowed), keys as the spec spells them and each
// once, values of printable ASCII without ',' or '=' and not ending in a space.
std::string tracestate_problem(std::string_view value);

}  // namespace spillway::pipeline
