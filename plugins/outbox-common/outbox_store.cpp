#include "outbox_store.hpp"

#include "codec.hpp"

#include <csignal>
#include <cerrno>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <limits>
#include <random>
#include <unordered_set>

namespace spillway::plugins::outbox {

namespace {

constexpr size_t kFetchChunk = 1000;
// Readies `st` (uses and intos exchanged) to go to the server with its parameters in one round
// trip. A SOCI statement object is by default a named server-side statement: one round trip to
// prepare it and one to DEALLOCATE it besides the execute, three for a statement run once, as
// nearly all of ours are (measured in the server log: a claim and its completion were 23 round
// trips, 13 of them PREPARE and DEALLOCATE).
void prepare_once(soci::statement& st, const std::string& sql,
                  soci::details::statement_type type = soci::details::st_one_time_query) {
    st.alloc();
    st.prepare(sql, type);
    st.define_and_bind();
}
constexpr int64_t kLeaseSweepUs = 10'000'000;  // how often a claim deletes expired leases
constexpr long long kPurgePage = 1000;
// max_pending: an append that finds no room by the backlog bound counts the pending rows again at
// most this often (and at most a twentieth of the time), answering FULL in between.
constexpr int64_t kMinRecountUs = 100'000;

// A lease owner is "<host>-<pid>-<random>" (make_owner), the random part drawn once per process.
// Whether `owner` names a process of this host that no longer exists: only then may its leases be
// taken away before they run out. Another host's engine is taken to be alive, and so is this
// process (a second store instance on the same table shares its owner). The same host and pid
// with another random part is a predecessor that had this pid: a restarted container's engine
// often gets the pid its predecessor had (1, say).
bool owner_is_dead_here(const std::string& owner, const std::string& me) {
    const size_t rand_at = owner.rfind('-');
    if (rand_at == std::string::npos || rand_at == 0) return false;
    const size_t pid_at = owner.rfind('-', rand_at - 1);
    if (pid_at == std::string::npos) return false;
    const size_t my_rand = me.rfind('-');
    const size_t my_pid = my_rand == std::string::npos || my_rand == 0 ? std::string::npos : me.rfind('-', my_rand - 1);
    if (my_pid == std::string::npos || owner.compare(0, pid_at, me, 0, my_pid) != 0 || pid_at != my_pid) return false;
    long pid = 0;
    try {
        size_t used = 0;
        pid = std::stol(owner.substr(pid_at + 1, rand_at - pid_at - 1), &used);
        if (used != rand_at - pid_at - 1) return false;
    } catch (const std::exception&) {
        return false;
    }
    if (pid <= 0) return false;
    if (pid == static_cast<long>(getpid())) return owner != me;
    return kill(static_cast<pid_t>(pid), 0) == -1 && errno == ESRCH;
}

std::string make_owner() {
    char host[256] = {};
    if (gethostname(host, sizeof(host) - 1) != 0) std::snprintf(host, sizeof(host), "unknown");
    // One per process: every store instance of this process is one lease owner (see
    // owner_is_dead_here). Drawn after a fork anew, as the pid changed.
    static std::mutex mutex;
    static pid_t drawn_for = -1;
    static unsigned suffix = 0;
    {
        std::lock_guard lock(mutex);
        if (drawn_for != getpid()) {
            std::random_device rd;
            suffix = static_cast<unsigned>(rd());
            drawn_for = getpid();
        }
    }
    char buf[400];
    std::snprintf(buf, sizeof(buf), "%s-%d-%08x", host, static_cast<int>(getpid()), suffix);
    return buf;
}

// One line of a database message: soci appends the statement text after a newline.
std::string short_message(const std::exception& e) {
    std::string m = e.what();
    for (char& c : m)
        if (c == '\n' || c == '\r' || c == '\t') c = ' ';
    while (m.find("  ") != std::string::npos) m.erase(m.find("  "), 1);
    if (m.size() > 220) m.resize(220);
    return m;
}

std::mt19937_64& rng() {
    thread_local std::mt19937_64 gen{std::random_device{}()};
    return gen;
}

}  // namespace

// BEGIN on construction, ROLLBACK unless committed (a lost connection makes that a no-op).
class OutboxStore::Tx {
public:
    // An empty `begin`: the caller's next statement begins the transaction.
    Tx(soci::session& s, const std::string& begin) : s_(s) {
        if (!begin.empty()) s_ << begin;
    }
    ~Tx() {
        if (!done_) {
            try {
                s_ << "ROLLBACK";
            } catch (...) {
            }
        }
    }
    Tx(const Tx&) = delete;
    Tx& operator=(const Tx&) = delete;
    void commit() {
        s_ << "COMMIT";
        done_ = true;
    }

private:
    soci::session& s_;
    bool done_ = false;
};

// Column vectors for fetching up to `limit` rows at once, then the batch that owns the strings.
struct OutboxStore::RowSet {
    // SOCI 4.0.3's SQLite backend loses the row when a vector has one element, and reads 64-bit
    // integers into vectors truncated to 32 bits (also into strings, for INTEGER columns); so
    // vectors get at least two elements, and the 64-bit columns are selected CAST AS TEXT.
    explicit RowSet(size_t limit) : RowSet(limit, std::max<size_t>(limit, 2)) {}
    RowSet(size_t, size_t n)
        : id(n), created_at(n), flags(n), attempts(n), str(kStrings, std::vector<std::string>(n)),
          ind(kStrings, std::vector<soci::indicator>(n)), flags_ind(n), created_ind(n), attempts_ind(n) {}

    // Order of the string columns in select_columns.
    enum { kEv, kPl, kTp, kKy, kPa, kHd, kEt, kCi, kLe, kStrings };

    void bind(soci::statement& st) {
        st.exchange(soci::into(id));
        for (int k : {kEv, kPl, kTp, kKy, kPa, kHd, kEt, kCi}) st.exchange(soci::into(str[k], ind[k]));
        st.exchange(soci::into(flags, flags_ind));
        st.exchange(soci::into(created_at, created_ind));
        st.exchange(soci::into(attempts, attempts_ind));
        st.exchange(soci::into(str[kLe], ind[kLe]));
    }

    size_t size() const { return id.size(); }
    std::vector<long long> ids() const {
        std::vector<long long> out;
        for (const auto& s : id) out.push_back(std::stoll(s));
        return out;
    }

    // Keeps rows `picks` (ascending indexes) and drops the rest.
    void keep(const std::vector<size_t>& picks) {
        auto apply = [&](auto& v) {
            for (size_t w = 0; w < picks.size(); ++w)
                if (picks[w] != w) v[w] = std::move(v[picks[w]]);
            v.resize(picks.size());
        };
        apply(id), apply(created_at), apply(flags), apply(attempts), apply(flags_ind), apply(created_ind),
            apply(attempts_ind);
        for (auto& v : str) apply(v);
        for (auto& v : ind) apply(v);
    }
    // Appends the rows of `more` after these.
    void append(RowSet&& more) {
        auto apply = [](auto& v, auto& m) { v.insert(v.end(), std::make_move_iterator(m.begin()), std::make_move_iterator(m.end())); };
        apply(id, more.id), apply(created_at, more.created_at), apply(flags, more.flags), apply(attempts, more.attempts);
        apply(flags_ind, more.flags_ind), apply(created_ind, more.created_ind), apply(attempts_ind, more.attempts_ind);
        for (size_t k = 0; k < str.size(); ++k) apply(str[k], more.str[k]), apply(ind[k], more.ind[k]);
    }

    // Rows that could not be decoded: row id and why.
    using Malformed = std::vector<std::pair<long long, std::string>>;
    // Moves the strings out: a RowSet is read once. Rows that cannot be decoded are left out and
    // listed in `malformed`; without it (a listing) they are kept as far as they decode.
    std::unique_ptr<sdk::Batch> to_batch(const char* db, Malformed* malformed = nullptr);

