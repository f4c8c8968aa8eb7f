// doorbell-bench: doorbell-to-wake latency of each notifier plugin, next to raw hiredis LPUSH/BLPOP
// in the same run. Not a test: it prints figures (targets: redis p99 <= 1 ms, pgnotify p99 <= 2 ms).
//
// Each round: the waiter thread announces it is about to wait and blocks in wait(); the ringing
// thread sleeps 300 us so the wait is really blocked, takes t0 and rings; the waiter takes t1 when
// wait() returns. Latency = t1 - t0. Rounds whose wait returned sooner than the pause (the waiter
// was not blocked yet) are counted and reported, and so are rounds that timed out.
//
//   doorbell-bench [rounds=10000]
#include <spillway/test_support/postgres.hpp>
#include <spillway/test_support/redis.hpp>
#include <spillway/testkit/host.hpp>

#include <hiredis/hiredis.h>
#include <libpq-fe.h>
#include <poll.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;
using spillway::testkit::Config;
using spillway::testkit::NotifierInstance;
using spillway::testkit::Plugin;

constexpr auto kPause = std::chrono::microseconds(300);

struct Result {
    std::string name;
    std::vector<double> us;  // latency of each round that woke
    int not_blocked = 0;
    int missed = 0;
    int ring_failures = 0;  // rings that returned an error and were made again
};

double percentile(std::vector<double> v, double p) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
}

// wait(): blocks until rung (true) or its timeout (false). ring(): rings once, false on failure
// (then it is made again, and counted: a notify may fail on a loaded machine, e.g. a Redis reply
// later than connect_timeout). 200 untimed rounds come first, to warm connections and caches.
Result measure(const std::string& name, int rounds, const std::function<bool()>& wait, const std::function<bool()>& ring) {
    for (int i = 0; i < 200; ++i) {
        ring();
        wait();
    }
    Result r{name, {}, 0, 0, 0};
    r.us.reserve(rounds);
    std::vector<Clock::time_point> t0(rounds), t1(rounds), started(rounds);
    std::vector<char> woke(rounds);
    std::atomic<int> ready{-1}, done{-1};
    std::thread waiter([&] {
        for (int i = 0; i < rounds; ++i) {
            started[i] = Clock::now();
            ready.store(i, std::memory_order_release);
            ready.notify_one();
            woke[i] = wait();
            t1[i] = Clock::now();
            done.store(i, std::memory_order_release);
            done.notify_one();
        }
    });
    for (int i = 0; i < rounds; ++i) {
        // Block (futex), never spin: on two cores a spinning ringer would steal the waiter's CPU.
        for (int r; (r = ready.load(std::memory_order_acquire)) < i;) ready.wait(r);
        std::this_thread::sleep_for(kPause);
        t0[i] = Clock::now();
        while (!ring()) ++r.ring_failures;
        for (int d; (d = done.load(std::memory_order_acquire)) < i;) done.wait(d);
    }
    waiter.join();
    for (int i = 0; i < rounds; ++i) {
        if (!woke[i]) {
            ++r.missed;
            continue;
        }
        if (t1[i] - started[i] < kPause) ++r.not_blocked;
        r.us.push_back(std::chrono::duration<double, std::micro>(t1[i] - t0[i]).count());
    }
    return r;
}

void print(const Result& r) {
    std::printf("%-34s %7zu %9.1f %9.1f %9.1f %10.1f %8d %7d %7d\n", r.name.c_str(), r.us.size(),
                percentile(r.us, 0.50), percentile(r.us, 0.90), percentile(r.us, 0.99),
                r.us.empty() ? 0.0 : *std::max_element(r.us.begin(), r.us.end()), r.not_blocked, r.missed,
                r.ring_failures);
    std::fflush(stdout);
}

// A notifier plugin driven through the C ABI, as the engine drives it.
Result plugin_run(const std::string& name, const std::string& plugin_name, Config config, int rounds,
                  const std::function<bool()>& ring_override = {}) {
    Plugin plugin(spillway::testkit::plugin_file(plugin_name));
    NotifierInstance n(plugin, std::move(config));
    const char* channel = "bench";
    int woken = 0;
    n.vt().wait(n.get(), channel, 0, &woken);  // LISTEN / connect before measuring
    while (woken) n.vt().wait(n.get(), channel, 0, &woken);
    auto wait = [&] {
        int w = 0;
        n.vt().wait(n.get(), channel, 5000, &w);
        return w == 1;
    };
    std::function<bool()> ring = ring_override;
    if (!ring) ring = [&] { return n.vt().notify(n.get(), channel) == SW_OK; };
    return measure(name, rounds, wait, ring);
}

redisContext* redis_connect(int port) {
    redisContext* c = redisConnect("127.0.0.1", port);
    if (!c || c->err) throw std::runtime_error("raw hiredis: cannot connect");
    return c;
}

Result raw_hiredis(int port, int rounds) {
    redisContext* waiter = redis_connect(port);
    redisContext* ringer = redis_connect(port);
    freeReplyObject(redisCommand(ringer, "DEL raw:bench"));
    auto wait = [&] {
        auto* r = static_cast<redisReply*>(redisCommand(waiter, "BLPOP raw:bench 5"));
        const bool ok = r && r->type == REDIS_REPLY_ARRAY;
        freeReplyObject(r);
        return ok;
    };
    auto ring = [&] {
        auto* r = static_cast<redisReply*>(redisCommand(ringer, "LPUSH raw:bench 1"));
        freeReplyObject(r);
        return r != nullptr;
    };
    Result r = measure("raw hiredis LPUSH/BLPOP", rounds, wait, ring);
    redisFree(waiter);
    redisFree(ringer);
    return r;
}

