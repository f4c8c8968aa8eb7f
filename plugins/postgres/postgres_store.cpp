// The PostgreSQL outbox store: the shared outbox logic over a pool of SOCI sessions.
//
// Every transaction that changes leases (claim, complete, release) first takes one
// transaction-scoped advisory lock per table, so claims never interleave. Rows are not locked with
// SKIP LOCKED: a claimer that skipped a locked earlier row of a key could hand out a later one.
#include "shard_coordinator.hpp"
#include "single_guard.hpp"

#include <outbox_store.hpp>
#include <pg-common/conninfo.hpp>

#include <soci/postgresql/soci-postgresql.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <cstdio>
#include <ctime>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace spillway::plugins::postgres {

using outbox::Col;

namespace {

// Column types for CREATE TABLE and for ADD COLUMN on an adopted table.
const char* column_type(Col c) {
    switch (c) {
        case outbox::kId: return "BIGSERIAL";
        case outbox::kEventId: return "TEXT NOT NULL";
        case outbox::kPipeline: return "TEXT NOT NULL DEFAULT ''";
        case outbox::kTopic: return "TEXT NOT NULL DEFAULT ''";
        case outbox::kFlags: return "INTEGER NOT NULL DEFAULT 0";
        case outbox::kCreatedAt:
            return "BIGINT NOT NULL DEFAULT (CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000000 AS BIGINT))";
        case outbox::kAttempts: return "INTEGER NOT NULL DEFAULT 0";
        case outbox::kNextAttemptAt: return "BIGINT NOT NULL DEFAULT 0";
        case outbox::kState: return "TEXT NOT NULL DEFAULT 'pending'";
        case outbox::kLeaseUntil:
        case outbox::kPublishedAt: return "BIGINT";
        default: return "TEXT";
    }
}

// What the server shows as this store's sessions' application_name, unless the url sets one.
constexpr const char* kApplicationName = "spillway-postgres";

// FNV-1a: a stable advisory-lock key per table name.
long long lock_key(const std::string& s) {
    unsigned long long h = 1469598103934665603ull;
    for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
    return static_cast<long long>(h >> 1);
}

// The options only this store has; the shared ones are outbox::Options. Defaults, bounds and
// descriptions are the table's (the engine fills unset options from it).
struct Settings {
    std::string url;  // parsed by pg::Conninfo right after the read
    int64_t pool_size;
    bool prepare;
    int64_t shard_heartbeat_ms, shard_ttl_ms, claim_guard_ms;
    int64_t id_grace_ms;
};

const sdk::Options<Settings> kPostgresOptions{
    sdk::option<&Settings::url>(
        "url", nullptr,
        "libpq connection string: key=value pairs (`host=db port=5432 dbname=app user=relay sslmode=require`) or a "
        "`postgresql://` (`postgres://`) URI; any libpq parameter goes here. libpq's parser checks it, so `spillway "
        "validate` refuses a malformed string; at start a url the server refuses for good is a configuration error "
        "(exit 1), an unreachable server is not (exit 3). The password is never printed")
        .required()
        .secret(),
    sdk::option<&Settings::pool_size>("pool_size", "4",
                                      "connections kept open; concurrent appends and the relay share them")
        .range(1, 256),
    sdk::option<&Settings::prepare>(
        "prepare", "true",
        "the claim's statements are prepared once per connection and run by `EXECUTE`, and a trickle's claim runs "
        "as a function of the session (`pg_temp.spillway_claim`), sparing the server parsing and planning them on "
        "every claim. Turn it off behind a pooler that hands a session's transactions to different server "
        "connections (PgBouncer in transaction mode)"),
    sdk::duration<&Settings::shard_heartbeat_ms>(
        "shard_heartbeat", "1s",
        "coordination = \"shards\": how often an engine renews its membership and shards, takes over a crashed "
        "member's shards and rebalances")
        .at_least(50),
    sdk::duration<&Settings::shard_ttl_ms>(
        "shard_ttl", "10s",
        "coordination = \"shards\": how long a shard stays its owner's without a renewal; a paused or cut-off "
        "engine's shards move after it (a crashed engine's at once, on its next heartbeat). The server ends "
        "the store's sessions idle inside a transaction for half of it, at most 4 s (a paused engine's locks)")
        .at_least(200),
    sdk::duration<&Settings::claim_guard_ms>(
        "claim_guard", "6s",
        "coordination = \"shards\": a claim takes rows only of shards whose lease outlasts it by this much; keep "
        "it above the relay's send time (the sink's `message.timeout.ms`) and below `shard_ttl` minus two "
        "heartbeats")
        .at_least(1),
    sdk::duration<&Settings::id_grace_ms>(
        "id_grace", "500ms",
        "how long before the transaction that inserts a row an application may take its id from the table's "
        "sequence (`nextval` outside that transaction; the column's default takes it inside). A backlog's claims "
        "skip reading again the ids they passed (between and below the batches in flight) once every transaction "
        "that may still insert there, this long after the sequence was read, has ended "
        "(`relay_claim_skips_total`); a row whose id was taken longer before may go out after a later row of its "
        "key (never lost: the claims read below again at least once a second). A sequence that caches or steps "
        "by more than 1 turns the skip off; so does a grace longer than a drain (`1h`)"),
};

}  // namespace

class PostgresStore final : public outbox::OutboxStore {
public:
    explicit PostgresStore(sdk::Host host)
        : OutboxStore(host, "postgres", true, {kPostgresOptions.data(), kPostgresOptions.size()}),
          settings_(kPostgresOptions.read(host)),
          // The raw url (it holds the password) leaves settings_ for conninfo_, which redacts it.
          conninfo_("url", std::exchange(settings_.url, std::string())),
          soci_url_(conninfo_.as_uri(kApplicationName)), prepare_(settings_.prepare) {
        claim_lock_ = lock_key(options().table);
        migrate_lock_ = lock_key(options().table + "/migrate");
        const std::string& t = options().table;
        const auto dot = t.find('.');
        schema_ = dot == std::string::npos ? "" : t.substr(0, dot);
        table_name_ = dot == std::string::npos ? t : t.substr(dot + 1);
    }

