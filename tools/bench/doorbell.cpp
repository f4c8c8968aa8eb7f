// doorbell: outbox-first at a steady rate. The application INSERTs and COMMITs outbox rows itself
// (PostgreSQL, default durability) and the doorbell wakes the relay: pgnotify through the outbox
// trigger (rung by the COMMIT), or redis (the application LPUSHes after its COMMIT). Measured:
// COMMIT -> Kafka acknowledged (the probe's on_acknowledgement) and ring -> acknowledged, next to
// the raw wake-up of a hiredis LPUSH -> BLPOP, and next to the raw floor (raw_floor.hpp) woken by
// the same doorbell, so the targets read as ratios (issue 22). Then the statement log of one event
// through the engine and through the floor. Then the seed design: the same engine set up as the
// original system before its fix (every event through the outbox, fixed 5 s polling, no doorbell)
// against direct-first with the doorbell, on the same load at the same time.
#include "context.hpp"
#include "events.hpp"
#include "raw_floor.hpp"
#include "raw_store.hpp"
#include "rig.hpp"

#include <hiredis/hiredis.h>

#include <atomic>
#include <fstream>
#include <mutex>
#include <random>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace spillway::bench {

using namespace std::chrono_literals;

namespace {

class RedisClient {
public:
    RedisClient(const std::string& host, int port) : c_(redisConnect(host.c_str(), port)) {
        if (!c_ || c_->err) throw std::runtime_error("redis: cannot connect: " + std::string(c_ ? c_->errstr : "no memory"));
    }
    ~RedisClient() { redisFree(c_); }
    // Runs a command; throws on a transport or error reply; returns whether the reply was non-nil.
    bool run(const std::vector<std::string>& args) {
        std::vector<const char*> argv;
        std::vector<size_t> lens;
        for (const auto& a : args) {
            argv.push_back(a.data());
            lens.push_back(a.size());
        }
        auto* r = static_cast<redisReply*>(redisCommandArgv(c_, static_cast<int>(argv.size()), argv.data(), lens.data()));
        if (!r) throw std::runtime_error("redis: " + std::string(c_->errstr));
        const bool error = r->type == REDIS_REPLY_ERROR, nil = r->type == REDIS_REPLY_NIL;
        const std::string text = error ? std::string(r->str, r->len) : "";
        freeReplyObject(r);
        if (error) throw std::runtime_error("redis: " + text);
        return !nil;
    }

private:
    redisContext* c_;
};

// Raw hiredis: one thread blocked in BLPOP, the other LPUSHes; LPUSH sent -> BLPOP returned.
std::vector<double> raw_blpop(test_support::Redis& redis, size_t samples) {
    RedisClient pusher(redis.host(), redis.port()), waiter(redis.host(), redis.port());
    const std::string key = "bench:raw:wake";
    std::atomic<bool> waiting{false};
    std::atomic<int64_t> woken_ns{0};
    std::vector<double> out;
    std::thread t([&] {
        for (size_t i = 0; i < samples; ++i) {
            waiting = true;
            waiter.run({"BLPOP", key, "5"});
            woken_ns = Clock::now().time_since_epoch().count();
        }
    });
    for (size_t i = 0; i < samples; ++i) {
        while (!waiting.exchange(false)) std::this_thread::yield();
        std::this_thread::sleep_for(1ms);  // let the waiter's BLPOP reach the server and block
        woken_ns = 0;
        const auto t0 = Clock::now();
        pusher.run({"LPUSH", key, "1"});
        while (woken_ns.load() == 0) std::this_thread::yield();
        out.push_back(std::chrono::duration<double, std::micro>(Clock::duration(woken_ns.load()) - t0.time_since_epoch()).count());
    }
    t.join();
    return out;
}

std::string read_file(const std::string& path) {
    std::ifstream in(path);
    if (!in) throw std::runtime_error("cannot read " + path);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

struct Sent {
    std::string event_id;
    Clock::time_point committed, rung;
};

// The application side of outbox-first: INSERT+COMMIT at `rate` events/s (open loop: the schedule
// does not wait for the relay), ringing redis after each COMMIT when `bell` is given.
std::vector<Sent> app_round(RawStore& app, const std::string& topic, RedisClient* bell, double rate, size_t n, size_t& seq,
                            const std::string& bell_key = "spillway:wake:p0") {
    std::vector<Sent> sent;
    const auto start = Clock::now();
    const auto step = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(1.0 / rate));
    for (size_t i = 0; i < n; ++i) {
        std::this_thread::sleep_until(start + step * static_cast<long>(i));
        auto r = raw_record(seq++);
        app.insert(r, topic);
        Sent s{r.event_id, Clock::now(), {}};
        if (bell) bell->run({"LPUSH", bell_key, "1"});
        s.rung = bell ? Clock::now() : s.committed;
        sent.push_back(std::move(s));
    }
    return sent;
}

void collect(AckTracker& acks, const std::vector<Sent>& sent, std::vector<double>& from_commit,
             std::vector<double>& from_ring, size_t& missing) {
    for (const auto& s : sent) {
        const auto at = acks.wait_for(s.event_id, 15s);
        if (!at) {
            ++missing;
            continue;
        }
        from_commit.push_back(std::chrono::duration<double, std::micro>(*at - s.committed).count());
        from_ring.push_back(std::chrono::duration<double, std::micro>(*at - s.rung).count());
    }
}

// The raw floor as a relay woken by a doorbell, on a thread of its own while alive: after each
// ring, claim rounds until one comes back short; without a ring, a claim every ~1 s (redis) or
// ~5 s (pgnotify), as a relay must not depend on a ring it may have missed.
class FloorRunner {
public:
    static constexpr const char* kPipeline = "floor";
    static constexpr const char* kRedisKey = "bench:floor:wake";
    // `redis` null: pgnotify (LISTEN on the trigger's channel for pipeline "floor").
    FloorRunner(Context& ctx, const std::string& conninfo, const std::string& topic, test_support::Redis* redis)
        : thread_([this, &ctx, conninfo, topic, redis] {
              try {
                  run(ctx, conninfo, topic, redis);
              } catch (const std::exception& e) {
                  std::lock_guard lock(mutex_);
                  error_ = e.what();
              }
              ready_ = true;
          }) {
        while (!ready_) std::this_thread::sleep_for(1ms);
        if (const auto e = error(); !e.empty()) {
            thread_.join();
            throw std::runtime_error("raw floor: " + e);
        }
    }
    ~FloorRunner() {
        stop_ = true;
        thread_.join();
    }
    // Why the floor stopped early, or "".
    std::string error() {
        std::lock_guard lock(mutex_);
        return error_;
    }

private:
    void run(Context& ctx, const std::string& conninfo, const std::string& topic, test_support::Redis* redis) {
        FloorRelay relay(conninfo, kPipeline);
        RawProducer producer(ctx.kafka().bootstraps(), topic, true);
        std::unique_ptr<RedisClient> waiter;
        if (redis) waiter = std::make_unique<RedisClient>(redis->host(), redis->port());
        else relay.listen(std::string("spillway_wake_") + kPipeline);
        ready_ = true;
        for (int quiet = 0; !stop_;) {
            const bool rang = redis ? waiter->run({"BLPOP", kRedisKey, "1"}) : relay.wait_for_ring(100);
            // pgnotify: the fallback claim counts quiet waits since the last ring, so none
            // falls just after one (the statement log below would count it).
            if (rang) quiet = 0;
            else if (!redis && ++quiet % 50 != 0) continue;
            while (relay.round(100, producer) == 100) {}
        }
    }

