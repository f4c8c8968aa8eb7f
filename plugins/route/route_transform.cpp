// route: sets an event's topic, key and headers from templates over its fields, e.g.
//   topic = "outbox.event.${header.aggregatetype}"   key = "${payload.order.id}"
// An event that lacks a field a template names is rejected (refused or dead-lettered with the
// reason), never sent with a half-rendered name: a record on a wrong topic is worse than none.
#include "template.hpp"

#include <spillway/sdk.hpp>

#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace spillway::plugins::route {

namespace {

const sw_option kOptions[] = {
    {"topic", SW_OPT_STRING, 0, nullptr,
     "template of the record's topic, e.g. `\"outbox.event.${header.aggregatetype}\"`: literal text with `${field}` "
     "placeholders (event_id, event_type, correlation_id, topic, key, pipeline, header.<name>, payload.<a.b.c>; `$$` "
     "is a `$`); unset keeps the topic"},
    {"key", SW_OPT_STRING, 0, nullptr, "template of the record's key (same syntax as `topic`); unset keeps the key"},
    {"headers", SW_OPT_STRING_LIST, 0, nullptr,
     "headers to set, each `\"name=template\"` (same syntax as `topic`); a header of that name already on the event "
     "is replaced"},
};

// A parsed template and how a reject reason names it: `topic "outbox.${header.x}"`.
struct Named {
    std::string label;
    Template tmpl;
};

// Parses `text` of option `option`; a malformed template blames the option, with the column in
// `shown` (the option's whole value, which for a header is "name=template") where it went wrong.
Template parse_option(const char* option, const std::string& shown, size_t offset, std::string_view text) {
    try {
        return Template::parse(text);
    } catch (const TemplateError& e) {
        throw sdk::ConfigError(option, std::string(option) + " \"" + shown + "\": " + e.what() + " at column " +
                                           std::to_string(offset + e.column()));
    }
}

}  // namespace

class RouteTransform final : public sdk::Transform {
public:
    explicit RouteTransform(sdk::Host host) : Transform(host) {
        if (auto text = host.opt_string("topic")) topic_ = Named{"topic \"" + *text + "\"", parse_option("topic", *text, 0, *text)};
        if (auto text = host.opt_string("key")) key_ = Named{"key \"" + *text + "\"", parse_option("key", *text, 0, *text)};
        for (const std::string& item : host.opt_list("headers").value_or(std::vector<std::string>{})) {
            const size_t eq = item.find('=');
            if (eq == std::string::npos || eq == 0)
                throw sdk::ConfigError("headers", "headers \"" + item + "\": expected \"name=template\"");
            headers_.push_back(
                {item.substr(0, eq), Named{"headers \"" + item + "\"", parse_option("headers", item, eq + 1, std::string_view(item).substr(eq + 1))}});
        }
        if (!topic_ && !key_ && headers_.empty())
            throw sdk::ConfigError("topic", "route needs at least one of topic, key or headers");
    }

    void apply(sdk::Edit& edit) override {
        EventView event(edit.in());
        std::string why;
        std::optional<std::string> topic, key;
        if (topic_ && !(topic = render(*topic_, event, why))) return edit.reject(why);
        if (topic && topic->empty()) return edit.reject("route: " + topic_->label + ": renders an empty topic");
        if (key_ && !(key = render(*key_, event, why))) return edit.reject(why);
        std::vector<std::string> values;
        for (const auto& [name, named] : headers_) {
            auto value = render(named, event, why);
            if (!value) return edit.reject(why);
            values.push_back(std::move(*value));
        }
        // Nothing is set until every template rendered: a rejected event is left as it came.
        if (topic) edit.set_topic(*topic);
        if (key) edit.set_key(*key);
        for (size_t i = 0; i < headers_.size(); ++i) edit.set_header(headers_[i].first, values[i]);
    }

private:
    static std::optional<std::string> render(const Named& named, EventView& event, std::string& why) {
        auto out = named.tmpl.render(event);
        if (auto* missing = std::get_if<Missing>(&out)) {
            why = "route: " + named.label + ": " + missing->reason;
            return std::nullopt;
        }
        return std::move(std::get<std::string>(out));
    }

    std::optional<Named> topic_;
    std::optional<Named> key_;
    std::vector<std::pair<std::string, Named>> headers_;  // header name, its template
};

}  // namespace spillway::plugins::route

SW_EXPORT_TRANSFORM(spillway::plugins::route::RouteTransform, "route", "1.0.0",
                    "Sets the topic, key and headers of each event from templates over its fields",
                    spillway::plugins::route::kOptions, SW_PLUGIN_THREAD_SAFE)