    void start() override {
        OutboxStore::start();
        // An adopted table may keep published_at as a timestamp rather than epoch microseconds.
        with_published_type();
    }
    void stop(int64_t timeout_ms) override {
        {
            // The relay has stopped: hand the shards over first, then let go of the holds.
            std::lock_guard lock(guard_mutex_);
            for (auto& [pipeline, c] : coordinators()) c->stop(timeout_ms);
            {
                std::lock_guard map_lock(coordinators_mutex_);
                coordinators_.clear();
            }
            guard_.reset();  // its session closes: the holds go
        }
        OutboxStore::stop(timeout_ms);
    }
    void hold(std::string_view pipeline, sw_hold_mode mode, std::string_view member) override {
        std::lock_guard lock(guard_mutex_);
        if (!guard_) guard_ = std::make_unique<SingleGuard>(conninfo_, options().table, host());
        const std::string p(pipeline);
        if (coordinator(p)) throw sdk::Error(SW_REJECT, "postgres: pipeline '" + p + "' is held already");
        guard_->hold(p, mode, outbox::engine_name(member));
        if (mode != SW_HOLD_SHARDS) return;
        if (settings_.claim_guard_ms + 2 * settings_.shard_heartbeat_ms >= settings_.shard_ttl_ms)
            throw sdk::ConfigError("claim_guard", "claim_guard (" + std::to_string(settings_.claim_guard_ms) +
                                                      " ms) plus two shard_heartbeat must stay below shard_ttl (" +
                                                      std::to_string(settings_.shard_ttl_ms) + " ms)");
        create_pending_key_index();
        auto c = std::make_shared<ShardCoordinator>(
            conninfo_, shard_tables(p), p, std::string(member), lease_owner(),
            ShardTimings{settings_.shard_heartbeat_ms, settings_.shard_ttl_ms, settings_.claim_guard_ms,
                         std::min<int64_t>(500, settings_.shard_heartbeat_ms)},
            host(), db_clock_offset_us_);
        c->start();
        std::lock_guard map_lock(coordinators_mutex_);
        coordinators_[p] = std::move(c);
    }
    void draining(const std::string& pipeline) override {
        if (auto c = coordinator(pipeline)) c->draining();
    }
    void sink_health(std::string_view pipeline, sw_health_state state) override {
        if (auto c = coordinator(std::string(pipeline))) c->sink_state(state == SW_HEALTH_DOWN);
    }
    std::string coordination(std::string_view pipeline) override {
        auto c = coordinator(std::string(pipeline));
        return c ? c->json() : R"({"coordination":"single"})";
    }
    void health(sw_health& out) override {
        OutboxStore::health(out);
        std::string trouble;
        {
            std::lock_guard lock(guard_mutex_);
            if (guard_) trouble = guard_->trouble();
        }
        if (trouble.empty() || out.state == SW_HEALTH_DOWN) return;
        out.state = SW_HEALTH_DEGRADED;
        sdk::set_message(out, "the single-engine guard lost a hold: " + trouble);
    }

protected:
    void connect() override {
        // One plain libpq connection first: its failure carries the server's SQLSTATE, which tells
        // a url that can never work (no such database or role, authentication refused: a
        // configuration error naming the key) from a server to wait for (RETRY). SOCI's own
        // error keeps only the translated words.
        if (const auto failure = pg::probe(conninfo_, kApplicationName)) {
            const std::string message = "postgres: cannot connect to " + conninfo_.where() + ": " + failure->message;
            if (failure->lasting())
                throw sdk::ConfigError("url", message + (failure->sqlstate.empty() ? "" : " (SQLSTATE " + failure->sqlstate + ")") +
                                                  "; waiting will not help: check url");
            throw sdk::Error(SW_RETRY, message);
        }
        auto pool = std::make_unique<soci::connection_pool>(static_cast<size_t>(settings_.pool_size));
        try {
            for (int64_t i = 0; i < settings_.pool_size; ++i) {
                soci::session& s = pool->at(static_cast<size_t>(i));
                s.open(soci::postgresql, soci_url_);
                opened(s);
            }
        } catch (const sdk::Error&) {
            throw;
        } catch (const std::exception& e) {
            std::string why = e.what();
            std::replace(why.begin(), why.end(), '\n', ' ');
            throw sdk::Error(SW_RETRY, conninfo_.redact("postgres: cannot connect to " + conninfo_.where() + ": " + why));
        }
        pool_ = std::move(pool);
    }
    void opened(soci::session& s) override {
        // Generic plans spare planning the prepared hot statements per call; a custom plan would
        // be the same (one pipeline, id order). Set here, outside a transaction: set by the first
        // claim, inside its transaction, a rollback would have undone it.
        auto* be = static_cast<soci::postgresql_session_backend*>(s.get_backend());
        if (prepare_ && be && be->conn_ && PQserverVersion(be->conn_) >= 120000) s << "SET plan_cache_mode = force_generic_plan";
        // An engine paused inside a claim's or a settlement's transaction (SIGSTOP, a frozen VM)
        // would hold its locks for the whole pause: the shared handoff lock, which keeps every
        // member of a shards-mode pipeline from handing shards over, and the row locks of a
        // DELETE, which the rows' next owner would wait on. The server ends such a session after
        // half a shard lease, as it does the coordinator's; the store reconnects when it runs again.
        // Nothing here leaves a transaction idle: its statements follow each other at once.
        const long long idle_ms = std::clamp<long long>(settings_.shard_ttl_ms / 2, 500, 4000);
        s << "SET idle_in_transaction_session_timeout = " + std::to_string(idle_ms);
    }
    void disconnect() override {
        pool_.reset();
        std::lock_guard lock(prepared_mutex_);
        prepared_on_.clear();
        sharded_on_.clear();
        function_on_.clear();
    }
    outbox::Conn acquire() override {
        if (!pool_) throw sdk::Error(SW_RETRY, "postgres: the store is not started");
        outbox::Conn c;
        c.pooled = std::make_unique<soci::session>(*pool_);
        c.session = c.pooled.get();
        return c;
    }
    const char* begin_write_sql() const override { return "BEGIN"; }
    const char* serial_key_ddl() const override { return "BIGSERIAL PRIMARY KEY"; }
    bool alive(soci::session& s) override {
        // libpq knows locally when a connection broke (PQstatus); SOCI would send "/* ping */".
        auto* be = static_cast<soci::postgresql_session_backend*>(s.get_backend());  // our sessions are all postgresql
        return be && be->conn_ && PQstatus(be->conn_) == CONNECTION_OK;
    }
    std::string in_ids(const std::string& param) const override { return "= ANY(CAST(" + param + " AS BIGINT[]))"; }
    std::string encode_ids(std::span<const long long> ids) const override {
        std::string out = "{";
        for (size_t i = 0; i < ids.size(); ++i) {
            if (i) out += ',';
            out += std::to_string(ids[i]);
        }
        return out + "}";
    }
    std::string begin_lease_change_sql() const override {
        // One round trip: BEGIN and the table's advisory lock in one simple query (the key is a
        // number computed here, not input). Lease changes and settlements commit asynchronously:
        // a crash may forget a lease (the row is claimable again) or a completion (the row is
        // published again: at-least-once, the consumer dedupes on event_id); neither loses an
        // event. Appends stay fully durable.
        return "BEGIN; SELECT pg_advisory_xact_lock(" + std::to_string(claim_lock_) +
               "), set_config('synchronous_commit', 'off', true)";
    }
    bool begin_takes_a_statement() const override { return true; }  // libpq runs a parameterless query as one
    std::string statement(soci::session& s, Hot h, const HotArgs& args) override {
        auto* be = static_cast<soci::postgresql_session_backend*>(s.get_backend());
        if (!prepare_ || !be || !be->conn_) return {};
        // A connection is known by its libpq handle and its server process: a reconnected session
        // may get the same handle address, never the same backend too.
        const std::pair<const void*, int> conn{be->conn_, PQbackendPID(be->conn_)};
        // The forms are made once, under the mutex, and never change after; the PREPARE goes to
        // the server outside it. A claim may run this inside its transaction, and a PREPARE that
        // waits on a table lock must not hold up other sessions' claims (each would sit idle in
        // its transaction behind the mutex). One connection serves one thread at a time.
        const Prepared* p = nullptr;
        std::string to_prepare;
        {
            std::lock_guard lock(prepared_mutex_);
            if (h >= Hot::kShardedHead) {
                // Only where a pipeline claims in shards mode: these statements read the shard table.
                Prepared& form = sharded_[static_cast<size_t>(h) - static_cast<size_t>(Hot::kShardedHead)];
                if (form.prepare.empty()) form = prepared_form(h);
                if (!sharded_on_.count({conn, h})) to_prepare = form.prepare;
                p = &form;
            } else {
                if (prepared_[0].prepare.empty())
                    for (size_t i = 0; i < prepared_.size(); ++i) prepared_[i] = prepared_form(static_cast<Hot>(i));
                // All of them in one round trip, the first time a claim runs on this connection.
                // They outlive the transaction this may run in, rolled back or not (plan_cache_mode,
                // which would not, was set when the session opened).
                if (!prepared_on_.count(conn))
                    for (const Prepared& each : prepared_) to_prepare += (to_prepare.empty() ? "" : "; ") + each.prepare;
                p = &prepared_[static_cast<size_t>(h)];
            }
        }
        if (!to_prepare.empty()) {
            s << to_prepare;
            std::lock_guard lock(prepared_mutex_);
            if (h >= Hot::kShardedHead) sharded_on_.insert({conn, h});
            else prepared_on_.insert(conn);
        }
        return execute_text(be->conn_, *p, args);
    }
    // One round trip: the session's claim function (claim_function_on), or, where it cannot be
    // made, one query of two statements, which libpq's simple protocol runs in order as one
    // transaction (no BEGIN or COMMIT to send), each with a snapshot of its own: a gate that takes
    // the lock only when a row is due, then the claim's EXECUTE, whose rows are the answer.
    bool run_one_trip_claim(soci::session& s, const HotArgs& args, TextRows& rows) override {
        auto* be = static_cast<soci::postgresql_session_backend*>(s.get_backend());
        if (!prepare_ || !be || !be->conn_) return false;
        PGconn* conn = be->conn_;
        if (claim_function_on(s, args)) {
            // Its call is prepared too, and its values go as parameters: nothing to parse or plan.
            std::vector<std::string> text;
            for (const std::string& name : claim_function_params_) {
                const auto& value = arg_value(args, name);
                const auto* n = std::get_if<long long>(&value);
                text.push_back(n ? std::to_string(*n) : std::get<std::string>(value));
            }
            std::vector<const char*> values;
            for (const std::string& t : text) values.push_back(t.c_str());
            if (!PQsendQueryPrepared(conn, kClaimCall, static_cast<int>(values.size()), values.data(), nullptr, nullptr, 0))
                throw soci::postgresql_soci_error(PQerrorMessage(conn), "08000");
        } else {
            const std::string claim = statement(s, Hot::kClaim, args);
            if (claim.empty()) return false;
            const std::string due =
                with_params(hot_sql(Hot::kDue), [&](const std::string& name) { return literal(conn, args, name); });
            const std::string sql = "SELECT set_config('synchronous_commit', 'off', true), CASE WHEN EXISTS (" + due +
                                    ") THEN set_config('spillway.claim', CAST(pg_advisory_xact_lock(" +
                                    std::to_string(claim_lock_) + ") AS TEXT) || '1', true) END; " + claim;
            if (!PQsendQuery(conn, sql.c_str())) throw soci::postgresql_soci_error(PQerrorMessage(conn), "08000");
        }
        std::string error, sqlstate;
        rows.clear();
        while (PGresult* r = PQgetResult(conn)) {
            const ExecStatusType st = PQresultStatus(r);
            if (st == PGRES_FATAL_ERROR && error.empty()) {
                error = PQresultErrorMessage(r);
                const char* code = PQresultErrorField(r, PG_DIAG_SQLSTATE);
                sqlstate = code ? code : "";
            } else if (st == PGRES_TUPLES_OK && PQnfields(r) > 2) {
                for (int i = 0; i < PQntuples(r); ++i) {
                    auto& row = rows.emplace_back(static_cast<size_t>(PQnfields(r)));
                    for (int j = 0; j < PQnfields(r); ++j)
                        if (!PQgetisnull(r, i, j)) row[static_cast<size_t>(j)] = std::string(PQgetvalue(r, i, j), PQgetlength(r, i, j));
                }
            }
            PQclear(r);
        }
        if (!error.empty()) {
            // The error ended the query inside its transaction: end that too, or the session's next
            // statement fails with "current transaction is aborted".
            if (PQtransactionStatus(conn) == PQTRANS_INERROR || PQtransactionStatus(conn) == PQTRANS_INTRANS)
                PQclear(PQexec(conn, "ROLLBACK"));
            throw soci::postgresql_soci_error(error, sqlstate.size() == 5 ? sqlstate.c_str() : "XX000");
        }
        return true;
    }
    // An idle poll through the claim function is one statement, as the due probe is: no probe
    // first, so a claim woken by a doorbell after a quiet spell is one round trip too.
    bool one_trip_claim_gated() const override { return prepare_ && claim_function_; }
    // The one-trip claim as a function of the session (pg_temp, gone with the connection), made
    // the first time a claim runs on a connection, outside any transaction. It takes the claim
    // lock and claims in one statement; a PL/pgSQL function takes a snapshot per statement, so the
    // claim still sees every claim committed before the lock was ours, and it keeps its plans.
    // Inside, one plain read of the head and a loop: the server ran the one-statement claim (a
    // window over the head, sorts, CTE scans) at several times the cost. A database that refuses
    // the function (no TEMPORARY privilege) keeps the gate (the lock only when a row is due) and
    // the one-statement claim, two statements in one query.
    bool claim_function_on(soci::session& s, const HotArgs& args) {
        if (!claim_function_) return false;
        auto* be = static_cast<soci::postgresql_session_backend*>(s.get_backend());
        const std::pair<const void*, int> conn{be->conn_, PQbackendPID(be->conn_)};
        std::string create;
        {
            std::lock_guard lock(prepared_mutex_);
            if (function_on_.count(conn)) return true;
            if (claim_function_sql_.empty()) claim_function_sql_ = claim_function_sql(args);
            create = claim_function_sql_;
        }
        PGresult* r = PQexec(be->conn_, create.c_str());
        bool made = PQresultStatus(r) == PGRES_COMMAND_OK;
        std::string why = made ? std::string() : PQresultErrorMessage(r);
        PQclear(r);
        if (made) {
            std::string call = "SELECT * FROM pg_temp.spillway_claim(";
            for (size_t i = 1; i <= claim_function_params_.size(); ++i) call += (i > 1 ? ", $" : "$") + std::to_string(i);
            r = PQprepare(be->conn_, kClaimCall, (call + ")").c_str(), 0, nullptr);
            made = PQresultStatus(r) == PGRES_COMMAND_OK;
            if (!made) why = PQresultErrorMessage(r);
            PQclear(r);
        }
        if (made) {
            std::lock_guard lock(prepared_mutex_);
            function_on_.insert(conn);
            return true;
        }
        if (claim_function_.exchange(false))
            host().warn("postgres: cannot make the session's claim function (" + trimmed(why) +
                        "); claims take two statements in one query instead");
        return false;
    }
    // CREATE FUNCTION pg_temp.spillway_claim(<the statements' :names, in order of first use>):
    // the one-trip claim's answer (the picked rows, every column text, then the summary row, which
    // here also carries the lease), made by the Picker's rule over the head in a loop (claim.cpp:
    // a row waits when it blocks, or an earlier row of its key in the head waited; a keyless row
    // waits only on itself; up to :want rows are picked). The lock is taken whether or not a row
    // is due: asking first cost more than the lock.
    std::string claim_function_sql(const HotArgs& args) {
        claim_function_params_.clear();
        std::string params;
        const auto arg = [&](const std::string& name) -> std::string {
            if (name == "ids") return "'{' || array_to_string(v_picked, ',') || '}'";
            if (std::find(claim_function_params_.begin(), claim_function_params_.end(), name) == claim_function_params_.end()) {
                params += std::string(params.empty() ? "" : ", ") + "a_" + name +
                          (std::holds_alternative<long long>(arg_value(args, name)) ? " BIGINT" : " TEXT");
                claim_function_params_.push_back(name);
            }
            return "a_" + name;
        };
        const outbox::Statements& st = statements();
        const std::string head = with_params(st.trickle_head, arg);
        const std::string lease = with_params(st.lease_insert, arg);
        const std::string want = arg("want");
        constexpr int kRowColumns = 13;  // select_columns: the key is the fifth
        std::string out_columns, row_vars, declare, take, clear;
        for (int i = 1; i <= kRowColumns + 3; ++i)
            out_columns += (i > 1 ? ", " : "") + ("o" + std::to_string(i)) + " TEXT";
        for (int i = 1; i <= kRowColumns; ++i) {
            const std::string n = std::to_string(i);
            row_vars += "c" + n + ", ";
            declare += " c" + n + " TEXT;";
            take += "o" + n + " := c" + n + "; ";
            clear += "o" + n + " := NULL; ";
        }
        return "CREATE OR REPLACE FUNCTION pg_temp.spillway_claim(" + params + ") RETURNS TABLE(" + out_columns +
               ") LANGUAGE plpgsql AS $spillway$\n#variable_conflict use_column\n"
               "DECLARE v_blocked TEXT[] := '{}'; v_picked BIGINT[] := '{}'; v_read BIGINT := 0; v_seen TEXT; "
               "v_lease TEXT; v_blocks BOOLEAN;" + declare + "\n"
               "BEGIN\n"
               "PERFORM set_config('synchronous_commit', 'off', true), pg_advisory_xact_lock(" +
               std::to_string(claim_lock_) + ");\n"
               "FOR " + row_vars + "v_blocks IN " + head + " LOOP\n"
               "  v_read := v_read + 1;\n"
               "  v_seen := c1;\n"
               "  CONTINUE WHEN c5 IS NOT NULL AND c5 = ANY(v_blocked);\n"
               "  IF v_blocks THEN\n"
               "    IF c5 IS NOT NULL THEN v_blocked := v_blocked || c5; END IF;\n"
               "  ELSIF cardinality(v_picked) < " + want + " THEN\n"
               "    v_picked := v_picked || CAST(c1 AS BIGINT);\n"
               "    " + take + "o14 := NULL; o15 := NULL; o16 := NULL;\n"
               "    RETURN NEXT;\n"
               "  END IF;\n"
               "END LOOP;\n"
               "IF cardinality(v_picked) > 0 THEN\n"
               "  " + lease + " INTO v_lease;\n"
               "END IF;\n" +
               clear + "o14 := v_lease; o15 := CAST(v_read AS TEXT); o16 := v_seen;\n"
               "RETURN NEXT;\n"
               "END\n$spillway$";
    }
    static std::string trimmed(std::string s) {
        while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
        std::replace(s.begin(), s.end(), '\n', ' ');
        return s;
    }
    void failed(const std::exception& e) override {
        // A statement prepared on this connection is gone though the connection is the same: a
        // pooler runs this session's transactions on other server connections (PgBouncer in
        // transaction mode). Preparing cannot work behind it; claims go as text from now on.
        const auto* pe = dynamic_cast<const soci::postgresql_soci_error*>(&e);
        // The session's claim function is gone the same way.
        if (pe && pe->sqlstate() == "42883" && claim_function_.exchange(false))
            host().warn("postgres: the session's claim function vanished from its connection (a pooler in "
                        "transaction mode?): claims take two statements in one query from now on");
        if (!pe || pe->sqlstate() != "26000" || !prepare_.exchange(false)) return;
        host().warn("postgres: statements prepared on a connection vanished from it (a pooler in transaction "
                    "mode?): claims run unprepared from now on; set prepare = false to say so");
    }
    std::string begin_sharded_claim_sql(const std::string& pipeline) const override {
        return "BEGIN; SELECT pg_advisory_xact_lock_shared(" + std::to_string(handoff_lock(pipeline)) +
               "), set_config('synchronous_commit', 'off', true)";
    }
    std::string begin_settle_sql() const override {
        return "BEGIN; SELECT set_config('synchronous_commit', 'off', true)";
    }
    // A backlog's completions wait for their WAL flush. The server marks a deleted row's index
    // entry dead, for later scans to skip, only once the row's deletion is known committed on
    // disk: an asynchronous commit waits for the WAL writer (wal_writer_delay, 200 ms by default),
    // and in that time a drain deletes some 20,000 rows, which every claim's look back below its
    // cursor fetched from the table again (5,000-13,500 buffers a look back with three engines).
    // One local flush per batch of more than 64 rows ('local': not waiting for a synchronous
    // standby, and whatever the role or database sets); a trickle's completions stay asynchronous.
    std::string begin_flushed_settle_sql() const override {
        return "BEGIN; SELECT set_config('synchronous_commit', 'local', true)";
    }
    void lock_migrations(soci::session& s) override {
        s << "SET LOCAL client_min_messages = warning";  // no "already exists, skipping" notices
        long long key = migrate_lock_;
        s << "SELECT pg_advisory_xact_lock(:k)", soci::use(key, "k");
    }

