// Fuzzes the HTTP ingress's body parser (engine/http/event_json: parse_events over JSON and NDJSON,
// json_text's spans, the base64 payloads) and the outcome writer.
//
// The first byte picks how the body is read (its low bits, so seeds can spell it '0'..'7'):
//   bit 0: NDJSON (else JSON); bit 1: the pipeline has no default topic; bit 2: also parse_event.
// The rest is the body.
//
// Properties, beyond "no crash, no leak, no undefined behaviour":
// - parse_events throws nothing but BadRequest (anything else is a 500), and never the "cannot
//   happen" refusal of a payload it could not locate in text the parser took;
// - it returns one event per object of the body, in order, and each JSON payload is the text of
//   that object's "payload" member: it parses to the same value as the parser's tree has;
// - every event has a topic, or the pipeline a default one;
// - base64: decode(encode(x)) == x, and encode(decode(t)) decodes to decode(t);
// - outcome_json writes JSON that parses, with the id and message back when they are UTF-8.
#include "engine/http/event_json.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

namespace {

using json = nlohmann::json;
using spillway::http::BadRequest;
using spillway::http::BodyFormat;

std::string g_input;  // for failure messages

[[noreturn]] void fail(const char* what, const std::string& detail) {
    std::fprintf(stderr, "fuzz_event_json: %s\n%s\n--- input (%zu bytes) ---\n%s\n", what, detail.c_str(),
                 g_input.size(), g_input.c_str());
    std::abort();
}

std::string_view without_bom(std::string_view text) {
    if (text.substr(0, 3) == "\xEF\xBB\xBF") text.remove_prefix(3);
    return text;
}

// The event objects of a body the ingress accepted, as nlohmann reads them independently.
std::vector<json> event_objects(std::string_view body, BodyFormat format) {
    std::vector<json> out;
    body = without_bom(body);
    if (format == BodyFormat::Json) {
        json j = json::parse(body.begin(), body.end());
        if (j.is_array()) {
            for (auto& e : j) out.push_back(std::move(e));
        } else {
            out.push_back(std::move(j));
        }
        return out;
    }
    size_t start = 0;
    while (start < body.size()) {
        size_t end = body.find('\n', start);
        if (end == std::string_view::npos) end = body.size();
        std::string_view line = body.substr(start, end - start);
        start = end + 1;
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        if (line.find_first_not_of(" \t") == std::string_view::npos) continue;
        out.push_back(json::parse(line.begin(), line.end()));
    }
    return out;
}

bool is_utf8(const std::string& s) {
    try {
        (void)json(s).dump();
        return true;
    } catch (const json::type_error&) {
        return false;
    }
}

void check_events(std::string_view body, BodyFormat format, const std::string& default_topic,
                  const std::vector<spillway::pipeline::Event>& events) {
    const std::vector<json> objects = event_objects(body, format);
    if (objects.size() != events.size())
        fail("event count differs from the body's objects",
             std::to_string(events.size()) + " events, " + std::to_string(objects.size()) + " objects");
    for (size_t i = 0; i < events.size(); ++i) {
        const auto& e = events[i];
        if (e.topic.empty() && default_topic.empty()) fail("an event with no topic was accepted", "event " + std::to_string(i));
        if (e.binary) {
            std::string again;
            if (!spillway::http::base64_decode(spillway::http::base64_encode(e.payload), again) || again != e.payload)
                fail("a binary payload does not survive base64", "event " + std::to_string(i));
            continue;
        }
        json payload;
        try {
            payload = json::parse(e.payload);
        } catch (const json::exception& x) {
            fail("a JSON payload is not JSON text", "event " + std::to_string(i) + ": " + x.what() + "\npayload: " + e.payload);
        }
        if (payload != objects[i].at("payload"))
            fail("a payload's text is not the value the parser read",
                 "event " + std::to_string(i) + "\npayload text: " + e.payload + "\nparsed value: " +
                     objects[i].at("payload").dump(-1, ' ', false, json::error_handler_t::replace));
    }
}

void check_base64(std::string_view bytes) {
    std::string decoded;
    if (!spillway::http::base64_decode(spillway::http::base64_encode(bytes), decoded) || decoded != bytes)
        fail("base64_decode(base64_encode(x)) != x", "");
    if (spillway::http::base64_decode(bytes, decoded)) {
        std::string again;
        if (!spillway::http::base64_decode(spillway::http::base64_encode(decoded), again) || again != decoded)
            fail("base64: text that decodes does not re-encode to the same bytes", "");
    }
}

void check_outcome(const std::string& event_id, const std::string& message) {
    spillway::pipeline::Outcome o;
    o.event_id = event_id;
    o.path = spillway::pipeline::Path::Refused;
    o.reason = spillway::pipeline::Reason::Invalid;
    o.message = message;
    const std::string out = spillway::http::outcome_json(o);
    json j;
    try {
        j = json::parse(out);
    } catch (const json::exception& x) {
        fail("outcome_json wrote text that is not JSON", std::string(x.what()) + "\n" + out);
    }
    if (is_utf8(event_id) && j.at("event_id") != event_id) fail("outcome_json changed the event id", out);
    if (!message.empty() && is_utf8(message) && j.at("message") != message) fail("outcome_json changed the message", out);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) return -1;  // not worth keeping in the corpus
    g_input.assign(reinterpret_cast<const char*>(data), size);
    const uint8_t flags = data[0];
    const std::string_view body(reinterpret_cast<const char*>(data) + 1, size - 1);
    const BodyFormat format = (flags & 1) ? BodyFormat::NdJson : BodyFormat::Json;
    const std::string default_topic = (flags & 2) ? "" : "orders.events";

    std::string first_id, refusal;
    try {
        const auto events = spillway::http::parse_events(body, format, default_topic);
        check_events(body, format, default_topic, events);
        first_id = events.front().event_id;
    } catch (const BadRequest& e) {
        refusal = e.what();
        // The message's own ending, not a field name the body chose.
        const std::string_view lost = "could not be located in the event's text";
        if (refusal.size() >= lost.size() && refusal.compare(refusal.size() - lost.size(), lost.size(), lost) == 0)
            fail("a payload the parser took was not found in the text", refusal);
    }
    if (flags & 4) {
        try {
            (void)spillway::http::parse_event(body, default_topic);
        } catch (const BadRequest&) {
        }
    }
    (void)spillway::http::body_format(body.substr(0, 64));
    check_base64(body);
    check_outcome(first_id.empty() ? std::string(body.substr(0, 40)) : first_id, refusal);
    return 0;
}