// Raw libpq: pg_notify on one connection, LISTEN + poll() + PQnotifies on another.
Result raw_libpq(const std::string& url, int rounds) {
    PGconn* waiter = PQconnectdb(url.c_str());
    PGconn* ringer = PQconnectdb(url.c_str());
    if (PQstatus(waiter) != CONNECTION_OK || PQstatus(ringer) != CONNECTION_OK)
        throw std::runtime_error("raw libpq: cannot connect");
    PQclear(PQexec(waiter, "LISTEN raw_bench"));
    auto wait = [&] {
        for (;;) {
            PQconsumeInput(waiter);
            if (PGnotify* n = PQnotifies(waiter)) {
                PQfreemem(n);
                while ((n = PQnotifies(waiter))) PQfreemem(n);
                return true;
            }
            pollfd p{PQsocket(waiter), POLLIN, 0};
            if (::poll(&p, 1, 5000) == 0) return false;
        }
    };
    auto ring = [&] {
        PGresult* r = PQexec(ringer, "SELECT pg_notify('raw_bench', '')");
        const bool ok = PQresultStatus(r) == PGRES_TUPLES_OK;
        PQclear(r);
        return ok;
    };
    Result r = measure("raw libpq pg_notify/LISTEN", rounds, wait, ring);
    PQfinish(waiter);
    PQfinish(ringer);
    return r;
}

}  // namespace

int main(int argc, char** argv) {
    const int rounds = argc > 1 ? std::atoi(argv[1]) : 10'000;
    if (rounds <= 0) {
        std::fprintf(stderr, "usage: doorbell-bench [rounds]\n");
        return 2;
    }
    std::printf("doorbell-to-wake latency, %d rounds each, microseconds\n", rounds);
    std::printf("%-34s %7s %9s %9s %9s %10s %8s %7s %7s\n", "doorbell", "rounds", "p50", "p90", "p99", "max",
                "unblkd", "missed", "refail");
    std::vector<Result> results;
    try {
        spillway::test_support::Redis redis;
        results.push_back(raw_hiredis(redis.port(), rounds));
        print(results.back());
        results.push_back(plugin_run("redis (plugin, C ABI)", "redis",
                                     Config{{"host", redis.host()}, {"port", std::to_string(redis.port())}}, rounds));
        print(results.back());

        // PostgreSQL with its default durability (fsync and synchronous_commit on).
        spillway::test_support::Postgres pg(spillway::test_support::PostgresOptions{.fast = false});
        const std::string url = pg.create_database("bench");
        results.push_back(raw_libpq(url, rounds));
        print(results.back());
        results.push_back(plugin_run("pgnotify (plugin, pg_notify)", "pgnotify", Config{{"url", url}}, rounds));
        print(results.back());

        // Outbox-first: another session's INSERT + COMMIT through the shipped trigger.
        pg.psql("bench", "CREATE TABLE spillway_outbox (id bigserial PRIMARY KEY, pipeline text NOT NULL, payload text)");
        {
            std::FILE* f = std::fopen(SPILLWAY_PGNOTIFY_TRIGGER_SQL, "r");
            if (!f) throw std::runtime_error("cannot read " SPILLWAY_PGNOTIFY_TRIGGER_SQL);
            std::string sql;
            char buf[4096];
            for (size_t n; (n = std::fread(buf, 1, sizeof buf, f)) > 0;) sql.append(buf, n);
            std::fclose(f);
            pg.psql("bench", sql);
        }
        PGconn* app = PQconnectdb(url.c_str());
        if (PQstatus(app) != CONNECTION_OK) throw std::runtime_error(PQerrorMessage(app));
        results.push_back(plugin_run("pgnotify (trigger, INSERT+COMMIT)", "pgnotify", Config{{"url", url}}, rounds, [&] {
            PGresult* r = PQexec(app, "INSERT INTO spillway_outbox (pipeline, payload) VALUES ('bench', 'x')");
            const bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
            PQclear(r);
            return ok;
        }));
        print(results.back());
        PQfinish(app);

        results.push_back(plugin_run("inproc (plugin, C ABI)", "inproc", Config{}, rounds));
        print(results.back());
    } catch (const std::exception& e) {
        std::fprintf(stderr, "doorbell-bench: %s\n", e.what());
        return 1;
    }
    std::printf("(unblkd: rounds whose wait returned sooner than the %lld us pause, i.e. was not yet blocked;\n"
                " missed: waits that timed out; refail: rings that failed and were made again)\n",
                static_cast<long long>(kPause.count()));
    const auto p99 = [&](const char* prefix) {
        for (const auto& r : results)
            if (r.name.rfind(prefix, 0) == 0) return percentile(r.us, 0.99);
        return 0.0;
    };
    std::printf("target redis p99 <= 1000 us: %s (%.1f us)\n", p99("redis") <= 1000 ? "met" : "MISSED", p99("redis"));
    std::printf("target pgnotify p99 <= 2000 us: %s (%.1f us)\n", p99("pgnotify (plugin") <= 2000 ? "met" : "MISSED",
                p99("pgnotify (plugin"));
    return 0;
}