    std::mutex mutex_;
    std::string error_;
    std::atomic<bool> stop_{false}, ready_{false};
    std::thread thread_;
};

// Migrates a fresh database's outbox (a short-lived engine does it) for the floor's rows.
RigOptions floor_store(Context& ctx, const std::string& database, const std::string& topic_stem) {
    RigOptions o = own_store_and_topic(ctx, database, topic_stem);
    Rig migrate(ctx, o);
    return o;
}

// The statements the server ran in `db` for one outbox-first event, after the relay went idle:
// pg_stat_statements reset, one autocommit INSERT (the application's, so its text is its own),
// the ack awaited, then the counts read once they stop changing (the settle follows the ack).
struct StatementLog {
    nlohmann::json rows = nlohmann::json::array();  // {calls, query}, most calls first
    long long relay_statements = 0, begins = 0, commits = 0;
    // Queries (round trips): statements less those that travel in one query with others: where
    // the session's claim function could not be made, the one-trip claim's SELECT (due probe and
    // lock) before its EXECUTE; the statement-by-statement
    // claim's BEGIN and lock before its leases read; a completion's BEGIN before its set_config.
    long long relay_round_trips = 0;
    std::string text;
};

StatementLog one_event_log(Context& ctx, const std::string& db, const std::string& pipeline, const std::string& topic,
                           AckTracker& acks, size_t& seq, RedisClient* bell, const std::string& bell_key) {
    auto& pg = ctx.postgres();
    const std::string in_db = " FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = '" + db + "'";
    ctx.reset_statements();
    const auto r = raw_record(seq++);
    pg.psql(db, "INSERT INTO spillway_outbox (event_id, pipeline, topic, key, payload) VALUES ('" + r.event_id + "', '" +
                    pipeline + "', '" + topic + "', '" + r.key + "', '" + r.payload + "')");
    if (bell) bell->run({"LPUSH", bell_key, "1"});
    if (!acks.wait_for(r.event_id, 15s)) throw std::runtime_error("statement log: the event was not acknowledged within 15 s");
    std::string last, now;
    for (const auto until = Clock::now() + 5s; Clock::now() < until; last = now) {
        std::this_thread::sleep_for(300ms);
        now = pg.scalar("postgres", "SELECT coalesce(sum(calls), 0)" + in_db);
        if (now == last) break;
    }
    StatementLog log;
    for (const auto& row : pg.query("postgres", "SELECT calls, left(regexp_replace(query, '\\s+', ' ', 'g'), 200)" + in_db +
                                                    " ORDER BY calls DESC, query")) {
        const long long calls = std::stoll(row[0]);
        const std::string& q = row[1];
        const bool app = q.rfind("INSERT INTO spillway_outbox", 0) == 0;
        if (!app) log.relay_statements += calls;
        if (q == "BEGIN" || q == "begin") log.begins += calls;
        if (q == "COMMIT" || q == "commit") log.commits += calls;
        if (!app) log.relay_round_trips += calls;
        if (q.rfind("PREPARE spillway_claim ", 0) == 0) log.relay_round_trips -= calls;
        if (q.rfind("SELECT pg_advisory_xact_lock($1), set_config(", 0) == 0) log.relay_round_trips -= 2 * calls;
        if (q == "SELECT set_config($1, $2, $3)") log.relay_round_trips -= calls;
        log.rows.push_back({{"calls", calls}, {"query", q}, {"application", app}});
        log.text += "\n      " + std::to_string(calls) + "x " + q + (app ? "   [the application's INSERT]" : "");
    }
    return log;
}

}  // namespace

