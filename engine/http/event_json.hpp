// The HTTP ingress's event format: JSON (one object, or an array) or NDJSON text into pipeline
// Events, and publish outcomes back into JSON. Every check runs before anything is published, so
// a malformed batch is refused whole.
#pragma once

#include "engine/pipeline/event.hpp"
#include "engine/plugin/store_admin.hpp"

#include <spillway/detail/base64.hpp>

#include <cstddef>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace spillway::http {

// A request the caller must fix; what() names the place and the field, e.g.
// "line 3: field 'key': expected a string or null".
class BadRequest : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// How deep a body's JSON may nest by default (engine.http_max_depth), counted from its outer value
// (an event object is level 1, its payload's own brackets level 2 and on; a batch array adds one).
// Deeper bodies are refused before they are parsed: a tree of millions of levels costs hundreds of
// bytes a level.
inline constexpr size_t kMaxJsonDepth = 64;

// Throws BadRequest (prefixed by `where`) naming the byte where `text` nests deeper than
// `max_depth`, before any parser builds a tree of it.
void check_json_depth(std::string_view text, const std::string& where, size_t max_depth);

enum class BodyFormat {
    Json,    // one event object, or an array of them
    NdJson,  // one event object per line; blank lines are skipped
};

// application/x-ndjson, application/ndjson, application/jsonl and application/x-jsonlines are
// NDJSON; anything else is read as JSON.
BodyFormat body_format(std::string_view content_type);

// Parses every event of `body`. Events naming no topic get `default_topic`; if that is empty too,
// the topic field is required. A leading UTF-8 byte order mark is skipped. Each payload is the
// client's text (whitespace outside strings dropped), never a re-serialised tree. Throws
// BadRequest, also for nesting deeper than `max_depth` and for numbers a double cannot hold.
std::vector<pipeline::Event> parse_events(std::string_view body, BodyFormat format, const std::string& default_topic,
                                          size_t max_depth = kMaxJsonDepth);

// One event from the JSON text of one object (an NDJSON line); messages carry no location prefix.
pipeline::Event parse_event(std::string_view text, const std::string& default_topic);

// {"event_id":..., "path":"direct"|"outbox"|"refused", "reason":..., "message":...} (reason and
// message only when there is one).
std::string outcome_json(const pipeline::Outcome& outcome);

// A dead letter as one JSON object: a JSON payload inline, a binary one in base64 with
// "payload_encoding":"base64" (the same spelling the ingress accepts, so it can be re-posted).
std::string dead_letter_json(const plugin::DeadLetter& d);

// Strict base64 (RFC 4648 alphabet, padded); decode returns false on any other input. The SDK's
// codec, the one the outbox stores use for binary payloads too.
using spillway::detail::base64_decode;
using spillway::detail::base64_encode;

}  // namespace spillway::http
