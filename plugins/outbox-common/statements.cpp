#include "statements.hpp"

namespace spillway::plugins::outbox {

std::string Sql::select_columns(const std::string& a) const {
    std::string out;
    for (Col col : {kId, kEventId, kPipeline, kTopic, kKey, kPayload, kHeaders, kEventType, kCorrelationId, kFlags,
                    kCreatedAt, kAttempts, kLastError}) {
        if (!out.empty()) out += ", ";
        // 64-bit columns as text: see RowSet.
        if (col == kId || col == kCreatedAt) out += "CAST(" + a + "." + c[col] + " AS TEXT)";
        else if (col == kEventId) out += event_id(a + ".");
        else if (col == kPayload) out += payload(a + ".");
        else if (col == kHeaders) out += headers(a + ".");
        else out += a + "." + c[col];
    }
    return out;
}

namespace {
// A payload field's path as each database spells it: {a,b} (PostgreSQL), $.a.b (SQLite). The
// names are identifiers (Options), safe inside a literal.
std::string pg_path(const std::vector<std::string>& path) {
    std::string out = "'{";
    for (size_t i = 0; i < path.size(); ++i) out += (i ? "," : "") + path[i];
    return out + "}'";
}
std::string sqlite_path(const std::vector<std::string>& path) {
    std::string out = "'$";
    for (const auto& part : path) out += "." + part;
    return out + "'";
}
// "r." -> "r_json", the alias of from()'s subquery for table alias r.
std::string json_alias(const std::string& prefix) { return prefix.substr(0, prefix.size() - 1) + "_json"; }
}  // namespace

// A plpgsql function with an EXCEPTION block costs a subtransaction per call: called once per
// column that reads the payload, it was five calls per application row of every claim. The
// subquery is an optimisation fence (OFFSET 0), so the planner does not copy the call into each
// column again; rows with an event_id (Spillway's own) are never parsed.
std::string Sql::from(const std::string& a) const {
    std::string out = table + " " + a;
    if (lateral_json())
        out += " CROSS JOIN LATERAL (SELECT CASE WHEN " + a + "." + c[kEventId] + " IS NULL THEN " + json_fn + "(CAST(" +
               a + "." + c[kPayload] + " AS TEXT)) END AS j OFFSET 0) " + a + "_json";
    return out;
}

std::string Sql::json(const std::string& p, bool lateral) const {  // PostgreSQL only
    return lateral ? json_alias(p) + ".j" : json_fn + "(CAST(" + p + c[kPayload] + " AS TEXT))";
}

// Every part of these is evaluated only for rows whose event_id is NULL (COALESCE and CASE stop
// at the first branch that decides): rows Spillway appended are read as they are, whatever their
// payload, and the hot path of a table Spillway created costs one COALESCE per row.
std::string Sql::event_id(const std::string& p) const {
    return "COALESCE(" + (postgres ? "CAST(" + p + c[kEventId] + " AS TEXT)" : p + c[kEventId]) + ", " +
           derived_event_id(p) + ")";
}

std::string Sql::derived_event_id(const std::string& p) const {
    const bool lateral = !p.empty() && lateral_json();
    std::string out, close;
    if (!event_id_path.empty()) {
        out = "COALESCE(", close = ")";
        if (postgres)
            out += json(p, lateral) + " #>> " + pg_path(event_id_path) + ", ";
        else
            out += "CASE WHEN json_valid(" + p + c[kPayload] + ") THEN CAST(json_extract(" + p + c[kPayload] + ", " +
                   sqlite_path(event_id_path) + ") AS TEXT) END, ";
    }
    // Derived from the row id, which never changes, and the table's adoption token, drawn once:
    // every claim of the row, and every retry of its delivery, carries the same id, so consumers
    // that dedupe on it can; and the same table in another database (every service has its own
    // event_outbox) has another token, so its row 42 is another event id.
    return out + "'" + table_base + "-' || (SELECT value FROM " + meta_table +
           " WHERE name = 'adoption_token') || '-' || CAST(" + p + c[kId] + " AS TEXT)" + close;
}

// Headers come from the payload only for an application row (no event_id) with no headers of its
// own, whose field is an object: only then does the field leave the payload. Anything else there
// (an array, a string) stays in the payload, where the consumer finds it as written.
std::string Sql::headers_from_payload(const std::string& p, bool lateral) const {
    const std::string head = p + c[kEventId] + " IS NULL AND " + p + c[kHeaders] + " IS NULL";
    if (postgres)
        return head + " AND jsonb_typeof(" + json(p, lateral) + " #> " + pg_path(headers_path) + ") = 'object'";
    // SQLite's AND does not promise to stop early, and json_type fails on text that is not JSON.
    return "(CASE WHEN " + head + " THEN CASE WHEN json_valid(" + p + c[kPayload] + ") THEN json_type(" + p +
           c[kPayload] + ", " + sqlite_path(headers_path) + ") = 'object' END END)";
}

std::string Sql::payload(const std::string& p) const {
    const std::string& pa = c[kPayload];
    if (headers_path.empty()) return p + pa;
    const bool lateral = !p.empty() && lateral_json();
    if (postgres)
        return "CASE WHEN " + headers_from_payload(p, lateral) + " THEN CAST(" + json(p, lateral) + " #- " +
               pg_path(headers_path) + " AS TEXT) ELSE CAST(" + p + pa + " AS TEXT) END";
    return "CASE WHEN " + headers_from_payload(p, lateral) + " THEN json_remove(" + p + pa + ", " +
           sqlite_path(headers_path) + ") ELSE " + p + pa + " END";
}

// The row's own headers text (NULL: none), a line feed, and the mapped columns' values as a JSON
// array: the own headers are passed on as they are, never parsed here (one row's malformed
// headers text is that row's problem, parked by the claim, not an error of the whole statement),
// and a JSON array built by the database never holds a raw line feed, so the last one separates.
std::string Sql::headers(const std::string& p) const {
    if (header_columns.empty()) return own_headers(p);
    std::string values;
    for (const auto& col : header_columns) values += (values.empty() ? "" : ", ") + ("CAST(" + p + col + " AS TEXT)");
    if (postgres)
        return "COALESCE(CAST(" + own_headers(p) + " AS TEXT), '') || chr(10) || CAST(json_build_array(" + values +
               ") AS TEXT)";
    return "COALESCE(" + own_headers(p) + ", '') || char(10) || json_array(" + values + ")";
}

std::string Sql::own_headers(const std::string& p) const {
    const std::string& pa = c[kPayload];
    if (headers_path.empty()) return p + c[kHeaders];
    const bool lateral = !p.empty() && lateral_json();
    if (postgres)
        return "CASE WHEN " + headers_from_payload(p, lateral) + " THEN CAST(" + json(p, lateral) + " #> " +
               pg_path(headers_path) + " AS TEXT) ELSE CAST(" + p + c[kHeaders] + " AS TEXT) END";
    return "CASE WHEN " + headers_from_payload(p, lateral) + " THEN json_extract(" + p + pa + ", " +
           sqlite_path(headers_path) + ") ELSE " + p + c[kHeaders] + " END";
}

std::string scan_by_shard(const Sql& sql, const std::string& shards, const std::string& shard_of_c) {
    if (shards.empty()) return {};
    const auto& c = sql.c;
    // The same columns and blocks flag as Statements::scan, over the LATERAL's alias r.
    const std::string blocks = "CASE WHEN r." + c[kNextAttemptAt] + " > :now1 OR r." + c[kLeaseUntil] +
                               " > :now2 THEN 1 ELSE 0 END";
    return "SELECT CAST(r." + c[kId] + " AS TEXT), r." + c[kKey] + ", " + blocks + " FROM (" + shards +
           ") AS o CROSS JOIN LATERAL (SELECT * FROM " + sql.table + " c WHERE c." + c[kPipeline] + " = :p AND c." +
           c[kState] + " = 'pending' AND " + shard_of_c + " = o.shard AND c." + c[kId] + " > :after AND c." + c[kId] +
           " <= :upto ORDER BY c." + c[kId] + " LIMIT :lim) AS r ORDER BY r." + c[kId] + " LIMIT :lim2";
}

Statements::Statements(const Sql& sql) {
    const auto& T = sql.table;
    const auto& c = sql.c;
    // Fragments several statements share, written once so that they cannot drift apart.
    // A pipeline's rows in one state, by id: the caller adds the id condition after "r.<id> ".
    const auto rows_in = [&](const char* state) {
        return " WHERE r." + c[kPipeline] + " = :p AND r." + c[kState] + " = '" + state + "' AND r." + c[kId] + " ";
    };
    const std::string by_id_limited = " ORDER BY r." + c[kId] + " LIMIT :lim";
    // Whether a pending row holds back the later rows of its key: waiting for a retry or leased
    // (to anyone, us included: a batch whose settlement failed stays leased, and its key must not
    // be overtaken meanwhile). The per-row lease columns are no longer written (leases live in
    // <table>_leases since schema version 3); a lease an older engine wrote there is still
    // honoured until it expires.
    const std::string blocks = "CASE WHEN r." + c[kNextAttemptAt] + " > :now1 OR r." + c[kLeaseUntil] +
                               " > :now2 THEN 1 ELSE 0 END";
    // A settled row no longer carries a column lease (one an engine on schema version 2 wrote).
    const std::string no_column_lease = c[kLeaseOwner] + " = NULL, " + c[kLeaseUntil] + " = NULL";

    insert = "INSERT INTO " + T + " (" + c[kEventId] + ", " + c[kPipeline] + ", " + c[kTopic] + ", " + c[kKey] + ", " +
             c[kPayload] + ", " + c[kHeaders] + ", " + c[kEventType] + ", " + c[kCorrelationId] + ", " + c[kFlags] +
             ", " + c[kCreatedAt] + ", " + c[kAttempts] + ", " + c[kNextAttemptAt] + ", " + c[kState] +
             (sql.shard_column.empty() ? "" : ", " + sql.shard_column) +
             ") VALUES (:ev, :pl, :tp, :ky, :pa, :hd, :et, :ci, :fl, :ca, 0, 0, 'pending'" +
             (sql.shard_value.empty() ? "" : ", " + sql.shard_value) + ") ON CONFLICT (" + c[kEventId] +
             ") DO NOTHING";
    count_pending = "SELECT COUNT(*) FROM (SELECT 1 FROM " + T + " WHERE " + c[kPipeline] + " = :p AND " + c[kState] +
                    " = 'pending' LIMIT :lim) AS x";
    // The head of a pipeline's pending rows in id order, narrow: what claim() needs to decide
    // which rows it may hand out.
    const std::string narrow = "SELECT CAST(r." + c[kId] + " AS TEXT), r." + c[kKey] + ", " + blocks + " FROM " + T +
                               " r" + rows_in("pending");
    scan = narrow + "> :after AND r." + c[kId] + " <= :upto" + by_id_limited;
    scan_ids = narrow;  // + in_ids
    // The same head, whole rows: a claim's first (and usually only) read.
    head = "SELECT " + sql.select_columns("r") + ", " + blocks + " FROM " + sql.from("r") + rows_in("pending") +
           "> :after" + by_id_limited;
    due = "SELECT 1 FROM " + T + " WHERE " + c[kPipeline] + " = :p AND " + c[kState] + " = 'pending' AND " +
          c[kNextAttemptAt] + " <= :now1 AND (" + c[kLeaseUntil] + " IS NULL OR " + c[kLeaseUntil] +
          " <= :now2) LIMIT 1";
    // Settling statements name rows this instance holds a live lease on (checked under the lease
    // lock, end_leases), so they need no owner condition.
    delete_ok = "DELETE FROM " + T + " WHERE " + c[kId] + " ";
    mark_ok = "UPDATE " + T + " SET " + c[kState] + " = 'published', " + c[kPublishedAt] + " = :now, " +
              no_column_lease + " WHERE " + c[kId] + " ";
    claimed = "SELECT " + sql.select_columns("r") + " FROM " + sql.from("r") + " WHERE r." + c[kState] +
              " = 'pending' AND r." + c[kId] + " ";  // + in_ids + ORDER BY
    attempts = "SELECT CAST(" + c[kId] + " AS TEXT), " + c[kAttempts] + " FROM " + T + " WHERE " + c[kId] + " ";
    const std::string one_more_attempt = "UPDATE " + T + " SET " + c[kAttempts] + " = " + c[kAttempts] + " + 1, ";
    retry = one_more_attempt + c[kNextAttemptAt] + " = :next, " + c[kLastError] + " = :err, " + no_column_lease +
            ", " + c[kState] + " = CASE WHEN :max1 > 0 AND " + c[kAttempts] +
            " + 1 >= :max2 THEN 'dead' ELSE 'pending' END WHERE " + c[kId] + " = :id";
    reject = one_more_attempt + c[kLastError] + " = :err, " + no_column_lease + ", " + c[kState] + " = 'dead' WHERE " +
             c[kId] + " = :id";
    stats = "SELECT COUNT(CASE WHEN " + c[kState] + " = 'pending' THEN 1 END), COUNT(CASE WHEN " + c[kState] +
            " = 'pending' AND " + c[kLeaseUntil] + " > :now THEN 1 END), COUNT(CASE WHEN " + c[kState] +
            " = 'dead' THEN 1 END), MIN(CASE WHEN " + c[kState] + " = 'pending' THEN " + c[kCreatedAt] + " END) FROM " +
            T + " WHERE " + c[kPipeline] + " = :p";
    // Per key, how many rows are pending (leased and backing-off ones included): the host keeps a
    // key sticky until that many of its rows are settled, not just the first.
    keys = "SELECT " + c[kKey] + ", COUNT(*) FROM " + T + " WHERE " + c[kPipeline] + " = :p AND " + c[kState] +
           " = 'pending' AND " + c[kKey] + " IS NOT NULL GROUP BY " + c[kKey];
    dead = "SELECT " + sql.select_columns("r") + " FROM " + sql.from("r") + rows_in("dead") + "> :after" +
           by_id_limited;
    const std::string dead_of_pipeline = " WHERE " + c[kPipeline] + " = :p AND " + c[kState] + " = 'dead'";
    const std::string replay = "UPDATE " + T + " SET " + c[kState] + " = 'pending', " + c[kAttempts] + " = 0, " +
                               c[kNextAttemptAt] + " = 0, " + no_column_lease + dead_of_pipeline;
    replay_all = replay;
    // By the id the row is read with, so a dead letter of an adopted row is found by the id it was listed with.
    // The event_id column's own test comes first and alone, so the unique index on it finds a row
    // Spillway appended; only the application's rows (event_id NULL) are read for a derived id.
    const std::string by_event_id = " AND (" + c[kEventId] + " = :ev1 OR (" + c[kEventId] + " IS NULL AND " +
                                    sql.derived_event_id("") + " = :ev2))";
    replay_one = replay + by_event_id;
    const std::string purge = "DELETE FROM " + T + dead_of_pipeline;
    purge_all = purge;
    purge_one = purge + by_event_id;
    purge_published = "DELETE FROM " + T + " WHERE " + c[kId] + " IN (SELECT " + c[kId] + " FROM " + T + " WHERE " +
                      c[kState] + " = 'published' AND " + c[kPublishedAt] + " < :cut LIMIT :lim)";

    // One row per claimed batch: who holds it, until when, and its row ids (encode_ids text).
    const std::string& L = leases_table = T.substr(0, T.size() - 1) + "_leases\"";
    lease_insert = "INSERT INTO " + L + " (lease_owner, pipeline, until_us, row_ids) VALUES (:me, :p, :until, :ids)" +
                   " RETURNING CAST(id AS TEXT)";
    const std::string live = "SELECT CAST(id AS TEXT), row_ids FROM " + L + " WHERE until_us > ";
    live_leases = live + ":now";
    live_leases_at = live;  // + a number
    leased_count = live + ":now AND pipeline = :p";
    lease_end = "DELETE FROM " + L + " WHERE until_us > :now AND id ";  // + in_ids
    lease_sweep = "DELETE FROM " + L + " WHERE until_us <= :now";
    lease_owners = "SELECT DISTINCT lease_owner FROM " + L + " WHERE until_us > :now";
    lease_drop_owner = "DELETE FROM " + L + " WHERE lease_owner = :o RETURNING CAST(id AS TEXT)";

    // The whole of a claim() in one statement (PostgreSQL): the live leases' rows, the head (ids
    // and keys only), the holdback, the lease row and the picked rows whole. Run after the claim
    // lock in the same transaction and query (claim_in_one_trip), so its snapshot sees every claim
    // committed before the lock was ours; the lock is taken only when a row is due, which the
    // setting spillway.claim says (otherwise the head is empty). A claim_next skips the rows it
    // takes as settled (:skip), as the Picker does: they neither go nor hold back. The holdback is the Picker's rule
    // as a window: a row waits when it, or an earlier row of its key in the head, blocks (backoff,
    // a column lease, a live lease); a keyless row waits only on itself. The last row of the
    // answer has no id: it carries how many rows the head read and the largest id it looked at.
    if (sql.postgres) {
        std::string nulls;
        for (int i = 0; i < 13; ++i) nulls += "NULL, ";
        one_trip_claim =
            "WITH leased AS (SELECT CAST(unnest(CAST(l.row_ids AS BIGINT[])) AS BIGINT) AS rid FROM " + L +
            " l WHERE l.until_us > :now1), "
            "head AS (SELECT r." + c[kId] + " AS id, r." + c[kKey] + " AS k, (" + blocks +
            " = 1 OR r." + c[kId] + " IN (SELECT rid FROM leased)) AS b FROM " + T + " r" + rows_in("pending") +
            "> 0 AND r." + c[kId] + " <> ALL(CAST(:skip AS BIGINT[])) AND current_setting('spillway.claim', true) = '1'" +
            by_id_limited + "), "
            "judged AS (SELECT id, CASE WHEN k IS NULL THEN b ELSE bool_or(b) OVER (PARTITION BY k ORDER BY id "
            "ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) END AS held FROM head), "
            "picked AS (SELECT id FROM judged WHERE NOT held ORDER BY id LIMIT :want), "
            "lease AS (INSERT INTO " + L + " (lease_owner, pipeline, until_us, row_ids) SELECT CAST(:me AS TEXT), "
            "CAST(:p AS TEXT), CAST(:until AS BIGINT), '{' || string_agg(CAST(id AS TEXT), ',' ORDER BY id) || '}' "
            "FROM picked HAVING count(*) > 0 RETURNING CAST(id AS TEXT) AS id) "
            "SELECT " + sql.select_columns("r") + ", (SELECT id FROM lease), NULL, NULL FROM " + sql.from("r") +
            " WHERE r." + c[kId] + " IN (SELECT id FROM picked) "
            "UNION ALL SELECT " + nulls + "NULL, CAST((SELECT count(*) FROM head) AS TEXT), "
            "CAST((SELECT max(id) FROM head) AS TEXT)";
        // The same claim as the session's claim function makes it (postgres_store.cpp): the head
        // whole, each row with whether it blocks (backoff, a column lease, a live lease), in one
        // plain statement; the function applies the Picker's rule to it in a loop. (The window,
        // sorts and CTE scans above cost the server several times the statements they replace.)
        trickle_head = "SELECT " + sql.select_columns("r") + ", (" + blocks + " = 1 OR r." + c[kId] +
                       " = ANY(COALESCE((SELECT array_agg(x) FROM (SELECT CAST(unnest(CAST(l.row_ids AS BIGINT[])) "
                       "AS BIGINT) AS x FROM " + L + " l WHERE l.until_us > :now1) AS s), '{}'))) FROM " +
                       sql.from("r") + rows_in("pending") + "> 0 AND r." + c[kId] +
                       " <> ALL(CAST(:skip AS BIGINT[]))" + by_id_limited;
        // The lease ends and its rows go together, or neither when the lease is no longer live (it
        // ran out: the rows may be someone else's now). Committed asynchronously, as the
        // statements' completion is (begin_settle_sql): a crash may forget it, and the rows go
        // out again (at-least-once), never lost.
        one_trip_settle =
            "WITH sc AS (SELECT set_config('synchronous_commit', 'off', true) AS v), "
            "l AS (DELETE FROM " + L + " WHERE id = :lid AND until_us > :now RETURNING id), "
            "d AS (DELETE FROM " + T + " WHERE " + c[kId] + " = ANY(CAST(:ids AS BIGINT[])) AND EXISTS (SELECT 1 FROM l) "
            "RETURNING 1) SELECT (SELECT count(*) FROM l) + 0 * (SELECT count(*) FROM sc), (SELECT count(*) FROM d)";
    }
}

void Statements::add_id_lists(const Sql& sql, const std::string& in_ids) {
    claimed += in_ids + " ORDER BY r." + sql.c[kId];
    scan_ids += in_ids + " ORDER BY r." + sql.c[kId];
}

}  // namespace spillway::plugins::outbox