Report run_doorbell(Context& ctx) {
    Report rep("doorbell");
    const auto& s = ctx.settings;
    auto& redis = ctx.redis();
    AckTracker acks;
    rep.setting("rate_events_per_s", s.rate);
    rep.setting("postgres", "default durability (fsync=on, synchronous_commit=on) for the application's COMMIT");
    rep.setting("acknowledged", "librdkafka on_acknowledgement interceptor in the engine's producer (the ack probe)");

    // Raw: hiredis LPUSH -> BLPOP.
    const auto raw = raw_blpop(redis, std::min<size_t>(s.samples, 1000));

    // Two outbox-first engines, one per doorbell, used in alternating rounds.
    RigOptions pg = own_store_and_topic(ctx, "bench_ring_pgnotify", "pgnotify");
    pg.mode = "outbox-first";
    pg.notifier = "pgnotify";
    pg.notifier_toml = "url = \"" + pg.store_url + "\"\n";
    Rig pg_rig(ctx, pg);
    ctx.postgres().psql("bench_ring_pgnotify", read_file(SPILLWAY_SOURCE_DIR "/plugins/pgnotify/trigger.sql"));

    RigOptions rd = own_store_and_topic(ctx, "bench_ring_redis", "redis");
    rd.mode = "outbox-first";
    ring_redis(rd, ctx);
    Rig rd_rig(ctx, rd);

    // The raw floors, one per doorbell, each on a database of its own.
    const RigOptions fpg = floor_store(ctx, "bench_ring_floor_pgnotify", "floor-pgnotify");
    ctx.postgres().psql("bench_ring_floor_pgnotify", read_file(SPILLWAY_SOURCE_DIR "/plugins/pgnotify/trigger.sql"));
    const RigOptions frd = floor_store(ctx, "bench_ring_floor_redis", "floor-redis");
    FloorRunner pg_floor(ctx, fpg.store_url, fpg.topic, nullptr), rd_floor(ctx, frd.store_url, frd.topic, &redis);

    RawStore pg_app(pg.store_url, "p0"), rd_app(rd.store_url, "p0");
    RawStore fpg_app(fpg.store_url, FloorRunner::kPipeline), frd_app(frd.store_url, FloorRunner::kPipeline);
    RedisClient bell(redis.host(), redis.port());
    size_t seq = 0;
    {  // warm-up: connections, the relay's first LISTEN / BLPOP, producer ids
        std::vector<double> a, b;
        size_t m = 0;
        collect(acks, app_round(pg_app, pg.topic, nullptr, s.rate, 50, seq), a, b, m);
        collect(acks, app_round(fpg_app, fpg.topic, nullptr, s.rate, 50, seq), a, b, m);
        collect(acks, app_round(rd_app, rd.topic, &bell, s.rate, 50, seq), a, b, m);
        collect(acks, app_round(frd_app, frd.topic, &bell, s.rate, 50, seq, FloorRunner::kRedisKey), a, b, m);
    }
    // Let both relays fall back to their slowest poll, so what wakes them is the doorbell.
    std::this_thread::sleep_for(std::chrono::milliseconds(s.quick ? 1500 : 9000));

    ctx.reset_statements();
    std::vector<double> pg_commit, pg_ring, rd_commit, rd_ring, fpg_commit, frd_commit, unused;
    size_t pg_missing = 0, rd_missing = 0, floor_missing = 0;
    const size_t per_round = std::max<size_t>(1, s.samples / s.rounds);
    // Engine and floor alternate, and which goes first alternates with the round.
    for (size_t r = 0; r < s.rounds; ++r) {
        auto engines = [&] {
            collect(acks, app_round(pg_app, pg.topic, nullptr, s.rate, per_round, seq), pg_commit, pg_ring, pg_missing);
            collect(acks, app_round(rd_app, rd.topic, &bell, s.rate, per_round, seq), rd_commit, rd_ring, rd_missing);
        };
        auto floors = [&] {
            collect(acks, app_round(fpg_app, fpg.topic, nullptr, s.rate, per_round, seq), fpg_commit, unused, floor_missing);
            collect(acks, app_round(frd_app, frd.topic, &bell, s.rate, per_round, seq, FloorRunner::kRedisKey), frd_commit,
                    unused, floor_missing);
        };
        if (r % 2 == 0) engines(), floors();
        else floors(), engines();
    }
    // What the relays' (and the application's) statements cost on the server meanwhile.
    const std::string pg_statements = ctx.top_statements("bench_ring_pgnotify", 8);
    rep.setting("statements_pgnotify_db", pg_statements);
    rep.setting("statements_redis_db", ctx.top_statements("bench_ring_redis", 8));
    auto rate_text = std::to_string(static_cast<int>(s.rate));
    if (floor_missing)
        throw std::runtime_error("doorbell: the raw floor left " + std::to_string(floor_missing) + " rows unacknowledged " +
                                 pg_floor.error() + " " + rd_floor.error());
    for (auto [name, commit, ring, missing, floor] :
         {std::tuple{"pgnotify", &pg_commit, &pg_ring, pg_missing, &fpg_commit},
          std::tuple{"redis", &rd_commit, &rd_ring, rd_missing, &frd_commit}}) {
        auto& row = rep.add(latency_row(std::string("outbox-first COMMIT -> Kafka ack, ") + name + ", " + rate_text + "/s",
                                        *commit, "raw floor: same wake, 1-statement claim, produce, 1-statement delete",
                                        *floor));
        const auto f = Stats::of(*floor);
        row.targets.push_back(at_most("p50 <= 0.5 ms", row.latency->p50, 500));
        row.targets.push_back(at_most("p99 <= 3 ms", row.latency->p99, 3000));
        row.targets.push_back(at_most("p50 <= 1.5x floor", row.latency->p50, 1.5 * f.p50));
        row.targets.push_back(at_most("p99 <= 2x floor", row.latency->p99, 2 * f.p99));
        rep.add(latency_row(std::string("  raw floor COMMIT -> Kafka ack, ") + name + ", " + rate_text + "/s", *floor)).note =
            "p50 ratio engine/floor " + std::to_string(row.latency->p50 / f.p50).substr(0, 5) + "x, p99 ratio " +
            std::to_string(row.latency->p99 / f.p99).substr(0, 5) + "x";
        row.note = std::string("bound: ring delivery + the relay's claim transaction + produce round trip") +
                   (missing ? "; " + std::to_string(missing) + " not acknowledged within 15 s" : "");
        if (std::string(name) == "pgnotify") row.note += "\n    server-side statements (calls, mean): " + pg_statements;
        auto& ring_row = rep.add(latency_row(std::string("doorbell ring -> Kafka ack, ") + name, *ring,
                                             "raw hiredis LPUSH -> BLPOP wake", raw));
        ring_row.targets.push_back(at_most("p99 <= 10 ms", ring_row.latency->p99, 10000));
        ring_row.note = std::string(name) == "pgnotify" ? "the ring is the COMMIT itself (NOTIFY from the outbox trigger)"
                                                          : "the ring is the application's LPUSH after its COMMIT";
    }
    rep.add(latency_row("raw hiredis LPUSH -> BLPOP wake", raw)).note =
        "the floor a Redis doorbell can reach on this machine: one loopback round trip and a thread wake-up";

    // The statement log of one event, once the relays have fallen back to their slowest poll.
    std::this_thread::sleep_for(std::chrono::milliseconds(s.quick ? 1500 : 9000));
    const auto ours_log = one_event_log(ctx, "bench_ring_pgnotify", "p0", pg.topic, acks, seq, nullptr, "");
    const auto floor_log =
        one_event_log(ctx, "bench_ring_floor_pgnotify", FloorRunner::kPipeline, fpg.topic, acks, seq, nullptr, "");
    auto& sl = rep.add(rate_row("statements for one outbox-first event (pgnotify), relay's", "statements",
                                static_cast<double>(ours_log.relay_statements), "raw floor",
                                static_cast<double>(floor_log.relay_statements)));
    sl.note = "engine: " + std::to_string(ours_log.begins) + " BEGIN / " + std::to_string(ours_log.commits) +
              " COMMIT in " + std::to_string(ours_log.relay_round_trips) +
              " queries (round trips; a query may carry several statements) (pg_stat_statements, top level; the "
              "trigger's pg_notify not counted; background work that fell in the window, e.g. a status count, a "
              "poll's claim or the lease sweep, is included):" + ours_log.text + "\n    raw floor:" + floor_log.text;
    auto& rt = rep.add(rate_row("queries (round trips) for one outbox-first event (pgnotify), relay's", "queries",
                                static_cast<double>(ours_log.relay_round_trips), "raw floor",
                                static_cast<double>(floor_log.relay_round_trips)));
    rt.note = "the claim that took the event and its completion, and the claims before the relay fell idle again";
    rep.setting("statement_log_one_event_engine_pgnotify", ours_log.rows);
    rep.setting("statement_log_one_event_floor_pgnotify", floor_log.rows);

    // The seed design against direct-first with the doorbell, interleaved event by event.
    RigOptions before = own_store_and_topic(ctx, "bench_seed_before", "seed-before");
    before.mode = "outbox-first";
    before.notifier = "inproc";  // nobody rings it: the application only INSERTs
    before.scheduler_toml = "ladder = []\nceiling = \"5s\"\n";
    Rig before_rig(ctx, before);
    RigOptions after = own_store_and_topic(ctx, "bench_seed_after", "seed-after");
    ring_redis(after, ctx);
    after.notifier_toml += "key_prefix = \"bench:seed:\"\n";
    Rig after_rig(ctx, after);
    RawStore seed_app(before.store_url, "p0");

    std::mt19937 rng(42);
    std::uniform_real_distribution<double> gap(0.1, 0.3);  // ~5 events/s, at random times
    std::vector<Sent> before_sent;
    std::vector<double> after_us;
    const auto until = Clock::now() + std::chrono::seconds(s.seed_seconds);
    while (Clock::now() < until) {
        auto r = raw_record(seq++);
        seed_app.insert(r, before.topic);
        before_sent.push_back({r.event_id, Clock::now(), Clock::now()});
        auto e = engine_event(seq++);
        const auto t0 = Clock::now();
        auto out = after_rig.pipeline().publish(std::move(e));
        if (out.path != pipeline::Path::Direct) throw std::runtime_error("seed comparison: a direct-first event went to the outbox");
        after_us.push_back(us_since(t0));
        std::this_thread::sleep_for(std::chrono::duration<double>(gap(rng)));
    }
    std::vector<double> before_us, ignored;
    size_t before_missing = 0;
    collect(acks, before_sent, before_us, ignored, before_missing);
    auto& b = rep.add(latency_row("seed design: outbox + fixed 5 s poll, accept -> ack", before_us));
    b.note = "mean " + std::to_string(Stats::of(before_us).mean / 1e6).substr(0, 5) +
             " s (the original's claim: 2.5 s average); bound: the poll interval";
    auto& a = rep.add(latency_row("fixed design: direct-first + doorbell, accept -> ack", after_us,
                                  "seed design (same run, interleaved)", before_us));
    a.note = "mean " + std::to_string(Stats::of(after_us).mean / 1e3).substr(0, 5) + " ms";
    return rep;
}

}  // namespace spillway::bench