    // A transaction that commits late can put a row under ids a claim has passed. The horizon is
    // an id up to which that can no longer happen. A round reads the sequence's last id v, then,
    // a grace later, the transactions running in this database (their virtual transaction
    // ids, held from start to end); once all of those have ended, every row up to v is in or never
    // will be: v is the horizon. The grace (`id_grace`) covers an application that takes its id
    // (nextval) just before the transaction that inserts it, not inside it. Nothing is asked while the
    // horizon is past `want`, as through most of a backlog's drain.
    // No horizon (0, and claims read as before): an id column without a sequence; a sequence that
    // hands ids out by the block (CACHE > 1, or an INCREMENT that an application's generator
    // spreads over its own inserts, as Hibernate's pooled optimizer does); a role that may not read
    // it. A prepared transaction (two-phase commit) has no session to watch: no round ends while
    // one is pending in this database.
    long long id_horizon(soci::session& s, long long want) override {
        std::lock_guard lock(horizon_mutex_);
        Horizon& h = horizon_;
        const int64_t now = host().monotonic_us();
        if (h.off || h.safe >= want || now < h.retry_at) return h.safe;
        const auto off = [&](const std::string& why) {
            h.off = true;
            host().info("postgres: " + options().table + ": claims read the ids between the batches out again (" +
                        why + ")");
            return h.safe;
        };
        try {
            if (h.sequence.empty()) {
                std::string table = sql().table, column = options().columns[outbox::kId], seq;
                soci::indicator ind = soci::i_null;
                s << "SELECT pg_get_serial_sequence(:t, :c)", soci::use(table, "t"), soci::use(column, "c"),
                    soci::into(seq, ind);
                if (!s.got_data() || ind != soci::i_ok) return off("its id column takes no value from a sequence");
                long long cache = 0, step = 0;
                s << "SELECT seqcache, seqincrement FROM pg_sequence WHERE seqrelid = CAST(:q AS regclass)",
                    soci::use(seq, "q"), soci::into(cache), soci::into(step);
                if (cache > 1 || step != 1)
                    return off("its sequence " + seq + " steps by " + std::to_string(step) + " and caches " +
                               std::to_string(cache) + ": ids may be taken long before their rows are inserted");
                h.sequence = seq;
            }
            if (!h.running.empty()) {  // the round's last step: have they all ended?
                long long still = 0;
                s << "SELECT (SELECT count(*) FROM pg_locks WHERE locktype = 'virtualxid' AND virtualxid = "
                     "ANY(CAST(:w AS TEXT[]))) + (SELECT count(*) FROM pg_prepared_xacts WHERE database = "
                     "current_database())",
                    soci::use(h.running, "w"), soci::into(still);
                if (still > 0) return h.safe;
                h.safe = std::max(h.safe, h.next);
                h.running.clear(), h.read_at = 0;
                if (h.safe >= want) return h.safe;
            }
            if (h.read_at == 0) {  // a round begins: the sequence
                long long v = 0;
                soci::indicator vi = soci::i_null;
                s << "SELECT pg_sequence_last_value(CAST(:q AS regclass))", soci::use(h.sequence, "q"), soci::into(v, vi);
                h.next = vi == soci::i_ok ? v : 0;  // null: nothing handed out yet
                h.read_at = now;
                return h.safe;
            }
            if (now - h.read_at < settings_.id_grace_ms * 1000) return h.safe;
            // Then who is running: a transaction that took an id up to v is among them or over.
            std::string running;
            soci::indicator ri = soci::i_null;
            long long prepared = 0;
            s << "SELECT CAST(array_agg(l.virtualxid) AS TEXT), (SELECT count(*) FROM pg_prepared_xacts WHERE database "
                 "= current_database()) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = "
                 "'virtualxid' AND l.granted AND l.pid <> pg_backend_pid() AND a.datid = (SELECT oid FROM pg_database "
                 "WHERE datname = current_database())",
                soci::into(running, ri), soci::into(prepared);
            if (prepared > 0) return h.safe;  // asked again at the next claim
            if (ri == soci::i_ok && running != "{}") {
                h.running = running;
                return h.safe;
            }
            h.safe = std::max(h.safe, h.next);
            h.read_at = 0;
        } catch (const std::exception& e) {
            // A lost connection or a refused read: claims read as before for a while, then the
            // round goes on (a server restart must not turn the horizon off for good).
            if (h.retry_at == 0)
                host().info("postgres: " + options().table + ": the id horizon could not be read (" +
                            trimmed(e.what()) + "); claims read the ids between the batches out again for 10 s");
            h.retry_at = now + 10'000'000;
        }
        return h.safe;
    }

