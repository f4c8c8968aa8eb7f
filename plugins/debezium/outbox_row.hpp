// An event read as the outbox table row Debezium's router would see.
//
// The store maps the row's columns onto the event: id -> event_id, aggregateid -> key,
// type -> event_type, payload -> payload, and every other column the operator names into a
// header of the column's name. So column F is the header named F when there is one, else, for
// the columns the router knows by role, the event field that column became.
#ifndef SPILLWAY_PLUGINS_DEBEZIUM_OUTBOX_ROW_HPP
#define SPILLWAY_PLUGINS_DEBEZIUM_OUTBOX_ROW_HPP

#include <spillway/plugin.h>

#include <optional>
#include <string>
#include <string_view>

namespace spillway::plugins::debezium {

// The columns the router reads by role (table.field.event.*).
struct ColumnRoles {
    std::string id;       // its value is the event_id when no header carries it
    std::string key;      // ... the key
    std::string payload;  // ... the payload
};

class OutboxRow {
public:
    OutboxRow(const sw_event& event, const ColumnRoles& roles) noexcept : event_(event), roles_(roles) {}

    // The column's value, or nullopt when the event carries no such column.
    std::optional<std::string_view> column(std::string_view name) const;
    // Whether the column is carried as a header (the router consumes such headers).
    bool is_header(std::string_view name) const;
    // Why column() found nothing, for a reject reason.
    static std::string missing(std::string_view name);

private:
    const sw_event& event_;
    const ColumnRoles& roles_;
};

}  // namespace spillway::plugins::debezium

#endif
