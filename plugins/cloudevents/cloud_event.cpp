#include "cloud_event.hpp"

#include <spillway/detail/base64.hpp>
#include <spillway/detail/json_depth.hpp>
#include <spillway/sdk.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>

namespace spillway::plugins::cloudevents {

namespace {

// Deeper payloads are refused before parsing: nlohmann's parser and tree recurse per level.
constexpr size_t kMaxPayloadDepth = 256;

std::string lowercase(std::string_view s) {
    std::string out(s);
    std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return out;
}

// The attributes in the envelope's order (ordered_json keeps it: readers of the raw text see
// specversion first, as the spec's examples do).
nlohmann::ordered_json attributes_json(const Attributes& a) {
    nlohmann::ordered_json j;
    j["specversion"] = kSpecVersion;
    j["id"] = a.id;
    j["source"] = a.source;
    j["type"] = a.type;
    if (a.time) j["time"] = *a.time;
    if (a.datacontenttype) j["datacontenttype"] = *a.datacontenttype;
    if (a.partitionkey) j["partitionkey"] = *a.partitionkey;
    return j;
}

}  // namespace

bool is_json_media_type(std::string_view media_type) {
    std::string type = lowercase(media_type.substr(0, media_type.find(';')));
    while (!type.empty() && std::isspace(static_cast<unsigned char>(type.back()))) type.pop_back();
    type.erase(0, std::min(type.size(), type.find_first_not_of(" \t")));
    return type == "application/json" || type == "text/json" || type.ends_with("+json");
}

std::vector<std::pair<std::string, std::string>> binary_headers(const Attributes& a) {
    std::vector<std::pair<std::string, std::string>> h = {
        {"ce_specversion", kSpecVersion}, {"ce_id", a.id}, {"ce_source", a.source}, {"ce_type", a.type}};
    if (a.time) h.emplace_back("ce_time", *a.time);
    if (a.partitionkey) h.emplace_back("ce_partitionkey", *a.partitionkey);
    if (a.datacontenttype) h.emplace_back("content-type", *a.datacontenttype);
    return h;
}

const std::vector<std::string>& binary_header_names() {
    static const std::vector<std::string> names = {"ce_specversion", "ce_id",           "ce_source",   "ce_type",
                                                   "ce_time",        "ce_partitionkey", "content-type"};
    return names;
}

std::optional<std::string> structured_envelope(const Attributes& a, const sw_event& event, std::string& why) {
    nlohmann::ordered_json envelope = attributes_json(a);
    const sw_bytes payload = event.payload;
    if (!sdk::present(payload)) return envelope.dump();
    const std::string_view data = sdk::view(payload);

    if (event.flags & SW_EVENT_PAYLOAD_BINARY) {
        envelope["data_base64"] = detail::base64_encode(data);
        return envelope.dump();
    }
    if (a.datacontenttype && is_json_media_type(*a.datacontenttype)) {
        if (detail::first_bracket_deeper_than(data, kMaxPayloadDepth) || !nlohmann::json::accept(data)) {
            why = "the payload is not JSON, as its content type " + *a.datacontenttype + " says";
            return std::nullopt;
        }
        // The payload's own text goes in as it is, not re-serialised: numbers keep their digits and
        // members their order, so a consumer reads exactly what the producer wrote.
        std::string text = envelope.dump();
        text.pop_back();  // the closing '}' of a non-empty object
        return text + ",\"data\":" + std::string(data) + "}";
    }
    envelope["data"] = std::string(data);
    try {
        return envelope.dump();
    } catch (const nlohmann::json::type_error&) {  // not UTF-8: the bytes go as base64 instead
        envelope.erase("data");
        envelope["data_base64"] = detail::base64_encode(data);
        return envelope.dump();
    }
}

}  // namespace spillway::plugins::cloudevents
