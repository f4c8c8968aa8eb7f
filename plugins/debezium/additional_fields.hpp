// table.fields.additional.placement: outbox columns emitted besides the payload, as Debezium
// spells them, comma-separated `column:placement[:alias]` (e.g. `type:header:eventType`).
#ifndef SPILLWAY_PLUGINS_DEBEZIUM_ADDITIONAL_FIELDS_HPP
#define SPILLWAY_PLUGINS_DEBEZIUM_ADDITIONAL_FIELDS_HPP

#include <string>
#include <string_view>
#include <vector>

namespace spillway::plugins::debezium {

struct AdditionalField {
    enum class Placement { Header, Envelope };
    std::string column;
    Placement placement;
    std::string alias;  // the header's or the envelope member's name; the column's by default
    std::string spelled;  // as configured, for reject reasons
};

// Throws sdk::ConfigError blaming table.fields.additional.placement: not 2 or 3 parts, an empty
// part, or a placement other than header or envelope (`partition` is Debezium's, not supported).
std::vector<AdditionalField> parse_additional_fields(std::string_view text);

}  // namespace spillway::plugins::debezium

#endif
