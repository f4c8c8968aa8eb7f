// debezium: Debezium's outbox event router (io.debezium.transforms.outbox.EventRouter), with its
// option names and defaults, over events read as outbox rows (outbox_row.hpp). What a consumer of
// a Debezium outbox topic expects arrives the same way from Spillway:
//
//   topic   route.topic.replacement over the route.by.field column (outbox.event.<aggregatetype>)
//   key     the table.field.event.key column (aggregateid)
//   header  `id` = the table.field.event.id column (the event id)
//   value   the table.field.event.payload column, or an envelope with additional fields
#include "additional_fields.hpp"
#include "outbox_row.hpp"
#include "topic_router.hpp"

#include <spillway/detail/base64.hpp>
#include <spillway/detail/json_depth.hpp>
#include <spillway/options.hpp>

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <vector>

namespace spillway::plugins::debezium {

namespace {

struct Settings {
    std::string route_by_field;
    std::string route_topic_regex;
    std::string route_topic_replacement;
    bool route_tombstone_on_empty_payload;
    std::string field_event_id;
    std::string field_event_key;
    std::string field_event_payload;
    std::string fields_additional_placement;
    bool expand_json_payload;
};

const sdk::Options<Settings> kOptions{
    sdk::option<&Settings::route_by_field>(
        "route.by.field", "aggregatetype",
        "the outbox column whose value routes the event: `${routedByValue}` in route.topic.replacement; an event "
        "without it is rejected"),
    sdk::option<&Settings::route_topic_regex>(
        "route.topic.regex", "(?<routedByValue>.*)",
        "regular expression matched against the whole route.by.field value (Java syntax as far as ECMAScript "
        "shares it, plus named groups `(?<name>...)`); a value it does not match becomes the topic as it is"),
    sdk::option<&Settings::route_topic_replacement>(
        "route.topic.replacement", "outbox.event.${routedByValue}",
        "the topic, with the regex's groups as `${name}` or `$n` (`\\$` is a dollar); in TOML write `$${...}`, as "
        "the engine expands `${VAR}` from the environment"),
    sdk::option<&Settings::route_tombstone_on_empty_payload>(
        "route.tombstone.on.empty.payload", "false",
        "an event without payload becomes a tombstone (no value) even when envelope fields are placed"),
    sdk::option<&Settings::field_event_id>("table.field.event.id", "id",
                                           "the outbox column of the event id, emitted as the header `id`; the "
                                           "event_id when no header carries the column"),
    sdk::option<&Settings::field_event_key>("table.field.event.key", "aggregateid",
                                            "the outbox column of the record key; the event's key when no header "
                                            "carries the column"),
    sdk::option<&Settings::field_event_payload>("table.field.event.payload", "payload",
                                                "the outbox column of the record value; the event's payload when no "
                                                "header carries the column"),
    sdk::option<&Settings::fields_additional_placement>(
        "table.fields.additional.placement", nullptr,
        "more columns to emit, comma-separated `column:header[:alias]` (a header) or `column:envelope[:alias]` "
        "(the value becomes `{\"payload\": ..., alias: value}`), e.g. `\"type:header:eventType\"`"),
    sdk::option<&Settings::expand_json_payload>(
        "table.expand.json.payload", "false",
        "a payload that is a JSON string holding a JSON object or array is emitted as that JSON; other payloads "
        "are kept as they are"),
};

// Deeper payloads are refused before parsing: nlohmann's parser and tree recurse per level.
constexpr size_t kMaxPayloadDepth = 256;

TopicRouter make_router(const Settings& s) {
    try {
        return TopicRouter(s.route_topic_regex, s.route_topic_replacement);
    } catch (const RouterError& e) {
        throw sdk::ConfigError(e.option(), e.what());
    }
}

// Debezium's expansion: a JSON string whose content is a JSON object or array becomes that JSON.
std::optional<std::string> expanded(std::string_view payload) {
    if (detail::first_bracket_deeper_than(payload, kMaxPayloadDepth)) return std::nullopt;
    const auto outer = nlohmann::json::parse(payload, nullptr, /*allow_exceptions=*/false);
    if (!outer.is_string()) return std::nullopt;
    const std::string& inner = outer.get_ref<const std::string&>();
    if (!inner.starts_with('{') && !inner.starts_with('[')) return std::nullopt;
    if (detail::first_bracket_deeper_than(inner, kMaxPayloadDepth) || !nlohmann::json::accept(inner)) return std::nullopt;
    return inner;
}

// The payload as a JSON value inside the envelope: JSON text as written, bytes as base64 (what
// Kafka Connect's JsonConverter writes for a bytes column), other text as a string, none as null.
std::string payload_member(const std::optional<std::string>& payload, bool binary) {
    if (!payload) return "null";
    if (binary) return nlohmann::json(detail::base64_encode(*payload)).dump();
    if (!detail::first_bracket_deeper_than(*payload, kMaxPayloadDepth) && nlohmann::json::accept(*payload)) return *payload;
    return nlohmann::json(*payload).dump();
}

}  // namespace

class DebeziumTransform final : public sdk::Transform {
public:
    explicit DebeziumTransform(sdk::Host host)
        : Transform(host),
          settings_(kOptions.read(host)),
          roles_{settings_.field_event_id, settings_.field_event_key, settings_.field_event_payload},
          router_(make_router(settings_)),
          additional_(parse_additional_fields(settings_.fields_additional_placement)) {
        for (const auto& f : additional_) envelope_ |= f.placement == AdditionalField::Placement::Envelope;
    }

