// direct: the publish call of a direct-first pipeline (returns when Kafka acknowledged) against a
// raw librdkafka producer on the same mock cluster; single events and batches of 1,000, then the
// same single-event publish from 1 to 4 pipelines at once (one caller thread each, one shared sink).
#include "context.hpp"
#include "cpu.hpp"
#include "events.hpp"
#include "rig.hpp"

#include "engine/observe/catalogue.hpp"
#include "engine/observe/clock.hpp"

#include <cstdio>
#include <stdexcept>
#include <thread>

namespace spillway::bench {

namespace {

constexpr size_t kBatch = 1000;
constexpr int kTransformed = 4;  // the pipeline whose events pass the cloudevents transform

void expect_direct(const pipeline::Outcome& o) {
    if (o.path != pipeline::Path::Direct)
        throw std::runtime_error("direct: an event went " + std::string(pipeline::path_name(o.path)) + " (" +
                                 pipeline::reason_name(o.reason) + "): " + o.message);
}

void engine_sync(pipeline::Pipeline& p, size_t n, size_t& seq, std::vector<double>* out) {
    for (size_t i = 0; i < n; ++i) {
        auto e = engine_event(seq++);
        const auto t0 = Clock::now();
        auto o = p.publish(std::move(e));
        if (out) out->push_back(us_since(t0));
        expect_direct(o);
    }
}

void raw_sync(RawProducer& raw, size_t n, size_t& seq, std::vector<double>* out) {
    for (size_t i = 0; i < n; ++i) {
        std::vector<RawRecord> one{raw_record(seq++)};
        const auto t0 = Clock::now();
        raw.send(one);
        if (out) out->push_back(us_since(t0));
    }
}

// What one side of the batched measure took: wall time, and CPU of the calling thread and of the
// whole process (librdkafka's threads, the mock brokers) — the CPU shows where a gap comes from.
struct Spent {
    double wall = 0, caller_cpu = 0, process_cpu = 0;
};

template <class Send>
void timed(Spent& into, Send&& send) {
    const double caller0 = thread_cpu_seconds(), process0 = process_cpu_seconds();
    const auto t0 = Clock::now();
    send();
    into.wall += seconds_since(t0);
    into.caller_cpu += thread_cpu_seconds() - caller0;
    into.process_cpu += process_cpu_seconds() - process0;
}

void engine_batched(pipeline::Pipeline& p, size_t batches, size_t& seq, Spent& spent, std::vector<double>& calls) {
    std::vector<std::vector<pipeline::Event>> all(batches);
    for (auto& b : all)
        for (size_t i = 0; i < kBatch; ++i) b.push_back(engine_event(seq++));
    timed(spent, [&] {
        for (auto& b : all) {
            const auto t0 = Clock::now();
            auto outcomes = p.publish(std::move(b));
            calls.push_back(us_since(t0));
            for (const auto& o : outcomes) expect_direct(o);
        }
    });
}

void raw_batched(RawProducer& raw, size_t batches, size_t& seq, Spent& spent, std::vector<double>& calls) {
    std::vector<std::vector<RawRecord>> all(batches);
    for (auto& b : all)
        for (size_t i = 0; i < kBatch; ++i) b.push_back(raw_record(seq++));
    timed(spent, [&] {
        for (auto& b : all) {
            const auto t0 = Clock::now();
            raw.send(b);
            calls.push_back(us_since(t0));
        }
    });
}

// The bookkeeping of one call of 1,000 (record_publish: counters, metric families, per-event debug
// lines at the default info level) timed alone on the calling thread, over outcomes like the
// batched measure's, into a registry of its own.
double bookkeeping_us_per_call(const config::Pipeline& spec, size_t calls) {
    observe::Metrics metrics;
    observe::describe_engine_metrics(metrics);
    pipeline::Shared shared(spec, metrics);
    std::vector<pipeline::Outcome> outcomes(kBatch);
    std::vector<pipeline::Event> events;
    for (size_t i = 0; i < kBatch; ++i) {
        events.push_back(engine_event(i));
        char id[40];  // a UUIDv7's length, as the engine generates them
        std::snprintf(id, sizeof id, "01936f2c-0000-7000-8000-%012zu", i);
        outcomes[i].event_id = id;
        outcomes[i].path = pipeline::Path::Direct;
    }
    const double cpu0 = thread_cpu_seconds();
    for (size_t c = 0; c < calls; ++c) pipeline::record_publish(shared, events, outcomes, observe::monotonic_us());
    return (thread_cpu_seconds() - cpu0) / static_cast<double>(calls) * 1e6;
}

std::string per_event_us(const Spent& s, double events) {
    char buf[128];
    std::snprintf(buf, sizeof buf, "%.2f us caller + %.2f us other threads", s.caller_cpu / events * 1e6,
                  (s.process_cpu - s.caller_cpu) / events * 1e6);
    return buf;
}

}  // namespace

Report run_direct(Context& ctx) {
    Report rep("direct");
    const auto& s = ctx.settings;
    RigOptions o = own_store_and_topic(ctx, "bench_direct", "direct");
    o.probe = false;
    o.pipelines = 5;  // p0 for the comparison; p0-p3 for the scaling sweep; p4 through cloudevents
    o.pipeline_only_toml[kTransformed] = "transforms = [\"ce\"]";
    o.tables_toml = "[transform.ce]\nplugin = \"cloudevents\"\nsource = \"/bench/direct\"\ntype = \"bench.event\"\n";
    Rig rig(ctx, o);
    RawProducer raw(ctx.kafka().bootstraps(), o.topic);
    rep.setting("kafka", "librdkafka mock cluster, 3 brokers, topic with 4 partitions, replication 3");
    rep.setting("producer", "idempotent, acks=all, linger.ms=0 (the sink's defaults; the raw producer set alike)");
    rep.setting("payload_bytes", kPayloadBytes);
    rep.setting("keys", kKeys);

    size_t seq = 0;
    engine_sync(rig.pipeline(), 200, seq, nullptr);  // connections, metadata, producer ids
    raw_sync(raw, 200, seq, nullptr);

    std::vector<double> ours, base;
    const size_t per_round = std::max<size_t>(1, s.samples / s.rounds);
    for (size_t r = 0; r < s.rounds; ++r) {
        raw_sync(raw, per_round, seq, &base);
        engine_sync(rig.pipeline(), per_round, seq, &ours);
    }
    auto& sync = rep.add(latency_row("sync publish, 1 event", ours, "raw librdkafka producer", base));
    sync.targets.push_back(at_most("p99 <= 2 ms", sync.latency->p99, 2000));
    sync.targets.push_back(at_most("<= 1.3x raw p99", *sync.ratio, 1.3));
    sync.note = "bound: the mock broker's produce round trip plus the delivery-report hop; the engine adds "
                "uuid, envelope, C ABI call and metrics";

    // A fixed count, not a share of --samples: a few batches per round take a few ms and swing with
    // every scheduler hiccup.
    const size_t batches = std::max<size_t>(1, s.batched_events / kBatch / s.rounds);
    Spent ours_spent, raw_spent;
    std::vector<double> ours_calls, raw_calls;
    for (size_t r = 0; r < s.rounds; ++r) {
        raw_batched(raw, batches, seq, raw_spent, raw_calls);
        engine_batched(rig.pipeline(), batches, seq, ours_spent, ours_calls);
    }
    const double events = static_cast<double>(batches * kBatch * s.rounds);
    auto& thr = rep.add(rate_row("batched publish, 1000 events/call", "events/s", events / ours_spent.wall,
                                 "raw librdkafka producer", events / raw_spent.wall));
    thr.targets.push_back(at_least(">= 0.8x raw", *thr.ratio, 0.8));
    thr.note = "bound: librdkafka's produce path and the mock broker (CPU; both share 2 cores with the broker "
               "threads). CPU per event: engine " + per_event_us(ours_spent, events) + "; raw " +
               per_event_us(raw_spent, events);
    rep.add(latency_row("  per call of 1000", ours_calls, "raw producer per call", raw_calls));

    // The same batches through the cloudevents transform (binary mode: six headers per event),
    // A B A B against the plain pipeline: what a transform costs per event on the batched path.
    Spent plain_spent, ce_spent;
    std::vector<double> plain_calls, ce_calls;
    engine_batched(rig.pipeline(kTransformed), 1, seq, ce_spent, ce_calls);  // its first call pays the warm-up
    ce_spent = {};
    ce_calls.clear();
    for (size_t r = 0; r < s.rounds; ++r) {
        engine_batched(rig.pipeline(), batches, seq, plain_spent, plain_calls);
        engine_batched(rig.pipeline(kTransformed), batches, seq, ce_spent, ce_calls);
    }
    auto& ce = rep.add(rate_row("batched publish through cloudevents", "events/s", events / ce_spent.wall,
                                "the same without a transform", events / plain_spent.wall));
    const double ce_extra_us = (ce_spent.caller_cpu - plain_spent.caller_cpu) / events * 1e6;
    const double other = (ce_spent.process_cpu - ce_spent.caller_cpu - plain_spent.process_cpu + plain_spent.caller_cpu) /
                         events * 1e6;
    char ce_note[400];
    std::snprintf(ce_note, sizeof ce_note,
                  "CPU per event more than without: %+.2f us on the caller (the transform, and the sink building six "
                  "more headers), %+.2f us on other threads (librdkafka and the broker carrying them: ~300 bytes a "
                  "record more). With: %s; without: %s",
                  ce_extra_us, other, per_event_us(ce_spent, events).c_str(), per_event_us(plain_spent, events).c_str());
    ce.note = ce_note;

    // Metrics and logs on the batched path: their CPU per call against the call's own CPU.
    const double book_us = bookkeeping_us_per_call(rig.pipeline().spec(), 2000);
    const double call_cpu_us = ours_spent.caller_cpu / static_cast<double>(batches * s.rounds) * 1e6;
    auto& book = rep.add(rate_row("  metrics + logs per call of 1000", "us CPU", book_us, "the call's caller CPU",
                                  call_cpu_us));
    book.targets.push_back(at_most("<= 1% of the call", *book.ratio, 0.01));
    book.note = "record_publish (publish_total, publish_latency_seconds, delivery_age_seconds, per-event debug "
                "lines at level info) timed alone, 2,000 calls";

    // Scaling: k pipelines published to at once, each by its own thread.
    const size_t per_thread = std::max<size_t>(50, s.samples / 4);
    for (int k = 1; k <= 4; ++k) {
        std::vector<std::vector<double>> lat(k);
        std::vector<std::thread> threads;
        const auto t0 = Clock::now();
        for (int i = 0; i < k; ++i)
            threads.emplace_back([&, i] {
                size_t local = 1000000000ull * static_cast<size_t>(i + 1);
                engine_sync(rig.pipeline(i), per_thread, local, &lat[i]);
            });
        for (auto& t : threads) t.join();
        const double secs = seconds_since(t0);
        std::vector<double> all;
        for (auto& v : lat) all.insert(all.end(), v.begin(), v.end());
        auto& row = rep.add(latency_row("sync publish, " + std::to_string(k) + " pipeline(s) at once", all));
        row.note = "aggregate " + std::to_string(static_cast<long>(static_cast<double>(all.size()) / secs)) +
                   " events/s over " + std::to_string(k) + " caller thread(s), one shared producer";
    }
    return rep;
}

}  // namespace spillway::bench
