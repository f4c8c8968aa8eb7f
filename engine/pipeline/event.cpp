#include "engine/pipeline/event.hpp"

#include "engine/pipeline/trace_context.hpp"

#include <atomic>
#include <chrono>
#include <cstring>
#include <random>

namespace spillway::pipeline {

const char* path_name(Path p) {
    switch (p) {
        case Path::Direct: return "direct";
        case Path::Outbox: return "outbox";
        default: return "refused";
    }
}

const char* reason_name(Reason r) {
    switch (r) {
        case Reason::None: return "none";
        case Reason::DirectFailed: return "failure";
        case Reason::StickyKey: return "sticky";
        case Reason::StickyDb: return "sticky-db";
        case Reason::CircuitOpen: return "circuit";
        case Reason::Relayed: return "outbox-first";
        case Reason::Rejected: return "rejected";
        case Reason::Unavailable: return "unavailable";
        case Reason::BacklogFull: return "backlog-full";
        case Reason::Invalid: return "invalid";
        case Reason::Stopping: return "stopping";
    }
    return "unknown";
}

bool reserved_header(std::string_view name) {
    auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; };
    auto equals = [&](std::string_view reserved) {
        if (name.size() != reserved.size()) return false;
        for (size_t i = 0; i < name.size(); ++i)
            if (lower(name[i]) != reserved[i]) return false;
        return true;
    };
    if (name.size() >= 3 && lower(name[0]) == 'c' && lower(name[1]) == 'e' && name[2] == '_') return true;
    return equals("event_id") || equals("event_type") || equals("correlation_id") || equals("traceparent") ||
           equals("tracestate");
}

const std::string* first_reserved_header(const Event& e) {
    for (const auto& [name, value] : e.headers)
        if (reserved_header(name)) return &name;
    return nullptr;
}

std::string uuid_v7() {
    return uuid_v7(static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count()));
}

std::string uuid_v7(uint64_t unix_ms) {
    // 48 bits of Unix milliseconds, then a 12-bit counter within the millisecond, then random
    // bits. The first two live in one atomic word (ms << 12 | counter), advanced by CAS, so ids
    // sort in accept order across all threads of the process without a lock; a counter that runs
    // over carries into the next millisecond. The random bits come from a per-thread generator.
    static std::atomic<uint64_t> last{0};
    thread_local std::mt19937_64 rng{std::random_device{}()};
    uint64_t prev = last.load(std::memory_order_relaxed);
    uint64_t next;
    do {
        // A new millisecond starts its counter at a random point below 1024, leaving room to count up.
        next = unix_ms > (prev >> 12) ? (unix_ms << 12) | (rng() & 0x03ff) : prev + 1;
    } while (!last.compare_exchange_weak(prev, next, std::memory_order_relaxed));
    const uint64_t ms = next >> 12;
    const uint16_t rand_a = static_cast<uint16_t>(next & 0x0fff);
    const uint64_t rand_b = rng();

    uint8_t b[16];
    for (int i = 0; i < 6; ++i) b[i] = static_cast<uint8_t>(ms >> (40 - 8 * i));
    b[6] = static_cast<uint8_t>(0x70 | ((rand_a >> 8) & 0x0f));
    b[7] = static_cast<uint8_t>(rand_a & 0xff);
    for (int i = 0; i < 8; ++i) b[8 + i] = static_cast<uint8_t>(rand_b >> (56 - 8 * i));
    b[8] = static_cast<uint8_t>(0x80 | (b[8] & 0x3f));
    static constexpr char hex[] = "0123456789abcdef";
    char text[36];
    size_t n = 0;
    for (int i = 0; i < 16; ++i) {
        if (i == 4 || i == 6 || i == 8 || i == 10) text[n++] = '-';
        text[n++] = hex[b[i] >> 4];
        text[n++] = hex[b[i] & 0x0f];
    }
    return std::string(text, sizeof text);
}

namespace {
sw_bytes span(const std::string& s) { return sw_bytes{s.data(), s.size()}; }
sw_bytes optional_span(const std::string& s) { return s.empty() ? sw_bytes{nullptr, 0} : span(s); }
}  // namespace

EventViews::EventViews(const std::vector<Event>& events, const std::string& pipeline) {
    views_.reserve(events.size());
    headers_.reserve(events.size());
    for (const auto& e : events) add(e, pipeline);
}

EventViews::EventViews(const std::vector<Event>& events, const std::vector<size_t>& pick, const std::string& pipeline) {
    views_.reserve(pick.size());
    headers_.reserve(pick.size());
    for (size_t i : pick) add(events[i], pipeline);
}

void EventViews::add(const Event& e, const std::string& pipeline) {
    auto& hs = headers_.emplace_back();
    hs.reserve(e.headers.size() + 2);
    for (const auto& [k, v] : e.headers) hs.push_back(sw_header{span(k), span(v)});
    // The trace context travels as headers: the stores keep it with the row, the sinks send it.
    const auto trace = [&](std::string_view name, const std::string& value) {
        if (!value.empty()) hs.push_back(sw_header{sw_bytes{name.data(), name.size()}, span(value)});
    };
    trace(kTraceparent, e.traceparent);
    trace(kTracestate, e.tracestate);
    sw_event v;
    std::memset(&v, 0, sizeof v);
    v.struct_size = sizeof v;
    v.flags = e.binary ? SW_EVENT_PAYLOAD_BINARY : 0;
    v.event_id = span(e.event_id);
    v.pipeline = span(pipeline);
    v.topic = span(e.topic);
    v.key = e.key ? span(*e.key) : sw_bytes{nullptr, 0};
    v.payload = span(e.payload);
    v.event_type = optional_span(e.event_type);
    v.correlation_id = optional_span(e.correlation_id);
    v.headers = hs.data();
    v.n_headers = hs.size();
    v.created_at_us = e.created_at_us;
    views_.push_back(v);
}

}  // namespace spillway::pipeline
