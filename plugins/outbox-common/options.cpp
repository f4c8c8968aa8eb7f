#include "options.hpp"

#include <algorithm>
#include <set>
#include <utility>

namespace spillway::plugins::outbox {

bool is_identifier(std::string_view name, size_t max_len) {
    if (name.empty() || name.size() > max_len) return false;
    auto alpha = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; };
    if (!alpha(name[0])) return false;
    for (char c : name)
        if (!alpha(c) && !(c >= '0' && c <= '9')) return false;
    return true;
}

std::string quote_name(std::string_view name, const char* key, bool allow_schema, size_t max_len) {
    const size_t dot = name.find('.');
    auto bad = [&](const std::string& why) {
        return sdk::ConfigError(key, "'" + std::string(name) + "' is not a valid " + key + ": " + why);
    };
    if (dot == std::string_view::npos) {
        if (!is_identifier(name, max_len))
            throw bad("use letters, digits and '_' (not starting with a digit), at most " +
                      std::to_string(max_len) + " characters");
        return "\"" + std::string(name) + "\"";
    }
    if (!allow_schema) throw bad("a schema prefix is not supported by this store");
    const std::string_view schema = name.substr(0, dot), rest = name.substr(dot + 1);
    if (!is_identifier(schema) || !is_identifier(rest, max_len))
        throw bad("use schema.table, each an identifier of letters, digits and '_'");
    return "\"" + std::string(schema) + "\".\"" + std::string(rest) + "\"";
}

namespace {

// "a.b.c" as its member names, each an identifier (they are spelled into SQL text).
std::vector<std::string> json_path(const std::string& text, const char* key) {
    std::vector<std::string> out;
    if (text.empty()) return out;
    size_t from = 0;
    for (;;) {
        const size_t dot = text.find('.', from);
        std::string part = text.substr(from, dot == std::string::npos ? std::string::npos : dot - from);
        if (!is_identifier(part))
            throw sdk::ConfigError(key, "'" + text + "' is not a valid " + key +
                                            ": use JSON member names of letters, digits and '_', joined by '.' "
                                            "(e.g. \"event_id\" or \"metadata.event_id\")");
        out.push_back(std::move(part));
        if (dot == std::string::npos) return out;
        from = dot + 1;
    }
}

using Option = sdk::Option<Options>;

// columns.<name>: a member of an array, which sdk::option cannot bind, so its own reader.
template <size_t C>
Option column_option() {
    static const std::string key = std::string("columns.") + kColumnNames[C];
    static const std::string description =
        std::string("physical column name of the `") + kColumnNames[C] +
        "` field, to adopt an existing table; same identifier rules as `table`, and two fields cannot share a column";
    return Option(key.c_str(), SW_OPT_STRING, kColumnNames[C], description.c_str(),
                  [](Options& o, const sdk::Host& host, const Option& self) {
                      o.columns[C] = host.opt_string(self.name()).value_or(kColumnNames[C]);
                      return true;
                  });
}

// A string option holding a JSON path, read as its member names.
template <std::vector<std::string> Options::*Member>
Option json_path_option(const char* key, const char* description) {
    return Option(key, SW_OPT_STRING, "", description, [](Options& o, const sdk::Host& host, const Option& self) {
        o.*Member = json_path(host.opt_string(self.name()).value_or(""), self.name());
        return true;
    });
}

template <size_t... C>
const sdk::Options<Options>& shared_options_with(std::index_sequence<C...>) {
    static const sdk::Options<Options> table{
        sdk::option<&Options::table>(
            "table", "spillway_outbox",
            "the outbox table: letters, digits and `_`, not starting with a digit, at most 40 characters; on "
            "PostgreSQL also `schema.table`. Anything else is a configuration error"),
        sdk::option<&Options::max_pending>(
            "max_pending", "1000000",
            "backlog bound per pipeline: an append that would make more than this many pending rows answers FULL "
            "(HTTP 503) and stores nothing of its batch; `0` = unbounded. Finite by default so that a dead Kafka "
            "cannot fill the database (1,000,000 rows is about 1 GB at 1 KiB per event); below the bound it costs "
            "appends nothing")
            .at_least(0),
        sdk::option<&Options::max_attempts>(
            "max_attempts", "10",
            "a row whose delivery failed this many times (RETRY or REJECT) becomes dead; `0` = retry forever")
            .at_least(0),
        sdk::duration<&Options::backoff_base_ms>(
            "backoff_base", "100ms", "delay before the first retry of a row; it doubles per attempt, up to `backoff_max`")
            .at_least(1),
        sdk::duration<&Options::backoff_max_ms>(
            "backoff_max", "30s",
            "upper bound of the retry delay; each delay is jittered to between 50% and 100% of its step"),
        sdk::duration<&Options::retention_ms>(
            "retention", "0s",
            "`0`: a published row is deleted. Otherwise it is kept as `state = 'published'` with `published_at` for "
            "this long, then purged in pages of 1000 rows"),
        sdk::option<&Options::keep_published>(
            "keep_published", "false",
            "mark published rows (`state`, `published_at`) and never delete them: for an adopted table whose owner "
            "purges it"),
        sdk::option<&Options::auto_migrate>(
            "auto_migrate", "true",
            "create or upgrade the schema when the store starts; with `false`, run `spillway outbox migrate` (the "
            "store's `migrate` operation) first"),
        sdk::option<&Options::adopt_pipeline>(
            "adopt_pipeline", "",
            "adopting a table: the pipeline that takes rows written without one (`pipeline = ''`), those there when "
            "the migration runs and those the application inserts later. Empty: none, and the store warns at start "
            "about pending rows without a pipeline"),
        json_path_option<&Options::event_id_field>(
            "event_id_field",
            "adopting a table: the field of the JSON payload holding the event id of rows the application wrote "
            "(their `event_id` column is NULL), as a path of member names: `\"event_id\"`, `\"metadata.event_id\"`. "
            "Rows whose payload is not JSON or lacks the field get `<table>-<row id>`"),
        json_path_option<&Options::headers_field>(
            "headers_field",
            "adopting a table: the field of the JSON payload holding an object of headers (`{\"trace_id\": "
            "\"abc\"}`) in rows the application wrote; it becomes the event's (Kafka) headers and is taken out of "
            "the payload sent"),
        sdk::option<&Options::adopt_order_by>(
            "adopt_order_by", "",
            "adopting a table without an integer id (PostgreSQL): the table's column (e.g. `created_at`) whose order "
            "numbers the rows already there when the migration adds `columns.id`; claims, and so each key's "
            "deliveries, go in that order. Empty: the table's physical order"),
        column_option<C>()...,
    };
    return table;
}

}  // namespace