    // In shards mode every engine writes and compares row leases on the database's clock (its
    // offset from this host's, as the coordinators' heartbeats last measured it).
    long long clock_us() const override { return host().now_unix_us() + db_clock_offset_us_.load(); }

    std::optional<ShardFilter> shard_filter(const std::string& pipeline) const override {
        auto c = coordinator(pipeline);
        if (!c) return std::nullopt;
        int fenced = 0;
        std::string shards = c->claimable(&fenced);
        // Half the shards or fewer: the other members' rows are at least half of any range.
        const auto claimable = std::count(shards.begin(), shards.end(), ',') + (shards.empty() ? 0 : 1);
        const bool by_shard = claimable <= ShardCoordinator::kShards / 2;
        return ShardFilter{std::move(shards), c->member(), c->claim_guard_ms(), c->ttl_ms(), fenced, by_shard};
    }
    std::string claimable_shards_query() const override {
        return "SELECT shard FROM " + shards_table() +
               " WHERE pipeline = :sp AND owner = :sm AND shard = ANY(CAST(:ss AS SMALLINT[])) AND expires_at > "
               "clock_timestamp() + :sg * interval '1 millisecond'";
    }
    // Stored since schema version 6: computing it (an md5 of the key) for every row a claim reads,
    // the other members' rows too, cost the database about as much as the rest of the claim.
    std::string shard_of_row(const std::string& q) const override { return q + sql().shard_column; }
    // The claimable shards as a mask of kShards booleans, built once per statement (an InitPlan),
    // which each row's shard indexes: `shard = ANY(<the claimable list>)` compared the row's shard
    // with up to 256 numbers, and a claim's reads test thousands of rows, the other members' too.
    std::string shard_condition(const std::string& q) const override {
        return "(SELECT array_agg(s.shard IS NOT NULL ORDER BY g.n) FROM generate_series(0, " +
               std::to_string(ShardCoordinator::kShards - 1) + ") AS g(n) LEFT JOIN (" + claimable_shards_query() +
               ") AS s ON s.shard = g.n)[" + shard_of_row(q) + " + 1]";
    }

