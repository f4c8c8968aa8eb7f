// cloudevents: makes each event a CloudEvent 1.0 as the Kafka protocol binding writes one.
//
//   id = event_id   source = the `source` option   type = event_type (else the `type` option)
//   time = when the engine accepted the event   partitionkey = the key (the partitioning extension)
//
// The Kafka key stays the event's key: the binding maps the record key to the Kafka key by
// default, and the key is what keeps the event's order. `subject` is not derived from it: the
// key says where an event is partitioned, not what it is about.
#include "cloud_event.hpp"
#include "rfc3339.hpp"

#include <spillway/options.hpp>

#include <nlohmann/json.hpp>

#include <optional>
#include <string>

namespace spillway::plugins::cloudevents {

namespace {

struct Settings {
    std::string source;
    std::string mode;
    std::string type;          // "" when unset: events without an event_type are rejected
    std::string content_type;  // "" when unset: application/json, or octet-stream for binary payloads
};

const sdk::Options<Settings> kOptions{
    sdk::option<&Settings::source>("source", nullptr,
                                   "the CloudEvents `source` attribute of every event: a URI-reference naming "
                                   "the producer, e.g. `\"/services/orders\"` or `\"urn:acme:orders\"`")
        .required(),
    sdk::option<&Settings::mode>("mode", "binary",
                                 "content mode: `binary` keeps the payload as the record's value and adds the "
                                 "attributes as `ce_*` headers; `structured` makes the value a JSON CloudEvent "
                                 "envelope (`application/cloudevents+json`) holding the payload as `data`")
        .one_of({"binary", "structured"}),
    sdk::option<&Settings::type>("type", nullptr,
                                 "the `type` attribute of events that have no event_type; unset, such events are "
                                 "rejected"),
    sdk::option<&Settings::content_type>(
        "content_type", nullptr,
        "the `datacontenttype` of every payload; unset, `application/json`, and `application/octet-stream` for "
        "payloads flagged binary"),
};

Settings read_settings(const sdk::Host& host) {
    Settings s = kOptions.read(host);
    if (s.source.empty()) throw sdk::ConfigError("source", "source must not be empty (CloudEvents requires it)");
    if (host.opt_string("type") && s.type.empty()) throw sdk::ConfigError("type", "type must not be empty when set");
    if (host.opt_string("content_type") && s.content_type.empty())
        throw sdk::ConfigError("content_type", "content_type must not be empty when set");
    return s;
}

}  // namespace

class CloudEventsTransform final : public sdk::Transform {
public:
    explicit CloudEventsTransform(sdk::Host host)
        : Transform(host), settings_(read_settings(host)), structured_(settings_.mode == "structured") {}

    void apply(sdk::Edit& edit) override {
        const sw_event& e = edit.in();
        if (sdk::view(e.event_id).empty()) return edit.reject("cloudevents: the event has no event_id for `id`");
        Attributes a;
        a.id = sdk::view(e.event_id);
        a.source = settings_.source;
        if (!sdk::view(e.event_type).empty()) a.type = sdk::view(e.event_type);
        else if (!settings_.type.empty()) a.type = settings_.type;
        else return edit.reject("cloudevents: the event has no event_type and the option 'type' gives no default");
        if (e.created_at_us != 0) a.time = rfc3339_utc(e.created_at_us);
        if (sdk::present(e.payload)) a.datacontenttype = content_type(e);
        if (sdk::present(e.key)) a.partitionkey = sdk::view(e.key);

        try {
            if (structured_) write_structured(edit, a);
            else write_binary(edit, a);
        } catch (const nlohmann::json::type_error&) {  // nlohmann refuses to write text that is not UTF-8
            edit.reject("cloudevents: the event_id, event_type or key is not UTF-8 text");
        }
    }

private:
    std::string content_type(const sw_event& e) const {
        if (!settings_.content_type.empty()) return settings_.content_type;
        return (e.flags & SW_EVENT_PAYLOAD_BINARY) ? "application/octet-stream" : "application/json";
    }

    static void write_binary(sdk::Edit& edit, const Attributes& a) {
        // Headers the event brought under these names would contradict the attributes: replaced,
        // and removed where this event has no such attribute.
        for (const std::string& name : binary_header_names()) edit.remove_header(name);
        for (const auto& [name, value] : binary_headers(a)) edit.set_header(name, value);
    }

    static void write_structured(sdk::Edit& edit, const Attributes& a) {
        std::string why;
        const auto envelope = structured_envelope(a, edit.in(), why);
        if (!envelope) return edit.reject("cloudevents: " + why);
        edit.set_payload(*envelope);
        edit.set_header("content-type", kStructuredContentType);
    }

    const Settings settings_;
    const bool structured_;
};

}  // namespace spillway::plugins::cloudevents

SW_EXPORT_TRANSFORM(spillway::plugins::cloudevents::CloudEventsTransform, "cloudevents", "1.0.0",
                    "Makes each event a CloudEvent 1.0 (Kafka protocol binding, binary or structured content mode)",
                    spillway::plugins::cloudevents::kOptions, SW_PLUGIN_THREAD_SAFE)
