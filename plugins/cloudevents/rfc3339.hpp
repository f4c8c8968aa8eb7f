// RFC 3339 timestamps for the CloudEvents `time` attribute.
#ifndef SPILLWAY_PLUGINS_CLOUDEVENTS_RFC3339_HPP
#define SPILLWAY_PLUGINS_CLOUDEVENTS_RFC3339_HPP

#include <cstdint>
#include <optional>
#include <string>

namespace spillway::plugins::cloudevents {

// `unix_us` (microseconds since the epoch) in UTC, always with six fractional digits, e.g.
// 2026-12-06T07:30:00.123456Z: a fixed width keeps the text ordered as the times are. Nullopt for
// an instant outside the years 0000-9999, which RFC 3339 cannot write.
std::optional<std::string> rfc3339_utc(int64_t unix_us);

}  // namespace spillway::plugins::cloudevents

#endif
