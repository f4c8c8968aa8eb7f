// store-bench: outbox store performance on PostgreSQL and SQLite, each next to a raw SOCI loop
// doing the same database work in the same run.
//
//   append      single-event append, one transaction (commit) each: p50 / p99 latency
//   drain       claim 500 + complete OK (delete) until a preloaded backlog is empty: rows/s
//   backlog     (--backlog N) single-event append p50 / p99 at an empty outbox and again with N
//               rows pending, the store's options as configured (default max_pending unless
//               --max-pending M): what the backlog bound costs an outage's appends
//
// PostgreSQL runs with its default durability (fsync, synchronous_commit on) in a server the
// benchmark starts itself. Usage: store-bench [--rows N] [--appends N] [--only postgres|sqlite]
// [--backlog N [--max-pending M]] (with --backlog, only the backlog scenario runs)
#include <spillway/test_support/postgres.hpp>
#include <spillway/test_support/temp_dir.hpp>
#define SPILLWAY_STORE_SUITE_HELPERS_ONLY
#include <spillway/testkit/store_suite.hpp>

#include <soci/postgresql/soci-postgresql.h>
#include <soci/soci.h>
#include <soci/sqlite3/soci-sqlite3.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>

namespace {

using namespace spillway::testkit;
using namespace spillway::testkit::store_suite;
using Clock = std::chrono::steady_clock;

struct Latency {
    double p50_ms = 0, p99_ms = 0;
};

Latency percentiles(std::vector<double> us) {
    std::sort(us.begin(), us.end());
    auto at = [&](double q) { return us[std::min(us.size() - 1, static_cast<size_t>(q * us.size()))] / 1000.0; };
    return {at(0.50), at(0.99)};
}

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// A small order event's payload, the same in every scenario.
constexpr const char* kPayload = R"({"order":12345,"amount":"19.99","currency":"EUR"})";

// `n` single-event appends, one commit each, of events "<prefix><i>": their latency. `what` names
// them when one fails (the benchmark stops).
Latency bench_store_append(StoreInstance& s, int n, const std::string& prefix = "lat-", const char* what = "append") {
    std::vector<double> us;
    us.reserve(n);
    for (int i = 0; i < n; ++i) {
        Event e = ev(prefix + std::to_string(i), "k" + std::to_string(i % 64));
        e.payload = kPayload;
        const auto t = Clock::now();
        if (append(s, {e}) != SW_OK) {
            std::fprintf(stderr, "%s failed: %s\n", what, s.host().last_error().c_str());
            std::exit(1);
        }
        us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t).count());
    }
    return percentiles(us);
}

void preload(StoreInstance& s, int rows, const std::string& prefix) {
    for (int i = 0; i < rows; i += 500) {
        std::vector<Event> batch;
        for (int j = i; j < std::min(rows, i + 500); ++j) {
            Event e = ev(prefix + std::to_string(j), "k" + std::to_string(j % 1000));
            e.payload = kPayload;
            batch.push_back(std::move(e));
        }
        if (append(s, batch) != SW_OK) {
            std::fprintf(stderr, "preload failed: %s\n", s.host().last_error().c_str());
            std::exit(1);
        }
    }
}

// Appends at an empty outbox, then with `backlog` rows pending (all of them appended before, so the
// second run's events have ids of their own).
void bench_backlog(const char* db, StoreInstance& s, int appends, int backlog) {
    const Latency empty = bench_store_append(s, appends);
    const auto t = Clock::now();
    preload(s, backlog, "backlog-");
    const double preload_s = seconds_since(t);
    const Latency full = bench_store_append(s, appends, "late-", "append at backlog");
    std::printf("%-10s append p50 %7.3f ms  p99 %7.3f ms at 0 pending;  p50 %7.3f ms  p99 %7.3f ms at %d pending "
                "(preloaded in %.1f s)\n",
                db, empty.p50_ms, empty.p99_ms, full.p50_ms, full.p99_ms, backlog + appends, preload_s);
}

