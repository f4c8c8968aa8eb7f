// A pipeline's wiring, lifecycle and what it reports.
#include "engine/pipeline/pipeline.hpp"

#include "engine/observe/clock.hpp"
#include "engine/observe/log.hpp"
#include "engine/pipeline/member.hpp"

#include <cstdlib>

namespace spillway::pipeline {

Shared::Shared(const config::Pipeline& spec_, observe::Metrics& metrics_)
    : spec(spec_),
      metrics(metrics_),
      log(observe::logger("pipeline." + spec_.name)),
      labels{{"pipeline", spec_.name}},
      event_types(static_cast<size_t>(spec_.metrics_event_types)),
      circuit(spec_.circuit_threshold, [this](Circuit::State from, Circuit::State to, const char* why) {
          observe::log(*log, spdlog::level::info,
                       std::string("circuit ") + Circuit::name(from) + " -> " + Circuit::name(to),
                       {{"pipeline", spec.name}, {"circuit_from", Circuit::name(from)},
                        {"circuit_to", Circuit::name(to)}, {"reason", why}});
          observe::Labels l = labels;
          l.emplace_back("from", Circuit::name(from));
          l.emplace_back("to", Circuit::name(to));
          metrics.add("circuit_transitions_total", l);
          metrics.set("circuit_state", labels, static_cast<double>(to));
      }) {
    metrics.set("circuit_state", labels, 0);
    metrics.set("relay_paused", labels, 0);
    // Counters a healthy pipeline may never move are scraped at 0 from the start: a dashboard
    // draws them, and rate() sees their first increment.
    for (const char* name : {"relay_published_total", "relay_failures_total", "dead_letters_total",
                             "doorbell_failures_total", "sink_rebuilds_total", "sink_trials_total"})
        metrics.add(name, labels, 0);
}

void Shared::mark_ring() {
    int64_t not_rung = 0;
    rung_at_us.compare_exchange_strong(not_rung, observe::monotonic_us());
}

void Shared::set_last_error(std::string error) {
    std::lock_guard lock(error_mutex_);
    last_error_ = std::move(error);
}

std::string Shared::last_error() const {
    std::lock_guard lock(error_mutex_);
    return last_error_;
}

namespace {
std::vector<plugin::TransformPort> ports(const std::vector<plugin::Instance*>& instances) {
    std::vector<plugin::TransformPort> out;
    for (plugin::Instance* i : instances) out.emplace_back(*i);
    return out;
}
}  // namespace

Pipeline::Pipeline(const config::Pipeline& spec, plugin::Instance& sink, plugin::Instance& store,
                   plugin::Instance& notifier, plugin::Instance& scheduler,
                   const std::vector<plugin::Instance*>& transforms, observe::Metrics& metrics)
    : shared_(spec, metrics),
      store_(store),
      doorbell_(notifier),
      scheduler_(scheduler),
      sink_(shared_, plugin::SinkPort(sink), [this] { wake(); }, ports(transforms)),
      publisher_(shared_, sink_, store_, doorbell_),
      relay_(shared_, sink_, store_, doorbell_, scheduler_) {}

Pipeline::~Pipeline() { stop(); }

void Pipeline::start() {
    hold();
    relay_.seed_sticky_keys();
    shared_.stopping = false;
    relay_.start();
    publisher_.open();
    running_ = true;
    std::string transforms;
    for (const auto& t : shared_.spec.transforms) transforms += (transforms.empty() ? ", transforms " : " -> ") + t;
    shared_.log->info("pipeline {} running ({}, sink {}, store {}, doorbell {}, scheduler {}{})", shared_.spec.name,
                      shared_.spec.mode == config::Mode::DirectFirst ? "direct-first" : "outbox-first",
                      sink_.port().id(), store_.id(), doorbell_.id(), scheduler_.id(), transforms);
}

// coordination = "single": a direct-first pipeline runs in one engine only. Two would reorder a
// key: one's direct sends overtake the rows the other spilled (SCALE-OUT.md §1). The store keeps
// the hold where every engine on the outbox sees it; outbox-first engines share theirs.
// coordination = "shards": the store joins this engine to the pipeline's members, and from then
// on claims only the rows of the shards it owns.
void Pipeline::hold() {
    const auto& spec = shared_.spec;
    const bool direct = spec.mode == config::Mode::DirectFirst;
    const bool shards = spec.coordination == config::Coordination::Shards;
    if (const char* off = std::getenv("SPILLWAY_UNSAFE_NO_SINGLE_GUARD"); !shards && off && std::string(off) == "1") {
        shared_.log->warn("pipeline {}: SPILLWAY_UNSAFE_NO_SINGLE_GUARD=1: another engine may run it at the same time, "
                          "and per-key order is not kept then (for tests that show why the guard exists)",
                          spec.name);
        return;
    }
    if (shards && direct && !store_.has_pending_among())
        throw plugin::PluginError(SW_INVALID_CONFIG,
                                  store_.id() + ": cannot run a direct-first pipeline with coordination = \"shards\": it "
                                                "has no pending_among (ABI 1.2), which keeps a key's direct sends behind "
                                                "the events other engines spilled");
    const sw_hold_mode mode = shards ? SW_HOLD_SHARDS : direct ? SW_HOLD_EXCLUSIVE : SW_HOLD_SHARED;
    const sw_status st = store_.has_hold() ? store_.hold(spec.name, mode, member_id()) : SW_UNSUPPORTED;
    if (st == SW_OK) return;
    if (st == SW_UNSUPPORTED && !shards) {
        store_.forget_error();
        if (direct)
            shared_.log->warn("pipeline {}: store {} cannot keep another engine off this direct-first pipeline (it "
                              "has no hold, ABI 1.2): run it in one engine only, or per-key order may break",
                              spec.name, store_.id());
        return;
    }
    throw plugin::PluginError(st == SW_UNSUPPORTED ? SW_INVALID_CONFIG : st,
                              store_.id() + (st == SW_UNSUPPORTED ? ": cannot run coordination = \"shards\" (no hold)"
                                                                  : ": " + store_.describe(st)));
}

Outcome Pipeline::publish(Event event) {
    std::vector<Event> one;
    one.push_back(std::move(event));
    return std::move(publisher_.publish(std::move(one)).front());
}

void Pipeline::wake() {
    shared_.mark_ring();
    doorbell_.notify(shared_.spec.name);
}

bool Pipeline::pause() {
    std::lock_guard lock(pause_mutex_);  // the flag and its gauge change together
    const bool was = shared_.paused.exchange(true);
    shared_.metrics.set("relay_paused", shared_.labels, 1);
    if (!was) shared_.log->info("relay of pipeline {} paused by the admin API: nothing leaves the outbox until it is resumed", shared_.spec.name);
    return was;
}

bool Pipeline::resume() {
    std::lock_guard lock(pause_mutex_);
    const bool was = shared_.paused.exchange(false);
    shared_.metrics.set("relay_paused", shared_.labels, 0);
    if (was) shared_.log->info("relay of pipeline {} resumed by the admin API", shared_.spec.name);
    wake();  // what waited goes now, not at the next poll
    return was;
}

void Pipeline::stop() {
    if (!running_) return;
    running_ = false;
    publisher_.close(shared_.spec.shutdown_timeout_ms);
    shared_.stopping = true;
    relay_.stop();  // the relay finishes (settles or gives back) the batch it holds
    sink_.flush(shared_.spec.shutdown_timeout_ms);
    shared_.log->info("pipeline {} stopped", shared_.spec.name);
}

bool Pipeline::coordination(std::string& out) {
    if (shared_.spec.coordination != config::Coordination::Shards || !store_.has_coordination()) {
        out = R"({"coordination":"single"})";
        return true;
    }
    const sw_status st = store_.coordination(shared_.spec.name, out);
    if (st == SW_OK) return true;
    out = store_.describe(st);
    return false;
}

Status Pipeline::status() {
    Status s;
    s.name = shared_.spec.name;
    s.mode = shared_.spec.mode == config::Mode::DirectFirst ? "direct-first" : "outbox-first";
    s.circuit = Circuit::name(shared_.circuit.state());
    sw_store_stats stats{};
    if (store_.stats(shared_.spec.name, stats) == SW_OK) {
        s.pending = stats.pending;
        s.leased = stats.leased;
        s.dead = stats.dead;
        s.oldest_pending_age_ms = stats.oldest_pending_age_ms;
    } else {
        store_.forget_error();
    }
    s.poll_interval_ms = shared_.poll_interval_ms;
    s.direct = shared_.n_direct;
    s.outbox = shared_.n_outbox;
    s.refused = shared_.n_refused;
    s.relayed = shared_.n_relayed;
    s.dead_lettered = shared_.n_dead;
    s.sticky_keys = shared_.sticky.size();
    s.paused = shared_.paused;
    s.last_error = shared_.last_error();
    return s;
}

}  // namespace spillway::pipeline