    std::vector<std::string> id, created_at;
    std::vector<int> flags, attempts;
    std::vector<std::vector<std::string>> str;
    std::vector<std::vector<soci::indicator>> ind;
    std::vector<soci::indicator> flags_ind, created_ind, attempts_ind;
};

namespace {

// A claimed or listed batch: owns every string its sw_event spans point at.
struct RowBatch : sdk::Batch {
    struct Row {
        std::string event_id, pipeline, topic, key, payload, event_type, correlation_id, last_error;
        bool has_key = false, has_event_type = false, has_correlation_id = false, has_last_error = false;
        std::vector<std::pair<std::string, std::string>> headers;
        std::vector<sw_header> header_spans;
    };
    std::vector<Row> rows;
    // Set on a claimed batch (not on a list of dead letters): where claim_next goes on from.
    std::string claimed_for;  // the pipeline
    long long cursor = 0;
    std::vector<long long> after_rows;  // claim_next: the rows of the batch this one follows
};

}  // namespace

std::unique_ptr<sdk::Batch> OutboxStore::RowSet::to_batch([[maybe_unused]] const char* db, Malformed* malformed) {
    auto batch = std::make_unique<RowBatch>();
    const size_t n = size();
    batch->rows.resize(n);
    batch->events.resize(n);
    auto text = [&](int k, size_t i) -> std::string {
        return ind[k][i] == soci::i_ok ? std::move(str[k][i]) : std::string();
    };
    auto present = [&](int k, size_t i) { return ind[k][i] == soci::i_ok; };
    // A claimed row that cannot be decoded is the caller's to park (`malformed`); a listed one
    // (a dead letter) is shown as stored, without what could not be decoded: its last_error says why.
    auto bad = [&](size_t i, const std::string& why) {
        if (!malformed) return false;
        malformed->emplace_back(std::stoll(id[i]), why);
        return true;
    };
    size_t w = 0;  // rows kept so far
    for (size_t i = 0; i < n; ++i) {
        RowBatch::Row& r = batch->rows[w];
        r = RowBatch::Row{};
        const int fl = flags_ind[i] == soci::i_ok ? flags[i] : 0;
        r.event_id = text(kEv, i);
        r.pipeline = text(kPl, i);
        r.topic = text(kTp, i);
        r.has_key = present(kKy, i);
        r.key = text(kKy, i);
        r.payload = text(kPa, i);
        if (fl & SW_EVENT_PAYLOAD_BINARY) {
            try {
                r.payload = base64_decode(r.payload);
            } catch (const std::exception& e) {
                if (bad(i, std::string("binary payload is not valid base64: ") + e.what())) continue;
            }
        }
        try {
            if (present(kHd, i)) r.headers = decode_headers(str[kHd][i]);
        } catch (const std::exception& e) {
            if (bad(i, e.what())) continue;
            r.headers.clear();
        }
        r.has_event_type = present(kEt, i);
        r.event_type = text(kEt, i);
        r.has_correlation_id = present(kCi, i);
        r.correlation_id = text(kCi, i);
        r.has_last_error = present(kLe, i);
        r.last_error = text(kLe, i);
        for (const auto& [name, value] : r.headers) r.header_spans.push_back({sdk::bytes(name), sdk::bytes(value)});

        sw_event& ev = batch->events[w++];
        ev = sw_event{};
        ev.struct_size = sizeof(sw_event);
        ev.flags = static_cast<uint32_t>(fl);
        ev.row_id = std::stoll(id[i]);
        ev.event_id = sdk::bytes(r.event_id);
        ev.pipeline = sdk::bytes(r.pipeline);
        ev.topic = sdk::bytes(r.topic);
        ev.key = r.has_key ? sdk::bytes(r.key) : sw_bytes{nullptr, 0};
        ev.payload = sdk::bytes(r.payload);
        ev.event_type = r.has_event_type ? sdk::bytes(r.event_type) : sw_bytes{nullptr, 0};
        ev.correlation_id = r.has_correlation_id ? sdk::bytes(r.correlation_id) : sw_bytes{nullptr, 0};
        ev.headers = r.header_spans.empty() ? nullptr : r.header_spans.data();
        ev.n_headers = r.header_spans.size();
        ev.created_at_us = created_ind[i] == soci::i_ok ? std::stoll(created_at[i]) : 0;
        ev.attempts = attempts_ind[i] == soci::i_ok ? attempts[i] : 0;
        ev.last_error = r.has_last_error ? sdk::bytes(r.last_error) : sw_bytes{nullptr, 0};
    }
    batch->rows.resize(w);  // shrinking keeps the kept rows (and the spans into them) in place
    batch->events.resize(w);
    return batch;
}

OutboxStore::OutboxStore(sdk::Host host, const char* db_name, bool allow_schema)
    : Store(host), opts_(Options::read(host)), db_name_(db_name), owner_(make_owner()) {
    // Derived names (<table>_migrations, <table>_pending_idx, ...) must stay within 63 characters.
    sql_.table = quote_name(opts_.table, "table", allow_schema, 40);
    sql_.table_base = opts_.table.substr(opts_.table.find('.') == std::string::npos ? 0 : opts_.table.find('.') + 1);
    for (size_t i = 0; i < kColumnCount; ++i) sql_.c[i] = "\"" + opts_.columns[i] + "\"";
    sql_.postgres = std::string_view(db_name) == "postgres";
    sql_.json_fn = sql_.table.substr(0, sql_.table.size() - 1) + "_json\"";
    sql_.event_id_path = opts_.event_id_field;
    sql_.headers_path = opts_.headers_field;
    sql_.meta_table = sql_.table.substr(0, sql_.table.size() - 1) + "_meta\"";

    statements_ = Statements(sql_);
}

template <class F>
auto OutboxStore::with_session(const char* what, F&& f) -> decltype(f(std::declval<soci::session&>())) {
    Conn conn;
    try {
        conn = acquire();
    } catch (const sdk::Error&) {
        throw;
    } catch (const std::exception& e) {
        fail(what, nullptr, e);
    }
    soci::session& s = *conn;
    ensure_connected(s, what);
    try {
        return f(s);
    } catch (const sdk::Error&) {
        throw;
    } catch (const std::exception& e) {
        fail(what, &s, e);
    }
}

void OutboxStore::fail(const char* what, soci::session* s, const std::exception& e) {
    failed(e);
    const std::string msg = std::string(db_name_) + ": " + what + ": " + short_message(e);
    bool lost = false;
    try {
        lost = s && !s->is_connected();
    } catch (...) {
        lost = true;
    }
    if (lost) {
        std::lock_guard lock(down_mutex_);
        down_ = true;
        down_message_ = msg;
    }
    throw sdk::Error(SW_RETRY, msg);
}

// A lost session is reopened at most once per backoff step (100 ms doubling to 5 s), so a dead
// database is not hammered by every caller; in between, callers get RETRY at once.
void OutboxStore::ensure_connected(soci::session& s, const char* what) {
    bool connected = false;
    try {
        connected = alive(s);
    } catch (...) {
    }
    if (connected) return;
    const int64_t now = host().monotonic_us();
    if (now < reconnect_not_before_us_.load()) {
        std::lock_guard lock(down_mutex_);
        throw sdk::Error(SW_RETRY, std::string(db_name_) + ": " + what +
                                       ": database connection lost, reconnecting with backoff (" + down_message_ + ")");
    }
    try {
        s.reconnect();
        opened(s);
        reconnect_delay_ms_ = 0;
        down_ = false;
        host().info(std::string(db_name_) + ": reconnected to the database");
    } catch (const std::exception& e) {
        const int64_t delay = std::clamp<int64_t>(reconnect_delay_ms_.load() * 2, 100, 5000);
        reconnect_delay_ms_ = delay;
        reconnect_not_before_us_ = now + delay * 1000;
        const std::string msg = std::string(db_name_) + ": " + what + ": reconnect failed (next attempt in " +
                                std::to_string(delay) + " ms): " + short_message(e);
        {
            std::lock_guard lock(down_mutex_);
            down_ = true;
            down_message_ = msg;
        }
        host().warn(msg);
        throw sdk::Error(SW_RETRY, msg);
    }
}

const std::string& OutboxStore::hot_sql(Hot h) const {
    switch (h) {
        case Hot::kDue: return statements_.due;
        case Hot::kHead: return statements_.head;
        case Hot::kLeaseInsert: return statements_.lease_insert;
        default: return statements_.live_leases;
    }
}

void OutboxStore::start() {
    // Statements with an id list, which only the database subclass can spell.
    statements_.add_id_lists(sql_, in_ids(":ids"));
    try {
        connect();
    } catch (const sdk::Error&) {
        throw;
    } catch (const std::exception& e) {
        throw sdk::Error(SW_RETRY, std::string(db_name_) + ": cannot connect: " + short_message(e));
    }
    if (opts_.auto_migrate) run_migrations();
    else check_migrated();
    host().info(std::string(db_name_) + ": outbox table " + opts_.table + " ready, lease owner " + owner_);
}

void OutboxStore::stop(int64_t) { disconnect(); }

void OutboxStore::health(sw_health& out) {
    if (down_) {
        std::lock_guard lock(down_mutex_);
        out.state = SW_HEALTH_DOWN;
        sdk::set_message(out, down_message_);
    } else {
        out.state = SW_HEALTH_UP;
    }
}

// Versioned migrations in <table>_migrations; each version runs once, all under one lock, so
// concurrent instances starting together do not race. Then the adoption, which follows the
// options and so runs every time.
void OutboxStore::run_migrations() {
    with_session("migrate", [&](soci::session& s) {
        Tx tx(s, begin_write_sql());
        lock_migrations(s);
        const std::string versions = sql_.table.substr(0, sql_.table.size() - 1) + "_migrations\"";
        s << "CREATE TABLE IF NOT EXISTS " + versions + " (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)";
        int current = 0;
        soci::indicator ind = soci::i_null;
        s << "SELECT MAX(version) FROM " + versions, soci::into(current, ind);
        if (ind != soci::i_ok) current = 0;
        static const char* const kWhat[] = {"", "outbox table and indexes", "per-key index dropped",
                                            "lease table ", "adoption token in "};
        for (int version = current + 1; version <= kSchemaVersion; ++version) {
            if (version == 1) create_schema(s);
            if (version == 3) create_leases_v3(s);
            if (version == 4) create_meta_v4(s);
            if (version > 1) upgrade_schema(s, version);
            long long now = host().now_unix_us();
            s << "INSERT INTO " + versions + " (version, applied_at) VALUES (:v, :t)", soci::use(version, "v"),
                soci::use(now, "t");
            note("schema version " + std::to_string(version) + " applied (" + kWhat[version] +
                 (version == 3 ? opts_.table + "_leases" : version == 4 ? opts_.table + "_meta" : std::string()) +
                 ")");
        }
        adopt(s);
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
        tx.commit();
    });
}

void OutboxStore::check_migrated() {
    std::string missing;
    try {
        with_session("start", [&](soci::session& s) {
            const std::string versions = sql_.table.substr(0, sql_.table.size() - 1) + "_migrations\"";
            int current = 0;
            soci::indicator ind = soci::i_null;
            s << "SELECT MAX(version) FROM " + versions, soci::into(current, ind);
            if (ind != soci::i_ok) current = 0;
            if (current < kSchemaVersion)
                missing = "its schema is at version " + std::to_string(current) + " of " + std::to_string(kSchemaVersion);
            else
                missing = adoption_missing(s);
        });
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

void OutboxStore::append(std::span<const sw_event> events, std::span<sw_result> out) {
    if (events.empty()) return;
    // max_pending: each pipeline's rows are reserved under its backlog bound first, with no
    // database call while there is room; only a pipeline without room is counted, in the
    // transaction that would add its rows.
    struct Adding {
        std::string pipeline;
        long long rows = 0, duplicates = 0;
        bool reserved = false, counting = false;
    };
    std::vector<Adding> adding;  // one per pipeline of the batch; none when unbounded
    const auto of = [&](std::string_view pipeline) -> Adding& {
        for (auto& a : adding)
            if (a.pipeline == pipeline) return a;
        return adding.emplace_back(Adding{std::string(pipeline)});
    };
    const auto full = [&](const std::string& pipeline) {
        return sdk::Error(SW_FULL, "outbox backlog for pipeline " + pipeline + " is at max_pending=" +
                                       std::to_string(opts_.max_pending));
    };
    if (opts_.max_pending > 0)
        for (const auto& ev : events) ++of(sdk::view(ev.pipeline)).rows;
    bool committing = false;
    try {
        std::vector<size_t> to_count;
        for (size_t i = 0; i < adding.size(); ++i) {
            // Waiting for another append's count only while this one holds no count itself: two
            // appends of several pipelines never wait for each other.
            const Room room = reserve_backlog(adding[i].pipeline, adding[i].rows, to_count.empty());
            if (room == Room::kFull) throw full(adding[i].pipeline);
            adding[i].reserved = room == Room::kReserved;
            adding[i].counting = room == Room::kCount;
            if (adding[i].counting) to_count.push_back(i);
        }
        with_session("append", [&](soci::session& s) {
            Tx tx(s, begin_write_sql());
            for (size_t i : to_count) {
                Adding& a = adding[i];
                long long pending = 0, lim = opts_.max_pending;
                std::string p = a.pipeline;
                const unsigned long long finished_before = count_begins(p);
                const int64_t started = host().monotonic_us();
                s << statements_.count_pending, soci::use(p, "p"), soci::use(lim, "lim"), soci::into(pending);
                // The next count costs as much: at most a twentieth of the time goes to counting.
                const int64_t ended = host().monotonic_us();
                const int64_t recount_at = ended + std::max<int64_t>(kMinRecountUs, (ended - started) * 20);
                a.reserved = count_ended(p, pending, finished_before, a.rows, recount_at);
                a.counting = false;
                if (!a.reserved) throw full(p);
            }
            insert(s, events, out, [&](std::string_view pipeline) {
                if (!adding.empty()) ++of(pipeline).duplicates;
            });
            committing = true;
            tx.commit();
        });
    } catch (...) {
        // Nothing stored, unless the commit itself failed: then perhaps stored, and counted so.
        for (const auto& a : adding) {
            if (a.reserved) append_ended(a.pipeline, a.rows, committing ? 0 : a.rows);
            if (a.counting) count_abandoned(a.pipeline);
        }
        throw;
    }
    for (const auto& a : adding)
        if (a.reserved) append_ended(a.pipeline, a.rows, a.duplicates);
}

template <class OnDuplicate>
void OutboxStore::insert(soci::session& s, std::span<const sw_event> events, std::span<sw_result> out,
                         OnDuplicate&& on_duplicate) {
    std::string ev_id, pipeline, topic, key, payload, headers, event_type, correlation_id;
    soci::indicator key_ind, headers_ind, type_ind, corr_ind;
    int flags = 0;
    long long created = 0;
    soci::statement st(s);
    st.exchange(soci::use(ev_id, "ev")), st.exchange(soci::use(pipeline, "pl")), st.exchange(soci::use(topic, "tp"));
    st.exchange(soci::use(key, key_ind, "ky")), st.exchange(soci::use(payload, "pa"));
    st.exchange(soci::use(headers, headers_ind, "hd")), st.exchange(soci::use(event_type, type_ind, "et"));
    st.exchange(soci::use(correlation_id, corr_ind, "ci")), st.exchange(soci::use(flags, "fl"));
    st.exchange(soci::use(created, "ca"));
    // Prepared on the server only when it runs more than once.
    prepare_once(st, statements_.insert, events.size() == 1 ? soci::details::st_one_time_query
                                                      : soci::details::st_repeatable_query);
    const int64_t now = host().now_unix_us();
    for (size_t i = 0; i < events.size(); ++i) {
        const sw_event& ev = events[i];
        if (!sdk::present(ev.event_id) || ev.event_id.len == 0)
            throw sdk::Error(SW_REJECT, std::string(db_name_) + ": append: event " + std::to_string(i) +
                                            " has no event_id");
        ev_id.assign(sdk::view(ev.event_id));
        pipeline.assign(sdk::view(ev.pipeline));
        topic.assign(sdk::view(ev.topic));
        key.assign(sdk::view(ev.key));
        key_ind = sdk::present(ev.key) ? soci::i_ok : soci::i_null;
        flags = static_cast<int>(ev.flags & SW_EVENT_PAYLOAD_BINARY);
        if (flags & SW_EVENT_PAYLOAD_BINARY) payload = base64_encode(sdk::view(ev.payload));
        else payload.assign(sdk::view(ev.payload));
        headers_ind = ev.n_headers ? soci::i_ok : soci::i_null;
        headers = ev.n_headers ? encode_headers(ev.headers, ev.n_headers) : std::string();
        event_type.assign(sdk::view(ev.event_type));
        type_ind = sdk::present(ev.event_type) ? soci::i_ok : soci::i_null;
        correlation_id.assign(sdk::view(ev.correlation_id));
        corr_ind = sdk::present(ev.correlation_id) ? soci::i_ok : soci::i_null;
        created = ev.created_at_us > 0 ? ev.created_at_us : now;
        st.execute(true);
        const bool duplicate = st.get_affected_rows() == 0;
        if (duplicate) on_duplicate(std::string_view(pipeline));
        sdk::set_result(out[i], SW_OK, "", duplicate ? SW_RESULT_DUPLICATE : 0);
    }
}

OutboxStore::Room OutboxStore::reserve_backlog(const std::string& pipeline, long long rows, bool may_wait) {
    if (rows > opts_.max_pending) return Room::kFull;
    std::unique_lock lock(backlog_mutex_);
    Backlog& b = backlog_[pipeline];  // a reference into an unordered_map outlives rehashing
    // The first count of a pipeline: the other appends wait for it rather than count alongside.
    // A count that appends of this instance commit rows during overstates the backlog by them
    // (they may or may not be in it), and at the start that would be every concurrent append.
    if (may_wait) count_done_.wait(lock, [&] { return b.known || !b.counting; });
    if (b.known && b.estimate() + rows <= opts_.max_pending) {
        b.delta += rows;
        b.reserved += static_cast<unsigned long long>(rows);
        return Room::kReserved;
    }
    // No room by the bound: count again, unless a count is under way or was taken too recently;
    // meanwhile FULL.
    if (b.known && (b.counting || host().monotonic_us() < b.next_count_us)) return Room::kFull;
    b.counting = true;
    return Room::kCount;
}

unsigned long long OutboxStore::count_begins(const std::string& pipeline) {
    std::lock_guard lock(backlog_mutex_);
    return backlog_[pipeline].finished;
}

// Rows reserved here whose append had not ended when the count began may or may not be in it:
// they count as not (reserved - finished_before), and settlements begun before the count ended
// are not taken off it (settled() checks the epoch). Both err towards a larger backlog.
bool OutboxStore::count_ended(const std::string& pipeline, long long pending, unsigned long long finished_before,
                              long long rows, int64_t recount_at_us) {
    std::lock_guard lock(backlog_mutex_);
    Backlog& b = backlog_[pipeline];
    b.known = true;
    b.counted = pending;
    b.delta = static_cast<long long>(b.reserved - finished_before);
    ++b.epoch;
    if (rows == 0) return true;  // stats(): not an append's count
    b.counting = false;
    b.next_count_us = recount_at_us;
    count_done_.notify_all();
    if (b.estimate() + rows > opts_.max_pending) return false;
    b.delta += rows;
    b.reserved += static_cast<unsigned long long>(rows);
    return true;
}

void OutboxStore::count_abandoned(const std::string& pipeline) {
    std::lock_guard lock(backlog_mutex_);
    backlog_[pipeline].counting = false;
    count_done_.notify_all();
}

void OutboxStore::append_ended(const std::string& pipeline, long long rows, long long not_added) {
    std::lock_guard lock(backlog_mutex_);
    Backlog& b = backlog_[pipeline];
    b.finished += static_cast<unsigned long long>(rows);
    b.delta -= not_added;
}

unsigned long long OutboxStore::settle_begins(const std::string& pipeline) {
    std::lock_guard lock(backlog_mutex_);
    auto it = backlog_.find(pipeline);
    return it == backlog_.end() ? 0 : it->second.epoch;
}

void OutboxStore::settled(const std::string& pipeline, long long rows, unsigned long long epoch) {
    std::lock_guard lock(backlog_mutex_);
    auto it = backlog_.find(pipeline);
    // A count that ended since the settlement began may already have left its rows out.
    if (it == backlog_.end() || !it->second.known || it->second.epoch != epoch) return;
    Backlog& b = it->second;
    b.delta -= rows;
    // The rows settled may be other writers' (never added here): the bound stays >= 0.
    if (b.estimate() < 0) b.delta = -b.counted;
}

void OutboxStore::became_pending(const std::string& pipeline, long long rows) {
    std::lock_guard lock(backlog_mutex_);
    auto it = backlog_.find(pipeline);
    if (it == backlog_.end()) return;
    // As an append that ended at once: a count beginning after this sees the rows.
    Backlog& b = it->second;
    b.delta += rows;
    b.reserved += static_cast<unsigned long long>(rows);
    b.finished += static_cast<unsigned long long>(rows);
}

// Picks the rows in C++ from the pending head in id order instead of asking the database to prove,
// per candidate, that no earlier row of its key blocks it: that NOT EXISTS probe walked every
// earlier index entry of the key, deleted ones included, and made a long drain quadratic. All rows
// that can block a candidate are pending and have smaller ids, so one pass in id order sees each
// blocker before the rows it holds back.
bool OutboxStore::Picker::take(long long id, const std::string* key, bool blocks) {
    seen = std::max(seen, id);
    if (!assumed.empty() && assumed.count(id)) return false;
    if (key && blocked.count(*key)) return false;
    if (blocks || (!leased.empty() && leased.count(id))) {
        if (key) blocked.insert(*key);
        return false;
    }
    picked.push_back(id);
    return true;
}

// The narrow columns (id, key, blocks) of one read, fed to the picker in id order.
struct OutboxStore::NarrowRows {
    explicit NarrowRows(size_t n) : ids(std::max<size_t>(n, 2)), keys(ids.size()), key_ind(ids.size()), blocks(ids.size()) {}
    void bind(soci::statement& st) {  // n >= 2: see RowSet
        st.exchange(soci::into(ids)), st.exchange(soci::into(keys, key_ind)), st.exchange(soci::into(blocks));
    }
    // Feeds what `st` read; the number of rows it read.
    size_t feed(soci::statement& st, size_t limit, Picker& picker) {
        if (!st.execute(true)) return 0;
        for (size_t i = 0; i < ids.size() && picker.picked.size() < limit; ++i)
            picker.take(std::stoll(ids[i]), key_ind[i] == soci::i_ok ? &keys[i] : nullptr, blocks[i] != 0);
        return ids.size();
    }
    std::vector<std::string> ids, keys;
    std::vector<soci::indicator> key_ind;
    std::vector<int> blocks;
};

// Narrow chunks of the pending rows in (after, upto]: past the whole-row head while rows are held
// back (upto: no end), and in claim_next before the rows it takes as settled.
void OutboxStore::pick_range(soci::session& s, const std::string& pipeline, size_t limit, long long now,
                             long long after, long long upto, Picker& picker) {
    const size_t chunk = std::clamp<size_t>(limit, 64, 5000);
    std::string p = pipeline;
    long long now1 = now, now2 = now, lim = static_cast<long long>(chunk);
    while (picker.picked.size() < limit && after < upto) {
        NarrowRows rows(chunk);
        soci::statement st(s);
        st.exchange(soci::use(now1, "now1")), st.exchange(soci::use(now2, "now2")), st.exchange(soci::use(p, "p"));
        st.exchange(soci::use(after, "after")), st.exchange(soci::use(upto, "upto")), st.exchange(soci::use(lim, "lim"));
        rows.bind(st);
        prepare_once(st, statements_.scan);
        if (rows.feed(st, limit, picker) < chunk) break;
        after = std::stoll(rows.ids.back());
    }
}

// The same narrow read of the pending rows among `ids` (ascending), in chunks.
void OutboxStore::pick_ids(soci::session& s, const std::string& pipeline, size_t limit, long long now,
                           std::span<const long long> ids, Picker& picker) {
    const size_t chunk = std::clamp<size_t>(limit, 64, 5000);
    std::string p = pipeline;
    long long now1 = now, now2 = now;
    for (size_t at = 0; at < ids.size() && picker.picked.size() < limit; at += chunk) {
        const auto part = ids.subspan(at, std::min(chunk, ids.size() - at));
        std::string list = encode_ids(part);
        NarrowRows rows(part.size());
        soci::statement st(s);
        st.exchange(soci::use(now1, "now1")), st.exchange(soci::use(now2, "now2")), st.exchange(soci::use(p, "p"));
        st.exchange(soci::use(list, "ids"));
        rows.bind(st);
        prepare_once(st, statements_.scan_ids);
        rows.feed(st, limit, picker);
    }
}

// claim_next's look back over (0, where prev's claim stopped]. The rows it takes as settled are
// still there (the relay is sending and settling them) and reading them again was most of what a
// claim_next cost; so only what lies before the first of them is read as a range, and the ids in
// between that are not theirs one by one. What is found is exactly what a read of the whole range
// would find besides them: rows held back then, and rows committed since under a smaller id.
void OutboxStore::look_back(soci::session& s, const std::string& pipeline, size_t limit, long long now,
                            const Continuation& prev, Picker& picker) {
    std::vector<long long> settled;
    for (long long r : prev.rows)
        if (r <= prev.cursor) settled.push_back(r);
    std::sort(settled.begin(), settled.end());
    settled.erase(std::unique(settled.begin(), settled.end()), settled.end());
    if (settled.empty()) return pick_range(s, pipeline, limit, now, 0, prev.cursor, picker);
    pick_range(s, pipeline, limit, now, 0, settled.front() - 1, picker);
    // Ids are dense when one pipeline has the table; when they are not (other pipelines' rows,
    // rows held back), one range read costs less than many lookups.
    const long long span = prev.cursor - settled.front() + 1;
    const long long gaps = span - static_cast<long long>(settled.size());
    if (gaps > std::max<long long>(64, static_cast<long long>(settled.size())))
        return pick_range(s, pipeline, limit, now, settled.front(), prev.cursor, picker);
    std::vector<long long> between;
    between.reserve(static_cast<size_t>(gaps));
    auto next = settled.begin();
    for (long long id = settled.front(); id <= prev.cursor; ++id) {
        if (next != settled.end() && *next == id) ++next;
        else between.push_back(id);
    }
    pick_ids(s, pipeline, limit, now, between, picker);
}

namespace {
// The ids of an encode_ids() text, "{1,2}" or "[1,2]".
std::vector<long long> decode_ids(const std::string& text) {
    std::vector<long long> out;
    const char* p = text.c_str();
    while (*p) {
        if ((*p >= '0' && *p <= '9') || *p == '-') {
            char* end = nullptr;
            out.push_back(std::strtoll(p, &end, 10));
            p = end;
        } else {
            ++p;
        }
    }
    return out;
}
}  // namespace

std::vector<OutboxStore::Lease> OutboxStore::live_leases(soci::session& s, long long now, const std::string* begin) {
    std::vector<Lease> out;
    std::vector<std::string> lid(kFetchChunk), rows(kFetchChunk);
    soci::statement st(s);
    if (!begin) st.exchange(soci::use(now, "now"));
    st.exchange(soci::into(lid)), st.exchange(soci::into(rows));
    // With the BEGIN in front the query goes without parameters (one simple query); `now` is a
    // number of ours.
    std::string folded;
    if (begin) {
        folded = statement(s, Hot::kLeases, {{"now", now}});
        folded = *begin + "; " + (folded.empty() ? statements_.live_leases_at + std::to_string(now) : folded);
    }
    prepare_once(st, begin ? folded : statements_.live_leases);
    st.execute();
    while (st.fetch()) {
        for (size_t i = 0; i < lid.size(); ++i) out.push_back({std::stoll(lid[i]), decode_ids(rows[i])});
        lid.resize(kFetchChunk), rows.resize(kFetchChunk);
    }
    return out;
}

void OutboxStore::remember_lease(long long lease_id, long long until, const std::vector<long long>& rows,
                                 const std::string& pipeline) {
    std::lock_guard lock(leases_mutex_);
    for (long long r : rows) lease_of_row_[r] = lease_id;
    my_leases_[lease_id] = {until, rows, pipeline};
}

// Ends this instance's leases on `rows` in one statement: deletes the lease rows that are still
// live (an expired one may already have been claimed by someone else, whose settlement counts)
// and leases again, in a new row, whatever of them was not in `rows`. Fills `held` with the rows
// that were still leased here: only those may be settled. The bookkeeping in memory changes only
// once the transaction commits (commit_unlease).
OutboxStore::Unlease OutboxStore::end_leases(soci::session& s, long long now, std::span<const long long> rows,
                                             std::unordered_set<long long>& held) {
    Unlease u;
    std::unordered_map<long long, std::vector<long long>> named;  // lease id -> its rows in `rows`
    {
        std::lock_guard lock(leases_mutex_);
        for (long long r : rows)
            if (auto it = lease_of_row_.find(r); it != lease_of_row_.end()) named[it->second].push_back(r);
        for (auto& [lid, _] : named)
            if (auto it = my_leases_.find(lid); it != my_leases_.end()) u.ended[lid] = it->second;
    }
    for (long long r : rows) u.forget.push_back(r);
    if (named.empty()) return u;
    std::vector<long long> lids;
    for (const auto& [lid, _] : named) lids.push_back(lid);
    std::string lid_list = encode_ids(lids);
    std::vector<std::string> live(std::max<size_t>(lids.size(), 2));  // see RowSet
    long long at = now;
    s << statements_.lease_end + in_ids(":lids") + " RETURNING CAST(id AS TEXT)", soci::use(at, "now"),
        soci::use(lid_list, "lids"), soci::into(live);
    if (!s.got_data()) live.clear();
    std::string me = owner_;
    for (const std::string& text : live) {
        const long long lid = std::stoll(text);
        const auto& mine = named[lid];
        held.insert(mine.begin(), mine.end());
        auto it = u.ended.find(lid);
        if (it == u.ended.end()) continue;
        std::vector<long long> rest;
        for (long long r : it->second.rows)
            if (!held.count(r)) rest.push_back(r);
        if (rest.empty()) continue;
        // Part of a batch settled: the rest stays leased, under a new lease row.
        std::string rest_ids = encode_ids(rest), new_id, p = it->second.pipeline;
        long long until = it->second.until;
        s << statements_.lease_insert, soci::use(me, "me"), soci::use(p, "p"), soci::use(until, "until"),
            soci::use(rest_ids, "ids"), soci::into(new_id);
        u.again.push_back({std::stoll(new_id), lid, until, std::move(rest)});
    }
    return u;
}

size_t OutboxStore::release_dead_owners(soci::session& s, long long now, std::vector<Lease>& leases) {
    if (leases.empty()) return 0;
    std::vector<std::string> owners(kFetchChunk);
    long long at = now;
    s << statements_.lease_owners, soci::use(at, "now"), soci::into(owners);
    if (!s.got_data()) owners.clear();
    std::unordered_set<long long> dropped;
    for (std::string& owner : owners) {
        if (owner == owner_ || !owner_is_dead_here(owner, owner_)) continue;
        std::vector<std::string> ids(std::max<size_t>(leases.size(), 2));  // see RowSet
        s << statements_.lease_drop_owner, soci::use(owner, "o"), soci::into(ids);
        if (!s.got_data()) ids.clear();
        for (const std::string& id : ids) dropped.insert(std::stoll(id));
        host().info(std::string(db_name_) + ": took back " + std::to_string(ids.size()) + " lease(s) of " + owner +
                    ", an engine on this host that is no longer running");
    }
    if (!dropped.empty())
        std::erase_if(leases, [&](const Lease& l) { return dropped.count(l.id) != 0; });
    return dropped.size();
}

void OutboxStore::commit_unlease(const Unlease& u) {
    std::lock_guard lock(leases_mutex_);
    for (const auto& [lid, lease] : u.ended) {
        for (long long r : lease.rows) lease_of_row_.erase(r);
        my_leases_.erase(lid);
    }
    for (long long r : u.forget) lease_of_row_.erase(r);
    for (const auto& again : u.again) {
        for (long long r : again.rows) lease_of_row_[r] = again.id;
        my_leases_[again.id] = {again.until, again.rows, u.ended.at(again.from).pipeline};
    }
}

bool OutboxStore::last_claim_found_rows(std::string_view pipeline) {
    std::lock_guard lock(found_mutex_);
    auto it = last_found_.find(std::string(pipeline));
    return it != last_found_.end() && it->second;
}

namespace {
// A claim that found nothing still says where it looked, for a claim_next after it.
std::unique_ptr<sdk::Batch> nothing_claimed(std::string_view pipeline, long long cursor,
                                            const std::vector<long long>* after_rows) {
    auto b = std::make_unique<RowBatch>();
    b->claimed_for = pipeline;
    b->cursor = cursor;
    if (after_rows) b->after_rows = *after_rows;
    return b;
}
}  // namespace

std::unique_ptr<sdk::Batch> OutboxStore::claim(std::string_view pipeline, size_t limit, int64_t lease_ms) {
    return claim_rows(pipeline, limit, lease_ms, nullptr);
}

std::unique_ptr<sdk::Batch> OutboxStore::claim_next(const sdk::Batch& prev, size_t limit, int64_t lease_ms) {
    const auto* b = dynamic_cast<const RowBatch*>(&prev);
    if (!b || b->claimed_for.empty())
        throw sdk::Error(SW_REJECT, std::string(db_name_) + ": claim_next: prev is not a batch this store claimed");
    // prev's rows, and the rows of the batch prev follows: the relay may still be settling that one.
    Continuation after{b->claimed_for, b->cursor, b->after_rows, {}};
    for (const sw_event& e : b->events) after.own.push_back(e.row_id);
    after.rows.insert(after.rows.end(), after.own.begin(), after.own.end());
    return claim_rows(after.pipeline, limit, lease_ms, &after);
}

// One claim: read the pending rows in id order and pick (Picker) whole rows of the head, then
// narrowly further on while rows are held back. After `prev` (claim_next) prev's rows count as
// settled: the rows up to where its claim stopped are looked at again narrowly, because a row
// there other than prev's (held back then, or committed since with a smaller id) still comes
// before anything later of its key.
std::unique_ptr<sdk::Batch> OutboxStore::claim_rows(std::string_view pipeline_name, size_t limit, int64_t lease_ms,
                                                    const Continuation* prev) {
    const long long from = prev ? prev->cursor : 0;
    if (limit == 0) return nothing_claimed(pipeline_name, from, prev ? &prev->own : nullptr);
    RowSet::Malformed malformed;
    auto batch = with_session("claim", [&](soci::session& s) -> std::unique_ptr<sdk::Batch> {
        malformed.clear();
        const long long now = host().now_unix_us();
        std::string p(pipeline_name);
        if (!prev && !last_claim_found_rows(pipeline_name)) {
            // An idle poll costs this one statement: no transaction, no lock, when nothing is due.
            // After a claim that found rows more are likely (a stream of events, a backlog): the
            // claim goes straight to its transaction, one round trip sooner.
            long long now1 = now, now2 = now;
            int due = 0;
            const std::string text = statement(s, Hot::kDue, {{"p", p}, {"now1", now1}, {"now2", now2}});
            if (text.empty())
                s << statements_.due, soci::use(p, "p"), soci::use(now1, "now1"), soci::use(now2, "now2"), soci::into(due);
            else
                s << text, soci::into(due);
            if (!s.got_data()) return nothing_claimed(p, from, nullptr);
        }
        // BEGIN, the lock and the live leases in one round trip where the database allows it.
        const std::string begin = begin_lease_change_sql();
        const bool folded = begin_takes_a_statement();
        Tx tx(s, folded ? std::string() : begin);
        std::vector<Lease> leases = live_leases(s, now, folded ? &begin : nullptr);
        if (now >= next_lease_sweep_us_.load()) {
            // Leases of crashed or stopped instances: harmless once expired, swept now and then.
            // The first claim sweeps too (the time starts at 0): a restarted engine takes back at
            // once what its killed predecessor on this host still held, instead of waiting out
            // the lease.
            next_lease_sweep_us_ = now + kLeaseSweepUs;
            long long cut = now;
            s << statements_.lease_sweep, soci::use(cut, "now");
            release_dead_owners(s, now, leases);
        }
        Picker picker;
        if (prev) picker.assumed.insert(prev->rows.begin(), prev->rows.end());
        for (const Lease& l : leases)
            for (long long r : l.rows)
                if (!picker.assumed.count(r)) picker.leased.insert(r);
        long long after = 0;
        if (prev) {
            look_back(s, p, limit, now, *prev, picker);
            after = prev->cursor;
        }
        const size_t before_head = picker.picked.size();
        // Whole rows of the head next: in a drain nothing is held back and this one read is the
        // claim. Only when rows are held back does the claim look further, narrowly, and read the
        // rows it picked there by id.
        const size_t want = limit - before_head;
        RowSet rows(want);
        size_t read = 0;
        if (want > 0) {
            std::vector<int> blocks(rows.id.size());
            long long now1 = now, now2 = now, lim = static_cast<long long>(want);
            soci::statement st(s);
            rows.bind(st);
            st.exchange(soci::into(blocks));
            const std::string text =
                statement(s, Hot::kHead, {{"now1", now1}, {"now2", now2}, {"p", p}, {"after", after}, {"lim", lim}});
            if (text.empty()) {
                st.exchange(soci::use(now1, "now1")), st.exchange(soci::use(now2, "now2")), st.exchange(soci::use(p, "p"));
                st.exchange(soci::use(after, "after")), st.exchange(soci::use(lim, "lim"));
            }
            prepare_once(st, text.empty() ? statements_.head : text);
            if (st.execute(true)) read = rows.size();
            std::vector<size_t> keep;
            for (size_t i = 0; i < read && picker.picked.size() < limit; ++i) {
                const bool keyed = rows.ind[RowSet::kKy][i] == soci::i_ok;
                if (picker.take(std::stoll(rows.id[i]), keyed ? &rows.str[RowSet::kKy][i] : nullptr, blocks[i] != 0))
                    keep.push_back(i);
            }
            rows.keep(keep);
        } else {
            rows.keep({});
        }
        const size_t from_head = picker.picked.size();
        if (from_head < limit && want > 0 && read == want)
            pick_range(s, p, limit, now, picker.seen, std::numeric_limits<long long>::max(), picker);
        {
            std::lock_guard lock(found_mutex_);
            last_found_[p] = !picker.picked.empty();
        }
        const long long cursor = std::max(picker.seen, from);
        if (picker.picked.empty()) {
            tx.commit();
            return nothing_claimed(p, cursor, prev ? &prev->own : nullptr);
        }
        std::string me = owner_, ids = encode_ids(picker.picked);
        long long until = now + std::max<int64_t>(lease_ms, 1) * 1000;
        std::string lease_id;
        const std::string text = statement(s, Hot::kLeaseInsert, {{"me", me}, {"p", p}, {"until", until}, {"ids", ids}});
        if (text.empty())
            s << statements_.lease_insert, soci::use(me, "me"), soci::use(p, "p"), soci::use(until, "until"),
                soci::use(ids, "ids"), soci::into(lease_id);
        else
            s << text, soci::into(lease_id);
        // The rows picked by the narrow reads, before and after the head, whole.
        auto fetch = [&](std::vector<long long> picked) {
            std::string picked_ids = encode_ids(picked);
            RowSet more(picked.size());
            soci::statement st(s);
            st.exchange(soci::use(picked_ids, "ids"));
            more.bind(st);
            prepare_once(st, statements_.claimed);
            if (!st.execute(true)) more.keep({});
            return more;
        };
        const auto at = [&](size_t i) { return picker.picked.begin() + static_cast<std::ptrdiff_t>(i); };
        if (before_head > 0) {
            RowSet first = fetch(std::vector<long long>(at(0), at(before_head)));
            first.append(std::move(rows));
            rows = std::move(first);
        }
        if (picker.picked.size() > from_head) rows.append(fetch(std::vector<long long>(at(from_head), picker.picked.end())));
        tx.commit();
        remember_lease(std::stoll(lease_id), until, picker.picked, p);
        auto out = rows.to_batch(db_name_, &malformed);
        auto* b = static_cast<RowBatch*>(out.get());
        b->claimed_for = p;
        b->cursor = cursor;
        if (prev) b->after_rows = prev->own;
        return out;
    });
    if (!malformed.empty()) park_malformed(malformed);
    if ((opts_.retention_ms > 0 && !opts_.keep_published) && host().monotonic_us() >= next_purge_us_.load()) {
        next_purge_us_ = host().monotonic_us() + std::clamp<int64_t>(opts_.retention_ms / 2, 1000, 60'000) * 1000;
        with_session("purge published", [&](soci::session& s) { purge_published(s, host().now_unix_us()); });
    }
    return batch;
}

// Deletes published rows older than `retention`, a page per transaction, so a large purge never
// holds long locks.
void OutboxStore::purge_published(soci::session& s, int64_t now_us) {
    std::string cut = published_time(now_us - opts_.retention_ms * 1000);
    long long lim = kPurgePage;
    for (int page = 0; page < 20; ++page) {
        Tx tx(s, begin_write_sql());
        soci::statement st(s);
        st.exchange(soci::use(cut, "cut")), st.exchange(soci::use(lim, "lim"));
        prepare_once(st, statements_.purge_published);
        st.execute(true);
        const long long n = st.get_affected_rows();
        tx.commit();
        if (n < kPurgePage) break;
    }
}

int64_t OutboxStore::backoff_ms(int attempts_after) {
    // Exponential from backoff_base, capped at backoff_max, then "equal jitter": half fixed, half
    // random, so retries of many rows spread out but never come sooner than half the step.
    const int shift = std::clamp(attempts_after - 1, 0, 40);
    const double step = std::min<double>(static_cast<double>(opts_.backoff_base_ms) * static_cast<double>(1ull << shift),
                                         static_cast<double>(opts_.backoff_max_ms));
    std::uniform_real_distribution<double> jitter(0.5, 1.0);
    return std::max<int64_t>(1, static_cast<int64_t>(step * jitter(rng())));
}

void OutboxStore::complete(std::span<const int64_t> row_ids, std::span<const sw_result> results) {
    if (row_ids.empty()) return;
    std::vector<long long> ok, retry, reject;
    std::vector<std::string> retry_err, reject_err;
    for (size_t i = 0; i < row_ids.size(); ++i) {
        const sw_result& r = results[i];
        const std::string msg(r.message, strnlen(r.message, sizeof(r.message)));
        if (r.status == SW_OK) ok.push_back(row_ids[i]);
        else if (r.status == SW_REJECT) {
            reject.push_back(row_ids[i]);
            reject_err.push_back(msg.empty() ? "rejected" : msg);
        } else {
            retry.push_back(row_ids[i]);
            retry_err.push_back(msg.empty() ? "retry" : msg);
        }
    }
    struct Left {
        long long rows = 0;
        unsigned long long epoch = 0;
    };
    std::unordered_map<std::string, Left> left;  // by pipeline: rows no longer pending once committed
    with_session("complete", [&](soci::session& s) {
        left.clear();
        Tx tx(s, begin_settle_sql());
        const long long now = host().now_unix_us();
        std::vector<long long> all(row_ids.begin(), row_ids.end());
        std::unordered_set<long long> ours;
        const Unlease ended = end_leases(s, now, all, ours);
        auto keep_ours = [&](std::vector<long long>& ids, std::vector<std::string>* errs) {
            size_t w = 0;
            for (size_t i = 0; i < ids.size(); ++i) {
                if (!ours.count(ids[i])) continue;
                if (w != i) {
                    ids[w] = ids[i];
                    if (errs) (*errs)[w] = std::move((*errs)[i]);
                }
                ++w;
            }
            ids.resize(w);
            if (errs) errs->resize(w);
        };
        keep_ours(ok, nullptr);
        keep_ours(retry, &retry_err);
        keep_ours(reject, &reject_err);
        // max_pending: the rows leaving the pending state (published, dead), per pipeline, taken
        // off the backlog bound once committed. A row's pipeline is its lease's.
        std::unordered_map<long long, const std::string*> pipeline_of;
        if (opts_.max_pending > 0)
            for (const auto& [lid, lease] : ended.ended)
                for (long long r : lease.rows)
                    if (ours.count(r)) pipeline_of.emplace(r, &lease.pipeline);
        const auto leaving = [&](long long row) {
            if (auto it = pipeline_of.find(row); it != pipeline_of.end()) ++left[*it->second].rows;
        };
        for (long long r : ok) leaving(r);
        for (long long r : reject) leaving(r);
        if (!ok.empty()) {
            // A drained batch is usually a run of consecutive ids, and the table holds each id once:
            // a range names the same rows, read in one index descent rather than one per id.
            std::sort(ok.begin(), ok.end());
            long long lo = ok.front(), hi = ok.back();
            const bool run = hi - lo + 1 == static_cast<long long>(ok.size()) &&
                             std::adjacent_find(ok.begin(), ok.end()) == ok.end();
            std::string ids = run ? std::string() : encode_ids(ok);
            const std::string which = run ? " BETWEEN :lo AND :hi" : in_ids(":ids");
            const bool mark = opts_.retention_ms > 0 || opts_.keep_published;
            std::string at = published_time(now);
            soci::statement st(s);
            if (mark) st.exchange(soci::use(at, "now"));
            if (run) st.exchange(soci::use(lo, "lo")), st.exchange(soci::use(hi, "hi"));
            else st.exchange(soci::use(ids, "ids"));
            prepare_once(st, (mark ? statements_.mark_ok : statements_.delete_ok) + which);
            st.execute(true);
        }
        if (!retry.empty()) {
            // The delay grows with the row's attempts, so read them.
            std::map<long long, int> attempts_of;
            std::string ids = encode_ids(retry);
            std::vector<std::string> got_id(std::max<size_t>(retry.size(), 2));  // see RowSet
            std::vector<int> got_attempts(got_id.size());
            s << statements_.attempts + in_ids(":ids"), soci::use(ids, "ids"), soci::into(got_id), soci::into(got_attempts);
            if (!s.got_data()) got_id.clear();
            for (size_t i = 0; i < got_id.size(); ++i) attempts_of[std::stoll(got_id[i])] = got_attempts[i];
            std::vector<long long> id, next;
            std::vector<std::string> err;
            std::vector<long long> max1, max2;
            for (size_t i = 0; i < retry.size(); ++i) {
                auto it = attempts_of.find(retry[i]);
                if (it == attempts_of.end()) continue;  // gone meanwhile (purged)
                id.push_back(retry[i]);
                if (opts_.max_attempts > 0 && it->second + 1 >= opts_.max_attempts) leaving(retry[i]);  // dead
                next.push_back(now + backoff_ms(it->second + 1) * 1000);
                err.push_back(retry_err[i]);
                max1.push_back(opts_.max_attempts);
                max2.push_back(opts_.max_attempts);
            }
            if (!id.empty())
                s << statements_.retry, soci::use(next, "next"), soci::use(err, "err"), soci::use(max1, "max1"),
                    soci::use(max2, "max2"), soci::use(id, "id");
        }
        if (!reject.empty()) s << statements_.reject, soci::use(reject_err, "err"), soci::use(reject, "id");
        for (auto& [pipeline, l] : left) l.epoch = settle_begins(pipeline);
        tx.commit();
        commit_unlease(ended);
    });
    for (const auto& [pipeline, l] : left) settled(pipeline, l.rows, l.epoch);
}

// Rows a claim leased but could not decode (an application wrote headers that are not a JSON object
// of at most 64 levels, or a binary payload that is not base64) go to the dead letters with the
// reason, as a rejected event would: sending them is impossible, and retrying them would fail the
// claim of their key for ever.
void OutboxStore::park_malformed(const std::vector<std::pair<long long, std::string>>& malformed) {
    std::vector<int64_t> ids;
    std::vector<sw_result> results;
    for (const auto& [row, why] : malformed) {
        host().warn(std::string(db_name_) + ": row " + std::to_string(row) + " of " + opts_.table +
                    " cannot be decoded and goes to the dead letters: " + why);
        ids.push_back(row);
        sw_result r{};
        r.status = SW_REJECT;
        r.partition = -1;
        r.offset = -1;
        std::snprintf(r.message, sizeof r.message, "malformed row: %s", why.c_str());
        results.push_back(r);
    }
    complete(ids, results);
}

void OutboxStore::release_leases(std::span<const int64_t> row_ids) {
    if (row_ids.empty()) return;
    std::vector<long long> v(row_ids.begin(), row_ids.end());
    with_session("release_leases", [&](soci::session& s) {
        Tx tx(s, begin_lease_change_sql());
        std::unordered_set<long long> held;
        const Unlease ended = end_leases(s, host().now_unix_us(), v, held);
        tx.commit();
        commit_unlease(ended);
    });
}

sdk::Stats OutboxStore::stats(std::string_view pipeline_name) {
    // "*" (never a pipeline name): the whole table, whatever pipeline its rows name, so that
    // `spillway outbox status` can tell rows no configured pipeline relays.
    const bool whole_table = pipeline_name == "*";
    return with_session("stats", [&](soci::session& s) {
        std::string p(pipeline_name);
        long long now = host().now_unix_us();
        long long pending = 0, leased = 0, dead = 0, oldest = 0;
        soci::indicator oldest_ind = soci::i_null;
        std::string counts = statements_.stats, lease_rows = statements_.leased_count;
        if (whole_table) {
            counts = counts.substr(0, counts.rfind(" WHERE "));
            lease_rows = lease_rows.substr(0, lease_rows.rfind(" AND pipeline = :p"));
        }
        // A pipeline's count is the backlog bound's base too (the engine asks once a second while
        // Kafka is down): rows other writers inserted count from here.
        const bool bounded = !whole_table && opts_.max_pending > 0;
        const unsigned long long finished_before = bounded ? count_begins(p) : 0;
        if (whole_table)
            s << counts, soci::use(now, "now"), soci::into(pending), soci::into(leased), soci::into(dead),
                soci::into(oldest, oldest_ind);
        else
            s << counts, soci::use(now, "now"), soci::use(p, "p"), soci::into(pending), soci::into(leased),
                soci::into(dead), soci::into(oldest, oldest_ind);
        if (bounded) count_ended(p, pending, finished_before, 0, 0);
        // Leased rows: the per-row leases of engines on schema version 2, and the lease table's.
        std::vector<std::string> lid(kFetchChunk), rows(kFetchChunk);
        soci::statement q(s);
        q.exchange(soci::use(now, "now"));
        if (!whole_table) q.exchange(soci::use(p, "p"));
        q.exchange(soci::into(lid));
        q.exchange(soci::into(rows));
        prepare_once(q, lease_rows);
        q.execute();
        while (q.fetch()) {
            for (const auto& r : rows) leased += static_cast<long long>(decode_ids(r).size());
            lid.resize(kFetchChunk), rows.resize(kFetchChunk);
        }
        sdk::Stats st;
        st.pending = pending;
        st.leased = leased;
        st.dead = dead;
        st.oldest_pending_age_ms = (pending > 0 && oldest_ind == soci::i_ok && oldest > 0)
                                       ? std::max<long long>(0, (now - oldest) / 1000)
                                       : 0;
        return st;
    });
}

void OutboxStore::pending_keys(std::string_view pipeline_name, sw_key_visit_fn visit, void* user) {
    // Collected first, visited after the session is returned: the visitor may call back into us.
    using Counted = std::vector<std::pair<std::string, long long>>;
    Counted all = with_session("pending_keys", [&](soci::session& s) {
        std::string p(pipeline_name);
        std::vector<std::string> keys(kFetchChunk);
        std::vector<long long> counts(kFetchChunk);
        Counted out;
        soci::statement st(s);
        st.exchange(soci::use(p, "p")), st.exchange(soci::into(keys)), st.exchange(soci::into(counts));
        prepare_once(st, statements_.keys);
        st.execute();
        while (st.fetch()) {
            for (size_t i = 0; i < keys.size(); ++i) out.emplace_back(std::move(keys[i]), counts[i]);
            keys.resize(kFetchChunk);
            counts.resize(kFetchChunk);
        }
        return out;
    });
    // Once per pending row: the host counts the visits.
    for (const auto& [k, n] : all)
        for (long long i = 0; i < n; ++i) visit(user, sdk::bytes(k));
}

std::unique_ptr<sdk::Batch> OutboxStore::list_dead(std::string_view pipeline_name, int64_t after_row_id, size_t limit) {
    if (limit == 0) return std::make_unique<sdk::Batch>();
    return with_session("list_dead", [&](soci::session& s) -> std::unique_ptr<sdk::Batch> {
        std::string p(pipeline_name);
        long long after = after_row_id, lim = static_cast<long long>(limit);
        RowSet rows(limit);
        soci::statement st(s);
        rows.bind(st);
        st.exchange(soci::use(p, "p"));
        st.exchange(soci::use(after, "after"));
        st.exchange(soci::use(lim, "lim"));
        prepare_once(st, statements_.dead);
        if (!st.execute(true)) return std::make_unique<sdk::Batch>();
        return rows.to_batch(db_name_);
    });
}

namespace {
// Runs `all_sql` (no ids) or `one_sql` once per event id; returns the rows affected.
int64_t by_event_ids(soci::session& s, const std::string& all_sql, const std::string& one_sql, std::string p,
                     std::span<const sw_bytes> event_ids) {
    if (event_ids.empty()) {
        soci::statement st = (s.prepare << all_sql, soci::use(p, "p"));
        st.execute(true);
        return st.get_affected_rows();
    }
    std::string ev1, ev2;  // one value, bound where each of the two tests takes it
    soci::statement st = (s.prepare << one_sql, soci::use(p, "p"), soci::use(ev1, "ev1"), soci::use(ev2, "ev2"));
    int64_t n = 0;
    for (const sw_bytes& id : event_ids) {
        ev1.assign(sdk::view(id));
        ev2 = ev1;
        st.execute(true);
        n += st.get_affected_rows();
    }
    return n;
}
}  // namespace

int64_t OutboxStore::replay_dead(std::string_view pipeline_name, std::span<const sw_bytes> event_ids) {
    const int64_t n = with_session("replay_dead", [&](soci::session& s) {
        Tx tx(s, begin_write_sql());
        const int64_t n = by_event_ids(s, statements_.replay_all, statements_.replay_one, std::string(pipeline_name), event_ids);
        tx.commit();
        return n;
    });
    // Not refused at max_pending (the rows are there already), but part of the backlog now.
    if (opts_.max_pending > 0 && n > 0) became_pending(std::string(pipeline_name), n);
    return n;
}

int64_t OutboxStore::purge_dead(std::string_view pipeline_name, std::span<const sw_bytes> event_ids) {
    return with_session("purge_dead", [&](soci::session& s) {
        Tx tx(s, begin_write_sql());
        const int64_t n = by_event_ids(s, statements_.purge_all, statements_.purge_one, std::string(pipeline_name), event_ids);
        tx.commit();
        return n;
    });
}

}  // namespace spillway::plugins::outbox
