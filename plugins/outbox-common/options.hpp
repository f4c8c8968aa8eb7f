// The options both outbox stores share, and how a table and its columns are named safely.
//
// Both plugins declare the same option names (SPILLWAY_OUTBOX_COMMON_OPTIONS) so that switching
// between SQLite and PostgreSQL is a change of `plugin` and the connection option only.
#ifndef SPILLWAY_OUTBOX_COMMON_OPTIONS_HPP
#define SPILLWAY_OUTBOX_COMMON_OPTIONS_HPP

#include <spillway/sdk.hpp>

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
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

struct Options {
    std::string table = "spillway_outbox";
    // Finite by default so that a dead Kafka cannot fill the database (0: unbounded, on request).
    // Enforced without a count per append (OutboxStore::reserve_backlog), so the bound costs
    // appends nothing until it is reached.
    int64_t max_pending = 1'000'000;
    int64_t max_attempts = 10;    // 0: unlimited
    int64_t backoff_base_ms = 100;
    int64_t backoff_max_ms = 30'000;
    int64_t retention_ms = 0;     // 0: delete on publish
    bool keep_published = false;  // mark published rows and never delete them
    bool auto_migrate = true;
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

    // Reads and validates the shared options; throws ConfigError naming the key.
    static Options read(const sdk::Host& host);
};

}  // namespace spillway::plugins::outbox

// The shared part of both plugins' option tables (keep names and defaults in sync with Options).
#define SPILLWAY_OUTBOX_COLUMN_OPTION(NAME)                                                       \
    {"columns." NAME, SW_OPT_STRING, 0, NAME,                                         \
     "physical name of the '" NAME "' column (to adopt an existing outbox table)"}

#define SPILLWAY_OUTBOX_COMMON_OPTIONS                                                            \
    {"table", SW_OPT_STRING, 0, "spillway_outbox",                                            \
     "outbox table name: an identifier ([A-Za-z_][A-Za-z0-9_]*, at most 40 characters)"},         \
    {"max_pending", SW_OPT_INT, 0, "1000000",                                                     \
     "append answers FULL once a pipeline has this many pending rows; 0 = unbounded. Finite by "  \
     "default so that a dead Kafka cannot fill the database: 1,000,000 rows is about 1 GB at "    \
     "1 KiB each, a 17-minute outage at 1,000 events/s; appends below it count nothing"},        \
    {"max_attempts", SW_OPT_INT, 0, "10",                                                         \
     "a row that failed this many delivery attempts becomes dead; 0 = retry forever"},            \
    {"backoff_base", SW_OPT_DURATION, 0, "100ms",                                             \
     "delay before the first retry; doubles per attempt, with jitter"},                           \
    {"backoff_max", SW_OPT_DURATION, 0, "30s", "upper bound of the retry delay"},            \
    {"retention", SW_OPT_DURATION, 0, "0s",                                                   \
     "keep published rows this long (state 'published'), then purge them in pages; 0 = delete "   \
     "on publish"},                                                                               \
    {"keep_published", SW_OPT_BOOL, 0, "false",                                                   \
     "mark published rows (state and published_at) and never delete them, for tables whose "      \
     "owner purges them"},                                                                        \
    {"auto_migrate", SW_OPT_BOOL, 0, "true",                                                      \
     "create or upgrade the schema at start (otherwise run `spillway outbox migrate`)"},          \
    {"adopt_pipeline", SW_OPT_STRING, 0, "",                                                      \
     "adopting a table: the pipeline that takes rows written without one (pipeline ''), those "    \
     "there at migration and those the application inserts later"},                              \
    {"event_id_field", SW_OPT_STRING, 0, "",                                                      \
     "adopting a table: the JSON payload field (path like \"event_id\" or \"meta.id\") holding the "\
     "event id of rows the application wrote without one"},                                       \
    {"headers_field", SW_OPT_STRING, 0, "",                                                       \
     "adopting a table: the JSON payload field holding an object of headers; in rows the "         \
     "application wrote it becomes the Kafka headers and leaves the payload"},                    \
    {"adopt_order_by", SW_OPT_STRING, 0, "",                                                      \
     "adopting a table without an integer id (PostgreSQL): the table's column (e.g. created_at) "   \
     "whose order numbers the rows already there when the migration adds columns.id; unset: their "\
     "physical order"},                                                                           \
    SPILLWAY_OUTBOX_COLUMN_OPTION("id"), SPILLWAY_OUTBOX_COLUMN_OPTION("event_id"),               \
    SPILLWAY_OUTBOX_COLUMN_OPTION("pipeline"), SPILLWAY_OUTBOX_COLUMN_OPTION("topic"),            \
    SPILLWAY_OUTBOX_COLUMN_OPTION("key"), SPILLWAY_OUTBOX_COLUMN_OPTION("payload"),               \
    SPILLWAY_OUTBOX_COLUMN_OPTION("headers"), SPILLWAY_OUTBOX_COLUMN_OPTION("event_type"),        \
    SPILLWAY_OUTBOX_COLUMN_OPTION("correlation_id"), SPILLWAY_OUTBOX_COLUMN_OPTION("flags"),      \
    SPILLWAY_OUTBOX_COLUMN_OPTION("created_at"), SPILLWAY_OUTBOX_COLUMN_OPTION("attempts"),       \
    SPILLWAY_OUTBOX_COLUMN_OPTION("next_attempt_at"), SPILLWAY_OUTBOX_COLUMN_OPTION("last_error"),\
    SPILLWAY_OUTBOX_COLUMN_OPTION("state"), SPILLWAY_OUTBOX_COLUMN_OPTION("lease_owner"),         \
    SPILLWAY_OUTBOX_COLUMN_OPTION("lease_until"), SPILLWAY_OUTBOX_COLUMN_OPTION("published_at")

#endif