    void create_schema(soci::session& s) override {
        const auto& c = sql().c;
        const std::string& T = sql().table;
        std::array<std::string, outbox::kColumnCount> had;  // data types; "" where absent
        bool existed = false;
        for (size_t k = 0; k < outbox::kColumnCount; ++k) {
            had[k] = column_type_of(s, options().columns[k]);
            existed = existed || !had[k].empty();
        }
        existed = existed || table_exists(s);
        if (!existed) {
            std::string ddl = "CREATE TABLE " + T + " (" + c[outbox::kId] + " BIGSERIAL PRIMARY KEY";
            for (size_t k = 1; k < outbox::kColumnCount; ++k) ddl += ", " + c[k] + " " + column_type(Col(k));
            s << ddl + ") WITH (fillfactor = 80)";  // schema version 2 lowers it
            note("created table " + options().table);
            create_indexes_v1(s);
            return;
        }
        // Adopting an existing table: add what Spillway needs and the application's rows lack.
        static const std::set<std::string> kIntegers = {"smallint", "integer", "bigint"};
        if (!had[outbox::kId].empty() && !kIntegers.count(had[outbox::kId]))
            throw sdk::Error(SW_FATAL, "postgres: " + options().table + "." + options().columns[outbox::kId] + " is " +
                                           had[outbox::kId] +
                                           ", and Spillway numbers rows with an integer: set columns.id to a new "
                                           "column name (e.g. \"spillway_id\") and the migration adds it");
        std::string added;
        if (had[outbox::kId].empty()) {
            number_existing_rows(s);
            added = options().columns[outbox::kId];
        } else if (!options().adopt_order_by.empty()) {
            note("adopt_order_by is not used: " + options().columns[outbox::kId] +
                 " exists, and rows go in its order");
        }
        adopt_columns(s, [&](size_t k) { return !had[k].empty(); }, &column_type, std::move(added));
    }

