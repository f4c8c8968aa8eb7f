// The options both outbox stores share, and how a table and its columns are named safely.
//
// Both plugins declare the same option names (shared_options) so that switching between SQLite
// and PostgreSQL is a change of `plugin` and the connection option only.
#ifndef SPILLWAY_OUTBOX_COMMON_OPTIONS_HPP
#define SPILLWAY_OUTBOX_COMMON_OPTIONS_HPP

#include <spillway/options.hpp>

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace spillway::plugins::outbox {

// Logical columns of an outbox row. The physical name of each is configurable (`columns.<name>`)
// so Spillway can adopt a table an application already writes (e.g. Debezium's layout).
enum Col : size_t {
    kId,
    kEventId,
    kPipeline,
    kTopic,
    kKey,
    kPayload,
    kHeaders,
    kEventType,
    kCorrelationId,
    kFlags,
    kCreatedAt,
    kAttempts,
    kNextAttemptAt,
    kLastError,
    kState,
    kLeaseOwner,
    kLeaseUntil,
    kPublishedAt,
    kColumnCount
};

inline constexpr std::array<const char*, kColumnCount> kColumnNames = {
    "id",       "event_id", "pipeline",       "topic",      "key",   "payload",
    "headers",  "event_type", "correlation_id", "flags",    "created_at", "attempts",
    "next_attempt_at", "last_error", "state", "lease_owner", "lease_until", "published_at"};

// True for [A-Za-z_][A-Za-z0-9_]* of at most `max_len` characters: the only names ever put
// into SQL text, and then only double-quoted.
bool is_identifier(std::string_view name, size_t max_len = 63);

// A name as SQL text: "name", or "schema"."name" when `allow_schema` and it has one dot.
// Throws ConfigError(key, ...) naming the offending value.
std::string quote_name(std::string_view name, const char* key, bool allow_schema, size_t max_len);

// The shared options' values. Defaults, bounds and descriptions are shared_options()' (the engine
// fills unset options from it), so the members need no initialisers.
struct Options {
    std::string table;
    // Finite by default so that a dead Kafka cannot fill the database (0: unbounded, on request).
    // Enforced without a count per append (OutboxStore::reserve_backlog), so the bound costs
    // appends nothing until it is reached.
    int64_t max_pending;
    int64_t max_attempts;  // 0: unlimited
    int64_t backoff_base_ms;
    int64_t backoff_max_ms;
    int64_t retention_ms;  // 0: delete on publish
    bool keep_published;   // mark published rows and never delete them
    bool auto_migrate;
    std::array<std::string, kColumnCount> columns;  // physical names, validated
    // Adopting a table an application writes (see configs/README.md, "Adopting an outbox table").
    // The pipeline that takes the rows written without one (pipeline ''): those already there when
    // the migration runs, and those the application inserts after it. Empty: none.
    std::string adopt_pipeline;
    // A field of the JSON payload, as its path of member names ("event_id", "meta.id"): read as the
    // event id of rows whose event_id column is NULL (rows the application wrote). Empty: none.
    std::vector<std::string> event_id_field;
    // A field of the JSON payload holding an object of headers ({"name": "value"}): in rows whose
    // event_id column is NULL it becomes the event's headers and is taken out of the payload.
    std::vector<std::string> headers_field;
    // PostgreSQL, adopting a table without an integer id: the legacy column (e.g. created_at)
    // whose order numbers the rows there when the migration adds the id column. Empty: the
    // table's physical order (which an UPDATE changes).
    std::string adopt_order_by;
    // `columns.headers.<name> = "<column>"`: every row read carries, after its own headers, a
    // header <name> with the column's value as text (none when the column is NULL). In the order
    // of their names; the columns validated like columns.<field>, the names never put into SQL.
    std::vector<std::pair<std::string, std::string>> header_columns;

    // Reads and validates the shared options; throws ConfigError naming the key. The stores take
    // undeclared keys (SW_PLUGIN_OPEN_OPTIONS) for columns.headers.<name>, which cannot be
    // declared one by one: any other key that neither the shared table nor `own` (the plugin's own
    // rows) declares is refused here as the engine would refuse it, naming `plugin`.
    static Options read(const sdk::Host& host, std::span<const sw_option> own = {}, const char* plugin = "");
};

// The prefix of the keys that map a column into a header, and how many may be mapped.
inline constexpr std::string_view kHeaderColumnsPrefix = "columns.headers.";
inline constexpr size_t kMaxHeaderColumns = 32;
// Their row in the option table: a family of keys (plugin.h, sw_option), read by read_header_columns.
inline constexpr sw_option kHeaderColumnsRow = {
    "columns.headers.*", SW_OPT_STRING, 0, nullptr,
    "`columns.headers.<name> = \"<column>\"` (a table `[store.x.columns.headers]`) adds to every row read a header "
    "<name> holding that column's value as text (none when it is NULL), after the row's own headers (and after the "
    "object `headers_field` takes from the payload). At most 32; the column must exist (the migration stops "
    "naming the key otherwise); a name given both here and by the row's own headers is sent twice. A table that "
    "also maps `columns.headers` (the headers column) writes these as quoted keys: "
    "`\"columns.headers.tenant\" = \"tenant_id\"`"};

// The options both stores declare alike, each once: the rows each plugin exports after its own,
// and what Options::read reads.
const sdk::Options<Options>& shared_options();

// A store's exported option table: its own options (the connection and what only it has), then
// the shared ones. Each half is read by its own code (the plugin's settings, Options::read), so
// only the rows are joined; sdk::Options is built from a braced list and cannot take two tables.
class StoreOptions {
public:
    template <class S>
    explicit StoreOptions(const sdk::Options<S>& own) : rows_(own.data(), own.data() + own.size()) {
        const auto& shared = shared_options();
        rows_.insert(rows_.end(), shared.data(), shared.data() + shared.size());
        rows_.push_back(kHeaderColumnsRow);
    }
    StoreOptions(const StoreOptions&) = delete;
    StoreOptions& operator=(const StoreOptions&) = delete;

    const sw_option* data() const { return rows_.data(); }
    size_t size() const { return rows_.size(); }

private:
    std::vector<sw_option> rows_;  // pointing into the two tables, which live as long as the plugin
};

}  // namespace spillway::plugins::outbox

#endif
