// One event as a CloudEvent 1.0, and the two content modes of the Kafka protocol binding
// (https://github.com/cloudevents/spec, cloudevents/bindings/kafka-protocol-binding.md).
#ifndef SPILLWAY_PLUGINS_CLOUDEVENTS_CLOUD_EVENT_HPP
#define SPILLWAY_PLUGINS_CLOUDEVENTS_CLOUD_EVENT_HPP

#include <spillway/plugin.h>

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace spillway::plugins::cloudevents {

inline constexpr const char* kSpecVersion = "1.0";
inline constexpr const char* kStructuredContentType = "application/cloudevents+json";

// The context attributes the transform writes.
struct Attributes {
    std::string id;
    std::string source;
    std::string type;
    std::optional<std::string> time;             // when the engine accepted the event
    std::optional<std::string> datacontenttype;  // only for an event with data (a payload)
    std::optional<std::string> partitionkey;     // the partitioning extension: the event's key
};

// Binary content mode: each attribute a `ce_<name>` header, datacontenttype as `content-type`.
// Attributes the event does not have are absent from the list.
std::vector<std::pair<std::string, std::string>> binary_headers(const Attributes& attributes);
// Every header binary_headers can write, so that stale ones the event brought can be removed.
const std::vector<std::string>& binary_header_names();

// Structured content mode, JSON event format: the envelope with the payload as `data` (JSON
// content types: the payload's own JSON text, byte for byte), as a JSON string (other text) or
// as `data_base64` (a binary payload). Nullopt, with `why`, for a payload that is not what its
// content type says (not JSON under a JSON type).
std::optional<std::string> structured_envelope(const Attributes& attributes, const sw_event& event, std::string& why);

// application/json, text/json and any `+json` type, parameters and case aside.
bool is_json_media_type(std::string_view media_type);

}  // namespace spillway::plugins::cloudevents

#endif