    // Every migration: what the adoption options ask of the table (they may change between runs).
    void adopt(soci::session& s) override {
        make_fill_shard_function(s);
        const auto& o = options();
        // The pipeline column's default follows adopt_pipeline as SQLite's trigger does: set while
        // the option is, back to '' once it is gone. Which default Spillway set is kept in
        // <table>_meta, so a default the table had of its own is left alone.
        std::string def = pipeline_default(s), ours;
        soci::indicator ours_ind = soci::i_null;
        s << "SELECT value FROM " + sql().meta_table + " WHERE name = 'adopt_pipeline_default'", soci::into(ours, ours_ind);
        if (!s.got_data() || ours_ind != soci::i_ok) ours.clear();
        if (!o.adopt_pipeline.empty()) {
            // Rows the application inserts from now on belong to adopt_pipeline.
            const std::string want = "'" + o.adopt_pipeline + "'";  // a pipeline name: no quote in it
            if (def.rfind(want, 0) != 0) {
                s << "ALTER TABLE " + sql().table + " ALTER COLUMN " + sql().c[outbox::kPipeline] + " SET DEFAULT " + want;
                note("rows inserted without a pipeline go to pipeline '" + o.adopt_pipeline + "' (column default)");
            }
            if (ours != o.adopt_pipeline) {
                std::string p = o.adopt_pipeline;
                s << "INSERT INTO " + sql().meta_table + " (name, value) VALUES ('adopt_pipeline_default', :p) "
                     "ON CONFLICT (name) DO UPDATE SET value = excluded.value", soci::use(p, "p");
            }
        } else if (!ours.empty()) {
            if (def.rfind("'" + ours + "'", 0) == 0) {
                s << "ALTER TABLE " + sql().table + " ALTER COLUMN " + sql().c[outbox::kPipeline] + " SET DEFAULT ''";
                note("rows inserted without a pipeline keep '' again (adopt_pipeline is not set; column default "
                     "'" + ours + "' removed)");
            }
            s << "DELETE FROM " + sql().meta_table + " WHERE name = 'adopt_pipeline_default'";
        }
        if (!o.event_id_field.empty() || !o.headers_field.empty()) {
            // Reads the payload of application rows as JSON, NULL when it is not (a cast would
            // fail the whole claim on one bad row).
            std::string sig = sql().json_fn + "(text)";
            if (!json_function_exists(s)) {
                s << "CREATE OR REPLACE FUNCTION " + sql().json_fn +
                         "(payload text) RETURNS jsonb LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$ "
                         "BEGIN RETURN CAST(payload AS jsonb); EXCEPTION WHEN others THEN RETURN NULL; END $$";
                note("created function " + sig + " (reads payload fields)");
            }
        }
    }

    std::string adoption_missing(soci::session& s) override {
        const auto& o = options();
        if ((!o.event_id_field.empty() || !o.headers_field.empty()) && !json_function_exists(s))
            return "function " + sql().json_fn + "(text), which event_id_field and headers_field read the payload "
                   "with, is missing";
        return {};
    }

    bool has_column(soci::session& s, const std::string& column) override { return !column_type_of(s, column).empty(); }

    bool json_function_exists(soci::session& s) {
        std::string sig = sql().json_fn + "(text)";
        int exists = 0;
        s << "SELECT CASE WHEN to_regprocedure(:f) IS NULL THEN 0 ELSE 1 END", soci::use(sig, "f"), soci::into(exists);
        return exists != 0;
    }

    std::string pipeline_default(soci::session& s) {
        std::string schema = schema_, table = table_name_, col = options().columns[outbox::kPipeline], def;
        soci::indicator ind = soci::i_null;
        s << "SELECT column_default FROM information_schema.columns WHERE table_schema = "
             "COALESCE(NULLIF(:s, ''), current_schema()) AND table_name = :t AND column_name = :c",
            soci::use(schema, "s"), soci::use(table, "t"), soci::use(col, "c"), soci::into(def, ind);
        return s.got_data() && ind == soci::i_ok ? def : std::string();
    }

    // Adds columns.id to an adopted table. Claims go in id order, and that order is each key's
    // delivery order: the rows there are numbered by adopt_order_by (then by their place on disk
    // for ties), not by their place on disk alone, which an UPDATE changes (an updated row moves
    // to the end, so a later event of its key would get a lower id and be relayed first). Rows
    // inserted later take the sequence's next value.
    void number_existing_rows(soci::session& s) {
        const std::string& T = sql().table;
        const std::string& id = sql().c[outbox::kId];
        const std::string& order_by = options().adopt_order_by;
        if (!order_by.empty() && column_type_of(s, order_by).empty())
            throw sdk::ConfigError("adopt_order_by", "adopt_order_by: " + options().table + " has no column '" +
                                                         order_by + "' to number its rows by");
        s << "ALTER TABLE " + T + " ADD COLUMN " + id + " BIGINT";
        soci::statement st = (s.prepare << "UPDATE " + T + " AS t SET " + id + " = n.rn FROM (SELECT ctid AS row_at, "
                                               "row_number() OVER (ORDER BY " +
                                               (order_by.empty() ? std::string() : "\"" + order_by + "\", ") +
                                               "ctid) AS rn FROM " + T + ") AS n WHERE t.ctid = n.row_at");
        st.execute(true);
        const long long numbered = st.get_affected_rows();
        const std::string seq = in_schema() + "\"" + table_name_ + "_spillway_id_seq\"";
        s << "CREATE SEQUENCE " + seq + " OWNED BY " + T + "." + id;
        s << "SELECT setval('" + seq + "', COALESCE((SELECT MAX(" + id + ") FROM " + T + "), 0) + 1, false)";
        s << "ALTER TABLE " + T + " ALTER COLUMN " + id + " SET DEFAULT nextval('" + seq + "'), ALTER COLUMN " + id +
                 " SET NOT NULL, ADD UNIQUE (" + id + ")";
        if (numbered > 0)
            note(order_by.empty()
                     ? std::to_string(numbered) + " existing row(s) numbered in the table's physical order, which "
                       "updates change: set adopt_order_by to the column that orders them (e.g. created_at)"
                     : std::to_string(numbered) + " existing row(s) numbered in the order of " + order_by);
    }

    bool table_exists(soci::session& s) {
        std::string name = sql().table;  // quoted, as to_regclass parses it
        int exists = 0;
        s << "SELECT CASE WHEN to_regclass(:t) IS NULL THEN 0 ELSE 1 END", soci::use(name, "t"), soci::into(exists);
        return exists != 0;
    }

    void upgrade_schema(soci::session& s, int version) override {
        if (version == 6) {
            add_shard_column_v6(s);
            return;
        }
        if (version == 5) {
            // The shard of a row: its key's, so that all of a key's rows have one owner; a keyless
            // row's from its id, which spreads them. Stored in each row since version 6.
            s << "CREATE OR REPLACE FUNCTION " + shard_function() +
                     "(k text, id bigint) RETURNS smallint LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT CAST(CASE "
                     "WHEN k IS NULL THEN id % 256 ELSE get_byte(decode(md5(k), 'hex'), 0) END AS smallint) $$";
            s << "CREATE TABLE IF NOT EXISTS " + shards_table() +
                     " (pipeline TEXT NOT NULL, shard SMALLINT NOT NULL, owner TEXT, epoch BIGINT NOT NULL DEFAULT 0, "
                     "expires_at TIMESTAMPTZ NOT NULL DEFAULT '-infinity', PRIMARY KEY (pipeline, shard))";
            s << "CREATE TABLE IF NOT EXISTS " + members_table() +
                     " (pipeline TEXT NOT NULL, member TEXT NOT NULL, incarnation TEXT NOT NULL, lease_owner TEXT NOT "
                     "NULL, sink_ok BOOLEAN NOT NULL DEFAULT true, expires_at TIMESTAMPTZ NOT NULL, PRIMARY KEY "
                     "(pipeline, member))";
            return;
        }
        if (version == 3) {
            // Claims no longer update the rows (leases are rows of their own), so the room kept
            // for those updates goes: fewer pages for a claim to read. Retries keep some.
            s << "ALTER TABLE " + sql().table + " SET (fillfactor = 90)";
            return;
        }
        if (version != 2) return;
        drop_key_index_v2(s, in_schema());
        // A claim leases a whole page of rows at once. With half of each page free, every one of
        // those updates stays on its page (HOT: no index writes); at 80% it was one in four, and
        // the rest cost a new tuple elsewhere plus an entry in every index (measured: 40 ms vs
        // 6 ms to lease 1,000 rows). Pages written from now on honour it.
        s << "ALTER TABLE " + sql().table + " SET (fillfactor = 45)";
    }

