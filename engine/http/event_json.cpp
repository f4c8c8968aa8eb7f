#include "engine/http/event_json.hpp"

#include "engine/http/json_text.hpp"
#include "engine/pipeline/trace_context.hpp"
#include "engine/signals.hpp"

#include <spillway/detail/json_depth.hpp>

#include <nlohmann/json.hpp>

#include <cctype>

namespace spillway::http {

namespace {

using json = nlohmann::json;

constexpr size_t kMaxIdLength = 200;  // event_id and correlation_id: identifiers, not documents

const char* type_name(const json& v) {
    switch (v.type()) {
        case json::value_t::null: return "null";
        case json::value_t::boolean: return "a boolean";
        case json::value_t::string: return "a string";
        case json::value_t::object: return "an object";
        case json::value_t::array: return "an array";
        default: return "a number";
    }
}

[[noreturn]] void fail(const std::string& where, const std::string& field, const std::string& what) {
    throw BadRequest(where + (field.empty() ? "" : "field '" + field + "': ") + what);
}

std::string string_field(const json& j, const char* field, const std::string& where, bool allow_empty = true) {
    const json& v = j.at(field);
    if (!v.is_string()) fail(where, field, std::string("expected a string, got ") + type_name(v));
    std::string s = v.get<std::string>();
    if (!allow_empty && s.empty()) fail(where, field, "must not be empty");
    return s;
}

std::string identifier_field(const json& j, const char* field, const std::string& where) {
    std::string s = string_field(j, field, where, false);
    if (s.size() > kMaxIdLength) fail(where, field, "longer than " + std::to_string(kMaxIdLength) + " bytes");
    for (unsigned char c : s)
        if (c < 0x20 || c == 0x7f) fail(where, field, "contains a control character");
    return s;
}

// A W3C trace context field, checked by `problem` (trace_context.hpp).
std::string trace_field(const json& j, const char* field, const std::string& where,
                        std::string (*problem)(std::string_view)) {
    std::string s = string_field(j, field, where, false);
    if (std::string p = problem(s); !p.empty()) fail(where, field, p);
    return s;
}

// `j` is the parsed event and `text` the JSON text it came from: the payload goes out as that
// text, compacted (json_text.hpp), rather than serialised again from the tree.
pipeline::Event to_event(const json& j, std::string_view text, const std::string& where, const std::string& default_topic) {
    if (!j.is_object()) fail(where, "", std::string("expected an event object, got ") + type_name(j));
    // One pass over the members, rather than a lookup per field.
    const json *topic = nullptr, *key = nullptr, *payload = nullptr, *encoding = nullptr, *headers = nullptr,
               *event_type = nullptr, *correlation_id = nullptr, *event_id = nullptr, *traceparent = nullptr,
               *tracestate = nullptr;
    const std::pair<const char*, const json**> known[] = {
        {"topic", &topic},           {"key", &key},           {"payload", &payload},
        {"payload_encoding", &encoding}, {"headers", &headers}, {"event_type", &event_type},
        {"correlation_id", &correlation_id}, {"event_id", &event_id}, {"traceparent", &traceparent},
        {"tracestate", &tracestate}};
    for (const auto& [name, value] : j.items()) {
        bool ok = false;
        for (const auto& [k, slot] : known)
            if (name == k) {
                *slot = &value;
                ok = true;
                break;
            }
        if (!ok) fail(where, name, "unknown field (known: topic, key, payload, payload_encoding, headers, event_type, correlation_id, event_id, "
                                 "traceparent, tracestate)");
    }

    pipeline::Event e;
    if (topic) e.topic = string_field(j, "topic", where, false);
    if (e.topic.empty() && default_topic.empty()) fail(where, "topic", "required (the pipeline has no default topic)");

    if (key && !key->is_null()) {
        if (!key->is_string()) fail(where, "key", std::string("expected a string or null, got ") + type_name(*key));
        e.key = key->get<std::string>();
    }

    std::string encoding_name = "json";
    if (encoding) {
        encoding_name = string_field(j, "payload_encoding", where);
        if (encoding_name != "json" && encoding_name != "base64") fail(where, "payload_encoding", "expected \"json\" or \"base64\", got \"" + encoding_name + "\"");
    }
    if (!payload) fail(where, "payload", "required");
    if (encoding_name == "base64") {
        if (!payload->is_string()) fail(where, "payload", std::string("expected a base64 string (payload_encoding is base64), got ") + type_name(*payload));
        if (!base64_decode(payload->get_ref<const std::string&>(), e.payload)) fail(where, "payload", "not valid base64 (RFC 4648, padded)");
        e.binary = true;
    } else if (const auto raw = json_text::member(text, "payload")) {
        e.payload = json_text::compact(*raw);  // the parser already checked it, UTF-8 included
    } else {
        // Cannot happen for text the parser took. Never serialised from the tree instead: that
        // would rewrite the client's numbers and key order, and recurse once per nesting level.
        fail(where, "payload", "could not be located in the event's text");
    }

    if (headers) {
        if (!headers->is_object()) fail(where, "headers", std::string("expected an object of strings, got ") + type_name(*headers));
        for (const auto& [name, value] : headers->items()) {
            if (name.empty()) fail(where, "headers", "a header name is empty");
            if (!value.is_string()) fail(where, "headers." + name, std::string("expected a string, got ") + type_name(value));
            if (pipeline::reserved_header(name))
                fail(where, "headers." + name, std::string("reserved for the engine's own headers (") + pipeline::kReservedHeaders + ")");
            e.headers.emplace_back(name, value.get<std::string>());
        }
    }
    if (event_type) e.event_type = string_field(j, "event_type", where);
    if (correlation_id) e.correlation_id = identifier_field(j, "correlation_id", where);
    if (event_id) e.event_id = identifier_field(j, "event_id", where);
    if (traceparent) e.traceparent = trace_field(j, "traceparent", where, pipeline::traceparent_problem);
    if (tracestate) {
        if (!traceparent) fail(where, "tracestate", "sent without a traceparent");
        e.tracestate = trace_field(j, "tracestate", where, pipeline::tracestate_problem);
    }
    return e;
}

// `s` as a JSON string. Ids are mostly UUIDs, which need no escaping: those are copied as they
// are; anything else goes through the library's serialiser.
void append_string(std::string& out, const std::string& s) {
    bool plain = true;
    for (unsigned char c : s)
        if (c < 0x20 || c == '"' || c == '\\' || c >= 0x7f) {
            plain = false;
            break;
        }
    if (plain) {
        out += '"';
        out += s;
        out += '"';
    } else {
        out += json(s).dump(-1, ' ', false, json::error_handler_t::replace);
    }
}

}  // namespace

void check_json_depth(std::string_view text, const std::string& where, size_t max_depth) {
    if (const auto at = spillway::detail::first_bracket_deeper_than(text, max_depth))
        throw BadRequest(where + "JSON nested deeper than " + std::to_string(max_depth) + " levels at byte " +
                         std::to_string(*at + 1) + " (the limit is " + std::to_string(max_depth) +
                         " levels, the outer value included)");
}

namespace {

constexpr std::string_view kByteOrderMark = "\xEF\xBB\xBF";

// The text after a UTF-8 byte order mark, so that the spans json_text finds are those the parser
// read (nlohmann skips the mark itself).
std::string_view without_bom(std::string_view text) {
    if (text.substr(0, kByteOrderMark.size()) == kByteOrderMark) text.remove_prefix(kByteOrderMark.size());
    return text;
}

json parse_json(std::string_view text, const std::string& where, const char* hint, size_t max_depth = kMaxJsonDepth) {
    check_json_depth(text, where, max_depth);
    json j = json::parse(text.begin(), text.end(), nullptr, false);
    if (j.is_discarded()) {
        // Parse again with exceptions for the parser's own account of where it went wrong.
        try {
            [[maybe_unused]] const json again = json::parse(text.begin(), text.end());
        } catch (const json::parse_error& e) {
            std::string why = e.what();
            if (const size_t p = why.find("parse error"); p != std::string::npos) why = why.substr(p);
            // One NDJSON line is one line of text: the caller's prefix already says which.
            if (text.find('\n') == std::string_view::npos)
                if (const size_t p = why.find("at line 1, column"); p != std::string::npos) why.replace(p, 10, "at");
            throw BadRequest(where + "invalid JSON: " + why + hint);
        } catch (const json::out_of_range& e) {
            // A number such as 1e400 is valid JSON text, but the parser holds numbers as doubles.
            std::string why = e.what();
            if (const size_t p = why.find("] "); p != std::string::npos) why = why.substr(p + 2);
            throw BadRequest(where + why + " (numbers must fit a 64-bit float; send larger ones as strings)");
        } catch (const json::exception& e) {
            throw BadRequest(where + "invalid JSON: " + e.what() + hint);
        }
        throw BadRequest(where + "invalid JSON" + hint);
    }
    return j;
}

}  // namespace

BodyFormat body_format(std::string_view content_type) {
    std::string type(content_type.substr(0, content_type.find(';')));
    while (!type.empty() && type.back() == ' ') type.pop_back();
    for (char& c : type) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    for (const char* nd : {"application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonlines"})
        if (type == nd) return BodyFormat::NdJson;
    return BodyFormat::Json;
}

std::vector<pipeline::Event> parse_events(std::string_view body, BodyFormat format, const std::string& default_topic,
                                          size_t max_depth) {
    ensure_alternate_signal_stack();  // the ingress threads: a crash among them is reported
    body = without_bom(body);
    std::vector<pipeline::Event> events;
    if (format == BodyFormat::Json) {
        const json j = parse_json(body, "body: ", " (for a batch send an array, or NDJSON with Content-Type: application/x-ndjson)",
                                  max_depth);
        if (j.is_array()) {
            const std::vector<std::string_view> texts = json_text::array_elements(body);
            for (size_t i = 0; i < j.size(); ++i)
                events.push_back(to_event(j[i], i < texts.size() ? texts[i] : std::string_view(),
                                          "event " + std::to_string(i + 1) + ": ", default_topic));
        } else {
            events.push_back(to_event(j, body, "", default_topic));
        }
    } else {
        size_t line_no = 0;
        size_t start = 0;
        while (start < body.size()) {
            size_t end = body.find('\n', start);
            if (end == std::string_view::npos) end = body.size();
            std::string_view line = body.substr(start, end - start);
            start = end + 1;
            ++line_no;
            if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
            if (line.find_first_not_of(" \t") == std::string_view::npos) continue;
            const std::string where = "line " + std::to_string(line_no) + ": ";
            events.push_back(to_event(parse_json(line, where, "", max_depth), line, where, default_topic));
        }
    }
    if (events.empty()) throw BadRequest("body: no events");
    return events;
}

pipeline::Event parse_event(std::string_view text, const std::string& default_topic) {
    text = without_bom(text);
    return to_event(parse_json(text, "", ""), text, "", default_topic);
}

std::string outcome_json(const pipeline::Outcome& o) {
    // Written directly: one per event of every answer, and a tree per outcome cost more than the
    // rest of the answer. Only the id and the message can need escaping.
    std::string out = "{\"event_id\":";
    append_string(out, o.event_id);
    out += ",\"path\":\"";
    out += pipeline::path_name(o.path);
    out += '"';
    if (o.reason != pipeline::Reason::None) {
        out += ",\"reason\":\"";
        out += pipeline::reason_name(o.reason);
        out += '"';
    }
    if (!o.message.empty()) {
        out += ",\"message\":";
        append_string(out, o.message);
    }
    out += '}';
    return out;
}

std::string dead_letter_json(const plugin::DeadLetter& d) {
    using json = nlohmann::json;
    json j = {{"row_id", d.row_id}, {"event_id", d.event_id}, {"topic", d.topic},
              {"key", d.key ? json(*d.key) : json()}};
    json payload = d.binary ? json() : json::parse(d.payload, nullptr, false);
    if (d.binary || payload.is_discarded()) {
        j["payload"] = base64_encode(d.payload);
        j["payload_encoding"] = "base64";
    } else {
        j["payload"] = std::move(payload);
    }
    json headers = json::object();
    for (const auto& [k, v] : d.headers) headers[k] = v;
    j["headers"] = std::move(headers);
    if (!d.event_type.empty()) j["event_type"] = d.event_type;
    if (!d.correlation_id.empty()) j["correlation_id"] = d.correlation_id;
    j["created_at_us"] = d.created_at_us;
    j["attempts"] = d.attempts;
    j["last_error"] = d.last_error;
    return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace spillway::http
