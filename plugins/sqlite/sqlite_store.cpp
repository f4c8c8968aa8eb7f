// The SQLite outbox store: the shared outbox logic over one SOCI session to a WAL-mode file.
//
// SQLite has one writer at a time, so every write transaction is BEGIN IMMEDIATE (it takes the
// write lock up front instead of failing half-way), waits up to busy_timeout for another process,
// and otherwise answers RETRY with SQLite's "database is locked". Within the process one session
// behind a mutex serialises the callers.
#include "single_guard.hpp"

#include <outbox_store.hpp>

#include <soci/sqlite3/soci-sqlite3.h>

#include <cctype>
#include <cstdint>
#include <set>
#include <string>

namespace spillway::plugins::sqlite {

using outbox::Col;

namespace {

const char* column_type(Col c) {
    switch (c) {
        case outbox::kEventId: return "TEXT NOT NULL";
        case outbox::kPipeline: return "TEXT NOT NULL DEFAULT ''";
        case outbox::kTopic: return "TEXT NOT NULL DEFAULT ''";
        case outbox::kFlags: return "INTEGER NOT NULL DEFAULT 0";
        // ALTER TABLE ADD COLUMN only takes constant defaults; CREATE TABLE gets the clock.
        case outbox::kCreatedAt: return "INTEGER NOT NULL DEFAULT 0";
        case outbox::kAttempts: return "INTEGER NOT NULL DEFAULT 0";
        case outbox::kNextAttemptAt: return "INTEGER NOT NULL DEFAULT 0";
        case outbox::kState: return "TEXT NOT NULL DEFAULT 'pending'";
        case outbox::kLeaseUntil:
        case outbox::kPublishedAt: return "INTEGER";
        default: return "TEXT";
    }
}

// The options only this store has; the shared ones are outbox::Options. Defaults and
// descriptions are the table's (the engine fills unset options from it).
struct Settings {
    std::string path;
    int64_t busy_timeout_ms;
};

const sdk::Options<Settings> kSqliteOptions{
    sdk::option<&Settings::path>("path", nullptr, "the SQLite database file, created if missing; opened in WAL mode")
        .required(),
    sdk::duration<&Settings::busy_timeout_ms>(
        "busy_timeout", "5s",
        "how long a write waits for another process's lock before the call answers RETRY (`sqlite: append: "
        "database is locked`)"),
};

}  // namespace

class SqliteStore final : public outbox::OutboxStore {
public:
    explicit SqliteStore(sdk::Host host)
        : OutboxStore(host, "sqlite", false, {kSqliteOptions.data(), kSqliteOptions.size()}),
          settings_(kSqliteOptions.read(host)) {
        if (settings_.path.empty()) throw sdk::ConfigError("path", "path must name the SQLite database file");
        if (settings_.path.find('"') != std::string::npos)
            throw sdk::ConfigError("path", "path must not contain '\"'");
        if (!options().adopt_order_by.empty())
            throw sdk::ConfigError("adopt_order_by",
                                   "adopt_order_by applies when the migration adds columns.id, which SQLite cannot: "
                                   "an adopted SQLite table keeps its INTEGER PRIMARY KEY, and rows go in its order");
    }