double bench_store_drain(StoreInstance& s, int rows) {
    preload(s, rows, "drain-");
    const auto t = Clock::now();
    int done = 0;
    while (done < rows) {
        auto batch = claim(s, "orders", 500, 60'000);
        if (batch.empty()) break;
        if (complete(s, batch, SW_OK) != SW_OK) {
            std::fprintf(stderr, "complete failed: %s\n", s.host().last_error().c_str());
            std::exit(1);
        }
        done += static_cast<int>(batch.size());
    }
    return done / seconds_since(t);
}

// The raw baseline: the same rows in a plain table, one INSERT per transaction, then a
// SELECT 500 ids / DELETE those ids loop.
struct Raw {
    Latency append;
    double drain_rows_per_s = 0;
};

Raw bench_raw(soci::session& s, bool postgres, int appends, int rows) {
    Raw out;
    s << "DROP TABLE IF EXISTS raw_outbox";
    s << std::string("CREATE TABLE raw_outbox (id ") + (postgres ? "BIGSERIAL" : "INTEGER") +
             " PRIMARY KEY, event_id TEXT UNIQUE NOT NULL, pipeline TEXT, topic TEXT, key TEXT, payload TEXT)";
    std::string id, pipeline = "orders", topic = "orders.events", key, payload = kPayload;
    std::vector<double> us;
    for (int i = 0; i < appends; ++i) {
        id = "lat-" + std::to_string(i);
        key = "k" + std::to_string(i % 64);
        const auto t = Clock::now();
        s << "INSERT INTO raw_outbox (event_id, pipeline, topic, key, payload) VALUES (:a, :b, :c, :d, :e)",
            soci::use(id, "a"), soci::use(pipeline, "b"), soci::use(topic, "c"), soci::use(key, "d"),
            soci::use(payload, "e");
        us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t).count());
    }
    out.append = percentiles(us);
    s << "DELETE FROM raw_outbox";
    {
        soci::transaction tx(s);
        std::vector<std::string> ids, keys;
        for (int i = 0; i < rows; ++i) {
            ids.push_back("drain-" + std::to_string(i));
            keys.push_back("k" + std::to_string(i % 1000));
        }
        std::vector<std::string> pipelines(rows, pipeline), topics(rows, topic), payloads(rows, payload);
        s << "INSERT INTO raw_outbox (event_id, pipeline, topic, key, payload) VALUES (:a, :b, :c, :d, :e)",
            soci::use(ids, "a"), soci::use(pipelines, "b"), soci::use(topics, "c"), soci::use(keys, "d"),
            soci::use(payloads, "e");
        tx.commit();
    }
    const auto t = Clock::now();
    int done = 0;
    for (;;) {
        std::vector<long long> got(500);
        std::vector<std::string> g_ev(500), g_key(500), g_payload(500);
        soci::transaction tx(s);
        s << "SELECT id, event_id, key, payload FROM raw_outbox ORDER BY id LIMIT 500", soci::into(got),
            soci::into(g_ev), soci::into(g_key), soci::into(g_payload);
        if (!s.got_data() || got.empty()) break;
        std::string list = postgres ? "{" : "[";
        for (size_t i = 0; i < got.size(); ++i) list += (i ? "," : "") + std::to_string(got[i]);
        list += postgres ? "}" : "]";
        s << (postgres ? "DELETE FROM raw_outbox WHERE id = ANY(CAST(:ids AS BIGINT[]))"
                       : "DELETE FROM raw_outbox WHERE id IN (SELECT value FROM json_each(:ids))"),
            soci::use(list, "ids");
        tx.commit();
        done += static_cast<int>(got.size());
    }
    out.drain_rows_per_s = done / seconds_since(t);
    return out;
}

// The PostgreSQL database to measure on: --pg's, else one on a server of this run with PostgreSQL's
// default durability (the tests' servers run with fsync off).
struct BenchDatabase {
    std::unique_ptr<spillway::test_support::Postgres> server;  // none with --pg
    std::string conninfo;

    explicit BenchDatabase(const std::string& given) : conninfo(given) {
        if (!conninfo.empty()) return;
        spillway::test_support::PostgresOptions options;
        options.fast = false;
        server = std::make_unique<spillway::test_support::Postgres>(options);
        conninfo = server->create_database("bench");
    }
};