    void apply(sdk::Edit& edit) override {
        const OutboxRow row(edit.in(), roles_);
        const auto routed_by = row.column(settings_.route_by_field);
        if (!routed_by)
            return edit.reject("debezium: route.by.field '" + settings_.route_by_field + "': " +
                               OutboxRow::missing(settings_.route_by_field));
        // Every column is read before anything is changed: the headers read are removed below.
        const std::string topic = router_.route(*routed_by);
        const std::string id(row.column(settings_.field_event_id).value_or(""));
        const auto key = row.column(settings_.field_event_key);
        const auto payload_column = row.column(settings_.field_event_payload);
        std::optional<std::string> payload;
        if (payload_column) payload = std::string(*payload_column);
        std::vector<std::pair<const AdditionalField*, std::string>> values;
        for (const AdditionalField& f : additional_) {
            const auto value = row.column(f.column);
            if (!value)
                return edit.reject("debezium: table.fields.additional.placement '" + f.spelled + "': " +
                                   OutboxRow::missing(f.column));
            values.emplace_back(&f, std::string(*value));
        }
        const bool binary = (edit.in().flags & SW_EVENT_PAYLOAD_BINARY) && !row.is_header(settings_.field_event_payload);
        if (settings_.expand_json_payload && payload && !binary)
            if (auto json = expanded(*payload)) payload = std::move(json);

        // The columns become the record; the headers that carried them are not emitted as such,
        // as Debezium emits none of the row's columns but those it is told to.
        for (const std::string* column : {&settings_.route_by_field, &settings_.field_event_id,
                                          &settings_.field_event_key, &settings_.field_event_payload})
            edit.remove_header(*column);
        for (const auto& f : additional_) edit.remove_header(f.column);

        edit.set_topic(topic);
        if (key) edit.set_key(*key);
        else edit.clear_key();
        edit.set_header("id", id);
        for (const auto& [field, value] : values)
            if (field->placement == AdditionalField::Placement::Header) edit.set_header(field->alias, value);
        try {
            set_value(edit, payload, binary, values);
        } catch (const nlohmann::json::type_error&) {  // nlohmann refuses to write text that is not UTF-8
            edit.reject("debezium: a column placed in the envelope is not UTF-8 text");
        }
    }

private:
    void set_value(sdk::Edit& edit, const std::optional<std::string>& payload, bool binary,
                   const std::vector<std::pair<const AdditionalField*, std::string>>& values) const {
        const bool empty = !payload || payload->find_first_not_of(" \t\r\n") == std::string::npos;
        if (envelope_ && !(empty && settings_.route_tombstone_on_empty_payload)) {
            nlohmann::ordered_json rest;
            for (const auto& [field, value] : values)
                if (field->placement == AdditionalField::Placement::Envelope) rest[field->alias] = value;
            // The payload first, as Debezium's envelope schema puts it, and as written.
            edit.set_payload("{\"payload\":" + payload_member(payload, binary) + "," + rest.dump().substr(1));
            return;
        }
        // The payload alone is the value; an absent one stays absent: a tombstone. (A present but
        // blank one stays as it is: sdk::Edit cannot make a present payload absent.)
        if (payload) edit.set_payload(*payload, binary);
    }

    const Settings settings_;
    const ColumnRoles roles_;
    const TopicRouter router_;
    const std::vector<AdditionalField> additional_;
    bool envelope_ = false;  // some column is placed in the envelope: the value is {"payload": ...}
};

}  // namespace spillway::plugins::debezium

SW_EXPORT_TRANSFORM(spillway::plugins::debezium::DebeziumTransform, "debezium", "1.0.0",
                    "Debezium's outbox event router: topic from the aggregate type, key from the aggregate id, "
                    "header id, value the payload",
                    spillway::plugins::debezium::kOptions, SW_PLUGIN_THREAD_SAFE)