    void stop(int64_t timeout_ms) override {
        {
            std::lock_guard lock(guard_mutex_);
            guard_.reset();  // its lock files close: the holds go
        }
        OutboxStore::stop(timeout_ms);
    }
    void hold(std::string_view pipeline, sw_hold_mode mode, std::string_view member) override {
        if (mode == SW_HOLD_SHARDS)
            throw sdk::Error(SW_INVALID_CONFIG, "sqlite: coordination = \"shards\" needs a store every engine reaches; "
                                                "a SQLite file is one host's (use a postgres store)");
        // A private in-memory database cannot be shared: nothing to keep another engine off.
        if (settings_.path == ":memory:") return;
        std::lock_guard lock(guard_mutex_);
        if (!guard_) guard_ = std::make_unique<SingleGuard>(settings_.path);
        guard_->hold(std::string(pipeline), mode, outbox::engine_name(member));
    }

protected:
    void connect() override {
        auto s = std::make_unique<soci::session>(soci::sqlite3, "db=\"" + settings_.path + "\"");
        // The busy timeout first: switching a new file to WAL needs a lock that another process
        // (or store instance) starting at the same moment may hold.
        *s << "PRAGMA busy_timeout = " + std::to_string(settings_.busy_timeout_ms);
        // Readers never block the writer and a crash mid-write loses nothing committed.
        std::string mode;
        *s << "PRAGMA journal_mode = WAL", soci::into(mode);
        *s << "PRAGMA foreign_keys = OFF";
        std::lock_guard lock(mutex_);
        session_ = std::move(s);
    }
    void disconnect() override {
        std::lock_guard lock(mutex_);
        session_.reset();
    }
    outbox::Conn acquire() override {
        outbox::Conn c;
        c.lock = std::unique_lock<std::mutex>(mutex_);
        if (!session_) throw sdk::Error(SW_RETRY, "sqlite: the store is not started");
        c.session = session_.get();
        return c;
    }
    const char* begin_write_sql() const override { return "BEGIN IMMEDIATE"; }
    const char* serial_key_ddl() const override { return "INTEGER PRIMARY KEY"; }
    std::string in_ids(const std::string& param) const override {
        return "IN (SELECT value FROM json_each(" + param + "))";
    }
    std::string encode_ids(std::span<const long long> ids) const override {
        std::string out = "[";
        for (size_t i = 0; i < ids.size(); ++i) {
            if (i) out += ',';
            out += std::to_string(ids[i]);
        }
        return out + "]";
    }
    std::string begin_lease_change_sql() const override { return "BEGIN IMMEDIATE"; }  // one writer at a time
    void lock_migrations(soci::session&) override {}

    void create_schema(soci::session& s) override {
        const auto& c = sql().c;
        const std::string& T = sql().table;
        std::string ddl = "CREATE TABLE IF NOT EXISTS " + T + " (" + c[outbox::kId] + " INTEGER PRIMARY KEY AUTOINCREMENT";
        for (size_t k = 1; k < outbox::kColumnCount; ++k) {
            ddl += ", " + c[k] + " ";
            ddl += k == outbox::kCreatedAt
                       ? "INTEGER NOT NULL DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER))"
                       : column_type(Col(k));
        }
        // Adopting an existing table: add the bookkeeping columns it lacks.
        std::set<std::string> have;
        {
            std::vector<std::string> names(256);
            std::string table = options().table;
            s << "SELECT name FROM pragma_table_info(:t)", soci::use(table, "t"), soci::into(names);
            if (s.got_data()) have.insert(names.begin(), names.end());
        }
        if (have.empty()) {
            s << ddl + ")";
            note("created table " + options().table);
            create_indexes_v1(s);
            return;
        }
        require_integer_primary_key(s);
        adopt_columns(s, [&](size_t k) { return have.count(options().columns[k]) > 0; }, &column_type, "");
    }

    // SQLite cannot change a column's default: a trigger gives the rows the application inserts
    // without a pipeline to adopt_pipeline, right after the insert, in its transaction.
    void adopt(soci::session& s) override {
        const std::string& adopt_to = options().adopt_pipeline;
        const std::string name = sql().table_base + "_adopt_pipeline";
        const auto& c = sql().c;
        const std::string want =
            adopt_to.empty() ? std::string()
                             : "CREATE TRIGGER \"" + name + "\" AFTER INSERT ON " + sql().table + " WHEN NEW." +
                                   c[outbox::kPipeline] + " = '' BEGIN UPDATE " + sql().table + " SET " +
                                   c[outbox::kPipeline] + " = '" + adopt_to + "' WHERE " + c[outbox::kId] + " = NEW." +
                                   c[outbox::kId] + "; END";
        std::string have;
        soci::indicator ind = soci::i_null;
        std::string n = name;
        s << "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = :n", soci::use(n, "n"), soci::into(have, ind);
        if (!s.got_data() || ind != soci::i_ok) have.clear();
        if (have == want) return;
        if (!have.empty()) s << "DROP TRIGGER \"" + name + "\"";
        if (!want.empty()) {
            s << want;
            note("rows inserted without a pipeline go to pipeline '" + adopt_to + "' (trigger " + name + ")");
        } else {
            note("trigger " + name + " dropped (adopt_pipeline is not set)");
        }
    }

