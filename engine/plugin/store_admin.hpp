// What an operator does to an outbox store, through the store plugin's vtable: counts, dead
// letters (list, replay, purge) and the schema migration. Shared by the admin API and
// `spillway outbox`, which runs it without starting Kafka or a relay.
#pragma once

#include "engine/plugin/ports.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace spillway::plugin {

struct StoreCounts {
    int64_t pending = 0, leased = 0, dead = 0, oldest_pending_age_ms = 0;
};

// One dead letter as the store keeps it.
struct DeadLetter {
    int64_t row_id = 0;
    std::string event_id, topic, event_type, correlation_id, last_error;
    std::optional<std::string> key;
    std::string payload;
    bool binary = false;
    std::vector<std::pair<std::string, std::string>> headers;
    int64_t created_at_us = 0;
    int32_t attempts = 0;
};

// Every call throws plugin::PluginError with the store's own reason when the store fails.
class StoreAdmin {
public:
    explicit StoreAdmin(plugin::Instance& store);

    StoreCounts counts(const std::string& pipeline);
    // Up to `limit` dead letters with row ids above `after_row_id`, oldest first.
    std::vector<DeadLetter> list_dead(const std::string& pipeline, int64_t after_row_id, size_t limit);
    // Back to pending with the same event_id (empty `event_ids`: all of the pipeline's).
    int64_t replay(const std::string& pipeline, const std::vector<std::string>& event_ids);
    // Deleted for good (empty `event_ids`: all of the pipeline's).
    int64_t purge(const std::string& pipeline, const std::vector<std::string>& event_ids);
    // Creates or upgrades the schema. Returns what was done, one step a line (empty: nothing,
    // the schema was up to date), including what the store's start did with auto_migrate: the
    // store hands its report back through the message channel of an OK call.
    std::vector<std::string> migrate();
    // Counts over the whole table, whatever pipeline its rows name: the store answers
    // pipeline "*" (never a pipeline name) so; a store that does not counts nothing.
    StoreCounts counts_whole_table();

private:
    [[noreturn]] void fail(const char* what, sw_status status);
    StorePort store_;
};

// Pending rows in a store that no configured pipeline will relay: their pipeline names none of
// `pipelines` (the configured pipelines using that store), or is '' (rows an application wrote
// into an adopted table before adopt_pipeline was set).
struct Unrelayed {
    int64_t pending = 0;           // all such rows
    int64_t without_pipeline = 0;  // of them, rows with pipeline ''
};
Unrelayed unrelayed(StoreAdmin& admin, const std::vector<std::string>& pipelines);
// The operator's warning for `u` in store `store_id`, or "" when every pending row is relayed.
std::string unrelayed_warning(const std::string& store_id, const Unrelayed& u);


}  // namespace spillway::plugin
