// The outbox schema: the versioned migrations, the adoption that follows the options, and the
// check at start when migrating is left to `spillway outbox migrate`.
#include "outbox_store.hpp"
#include "store_internal.hpp"

#include <cstdio>
#include <random>
#include <string>

namespace spillway::plugins::outbox {

namespace {

std::string migrations_table(const Sql& sql) { return sql.table.substr(0, sql.table.size() - 1) + "_migrations\""; }

// The highest schema version applied to the table, 0 for none.
int applied_version(soci::session& s, const std::string& versions) {
    int current = 0;
    soci::indicator ind = soci::i_null;
    s << "SELECT MAX(version) FROM " + versions, soci::into(current, ind);
    if (ind != soci::i_ok) current = 0;
    return current;
}

}  // namespace

// Versioned migrations in <table>_migrations; each version runs once, all under one lock, so
// concurrent instances starting together do not race. Then the adoption, which follows the
// options and so runs every time.
void OutboxStore::run_migrations() {
    with_session("migrate", [&](soci::session& s) {
        Tx tx(s, begin_write_sql());
        lock_migrations(s);
        const std::string versions = migrations_table(sql_);
        s << "CREATE TABLE IF NOT EXISTS " + versions + " (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)";
        const int current = applied_version(s, versions);
        static const char* const kWhat[] = {"", "outbox table and indexes", "per-key index dropped",
                                            "lease table ", "adoption token in ", "shard coordination",
                                            "stored shard column"};
        for (int version = current + 1; version <= kSchemaVersion; ++version) {
            if (version == 1) create_schema(s);
            if (version == 3) create_leases_v3(s);
            if (version == 4) create_meta_v4(s);
            if (version > 1) upgrade_schema(s, version);
            long long now = clock_us();
            s << "INSERT INTO " + versions + " (version, applied_at) VALUES (:v, :t)", soci::use(version, "v"),
                soci::use(now, "t");
            note("schema version " + std::to_string(version) + " applied (" + kWhat[version] +
                 (version == 3 ? opts_.table + "_leases" : version == 4 ? opts_.table + "_meta" : std::string()) +
                 ")");
        }
        adopt(s);
        adopt_rows_without_pipeline(s);
        check_header_columns(s);
        tx.commit();
    });
}

// Rows an application wrote without a pipeline: taken by adopt_pipeline when it is set, else
// reported, as no pipeline would ever relay them.
void OutboxStore::adopt_rows_without_pipeline(soci::session& s) {
    const auto& c = sql_.c;
    if (!opts_.adopt_pipeline.empty()) {
        // Every row without a pipeline that is still to be relayed, dead ones too (so replay
        // finds them under it). Published rows keep '' (nothing relays them again), and the
        // state condition lets the partial indexes answer this at every start instead of a
        // scan of the whole table, however many published rows it keeps.
        std::string p = opts_.adopt_pipeline;
        soci::statement st = (s.prepare << "UPDATE " + sql_.table + " SET " + c[kPipeline] + " = :p WHERE " +
                                               c[kPipeline] + " = '' AND " + c[kState] + " IN ('pending', 'dead')",
                              soci::use(p, "p"));
        st.execute(true);
        if (const long long n = st.get_affected_rows(); n > 0)
            note(std::to_string(n) + " row(s) without a pipeline adopted by pipeline '" + p + "'");
    } else {
        long long orphans = 0;
        s << "SELECT COUNT(*) FROM " + sql_.table + " WHERE " + c[kPipeline] + " = '' AND " + c[kState] +
                 " = 'pending'",
            soci::into(orphans);
        if (orphans > 0)
            host().warn(std::string(db_name_) + ": " + opts_.table + " has " + std::to_string(orphans) +
                        " pending row(s) without a pipeline, which no pipeline relays: set adopt_pipeline "
                        "to the pipeline that takes them");
    }
}

void OutboxStore::check_header_columns(soci::session& s) {
    for (const auto& [name, column] : opts_.header_columns)
        if (!has_column(s, column))
            throw sdk::ConfigError(std::string(kHeaderColumnsPrefix) + name,
                                   std::string(kHeaderColumnsPrefix) + name + ": " + opts_.table + " has no column '" +
                                       column + "' to read header '" + name + "' from");
}

void OutboxStore::check_migrated() {
    std::string missing;
    try {
        with_session("start", [&](soci::session& s) {
            const int current = applied_version(s, migrations_table(sql_));
            if (current < kSchemaVersion) {
                missing = "its schema is at version " + std::to_string(current) + " of " + std::to_string(kSchemaVersion);
            } else {
                missing = adoption_missing(s);
                check_header_columns(s);  // no migration adds it: the configuration is wrong
            }
        });
    } catch (const sdk::ConfigError&) {
        throw;
    } catch (const sdk::Error& e) {
        missing = std::string("it has no migrations yet (") + e.what() + ")";
    }
    if (!missing.empty())
        host().error(std::string(db_name_) + ": " + opts_.table + " is not migrated for this configuration: " + missing +
                     "; auto_migrate is false, so run `spillway outbox migrate` (until then its calls fail)");
}

void OutboxStore::note(const std::string& step) {
    host().info(std::string(db_name_) + ": " + opts_.table + ": " + step);
    std::lock_guard lock(notes_mutex_);
    notes_.push_back(step);
}

// The report goes back through the host's message channel, which an OK call otherwise leaves
// empty: what this call did and what the start before it did (auto_migrate), one step a line.
void OutboxStore::migrate() {
    run_migrations();
    std::string report;
    {
        std::lock_guard lock(notes_mutex_);
        for (const auto& n : notes_) report += (report.empty() ? "" : "\n") + n;
        notes_.clear();
    }
    if (!report.empty() && host().api() && host().api()->set_error) host().api()->set_error(host().ctx(), report.c_str());
}

void OutboxStore::adopt_columns(soci::session& s, const std::function<bool(size_t)>& has, const char* (*type)(Col),
                                std::string added) {
    const std::string& T = sql_.table;
    const auto& c = sql_.c;
    for (size_t k = 1; k < kColumnCount; ++k) {
        if (has(k)) continue;
        // The application's rows, there now and inserted later, have no event id: NULL, read as
        // the payload's event_id_field or one made from the row id (see Sql::event_id).
        s << "ALTER TABLE " + T + " ADD COLUMN " + c[k] + " " + (k == kEventId ? "TEXT" : type(Col(k)));
        added += (added.empty() ? "" : ", ") + opts_.columns[k];
    }
    note("adopted existing table " + opts_.table + (added.empty() ? "" : ", added columns: " + added));
    if (!has(kState) && has(kPublishedAt)) {
        soci::statement st = (s.prepare << "UPDATE " + T + " SET " + c[kState] + " = 'published' WHERE " +
                                               c[kPublishedAt] + " IS NOT NULL");
        st.execute(true);
        if (const long long n = st.get_affected_rows(); n > 0)
            note(std::to_string(n) + " row(s) with published_at set marked published");
    }
    create_indexes_v1(s);
}

void OutboxStore::create_indexes_v1(soci::session& s) {
    const std::string& T = sql_.table;
    const auto& c = sql_.c;
    const std::string& b = sql_.table_base;
    s << "CREATE UNIQUE INDEX IF NOT EXISTS \"" + b + "_event_id_uq\" ON " + T + " (" + c[kEventId] + ")";
    s << "CREATE INDEX IF NOT EXISTS \"" + b + "_pending_idx\" ON " + T + " (" + c[kPipeline] + ", " + c[kId] +
             ") WHERE " + c[kState] + " = 'pending'";
    s << "CREATE INDEX IF NOT EXISTS \"" + b + "_key_idx\" ON " + T + " (" + c[kPipeline] + ", " + c[kKey] + ", " +
             c[kId] + ") WHERE " + c[kState] + " = 'pending'";
    s << "CREATE INDEX IF NOT EXISTS \"" + b + "_settled_idx\" ON " + T + " (" + c[kPipeline] + ", " + c[kState] +
             ", " + c[kId] + ") WHERE " + c[kState] + " <> 'pending'";
}

void OutboxStore::drop_key_index_v2(soci::session& s, const std::string& qualifier) {
    s << "DROP INDEX IF EXISTS " + qualifier + "\"" + sql_.table_base + "_key_idx\"";
}

// A lease used to be two columns written on every claimed row: an UPDATE of the whole batch (on
// PostgreSQL a new version of every row, and its WAL) that cost as much as the DELETE after the
// send. One lease row per batch costs one small INSERT. Rows leased by an engine still on schema
// version 2 keep their column lease, which claims honour until it expires.
void OutboxStore::create_leases_v3(soci::session& s) {
    s << "CREATE TABLE IF NOT EXISTS " + statements_.leases_table + " (id " + serial_key_ddl() +
             ", lease_owner TEXT NOT NULL, pipeline TEXT NOT NULL, until_us BIGINT NOT NULL, row_ids TEXT NOT NULL)";
}

// The token is drawn here, once per table, and never changed after: derived event ids
// ("<table>-<token>-<row id>") stay the same across restarts and retries, and differ between two
// databases holding a table of the same name.
void OutboxStore::create_meta_v4(soci::session& s) {
    s << "CREATE TABLE IF NOT EXISTS " + sql_.meta_table + " (name TEXT PRIMARY KEY, value TEXT NOT NULL)";
    std::random_device rd;
    char token[40];
    std::snprintf(token, sizeof(token), "%08x%08x%08x%08x", static_cast<unsigned>(rd()), static_cast<unsigned>(rd()),
                  static_cast<unsigned>(rd()), static_cast<unsigned>(rd()));
    std::string value = token;
    s << "INSERT INTO " + sql_.meta_table + " (name, value) VALUES ('adoption_token', :v) ON CONFLICT (name) DO NOTHING",
        soci::use(value, "v");
}

}  // namespace spillway::plugins::outbox
