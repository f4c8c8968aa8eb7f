// route's templates: literal text with ${field} placeholders, parsed once when the transform is
// created and rendered for every event.
//
//   ${event_id} ${event_type} ${correlation_id} ${topic} ${key} ${pipeline}
//   ${header.<name>}      the first header of that name
//   ${payload.<a.b.c>}    a member of a JSON object payload (strings unquoted, other values as JSON)
//   $$                    a literal '$' (a '$' before anything but '{' or '$' is literal too)
#ifndef SPILLWAY_PLUGINS_ROUTE_TEMPLATE_HPP
#define SPILLWAY_PLUGINS_ROUTE_TEMPLATE_HPP

#include <spillway/plugin.h>

#include <nlohmann/json.hpp>

#include <cstddef>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace spillway::plugins::route {

// Where a placeholder's value comes from.
struct Field {
    enum class Source { EventId, EventType, CorrelationId, Topic, Key, Pipeline, Header, Payload };
    Source source;
    std::string name;               // the header's name, or the payload path as written
    std::vector<std::string> path;  // Payload: the path's members, outermost first
};

// A template that cannot be parsed: what is wrong, and where (1-based column in the template).
class TemplateError : public std::runtime_error {
public:
    TemplateError(size_t column, const std::string& what) : std::runtime_error(what), column_(column) {}
    size_t column() const noexcept { return column_; }

private:
    size_t column_;
};

// One event as templates see it. The payload is parsed at most once per event, and only when a
// template asks for it: most routes never look inside the payload.
class EventView {
public:
    explicit EventView(const sw_event& event) noexcept : event_(event) {}
    const sw_event& event() const noexcept { return event_; }
    // The payload as JSON, or why it is not: absent, flagged binary, or not JSON text.
    const nlohmann::json* payload_json(std::string& why_not);

private:
    const sw_event& event_;
    bool parsed_ = false;
    nlohmann::json payload_;
    std::string why_not_;
};

// Why a template could not be rendered for an event: the field the event lacks, in words.
struct Missing {
    std::string reason;
};

class Template {
public:
    // Throws TemplateError (unclosed "${", unknown or empty field).
    static Template parse(std::string_view text);

    const std::string& text() const noexcept { return text_; }
    bool uses_payload() const noexcept;
    // The rendered text, or what the event lacks.
    std::variant<std::string, Missing> render(EventView& event) const;

private:
    using Piece = std::variant<std::string, Field>;  // literal text, or a placeholder
    std::string text_;
    std::vector<Piece> pieces_;
};

}  // namespace spillway::plugins::route

#endif
