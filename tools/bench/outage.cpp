// outage: every broker down, the circuit open; a publish is then one append to the PostgreSQL
// outbox (default durability: the COMMIT waits for the WAL flush). Against a raw SOCI
// INSERT+COMMIT of the same row into the same table. Then the brokers come back and the relay
// drains what piled up.
#include "context.hpp"
#include "events.hpp"
#include "raw_store.hpp"
#include "rig.hpp"

#include <spillway/test_support/wait.hpp>

#include <stdexcept>

namespace spillway::bench {

using namespace std::chrono_literals;

Report run_outage(Context& ctx) {
    Report rep("outage");
    const auto& s = ctx.settings;
    RigOptions o;
    o.store_url = ctx.database("bench_outage");
    o.topic = ctx.fresh_topic("outage");
    o.probe = false;
    // Fail fast, as the toolchain notes advise for a mock cluster that goes down and up.
    o.sink_toml = "\"reconnect.backoff.ms\" = 10\n\"reconnect.backoff.max.ms\" = 200\n\"message.timeout.ms\" = 1000\n";
    o.pipeline_toml = "direct_timeout = \"1s\"\n";
    Rig rig(ctx, o);
    auto& p = rig.pipeline();
    RawStore raw(o.store_url);
    rep.setting("postgres", "PostgreSQL " + ctx.postgres().scalar("postgres", "SHOW server_version") +
                                ", fsync=on, synchronous_commit=on, full_page_writes=on");

    size_t seq = 0;
    for (int i = 0; i < 50; ++i) p.publish(engine_event(seq++));
    for (int i = 0; i < 50; ++i) raw.insert(raw_record(seq++), o.topic);

    auto& kafka = ctx.kafka();
    kafka.all_down();
    const auto down_at = Clock::now();
    size_t spilled_before_open = 0;
    const bool open = test_support::wait_until(
        [&] {
            if (p.circuit() == pipeline::Circuit::State::Open) return true;
            p.publish(engine_event(seq++));
            ++spilled_before_open;
            return false;
        },
        60s, 0ms);
    if (!open) {
        kafka.all_up();
        throw std::runtime_error("outage: the circuit did not open within 60 s of all brokers going down");
    }
    const double open_after = seconds_since(down_at);

    std::vector<double> ours, base;
    size_t outbox = 0, other = 0;
    const size_t per_round = std::max<size_t>(1, s.samples / s.rounds);
    for (size_t r = 0; r < s.rounds; ++r) {
        for (size_t i = 0; i < per_round; ++i) {
            auto rec = raw_record(seq++);
            const auto t0 = Clock::now();
            raw.insert(rec, o.topic);
            base.push_back(us_since(t0));
        }
        for (size_t i = 0; i < per_round; ++i) {
            auto e = engine_event(seq++);
            const auto t0 = Clock::now();
            auto out = p.publish(std::move(e));
            ours.push_back(us_since(t0));
            (out.path == pipeline::Path::Outbox ? outbox : other)++;
        }
    }
    auto& row = rep.add(latency_row("publish with Kafka down (circuit open)", ours, "raw SOCI INSERT+COMMIT", base));
    row.targets.push_back(at_most("p99 <= 5 ms", row.latency->p99, 5000));
    row.note = "bound: PostgreSQL's WAL flush at COMMIT (fsync on this disk); " + std::to_string(outbox) +
               " went to the outbox, " + std::to_string(other) + " otherwise; the circuit opened " +
               std::to_string(open_after).substr(0, 4) + " s after the brokers went down (" +
               std::to_string(spilled_before_open) + " publishes waited for Kafka before that)";

    // Recovery: what piled up drains once Kafka is back.
    const int64_t backlog = p.status().pending;
    kafka.all_up();
    const auto up_at = Clock::now();
    const bool drained = test_support::wait_until([&] { return p.status().pending == 0; }, 120s, 20ms);
    const double drain_s = seconds_since(up_at);
    auto& rec = rep.add(rate_row("recovery: brokers up -> outbox empty", "s", drain_s));
    rec.note = std::to_string(backlog) + " rows were pending" + (drained ? "" : " (NOT drained within 120 s)") +
               "; includes librdkafka's reconnect (backoff 10-200 ms), the sink's metadata check (every ~100 ms while down) and the relay's 20 ms health read";
    rep.setting("circuit_open_after_s", open_after);
    return rep;
}

}  // namespace spillway::bench