    // Every row stores its shard. A plain nullable column costs no table rewrite (a generated
    // column would rewrite an adopted table under its exclusive lock). The engine's INSERT writes
    // a keyed row's shard itself; triggers fill it for every other row: keyless ones, those an
    // application inserts, and those of an engine still on version 5 in a rolling upgrade, whose
    // claims compute the same value. Rows already there that may still be claimed get theirs now.
    void add_shard_column_v6(soci::session& s) {
        const std::string& T = sql().table;
        const std::string& col = sql().shard_column;
        const std::string& key = sql().c[outbox::kKey];
        const std::string& id = sql().c[outbox::kId];
        s << "ALTER TABLE " + T + " ADD COLUMN IF NOT EXISTS " + col + " SMALLINT";
        make_fill_shard_function(s);
        // BEFORE triggers run in name order: "zz_" so that an application's own trigger that sets
        // the id or rewrites the key has run first.
        s << "DROP TRIGGER IF EXISTS zz_spillway_fill_shard ON " + T;
        s << "CREATE TRIGGER zz_spillway_fill_shard BEFORE INSERT ON " + T + " FOR EACH ROW WHEN (NEW." + col +
                 " IS NULL) EXECUTE FUNCTION " + fill_shard_function() + "()";
        // A row whose key or id is rewritten, or one set pending again by hand (a published row
        // from before version 6 has no shard), gets its shard (again).
        s << "DROP TRIGGER IF EXISTS zz_spillway_refill_shard ON " + T;
        s << "CREATE TRIGGER zz_spillway_refill_shard BEFORE UPDATE OF " + key + ", " + id + ", " +
                 sql().c[outbox::kState] + " ON " + T + " FOR EACH ROW WHEN (NEW." + sql().c[outbox::kState] +
                 " = 'pending' AND (NEW." + col + " IS NULL OR OLD." + key + " IS DISTINCT FROM NEW." + key +
                 " OR OLD." + id + " IS DISTINCT FROM NEW." + id + ")) EXECUTE FUNCTION " + fill_shard_function() +
                 "()";
        soci::statement st = (s.prepare << "UPDATE " + T + " SET " + col + " = " + shard_function() + "(CAST(" + key +
                                               " AS TEXT), " + id + ") WHERE " + col + " IS NULL AND " +
                                               sql().c[outbox::kState] + " IN ('pending', 'dead')");
        st.execute(true);
        if (const long long n = st.get_affected_rows(); n > 0)
            note(std::to_string(n) + " pending or dead row(s) given their shard");
        // The per-shard index of version 5 computed the shard; its successor reads the column.
        s << "DROP INDEX IF EXISTS " + old_shard_index();
    }
    // The triggers' function, made again at every migration: columns.key and columns.id may have
    // changed. It names spillway_shard() with its schema: it runs in the sessions of applications,
    // whose search_path may not hold it.
    void make_fill_shard_function(soci::session& s) {
        std::string fn = shard_function();
        if (schema_.empty()) {
            std::string current;
            s << "SELECT quote_ident(current_schema())", soci::into(current);
            fn = current + "." + fn;
        }
        s << "CREATE OR REPLACE FUNCTION " + fill_shard_function() + "() RETURNS trigger LANGUAGE plpgsql AS $$ "
                 "BEGIN NEW." + sql().shard_column + " := " + fn + "(CAST(NEW." + sql().c[outbox::kKey] +
                 " AS TEXT), NEW." + sql().c[outbox::kId] + "); RETURN NEW; END $$";
    }
    std::string in_schema() const { return schema_.empty() ? "" : "\"" + schema_ + "\"."; }
    std::string fill_shard_function() const { return in_schema() + "\"" + sql().table_base + "_fill_shard\""; }
    std::string old_shard_index() const { return in_schema() + "\"" + sql().table_base + "_pending_shard_idx\""; }

    std::string published_time(int64_t unix_us) const override {
        if (!published_is_timestamp_) return std::to_string(unix_us);
        const std::time_t secs = static_cast<std::time_t>(unix_us / 1'000'000);
        std::tm tm{};
        gmtime_r(&secs, &tm);
        char buf[64];
        std::snprintf(buf, sizeof(buf), "%04d-%02d-%02d %02d:%02d:%02d.%06lld+00", tm.tm_year + 1900, tm.tm_mon + 1,
                      tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<long long>(unix_us % 1'000'000));
        return buf;
    }

private:
    const std::string& shard_function() const { return sql().shard_fn; }
    std::string shards_table() const { return sql().table.substr(0, sql().table.size() - 1) + "_shards\""; }
    std::string members_table() const { return sql().table.substr(0, sql().table.size() - 1) + "_members\""; }
    // The lock a shards-mode claim of `pipeline` holds shared and a handoff takes exclusively.
    long long handoff_lock(const std::string& pipeline) const { return lock_key(options().table + "/handoff/" + pipeline); }
    ShardTables shard_tables(const std::string& pipeline) const {
        return ShardTables{sql().table,
                           shards_table(),
                           members_table(),
                           sql().table.substr(0, sql().table.size() - 1) + "_leases\"",
                           shard_of_row("r."),
                           sql().c[outbox::kId],
                           std::to_string(handoff_lock(pipeline)),
                           "r." + sql().c[outbox::kPipeline] + " = $1 AND r." + sql().c[outbox::kState] + " = 'pending'"};
    }
    // The pending-key probe's index (pending_among) and the per-shard index of pending rows, made
    // when a pipeline first runs in shards mode: a single-engine outbox does not pay for them on
    // every append.
    void create_pending_key_index() {
        try {
            soci::session s(*pool_);
            // Under the migration lock: replicas starting at once would race IF NOT EXISTS into
            // a unique violation on the catalogue (PostgreSQL checks it before it creates).
            soci::transaction tx(s);
            lock_migrations(s);
            s << "CREATE INDEX IF NOT EXISTS \"" + sql().table_base + "_pending_key_idx\" ON " + sql().table + " (" +
                     sql().c[outbox::kPipeline] + ", " + sql().c[outbox::kKey] + ") WHERE " + sql().c[outbox::kState] +
                     " = 'pending'";
            // An engine still on version 5 makes version 5's index again when it holds shards.
            s << "DROP INDEX IF EXISTS " + old_shard_index();
            // The claim's look back reads its own shards' rows range by range (scan_by_shard).
            s << "CREATE INDEX IF NOT EXISTS \"" + sql().table_base + "_shard_idx\" ON " + sql().table + " (" +
                     sql().c[outbox::kPipeline] + ", " + shard_of_row("") + ", " + sql().c[outbox::kId] + ") WHERE " +
                     sql().c[outbox::kState] + " = 'pending'";
            tx.commit();
        } catch (const std::exception& e) {
            throw sdk::Error(SW_RETRY, std::string("postgres: creating the shards-mode indexes of ") + options().table +
                                           ": " + e.what());
        }
    }

