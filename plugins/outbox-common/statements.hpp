// The SQL text of the outbox store: the table's names as SQL (Sql), the expressions that read a
// row, including an adopted table's rows, and every statement the store runs (Statements), built
// once from the validated names when the store is made.
#ifndef SPILLWAY_OUTBOX_COMMON_STATEMENTS_HPP
#define SPILLWAY_OUTBOX_COMMON_STATEMENTS_HPP

#include "options.hpp"

#include <array>
#include <string>
#include <vector>

namespace spillway::plugins::outbox {

// Builds every statement text from the validated table and column names.
struct Sql {
    std::string table;                       // quoted, possibly schema-qualified
    std::string table_base;                  // unquoted last part, for derived index names
    std::array<std::string, kColumnCount> c; // quoted column names
    // Adopted tables: rows an application wrote have no event_id; theirs is read from the JSON
    // payload (event_id_path) or made from the row id, and headers kept in the payload
    // (headers_path) are read out of it. On PostgreSQL the payload is parsed by json_fn, which
    // answers NULL for text that is not JSON (a cast would fail the whole claim).
    bool postgres = false;
    std::string json_fn;                     // PostgreSQL: <table>_json(text) -> jsonb, quoted
    std::vector<std::string> event_id_path, headers_path;
    // columns.headers.<name>: the header names and their columns (quoted), in the same order.
    // The headers column is then read as the row's own headers text, a line feed, and a JSON
    // array of these columns' values as text (null for NULL): see decode_row_headers (codec.hpp).
    std::vector<std::string> header_names, header_columns;
    // <table>_meta (name, value): the adoption token, drawn once by the migration and never
    // changed, that makes derived event ids unique across databases (see event_id).
    std::string meta_table;
    // PostgreSQL: the function that gives a row its shard (spillway_shard(key, id)), the column
    // that stores it (schema version 6), and what the engine's INSERT writes there: the shard of
    // its key (:ky2, the key again), NULL for a keyless row, which the table's trigger then fills
    // from the row's id, as it fills the rows applications insert.
    std::string shard_fn, shard_column, shard_value;

    // The columns of one row as RowSet reads them, and the FROM clause they need: `alias` is the
    // table's alias. On PostgreSQL with a payload field configured, the FROM clause parses each
    // application row's payload once (a LATERAL subquery) and the columns read that.
    std::string select_columns(const std::string& alias) const;
    std::string from(const std::string& alias) const;
    // The row's event id as text: the event_id column, else the payload's field, else
    // "<table>-<token>-<id>". `prefix`: "" or "alias.".
    std::string event_id(const std::string& prefix) const;
    // What a row whose event_id column is NULL is read with: event_id() without the column.
    std::string derived_event_id(const std::string& prefix) const;
    std::string payload(const std::string& prefix) const;  // without headers_path, when taken out
    // The row's headers, and after them the columns.headers.<name> values when there are any.
    std::string headers(const std::string& prefix) const;

private:
    bool lateral_json() const { return postgres && (!event_id_path.empty() || !headers_path.empty()); }
    // The payload as JSON (NULL when it is not JSON); `lateral`: read from from()'s subquery.
    std::string json(const std::string& prefix, bool lateral) const;
    // The row's own headers: its headers column, or the payload's headers_path.
    std::string own_headers(const std::string& prefix) const;
    // Whether the payload's headers_path is where the row's headers come from (and so leaves it).
    std::string headers_from_payload(const std::string& prefix, bool lateral) const;
};

// Every statement text the store runs, built once. Texts that end in a column and a space take an
// id list test after them (OutboxStore::in_ids, which only the database can spell); `claimed` and
// `scan_ids` get theirs at start (add_id_lists), the others where they run.
// coordination = "shards": the claim's narrow read of the pending rows in (:after, :upto], one index
// range per claimable shard (`shards`: a query of their numbers; `shard_of_c`: a row's shard over
// columns of alias c) merged in id order, :lim per shard and :lim2 in all. The other members' rows
// in the range are never read: a claim's look back over (0, cursor] otherwise reads every pending
// row of the other engines below its cursor, at every claim (113 ms for 60,000 rows, against 3 ms).
std::string scan_by_shard(const Sql& sql, const std::string& shards, const std::string& shard_of_c);

struct Statements {
    Statements() = default;
    explicit Statements(const Sql& sql);
    // Completes `claimed` and `scan_ids` with the database's id list test on `:ids`.
    void add_id_lists(const Sql& sql, const std::string& in_ids);

    // The outbox table's rows.
    std::string insert, count_pending, scan, scan_ids, head, due, claimed, delete_ok, mark_ok, attempts, retry,
        reject, stats, keys, dead, replay_all, replay_one, purge_all, purge_one, purge_published;
    // <table>_leases: one row per claimed batch.
    std::string leases_table, lease_insert, live_leases, live_leases_at, lease_end, lease_sweep, lease_owners,
        lease_drop_owner, leased_count;
    // PostgreSQL: a claim in one statement (claim.cpp, claim_in_one_trip); empty elsewhere. And
    // its reads as the session's claim function makes them (postgres_store.cpp).
    std::string one_trip_claim, trickle_head;
    // PostgreSQL: a completion that delivered one lease's rows, in one statement; empty elsewhere.
    std::string one_trip_settle;
};

}  // namespace spillway::plugins::outbox

#endif
