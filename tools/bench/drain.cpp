// drain: a backlog committed to the PostgreSQL outbox in one transaction, drained to Kafka by the
// relay at batch sizes 1..1000, against a raw SOCI claim/produce/delete loop with a raw producer
// at the same batch size, on the same table and cluster. Rounds alternate which side goes first.
#include "context.hpp"
#include "cpu.hpp"
#include "events.hpp"
#include "raw_floor.hpp"
#include "raw_store.hpp"
#include "rig.hpp"

#include <spillway/test_support/wait.hpp>

#include <algorithm>
#include <cstdio>
#include <stdexcept>
#include <thread>

#include <unistd.h>

namespace spillway::bench {

using namespace std::chrono_literals;

namespace {

struct Drained {
    double seconds = 0;
    double cpu_self = 0, cpu_postgres = 0;  // CPU seconds over the drain: this process, the server
    std::vector<double> round_us;  // one per relay round
    std::string statements;        // the engine's statements on the server (pg_stat_statements)
};

// `grow`: the pipeline's default drain_batch_size, so claims double from `batch` while they come
// back full; otherwise every claim is `batch` (the sweep measures one size at a time).
Drained engine_drain(Context& ctx, AckTracker& acks, size_t batch, size_t n, const std::string& conn, const std::string& topic,
                     bool claim_ahead, bool grow = false) {
    RigOptions o;
    o.store_url = conn;
    o.topic = topic;
    o.pipeline_toml = "batch_size = " + std::to_string(batch) + "\nclaim_ahead = " + (claim_ahead ? "true" : "false") + "\n";
    if (!grow) o.pipeline_toml += "drain_batch_size = " + std::to_string(batch) + "\n";
    Rig rig(ctx, o);
    RawStore app(conn, "p0");
    ctx.reset_statements();
    acks.clear();
    app.backlog(n, topic, kPayloadBytes - 30);
    Drained d;
    const double self0 = cpu_seconds(getpid()), pg0 = tree_cpu_seconds(ctx.postgres().pid());
    const auto t0 = Clock::now();
    rig.pipeline().wake();
    if (!acks.wait_count(n, 300s)) throw std::runtime_error("drain: the relay did not publish the backlog within 300 s");
    d.cpu_self = cpu_seconds(getpid()) - self0, d.cpu_postgres = tree_cpu_seconds(ctx.postgres().pid()) - pg0;
    auto times = acks.times();
    d.seconds = std::chrono::duration<double>(times[n - 1] - t0).count();
    // A relay round acknowledges `batch` rows: the time between the last acks of consecutive rounds.
    auto prev = t0;
    for (size_t end = batch; end <= n; end += batch) {
        d.round_us.push_back(std::chrono::duration<double, std::micro>(times[end - 1] - prev).count());
        prev = times[end - 1];
    }
    test_support::wait_until([&] { return rig.pipeline().status().pending == 0; }, 30s, 20ms);
    d.statements = ctx.top_statements("bench_drain", 8);
    return d;
}

Drained raw_drain(Context& ctx, size_t batch, size_t n, const std::string& conn, const std::string& topic) {
    RawStore store(conn, "raw");
    RawProducer producer(ctx.kafka().bootstraps(), topic);
    producer.send({raw_record(0)});  // connect and get a producer id outside the timed part
    store.backlog(n, topic, kPayloadBytes - 30);
    Drained d;
    const double self0 = cpu_seconds(getpid()), pg0 = tree_cpu_seconds(ctx.postgres().pid());
    const auto t0 = Clock::now();
    for (;;) {
        const auto r0 = Clock::now();
        if (store.drain_round(batch, producer) == 0) break;
        d.round_us.push_back(us_since(r0));
    }
    d.seconds = seconds_since(t0);
    d.cpu_self = cpu_seconds(getpid()) - self0, d.cpu_postgres = tree_cpu_seconds(ctx.postgres().pid()) - pg0;
    return d;
}

// The raw floor (raw_floor.hpp): one claim statement, the produce, one DELETE, no transaction
// blocks; its rows under a pipeline of their own ("floor").
Drained floor_drain(Context& ctx, size_t batch, size_t n, const std::string& conn, const std::string& topic) {
    RawStore app(conn, "floor");
    FloorRelay relay(conn, "floor");
    RawProducer producer(ctx.kafka().bootstraps(), topic);
    producer.send({raw_record(0)});
    app.backlog(n, topic, kPayloadBytes - 30);
    Drained d;
    const double self0 = cpu_seconds(getpid()), pg0 = tree_cpu_seconds(ctx.postgres().pid());
    const auto t0 = Clock::now();
    for (;;) {
        const auto r0 = Clock::now();
        if (relay.round(batch, producer) == 0) break;
        d.round_us.push_back(us_since(r0));
    }
    d.seconds = seconds_since(t0);
    d.cpu_self = cpu_seconds(getpid()) - self0, d.cpu_postgres = tree_cpu_seconds(ctx.postgres().pid()) - pg0;
    return d;
}

// Where the CPU went, per 1,000 events, and how much of the machine the drain kept busy: on two
// cores a drain that keeps both busy is bound by the work per event, not by waiting.
std::string cpu_note(const Drained& d, size_t n) {
    const double per_k = 1000.0 / static_cast<double>(n) * 1000;  // seconds over n -> ms per 1,000
    const double cores = static_cast<double>(std::thread::hardware_concurrency());
    const double busy = (d.cpu_self + d.cpu_postgres) / (d.seconds * std::max(cores, 1.0));
    char out[200];
    std::snprintf(out, sizeof out, "CPU per 1,000 events: %.1f ms here (engine, producer, mock broker), %.1f ms PostgreSQL; %.0f%% of %g cores",
                  d.cpu_self * per_k, d.cpu_postgres * per_k, busy * 100, cores);
    return out;
}

}  // namespace

Report run_drain(Context& ctx) {
    Report rep("drain");
    const auto& s = ctx.settings;
    AckTracker acks;
    const std::string conn = ctx.database("bench_drain");
    const std::string topic = ctx.fresh_topic("drain");
    {  // the outbox table (the engine migrates it) for the raw side's first round
        RigOptions o;
        o.store_url = conn;
        o.topic = topic;
        Rig migrate(ctx, o);
    }
    std::vector<size_t> sizes = !s.drain_batches.empty() ? s.drain_batches
                                : s.quick                ? std::vector<size_t>{10, 100, 1000}
                                                         : std::vector<size_t>{1, 10, 100, 500, 1000};
    rep.setting("backlog", "rows committed in one INSERT ... SELECT; the clock starts at that COMMIT");
    rep.setting("relay_round", "claim (whole-row head read, lease row), produce + await reports, complete (DELETE); from "
                               "a full batch on, the next claim and the last completion overlap the send");
    rep.setting("raw_loop", "BEGIN; SELECT ... ORDER BY id LIMIT n FOR UPDATE SKIP LOCKED; produce all, await reports; "
                            "DELETE ... WHERE id = ANY(ids); COMMIT (synchronous_commit off, as the engine's claims)");
    rep.setting("raw_floor", "libpq, prepared once, autocommit: WITH c AS (SELECT id ... ORDER BY id LIMIT n FOR UPDATE "
                             "SKIP LOCKED) UPDATE ... SET lease_owner, lease_until RETURNING ...; produce all, await "
                             "reports; DELETE ... WHERE id = ANY(ids) AND lease_owner = $2 (no per-key holdback)");
    for (size_t i = 0; i < sizes.size(); ++i) {
        const size_t b = sizes[i];
        // Below the default batch size a round costs the same per row as per batch: smaller backlogs.
        const size_t n = b >= 100 ? s.drain_events : std::min(s.drain_events, b * 500);
        // From batch 100 on, also the relay that claims one batch at a time (claim_ahead = false):
        // what claiming ahead buys, measured beside it.
        const bool serial_too = b >= 100;
        Drained ours, raw, serial, floor;
        if (i % 2 == 0) {
            raw = raw_drain(ctx, b, n, conn, topic);
            floor = floor_drain(ctx, b, n, conn, topic);
            ours = engine_drain(ctx, acks, b, n, conn, topic, true);
            if (serial_too) serial = engine_drain(ctx, acks, b, n, conn, topic, false);
        } else {
            if (serial_too) serial = engine_drain(ctx, acks, b, n, conn, topic, false);
            ours = engine_drain(ctx, acks, b, n, conn, topic, true);
            floor = floor_drain(ctx, b, n, conn, topic);
            raw = raw_drain(ctx, b, n, conn, topic);
        }
        const double rate = static_cast<double>(n) / ours.seconds, raw_rate = static_cast<double>(n) / raw.seconds;
        auto& row = rep.add(rate_row("drain " + std::to_string(n) + " events, batch " + std::to_string(b), "events/s", rate,
                                     "raw SOCI claim/delete loop + raw producer", raw_rate));
        if (n >= 100000) row.targets.push_back(at_least(">= 100k events/s", rate, 100000));
        if (b >= 10 && b <= 500) row.targets.push_back(at_least(">= 1.0x raw loop", rate, raw_rate));
        const auto rs = Stats::of(ours.round_us), rr = Stats::of(raw.round_us);
        row.note = "round p50/p99 " + std::to_string(rs.p50 / 1000).substr(0, 6) + "/" +
                   std::to_string(rs.p99 / 1000).substr(0, 6) + " ms (raw " + std::to_string(rr.p50 / 1000).substr(0, 6) +
                   "/" + std::to_string(rr.p99 / 1000).substr(0, 6) + " ms)";
        auto& lat = rep.add(latency_row("  relay round, batch " + std::to_string(b), ours.round_us, "raw loop round", raw.round_us));
        lat.note = cpu_note(ours, n) + " (raw loop: " + cpu_note(raw, n).substr(22) + ")";
        const double floor_rate = static_cast<double>(n) / floor.seconds;
        auto& fr = rep.add(rate_row("  same vs the raw floor", "events/s", rate,
                                    "raw floor: 1-statement claim, produce, 1-statement delete", floor_rate));
        fr.note = "floor: ";
        fr.note += cpu_note(floor, n);
        const auto fs = Stats::of(floor.round_us);
        auto& fl = rep.add(latency_row("  relay round vs the raw floor, batch " + std::to_string(b), ours.round_us,
                                       "raw floor round", floor.round_us));
        fl.note = "p50 ratio ";
        fl.note += std::to_string(rs.p50 / fs.p50).substr(0, 5) + "x (raw loop p50 " + std::to_string(rr.p50 / 1000).substr(0, 6) + " ms)";
        if (b == 1) fl.targets.push_back(at_most("p50 <= 1.3x raw loop", rs.p50, 1.3 * rr.p50));
        if (serial_too) {
            const double serial_rate = static_cast<double>(n) / serial.seconds;
            auto& one = rep.add(rate_row("  same, one batch at a time (claim_ahead = false)", "events/s", serial_rate,
                                         "raw SOCI claim/delete loop + raw producer", raw_rate));
            one.note = "claiming ahead: " + std::to_string(rate / serial_rate).substr(0, 5) + "x this";
        }
        rep.setting("statements_batch_" + std::to_string(b), ours.statements);
    }
    // What a pipeline does without tuning: batch_size 100, claims doubling to drain_batch_size
    // 1000 while the backlog lasts. Against the raw loop at batch 1000, the best of those measured.
    // A drain of 100,000 rows lasts under a second here, shorter than this machine's swings: five
    // pairs, alternating which side goes first, and the rates over all five.
    if (!s.quick) {
        const size_t n = s.drain_events;
        constexpr int kPairs = 5;
        double ours_s = 0, raw_s = 0;
        Drained last;
        std::string pairs;
        for (int i = 0; i < kPairs; ++i) {
            Drained ours, raw;
            if (i % 2 == 0) {
                raw = raw_drain(ctx, 1000, n, conn, topic);
                ours = engine_drain(ctx, acks, 100, n, conn, topic, true, true);
            } else {
                ours = engine_drain(ctx, acks, 100, n, conn, topic, true, true);
                raw = raw_drain(ctx, 1000, n, conn, topic);
            }
            ours_s += ours.seconds, raw_s += raw.seconds;
            pairs += (i ? ", " : "") + std::to_string(raw.seconds / ours.seconds).substr(0, 5) + "x";
            last = std::move(ours);
        }
        const double total = static_cast<double>(n) * kPairs;
        auto& row = rep.add(rate_row("drain " + std::to_string(n) + " events, default batch_size 100 (claims grow to 1000)",
                                     "events/s", total / ours_s, "raw loop, batch 1000", total / raw_s));
        if (n >= 100000) row.targets.push_back(at_least(">= 100k events/s", total / ours_s, 100000));
        row.targets.push_back(at_least(">= 1.2x raw loop at batch 1000", total / ours_s, 1.2 * total / raw_s));
        row.note = "over " + std::to_string(kPairs) + " alternating pairs (pair by pair: " + pairs + "); last pair's " +
                   cpu_note(last, n);
    }
    return rep;
}

}  // namespace spillway::bench
