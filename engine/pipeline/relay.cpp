// Claim, send, settle: one round, or a drain of full rounds claimed ahead; and the loop that
// decides when to run them.
#include "engine/pipeline/relay.hpp"
#include "engine/observe/clock.hpp"
#include "engine/observe/log.hpp"

#include <algorithm>
#include <chrono>
#include <future>
#include <optional>
#include <unordered_set>

namespace spillway::pipeline {

namespace {
void release_batch(const plugin::StorePort& store, sw_batch& batch) {
    if (!batch.plugin_data && !batch.events) return;
    store.release_batch(batch);
}
}  // namespace

Relay::Relay(Shared& shared, SinkSupervisor& sink, plugin::StorePort store, plugin::NotifierPort doorbell,
             plugin::SchedulerPort scheduler)
    : s_(shared), sink_(sink), store_(store), doorbell_(doorbell), scheduler_(scheduler) {}

void Relay::start() {
    // Claiming ahead calls the store from two threads at once and the sink beside it.
    overlap_ = s_.spec.claim_ahead && store_.has_claim_next() && store_.thread_safe() && sink_.port().thread_safe();
    next_limit_ = static_cast<size_t>(s_.spec.batch_size);
    thread_ = std::thread([this] { loop(); });
}

void Relay::stop() {
    if (!thread_.joinable()) return;
    doorbell_.interrupt();
    thread_.join();
}

Relay::Claimed::~Claimed() { release_batch(*store_, batch); }

Relay::Claimed::Claimed(Claimed&& o) noexcept : store_(o.store_), batch(o.batch) {
    o.batch = sw_batch{sizeof(sw_batch), nullptr, 0, nullptr};
}

Relay::Claimed& Relay::Claimed::operator=(Claimed&& o) noexcept {
    if (this != &o) {
        release_batch(*store_, batch);
        store_ = o.store_, batch = o.batch;
        o.batch = sw_batch{sizeof(sw_batch), nullptr, 0, nullptr};
    }
    return *this;
}

// claim, or claim_next after `prev`; logs the store's outages once each.
sw_status Relay::claim(Claimed& out, size_t limit, const Claimed* prev) {
    const sw_status st = prev ? store_.claim_next(prev->batch, limit, s_.spec.lease_ms, out.batch)
                              : store_.claim(s_.spec.name, limit, s_.spec.lease_ms, out.batch);
    if (st == SW_UNSUPPORTED && prev) {
        store_.forget_error();
        return st;
    }
    if (st != SW_OK) {
        const std::string why = store_.describe(st);
        if (!store_outage_logged_) s_.log->warn("cannot claim from the outbox: {}", why);
        store_outage_logged_ = true;
        s_.set_last_error("outbox: " + why);
        return st;
    }
    if (store_outage_logged_) s_.log->info("outbox reachable again");
    store_outage_logged_ = false;
    return SW_OK;
}

// Sends events from the outbox and waits for their reports. Touches only the sink, so the relay
// may run it on a second thread while it works the store.
std::vector<sw_result> Relay::send_claimed(std::span<const sw_event> events, bool probe) {
    std::vector<sw_result> results(events.size());
    const int64_t timeout = probe ? kProbeIntervalMs * 2 : std::max<int64_t>(s_.spec.direct_timeout_ms, 5000);
    sink_.send(events, results, std::min(timeout, s_.spec.shutdown_timeout_ms));
    return results;
}

// Gives leases back without an attempt: events held back or never sent.
void Relay::release(std::span<const int64_t> ids) {
    if (ids.empty()) return;
    const sw_status st = store_.release_leases(ids);
    // The rows stay leased until the lease runs out, then go again, in order.
    if (st != SW_OK) s_.log->warn("cannot give back {} lease(s): {}", ids.size(), store_.describe(st));
}

// Settles what a send reported: OK deleted, RETRY backed off, REJECT parked; and everything that
// follows from it (metrics, sticky keys, the circuit). RETRY when nothing got through.
sw_status Relay::settle(std::span<const sw_event> events, const std::vector<sw_result>& results, bool probe) {
    const size_t n = events.size();
    std::vector<int64_t> ids(n);
    size_t ok = 0, failed = 0, rejected = 0;
    const int64_t now = observe::unix_us();
    std::vector<double> delays;
    delays.reserve(n);
    for (size_t i = 0; i < n; ++i) {
        const sw_event& e = events[i];
        ids[i] = e.row_id;
        if (results[i].status == SW_OK) {
            ++ok;
            delays.push_back(static_cast<double>(now - e.created_at_us) / 1e6);
        } else if (results[i].status == SW_REJECT) {
            ++rejected;
            const std::string id(e.event_id.ptr, e.event_id.len);
            dead_letter_log_.log(*s_.log, spdlog::level::warn, "event " + id + " parked as a dead letter",
                         {{"pipeline", s_.spec.name}, {"event_id", id}, {"topic", std::string(e.topic.ptr, e.topic.len)},
                          {"path", "outbox"}, {"reason", "rejected"}, {"error", results[i].message}});
        } else {
            ++failed;
        }
    }
    s_.metrics.observe_each("outbox_delay_seconds", s_.labels, delays);
    observe::Labels outbox = s_.labels;
    outbox.emplace_back("path", "outbox");
    s_.metrics.observe_each("delivery_age_seconds", outbox, delays);

    // A probe that found the sink down gives its row back untouched rather than count an attempt.
    const sw_status settled = probe && ok == 0 && rejected == 0 ? store_.release_leases(ids) : store_.complete(ids, results);
    if (settled != SW_OK) {
        // The rows stay leased until the lease runs out, then go again: duplicates, not losses.
        s_.log->warn("cannot settle {} row(s) in the outbox: {}", n, store_.describe(settled));
        return SW_RETRY;
    }
    observe::log(*s_.log, spdlog::level::debug, probe ? "relay probe" : "relay round",
                 {{"pipeline", s_.spec.name}, {"cause", wake_cause_name(wake_cause_)}, {"claimed", std::to_string(n)},
                  {"delivered", std::to_string(ok)}, {"retry", std::to_string(failed)}, {"dead", std::to_string(rejected)}});
    for (size_t i = 0; i < n; ++i) {
        const sw_event& e = events[i];
        if (e.key.ptr && (results[i].status == SW_OK || results[i].status == SW_REJECT))
            s_.sticky.settle(std::string(e.key.ptr, e.key.len));
    }
    // Counted once settled: a settle that fails sends the rows again, and a REJECT is a dead
    // letter only once parked.
    if (ok) {
        s_.metrics.add("relay_published_total", s_.labels, static_cast<double>(ok));
        s_.n_relayed += ok;
        s_.circuit.relay_delivered();
        if (outage_logged_) s_.log->info("{} takes events again; draining the outbox", sink_.port().id());
        outage_logged_ = false;
    }
    if (rejected) {
        s_.metrics.add("dead_letters_total", s_.labels, static_cast<double>(rejected));
        s_.n_dead += rejected;
    }
    if (!failed) return SW_OK;
    s_.metrics.add("relay_failures_total", s_.labels, static_cast<double>(failed));
    if (ok || rejected) return SW_OK;
    if (!outage_logged_)
        observe::log(*s_.log, spdlog::level::warn, sink_.port().id() + " cannot take events",
                     {{"pipeline", s_.spec.name}, {"error", results[0].message}});
    outage_logged_ = true;
    sink_.look();
    s_.set_last_error(sink_.port().id() + ": " + results[0].message);
    return SW_RETRY;
}

// The next claim's limit after one of `limit` that took `n` rows: a deep backlog moves in rounds
// that grow to drain_batch_size (fewer round trips per event), a trickle in batch_size ones.
size_t Relay::grown_limit(size_t n, size_t limit) const {
    const size_t base = static_cast<size_t>(s_.spec.batch_size), most = static_cast<size_t>(s_.spec.drain_batch_size);
    return n == limit ? std::min(most, std::max(base, limit * 2)) : base;
}

Relay::Round Relay::round(bool probe) {
    Round r{0, probe ? 1 : next_limit_, SW_OK};
    Claimed batch(store_);
    const int64_t began = observe::monotonic_us();
    if (const sw_status st = claim(batch, r.limit, nullptr); st != SW_OK) {
        r.status = st;
        if (!probe) next_limit_ = static_cast<size_t>(s_.spec.batch_size);
        return r;
    }
    r.claimed = batch.size();
    if (!probe) next_limit_ = grown_limit(r.claimed, r.limit);
    if (r.claimed == 0) return r;
    if (!probe && r.claimed == r.limit && overlap_) return drain(std::move(batch), r.limit, began);
    std::vector<sw_result> results = send_claimed(batch.events(), probe);
    if (!probe) processed(began);
    r.fail(settle(batch.events(), results, probe));
    return r;
}

void Relay::count_wake(const char* cause) {
    observe::Labels l = s_.labels;
    l.emplace_back("cause", cause);
    s_.metrics.add("relay_wakeups_total", l);
}

// doorbell_wake_seconds: from this engine's first ring since the last claim to the claim it woke.
// Rings from other engines or from applications carry no time this clock can read.
void Relay::time_ring(int cause) {
    const int64_t rung = s_.rung_at_us.exchange(0);
    if (cause != SW_WAKE_DOORBELL || rung == 0) return;
    observe::Labels l = s_.labels;
    l.emplace_back("notifier", doorbell_.id());
    s_.metrics.observe("doorbell_wake_seconds", l, static_cast<double>(observe::monotonic_us() - rung) / 1e6);
}

const char* Relay::wake_cause_name(int cause) {
    return cause == SW_WAKE_DOORBELL ? "doorbell" : cause == SW_WAKE_TIMER ? "timer" : "start";
}

// relay_processing_seconds: from the claim that began at `began` to Kafka's reports of its batch.
void Relay::processed(int64_t began) {
    s_.metrics.observe("relay_processing_seconds", s_.labels, static_cast<double>(observe::monotonic_us() - began) / 1e6);
}

// A full batch means a backlog: from here each batch is sent while the one before is settled and
// the next claimed (claim_next), each on its own thread and connection, so the store's round trips
// hide behind Kafka's and behind each other.
// Order per key: a batch is sent only once the one before has reported, and its events of a key
// that batch failed to deliver are given back unsent (they follow the failed event when it is
// retried). The run ends with a batch that is not full, the first failure, or shutdown. Returns
// the last claim, as a single round would, for the scheduler.
Relay::Round Relay::drain(Claimed first, size_t limit, int64_t began) {
    Round r{first.size(), limit, SW_OK};
    Claimed cur = std::move(first);    // claimed with `limit`, and full
    std::vector<sw_event> cur_subset;  // cur without what is held back, when something is
    std::span<const sw_event> cur_events = cur.events();
    struct Sent {
        Claimed batch;
        std::vector<sw_event> subset;
        std::span<const sw_event> events;
        std::vector<sw_result> results;
    };
    std::optional<Sent> prev;
    bool go_on = true;
    for (;;) {
        auto sending = std::async(std::launch::async, [this, cur_events] { return send_claimed(cur_events, false); });
        // The last batch delivered in full (else this run would have ended): its completion goes
        // beside the claim, which takes its rows as settled (claim_next).
        std::future<sw_status> settling;
        if (prev)
            settling = std::async(std::launch::async, [this, &prev] { return settle(prev->events, prev->results, false); });
        Claimed next(store_);
        bool have_next = false;
        const size_t next_limit = grown_limit(cur.size(), limit);
        const int64_t next_began = observe::monotonic_us();
        if (go_on && r.status == SW_OK && !s_.stopping && !s_.paused) {
            r.limit = next_limit;
            const sw_status st = claim(next, next_limit, &cur);
            if (st == SW_UNSUPPORTED) {
                overlap_ = false;
                s_.log->info("{} cannot claim ahead (no claim_next); the relay claims one batch at a time", store_.id());
            } else {
                r.fail(st);
            }
            if (st == SW_OK) r.claimed = next.size();
            next_limit_ = st == SW_OK ? grown_limit(next.size(), next_limit) : static_cast<size_t>(s_.spec.batch_size);
            if (st == SW_OK && next.size()) s_.metrics.add("relay_claimed_ahead_total", s_.labels);
            have_next = st == SW_OK && next.size() > 0;
        }
        if (settling.valid()) r.fail(settling.get());
        prev.reset();
        std::vector<sw_result> results = sending.get();
        processed(began);
        began = next_began;
        std::unordered_set<std::string> failed_keys;
        bool failed = false;
        for (size_t i = 0; i < results.size(); ++i) {
            if (results[i].status == SW_OK || results[i].status == SW_REJECT) continue;
            failed = true;
            next_limit_ = static_cast<size_t>(s_.spec.batch_size);  // after a failure, small rounds again
            const sw_event& e = cur_events[i];
            if (e.key.ptr) failed_keys.emplace(e.key.ptr, e.key.len);
        }
        prev = Sent{std::move(cur), std::move(cur_subset), cur_events, std::move(results)};
        if (!have_next) break;
        cur = std::move(next);
        cur_subset.clear();
        cur_events = cur.events();
        std::vector<int64_t> held;
        if (!failed_keys.empty()) {
            for (const sw_event& e : cur_events) {
                if (e.key.ptr && failed_keys.count(std::string(e.key.ptr, e.key.len))) held.push_back(e.row_id);
                else cur_subset.push_back(e);
            }
            if (!held.empty()) {
                cur_events = cur_subset;
                s_.metrics.add("relay_held_back_total", s_.labels, static_cast<double>(held.size()));
            }
        }
        if (s_.stopping) {
            // Shutdown: what was claimed ahead goes back unsent.
            for (const sw_event& e : cur_events) held.push_back(e.row_id);
            cur_events = {};
        }
        release(held);
        if (cur_events.empty()) break;
        limit = next_limit;
        // Half-open is the drain after an outage: it goes on as when closed.
        go_on = !failed && cur.size() == limit && s_.circuit.state() != Circuit::State::Open;
    }
    if (prev) r.fail(settle(prev->events, prev->results, false));
    gauges_stale_ = true;
    return r;
}

// coordination = "shards": the other members learn through the store whether this engine's sink
// works, so that an engine cut off from Kafka gives its shards to one that is not. Told on change;
// the sink's health is an in-memory read.
void Relay::tell_sink_health() {
    if (s_.spec.coordination != config::Coordination::Shards || !store_.has_sink_health()) return;
    sw_health h{};
    h.struct_size = sizeof h;
    const auto state = sink_.port().health(h) == SW_OK ? static_cast<sw_health_state>(h.state) : SW_HEALTH_UNKNOWN;
    if (state == told_sink_health_) return;
    if (store_.sink_health(s_.spec.name, state) == SW_OK) told_sink_health_ = state;
    else store_.forget_error();
}

void Relay::loop() {
    int cause = SW_WAKE_START;
    while (!s_.stopping) {
        wake_cause_ = cause;
        if (s_.paused) {
            // Paused by the admin API: no claim, no probe (an open circuit stays open, so events
            // spill meanwhile). resume() rings the doorbell.
            s_.rung_at_us = 0;  // a ring while paused waits for the resume, not for the relay
            count_wake(doorbell_.wait(s_.spec.name, kPausedWaitMs) ? "doorbell" : "timer");
            cause = SW_WAKE_DOORBELL;
            continue;
        }
        if (!s_.seeded) seed_sticky_keys();
        tell_sink_health();
        sink_.rebuild_if_fatal();
        Round r{0, next_limit_, SW_OK};
        const bool open = s_.circuit.state() == Circuit::State::Open;
        // An open circuit half-opens as soon as the sink says its brokers are back.
        const bool sink_says_down = open && sink_.look() == SW_HEALTH_DOWN;
        if (!sink_says_down) sink_.end_trials();
        if (s_.circuit.state() == Circuit::State::Open) {
            // A sink that says DOWN is asked often (the Kafka sink knows the moment a broker is
            // back) and tried rarely: a probe left in a producer's queue can reach the destination
            // later as a duplicate. The trial is what wakes a sink that learns only from sends.
            if (!sink_says_down || sink_.trial_due()) {
                time_ring(cause);
                r = round(true);
            } else {
                s_.rung_at_us = 0;  // answered: no claim while the sink is down
                sink_.check_fatal();
            }
        } else {
            time_ring(cause);
            r = round(false);
            // A ring can arrive before the row is visible here (another session's commit), or
            // be the leftover of rows an earlier round already took: look again a few times,
            // briefly, before letting the scheduler back off. The pauses listen to the doorbell,
            // so an event committed meanwhile is not kept waiting for them.
            for (int64_t ms : {1, 5, 25}) {
                if (r.claimed || r.status != SW_OK || cause != SW_WAKE_DOORBELL || s_.stopping) break;
                doorbell_.wait(s_.spec.name, ms);
                if (s_.stopping) break;
                time_ring(cause);  // a ring meanwhile is this claim's, not a later one's
                r = round(false);
            }
        }
        maybe_check_backlog(r, sink_says_down);
        confirm_sticky_keys();

        sw_round said{};
        said.struct_size = sizeof said;
        said.status = r.status;
        said.cause = cause;
        said.claimed = r.claimed;
        said.limit = static_cast<uint64_t>(r.limit);
        int64_t delay = scheduler_.next_delay(said, 1000);
        if (!s_.circuit.closed()) delay = std::min(delay, sink_says_down ? kHealthPollMs : kProbeIntervalMs);
        // coordination = "shards": shards this engine acquires (a member died or left) ring no
        // doorbell, so an idle relay looks at least this often; failover waits for it.
        if (s_.spec.coordination == config::Coordination::Shards) delay = std::min(delay, kShardsPollMs);
        if (delay != s_.poll_interval_ms)
            observe::log(*s_.log, spdlog::level::debug, "poll interval changed",
                         {{"pipeline", s_.spec.name}, {"interval_from_ms", std::to_string(s_.poll_interval_ms.load())},
                          {"interval_to_ms", std::to_string(delay)}, {"claimed", std::to_string(r.claimed)}});
        s_.poll_interval_ms = delay;
        s_.metrics.set("relay_interval_seconds", s_.labels, static_cast<double>(delay) / 1000.0);
        if (s_.stopping) break;
        if (delay <= 0) {  // the scheduler wants the next round at once
            cause = SW_WAKE_TIMER;
            count_wake("backlog");
            continue;
        }
        const bool woken = doorbell_.wait(s_.spec.name, delay);
        cause = woken ? SW_WAKE_DOORBELL : SW_WAKE_TIMER;
        // A timer while the circuit is not closed is the open circuit's look at the sink (a probe,
        // a trial, or a read of its health); after a full claim it is the backlog's next round.
        const bool full = r.claimed > 0 && r.claimed >= r.limit;
        count_wake(woken ? "doorbell" : !s_.circuit.closed() ? "probe" : full ? "backlog" : "timer");
    }
}

}  // namespace spillway::pipeline
