#include "outbox_row.hpp"

#include <spillway/sdk.hpp>

namespace spillway::plugins::debezium {

namespace {

std::optional<std::string_view> field(sw_bytes b) {
    if (!sdk::present(b)) return std::nullopt;
    return sdk::view(b);
}

}  // namespace

std::optional<std::string_view> OutboxRow::column(std::string_view name) const {
    if (auto header = sdk::header(event_, name)) return header;
    if (name == roles_.id) return field(event_.event_id);
    if (name == roles_.key) return field(event_.key);
    if (name == roles_.payload) return field(event_.payload);
    if (name == "type") return field(event_.event_type);  // the store's mapping of the `type` column
    return std::nullopt;
}

bool OutboxRow::is_header(std::string_view name) const { return sdk::header(event_, name).has_value(); }

std::string OutboxRow::missing(std::string_view name) {
    return "the event has no header '" + std::string(name) + "'";
}

}  // namespace spillway::plugins::debezium