    struct Prepared {
        std::string name, prepare;        // prepare: PREPARE name AS <the SQL with $1..$n>
        std::vector<std::string> params;  // the SQL's :names, in the order of $1..$n
    };
    // The prepared form of a hot statement: SOCI's :name placeholders become $1..$n in the order
    // they first appear.
    Prepared prepared_form(Hot h) const {
        static const char* const kNames[] = {"spillway_due",          "spillway_head",         "spillway_lease",
                                             "spillway_leases",       "spillway_claim",        "spillway_settle",
                                             "spillway_sharded_head", "spillway_sharded_scan", "spillway_shard_by_shard"};
        static_assert(std::size(kNames) == static_cast<size_t>(Hot::kEnd));
        Prepared p;
        p.name = kNames[static_cast<size_t>(h)];
        const std::string body = with_params(hot_sql(h), [&](const std::string& name) {
            auto it = std::find(p.params.begin(), p.params.end(), name);
            if (it == p.params.end()) it = p.params.insert(p.params.end(), name);
            return "$" + std::to_string(it - p.params.begin() + 1);
        });
        p.prepare = "PREPARE " + p.name + " AS " + body;
        return p;
    }
    // EXECUTE takes no bound parameters (a utility statement): the values go in as literals,
    // strings quoted by libpq.
    std::string execute_text(PGconn* conn, const Prepared& p, const HotArgs& args) const {
        std::string text = "EXECUTE " + p.name + "(";
        for (size_t i = 0; i < p.params.size(); ++i) text += (i ? ", " : "") + literal(conn, args, p.params[i]);
        return text + ")";
    }
    // `sql` with each SOCI :name placeholder replaced by what `param(name)` says.
    template <class Param>
    static std::string with_params(const std::string& sql, Param&& param) {
        std::string out;
        auto word = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; };
        for (size_t i = 0; i < sql.size();) {
            if (sql[i] != ':' || i + 1 >= sql.size() || !word(sql[i + 1])) {
                out += sql[i++];
                continue;
            }
            size_t end = i + 1;
            while (end < sql.size() && word(sql[end])) ++end;
            out += param(sql.substr(i + 1, end - i - 1));
            i = end;
        }
        return out;
    }
    // The value `args` gives :name.
    static const std::variant<long long, std::string>& arg_value(const HotArgs& args, const std::string& name) {
        const auto it = std::find_if(args.begin(), args.end(), [&](const auto& a) { return name == a.first; });
        if (it == args.end()) throw sdk::Error(SW_REJECT, "postgres: no value for :" + name);
        return it->second;
    }
    // A value of `args` as an SQL literal, strings quoted by libpq.
    static std::string literal(PGconn* conn, const HotArgs& args, const std::string& name) {
        const auto& value = arg_value(args, name);
        if (const auto* n = std::get_if<long long>(&value)) return std::to_string(*n);
        const std::string& v = std::get<std::string>(value);
        char* quoted = PQescapeLiteral(conn, v.data(), v.size());
        if (!quoted) throw sdk::Error(SW_RETRY, std::string("postgres: quoting a value: ") + PQerrorMessage(conn));
        std::string out = quoted;
        PQfreemem(quoted);
        return out;
    }

    // information_schema's data_type of one column of our table, "" when it does not exist.
    std::string column_type_of(soci::session& s, const std::string& column) {
        std::string schema = schema_, table = table_name_, col = column, type;
        soci::indicator ind = soci::i_null;
        s << "SELECT data_type FROM information_schema.columns WHERE table_schema = "
             "COALESCE(NULLIF(:s, ''), current_schema()) AND table_name = :t AND column_name = :c",
            soci::use(schema, "s"), soci::use(table, "t"), soci::use(col, "c"), soci::into(type, ind);
        return s.got_data() && ind == soci::i_ok ? type : std::string();
    }

    void with_published_type() {
        try {
            soci::session s(*pool_);
            published_is_timestamp_ =
                column_type_of(s, options().columns[outbox::kPublishedAt]).rfind("timestamp", 0) == 0;
        } catch (const std::exception& e) {
            throw sdk::Error(SW_RETRY, std::string("postgres: inspecting ") + options().table + ": " + e.what());
        }
    }

    Settings settings_;            // its url moved to conninfo_
    const pg::Conninfo conninfo_;  // holds the password: never print it, redact what may quote it
    const std::string soci_url_;   // conninfo_ in the form SOCI passes to libpq unchanged
    std::atomic<bool> prepare_;
    long long claim_lock_ = 0, migrate_lock_ = 0;
    std::string schema_, table_name_;
    bool published_is_timestamp_ = false;
    std::unique_ptr<soci::connection_pool> pool_;
    // Every claim looks its pipeline's coordinator up: that takes only coordinators_mutex_, held
    // for the map lookup, never while a coordinator or the guard talks to the database.
    std::shared_ptr<ShardCoordinator> coordinator(const std::string& pipeline) const {
        std::lock_guard lock(coordinators_mutex_);
        auto it = coordinators_.find(pipeline);
        return it == coordinators_.end() ? nullptr : it->second;
    }
    std::map<std::string, std::shared_ptr<ShardCoordinator>> coordinators() const {
        std::lock_guard lock(coordinators_mutex_);
        return coordinators_;
    }

    std::mutex guard_mutex_;  // guard_, and one hold or stop at a time
    std::unique_ptr<SingleGuard> guard_;  // made by the first hold
    mutable std::mutex coordinators_mutex_;
    std::atomic<int64_t> db_clock_offset_us_{0};  // 0 until a coordinator measures it
    struct Horizon {
        std::string sequence;      // the id column's, once looked up
        bool off = false;          // the database cannot tell (see id_horizon)
        int64_t retry_at = 0;      // after a failed read, no round before this (monotonic µs)
        long long safe = 0;        // ids up to this are all there that will ever be
        long long next = 0;        // the round's: so are those up to this, once `running` has ended
        int64_t read_at = 0;       // when the round read `next` (monotonic µs); 0: no round on
        std::string running;       // text[] of virtual transaction ids the round waits out; "" until read
    } horizon_;
    std::mutex horizon_mutex_;
    std::map<std::string, std::shared_ptr<ShardCoordinator>> coordinators_;  // coordination = "shards", by pipeline
    std::mutex prepared_mutex_;
    std::array<Prepared, static_cast<size_t>(Hot::kCount)> prepared_;
    std::set<std::pair<const void*, int>> prepared_on_;  // connections the hot statements are prepared on
    // The shards-mode reads (Hot::kShardedHead on), each made at its first use, and the connections
    // each is prepared on.
    std::array<Prepared, static_cast<size_t>(Hot::kEnd) - static_cast<size_t>(Hot::kShardedHead)> sharded_;
    std::set<std::pair<std::pair<const void*, int>, Hot>> sharded_on_;
    std::set<std::pair<const void*, int>> function_on_;  // connections the claim function is made on
    std::string claim_function_sql_;                     // made once, with the order of its parameters:
    std::vector<std::string> claim_function_params_;
    std::atomic<bool> claim_function_{true};
    static constexpr const char* kClaimCall = "spillway_claim_call";  // the prepared call of the claim function
};

}  // namespace spillway::plugins::postgres

namespace {
const spillway::plugins::outbox::StoreOptions kOptions(spillway::plugins::postgres::kPostgresOptions);
}  // namespace

SW_EXPORT_STORE(spillway::plugins::postgres::PostgresStore, "postgres", "1.2.0",
                "durable outbox in a PostgreSQL table (SOCI): leases, per-key order, dead letters",
                kOptions, SW_PLUGIN_THREAD_SAFE)
