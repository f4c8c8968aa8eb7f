// The event envelope as the pipeline core holds it, what a publish comes back with, and the
// conversion to the ABI's borrowed sw_event views.
#pragma once

#include <spillway/plugin.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace spillway::pipeline {

struct Event {
    std::string event_id;              // empty: generated (UUIDv7) at accept time, never changed after
    std::string topic;                 // empty: the pipeline's default topic
    std::optional<std::string> key;    // absent: no key, no ordering
    std::string payload;
    bool binary = false;               // payload is opaque bytes, not JSON text
    std::vector<std::pair<std::string, std::string>> headers;
    std::string event_type;
    std::string correlation_id;
    // W3C trace context (trace_context.hpp), empty when the caller sent none: record headers of
    // these names in Kafka, written by the engine (the user headers may not carry them).
    std::string traceparent;
    std::string tracestate;
    int64_t created_at_us = 0;         // set at accept time
};

// Header names the engine writes itself, or later features will (CloudEvents `ce_*`, trace
// context): an event may not carry them as user headers, or a consumer reading the last value of
// a name would read the client's forgery. Compared without regard to case; `ce_` is a prefix.
bool reserved_header(std::string_view name);
inline constexpr const char* kReservedHeaders = "event_id, event_type, correlation_id, traceparent, tracestate, ce_*";
// The first user header of `e` with a reserved name, or nullptr.
const std::string* first_reserved_header(const Event& e);

// Which way an event went.
enum class Path { Direct, Outbox, Refused };

enum class Reason {
    None,
    DirectFailed,  // Kafka could not confirm in time: spilled to the outbox
    StickyKey,     // its key has events in the outbox: sent after them
    StickyDb,      // coordination = "shards": the store has pending rows of its key (any engine's)
    CircuitOpen,   // Kafka is down: straight to the outbox
    Relayed,       // outbox-first: stored for the relay
    Rejected,      // Kafka refused it permanently (too large, unknown topic, not authorised)
    Unavailable,   // neither Kafka nor the store could take it
    BacklogFull,   // the outbox is at max_pending
    Invalid,       // the event itself is malformed
    Stopping       // the pipeline is shutting down
};

const char* path_name(Path p);
const char* reason_name(Reason r);

struct Outcome {
    std::string event_id;
    Path path = Path::Refused;
    Reason reason = Reason::None;
    std::string message;  // why, for the outbox and refused paths
    bool accepted() const { return path != Path::Refused; }
};

// A new UUIDv7 (time-ordered, RFC 9562) as 36 lowercase characters. Ids made in one process
// sort in the order they were made, across threads.
std::string uuid_v7();
// The same with the Unix time in milliseconds read by the caller (once for a whole batch).
std::string uuid_v7(uint64_t unix_ms);

// sw_event views over Events; the Events must outlive it and stay unchanged.
class EventViews {
public:
    EventViews(const std::vector<Event>& events, const std::string& pipeline);
    // Views of a subset, by index into `events`.
    EventViews(const std::vector<Event>& events, const std::vector<size_t>& pick, const std::string& pipeline);
    const sw_event* data() const { return views_.data(); }
    size_t size() const { return views_.size(); }

private:
    void add(const Event& e, const std::string& pipeline);
    std::vector<sw_event> views_;
    std::vector<std::vector<sw_header>> headers_;
};

}  // namespace spillway::pipeline
