#include "additional_fields.hpp"

#include <spillway/sdk.hpp>

#include <algorithm>
#include <cctype>

namespace spillway::plugins::debezium {

namespace {

constexpr const char* kOption = "table.fields.additional.placement";

std::vector<std::string> split(std::string_view text, char sep) {
    std::vector<std::string> parts;
    for (size_t from = 0;;) {
        const size_t at = text.find(sep, from);
        parts.emplace_back(text.substr(from, at == std::string_view::npos ? text.npos : at - from));
        if (at == std::string_view::npos) return parts;
        from = at + 1;
    }
}

std::string trimmed(std::string s) {
    const auto space = [](unsigned char c) { return std::isspace(c) != 0; };
    s.erase(s.begin(), std::find_if_not(s.begin(), s.end(), space));
    s.erase(std::find_if_not(s.rbegin(), s.rend(), space).base(), s.end());
    return s;
}

}  // namespace

std::vector<AdditionalField> parse_additional_fields(std::string_view text) {
    std::vector<AdditionalField> fields;
    if (trimmed(std::string(text)).empty()) return fields;
    for (const std::string& raw : split(text, ',')) {
        const std::string entry = trimmed(raw);
        std::vector<std::string> parts = split(entry, ':');
        for (std::string& p : parts) p = trimmed(p);
        const bool well_formed =
            (parts.size() == 2 || parts.size() == 3) && std::none_of(parts.begin(), parts.end(), [](const std::string& p) { return p.empty(); });
        if (!well_formed)
            throw sdk::ConfigError(kOption, std::string(kOption) + ": '" + entry +
                                                "' is not column:placement or column:placement:alias");
        std::string placement = parts[1];
        std::transform(placement.begin(), placement.end(), placement.begin(),
                       [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
        AdditionalField f{parts[0], AdditionalField::Placement::Header, parts.size() == 3 ? parts[2] : parts[0], entry};
        if (placement == "envelope") f.placement = AdditionalField::Placement::Envelope;
        else if (placement == "partition")
            throw sdk::ConfigError(kOption, std::string(kOption) + ": '" + entry +
                                                "': the partition placement is not supported (the sink partitions by key)");
        else if (placement != "header")
            throw sdk::ConfigError(kOption, std::string(kOption) + ": '" + entry + "': placement '" + parts[1] +
                                                "' is neither header nor envelope");
        fields.push_back(std::move(f));
    }
    return fields;
}

}  // namespace spillway::plugins::debezium