void report(const char* db, Latency store_append, Latency raw_append, double store_drain, double raw_drain) {
    std::printf("%-10s append p50 %7.3f ms  p99 %7.3f ms   (raw SOCI insert+commit p50 %7.3f ms  p99 %7.3f ms)\n", db,
                store_append.p50_ms, store_append.p99_ms, raw_append.p50_ms, raw_append.p99_ms);
    std::printf("%-10s claim+complete %9.0f rows/s           (raw SOCI select+delete %9.0f rows/s)\n", db,
                store_drain, raw_drain);
}

}  // namespace

int main(int argc, char** argv) {
    int rows = 100'000, appends = 2'000, backlog = 0;
    std::string pg_conninfo, only, max_pending;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!std::strcmp(argv[i], "--rows")) rows = std::atoi(argv[i + 1]);
        else if (!std::strcmp(argv[i], "--appends")) appends = std::atoi(argv[i + 1]);
        else if (!std::strcmp(argv[i], "--pg")) pg_conninfo = argv[i + 1];  // an existing server's database
        else if (!std::strcmp(argv[i], "--only")) only = argv[i + 1];       // postgres | sqlite
        else if (!std::strcmp(argv[i], "--backlog")) backlog = std::atoi(argv[i + 1]);
        else if (!std::strcmp(argv[i], "--max-pending")) max_pending = argv[i + 1];
    }
    if (backlog > 0) {
        std::printf("store-bench: %d single-event appends at 0 and at %d pending rows, max_pending %s\n", appends,
                    backlog, max_pending.empty() ? "default" : max_pending.c_str());
        if (only.empty() || only == "sqlite") {
            spillway::test_support::TempDir dir("store-bench");
            Plugin plugin(plugin_file("sqlite"));
            Config c{{"path", dir.path() + "/backlog.db"}};
            if (!max_pending.empty()) c.set("max_pending", max_pending);
            StoreInstance s(plugin, c);
            bench_backlog("sqlite", s, appends, backlog);
        }
        if (only.empty() || only == "postgres") {
            const BenchDatabase db(pg_conninfo);
            Plugin plugin(plugin_file("postgres"));
            Config c{{"url", db.conninfo}, {"table", "bench_backlog"}};
            if (!max_pending.empty()) c.set("max_pending", max_pending);
            StoreInstance s(plugin, c);
            bench_backlog("postgres", s, appends, backlog);
        }
        return 0;
    }
    std::printf("store-bench: %d single-event appends, drain of %d rows in batches of 500\n", appends, rows);

    // PostgreSQL with default durability.
    if (only.empty() || only == "postgres") {
        const BenchDatabase db(pg_conninfo);
        const std::string& conninfo = db.conninfo;
        Plugin plugin(plugin_file("postgres"));
        Latency append_lat;
        double drain = 0;
        {
            StoreInstance s(plugin, Config{{"url", conninfo}, {"table", "bench_append"}});
            append_lat = bench_store_append(s, appends);
        }
        {
            StoreInstance s(plugin, Config{{"url", conninfo}, {"table", "bench_drain"}});
            drain = bench_store_drain(s, rows);
        }
        soci::session raw(soci::postgresql, conninfo);
        raw << "SET client_min_messages = warning";
        const Raw r = bench_raw(raw, true, appends, rows);
        report("postgres", append_lat, r.append, drain, r.drain_rows_per_s);
    }
    // SQLite (WAL, synchronous FULL: SQLite's default).
    if (only.empty() || only == "sqlite") {
        spillway::test_support::TempDir dir("store-bench");
        Plugin plugin(plugin_file("sqlite"));
        Latency append_lat;
        double drain = 0;
        {
            StoreInstance s(plugin, Config{{"path", dir.path() + "/append.db"}});
            append_lat = bench_store_append(s, appends);
        }
        {
            StoreInstance s(plugin, Config{{"path", dir.path() + "/drain.db"}});
            drain = bench_store_drain(s, rows);
        }
        soci::session raw(soci::sqlite3, "db=" + dir.path() + "/raw.db");
        raw << "PRAGMA journal_mode = WAL";
        const Raw r = bench_raw(raw, false, appends, rows);
        report("sqlite", append_lat, r.append, drain, r.drain_rows_per_s);
    }
    return 0;
}