    // SQLite finds a quoted column name regardless of case, as pragma_table_info is asked here.
    bool has_column(soci::session& s, const std::string& column) override {
        std::string table = options().table, name = column;
        int n = 0;
        s << "SELECT COUNT(*) FROM pragma_table_info(:t) WHERE name = :n COLLATE NOCASE", soci::use(table, "t"),
            soci::use(name, "n"), soci::into(n);
        return n > 0;
    }

    // Spillway's row id must never change: derived event ids, leases and the claim order (each
    // key's delivery order) hang on it. Only an INTEGER PRIMARY KEY column is that in SQLite: a
    // table's plain rowid may be renumbered by VACUUM, and SQLite cannot add a key column to an
    // existing table. Its order is the order rows were inserted in (AUTOINCREMENT or not: a new
    // row gets a larger id than every row there), so no adopt_order_by is needed.
    void require_integer_primary_key(soci::session& s) {
        const std::string& id = options().columns[outbox::kId];
        std::string table = options().table, name = id, type;
        int pk = 0, pk_columns = 0;
        s << "SELECT COUNT(*) FROM pragma_table_info(:t) WHERE pk > 0", soci::use(table, "t"), soci::into(pk_columns);
        soci::indicator ind = soci::i_null;
        s << "SELECT type, pk FROM pragma_table_info(:t) WHERE name = :n", soci::use(table, "t"), soci::use(name, "n"),
            soci::into(type, ind), soci::into(pk);
        const bool found = s.got_data();
        for (char& ch : type) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
        if (found && type == "INTEGER" && pk == 1 && pk_columns == 1) {
            std::string ddl;
            soci::indicator ddl_ind = soci::i_null;
            s << "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = :t", soci::use(table, "t"),
                soci::into(ddl, ddl_ind);
            for (char& ch : ddl) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
            if (ddl.find("AUTOINCREMENT") == std::string::npos)
                note(id + " has no AUTOINCREMENT: SQLite gives a new row the id of the newest row deleted before it, "
                          "so an event id made from the row id may repeat (use event_id_field, or keep_published)");
            return;
        }
        throw sdk::ConfigError(
            "columns.id",
            "columns.id: " + options().table + "." + id +
                (found ? " is not the table's INTEGER PRIMARY KEY"
                       : " is not a column of the table" +
                             std::string(id == "rowid" || id == "oid" || id == "_rowid_"
                                             ? " (a plain rowid may be renumbered by VACUUM)"
                                             : "")) +
                ": Spillway adopts a SQLite table by its INTEGER PRIMARY KEY column (row ids that never change), "
                "and SQLite cannot add one to an existing table; give the table one (rebuild it) and name it here");
    }

    void upgrade_schema(soci::session& s, int version) override {
        if (version == 2) drop_key_index_v2(s, "");
    }

private:
    const Settings settings_;
    std::mutex guard_mutex_;
    std::unique_ptr<SingleGuard> guard_;  // made by the first hold
    std::mutex mutex_;
    std::unique_ptr<soci::session> session_;
};

}  // namespace spillway::plugins::sqlite

namespace {
const spillway::plugins::outbox::StoreOptions kOptions(spillway::plugins::sqlite::kSqliteOptions);
}  // namespace

SW_EXPORT_STORE(spillway::plugins::sqlite::SqliteStore, "sqlite", "1.2.0",
                "durable outbox in a SQLite file (SOCI, WAL): leases, per-key order, dead letters",
                kOptions, SW_PLUGIN_THREAD_SAFE)