const sdk::Options<Options>& shared_options() { return shared_options_with(std::make_index_sequence<kColumnCount>()); }

namespace {

// A header name from a columns.headers.<name> key: any text but control characters (it never
// goes into SQL: Sql reads the values in the names' order, and the names are joined to them after).
bool is_header_name(std::string_view name) {
    if (name.empty() || name.size() > 249) return false;
    for (unsigned char ch : name)
        if (ch < 0x20 || ch == 0x7f) return false;
    return true;
}

bool declared(std::string_view key, std::span<const sw_option> rows) {
    for (const sw_option& o : rows)
        if (o.name && key == o.name) return true;
    return false;
}

// The keys the store does not declare: columns.headers.<name> mappings, validated; anything
// else is refused as unknown.
void read_header_columns(Options& o, const sdk::Host& host, std::span<const sw_option> own, const char* plugin) {
    const std::span<const sw_option> shared(shared_options().data(), shared_options().size());
    for (auto& [key, value] : host.entries()) {
        if (declared(key, shared) || declared(key, own)) continue;
        if (key.rfind(kHeaderColumnsPrefix, 0) != 0) {
            std::string known;
            for (auto rows : {own, shared})
                for (const sw_option& opt : rows) known += std::string(opt.name) + ", ";
            throw sdk::ConfigError(key, "unknown option for store plugin '" + std::string(plugin) + "' (it takes: " +
                                            known + "columns.headers.<name>)");
        }
        const std::string name = key.substr(kHeaderColumnsPrefix.size());
        if (!is_header_name(name))
            throw sdk::ConfigError(key, "'" + key + "': the header name after columns.headers. must be 1 to 249 "
                                        "characters without control characters");
        if (!is_identifier(value))
            throw sdk::ConfigError(key, "'" + value + "' is not a valid column name for " + key +
                                            ": use letters, digits and '_' (not starting with a digit), at most 63 "
                                            "characters");
        if (o.header_columns.size() == kMaxHeaderColumns)
            throw sdk::ConfigError(key, "at most " + std::to_string(kMaxHeaderColumns) +
                                            " columns.headers.<name> mappings");
        o.header_columns.emplace_back(name, std::move(value));
    }
    std::sort(o.header_columns.begin(), o.header_columns.end());
}

}  // namespace

Options Options::read(const sdk::Host& host, std::span<const sw_option> own, const char* plugin) {
    Options o = shared_options().read(host);
    read_header_columns(o, host, own, plugin);
    if (o.backoff_max_ms < o.backoff_base_ms)
        throw sdk::ConfigError("backoff_max", "backoff_max must be >= backoff_base");
    for (char ch : o.adopt_pipeline)
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_' || ch == '-'))
            throw sdk::ConfigError("adopt_pipeline", "'" + o.adopt_pipeline +
                                                         "' is not a pipeline name: use letters, digits, '_' and '-'");
    if (!o.adopt_order_by.empty() && !is_identifier(o.adopt_order_by))
        throw sdk::ConfigError("adopt_order_by", "'" + o.adopt_order_by +
                                                     "' is not a valid column name: use letters, digits and '_' "
                                                     "(not starting with a digit), at most 63 characters");
    std::set<std::string> seen;
    for (size_t c = 0; c < kColumnCount; ++c) {
        const std::string key = std::string("columns.") + kColumnNames[c];
        const std::string& name = o.columns[c];
        if (!is_identifier(name))
            throw sdk::ConfigError(key, "'" + name + "' is not a valid column name: use letters, digits "
                                        "and '_' (not starting with a digit), at most 63 characters");
        if (!seen.insert(name).second)
            throw sdk::ConfigError(key, "column '" + name + "' is mapped to two outbox fields");
    }
    return o;
}

}  // namespace spillway::plugins::outbox
