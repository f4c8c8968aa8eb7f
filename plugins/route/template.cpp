#include "template.hpp"

#include <spillway/detail/json_depth.hpp>
#include <spillway/sdk.hpp>

#include <utility>

namespace spillway::plugins::route {

namespace {

// Deeper payloads are refused before parsing: nlohmann's tree and its destructor recurse per level.
constexpr size_t kMaxPayloadDepth = 256;

constexpr const char* kKnownFields =
    "event_id, event_type, correlation_id, topic, key, pipeline, header.<name> or payload.<path>";

// `spec` is what stands between "${" and "}"; `column` is where it starts in the template.
Field parse_field(std::string_view spec, size_t column) {
    using S = Field::Source;
    if (spec.empty()) throw TemplateError(column, "empty field \"${}\" (expected " + std::string(kKnownFields) + ")");
    static constexpr std::pair<std::string_view, S> kPlain[] = {
        {"event_id", S::EventId}, {"event_type", S::EventType}, {"correlation_id", S::CorrelationId},
        {"topic", S::Topic},      {"key", S::Key},              {"pipeline", S::Pipeline}};
    for (const auto& [name, source] : kPlain)
        if (spec == name) return Field{source, std::string(name), {}};

    if (spec.starts_with("header.")) {
        std::string name(spec.substr(7));
        if (name.empty()) throw TemplateError(column, "\"${header.}\" names no header (write ${header.<name>})");
        return Field{S::Header, std::move(name), {}};
    }
    if (spec.starts_with("payload.")) {
        const std::string_view path = spec.substr(8);
        Field f{S::Payload, std::string(path), {}};
        size_t from = 0;
        for (;;) {
            const size_t dot = path.find('.', from);
            const std::string_view member = path.substr(from, dot == std::string_view::npos ? path.npos : dot - from);
            if (member.empty())
                throw TemplateError(column + 8 + from, "payload path '" + std::string(path) + "' has an empty member");
            f.path.emplace_back(member);
            if (dot == std::string_view::npos) break;
            from = dot + 1;
        }
        return f;
    }
    throw TemplateError(column, "unknown field '" + std::string(spec) + "' (expected " + kKnownFields + ")");
}

// A field the event carries as a span: its text, or nullopt when the event lacks it.
std::optional<std::string_view> span_of(const sw_event& e, Field::Source source) {
    const sw_bytes* b = nullptr;
    switch (source) {
        case Field::Source::EventId: b = &e.event_id; break;
        case Field::Source::EventType: b = &e.event_type; break;
        case Field::Source::CorrelationId: b = &e.correlation_id; break;
        case Field::Source::Topic: b = &e.topic; break;
        case Field::Source::Key: b = &e.key; break;
        case Field::Source::Pipeline: b = &e.pipeline; break;
        default: return std::nullopt;
    }
    if (!sdk::present(*b)) return std::nullopt;
    return sdk::view(*b);
}

std::variant<std::string, Missing> payload_member(EventView& event, const Field& f) {
    std::string why_not;
    const nlohmann::json* node = event.payload_json(why_not);
    if (!node) return Missing{why_not};
    for (const std::string& member : f.path) {
        if (!node->is_object()) return Missing{"the payload has no '" + f.name + "'"};
        const auto it = node->find(member);
        if (it == node->end()) return Missing{"the payload has no '" + f.name + "'"};
        node = &*it;
    }
    if (node->is_null()) return Missing{"the payload's '" + f.name + "' is null"};
    if (node->is_string()) return node->get<std::string>();
    return node->dump();
}

}  // namespace

const nlohmann::json* EventView::payload_json(std::string& why_not) {
    if (!parsed_) {
        parsed_ = true;
        const sw_bytes& p = event_.payload;
        if (!sdk::present(p)) {
            why_not_ = "the event has no payload";
        } else if (event_.flags & SW_EVENT_PAYLOAD_BINARY) {
            why_not_ = "the event's payload is binary, not JSON";
        } else if (detail::first_bracket_deeper_than(sdk::view(p), kMaxPayloadDepth)) {
            why_not_ = "the event's payload nests deeper than " + std::to_string(kMaxPayloadDepth) + " levels";
        } else {
            payload_ = nlohmann::json::parse(sdk::view(p), nullptr, /*allow_exceptions=*/false);
            if (payload_.is_discarded()) why_not_ = "the event's payload is not JSON";
        }
    }
    why_not = why_not_;
    return why_not_.empty() ? &payload_ : nullptr;
}

Template Template::parse(std::string_view text) {
    Template t;
    t.text_ = std::string(text);
    std::string literal;
    for (size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        const char next = i + 1 < text.size() ? text[i + 1] : '\0';
        if (c == '$' && next == '$') {
            literal += '$';
            ++i;
        } else if (c == '$' && next == '{') {
            const size_t close = text.find('}', i + 2);
            if (close == std::string_view::npos) throw TemplateError(i + 1, "unclosed \"${\"");
            if (!literal.empty()) t.pieces_.emplace_back(std::exchange(literal, {}));
            t.pieces_.emplace_back(parse_field(text.substr(i + 2, close - i - 2), i + 3));
            i = close;
        } else {
            literal += c;
        }
    }
    if (!literal.empty()) t.pieces_.emplace_back(std::move(literal));
    return t;
}

bool Template::uses_payload() const noexcept {
    for (const Piece& p : pieces_)
        if (const Field* f = std::get_if<Field>(&p); f && f->source == Field::Source::Payload) return true;
    return false;
}

std::variant<std::string, Missing> Template::render(EventView& event) const {
    std::string out;
    for (const Piece& piece : pieces_) {
        if (const std::string* literal = std::get_if<std::string>(&piece)) {
            out += *literal;
            continue;
        }
        const Field& f = std::get<Field>(piece);
        switch (f.source) {
            case Field::Source::Header: {
                const auto value = sdk::header(event.event(), f.name);
                if (!value) return Missing{"the event has no header '" + f.name + "'"};
                out += *value;
                break;
            }
            case Field::Source::Payload: {
                auto value = payload_member(event, f);
                if (auto* missing = std::get_if<Missing>(&value)) return std::move(*missing);
                out += std::get<std::string>(value);
                break;
            }
            default: {
                const auto value = span_of(event.event(), f.source);
                if (!value) return Missing{"the event has no " + f.name};
                out += *value;
            }
        }
    }
    return out;
}

}  // namespace spillway::plugins::route
