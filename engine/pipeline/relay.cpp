// The relay: wait for the doorbell or the scheduler's interval, claim a batch, send it, settle the
// rows. While the circuit is open it watches the sink's health (or, for a sink that cannot tell,
// probes with one row), giving leases back on failure so an outage burns no attempts and leaves no
// backoff to wait out when Kafka returns.
#include "engine/pipeline/pipeline.hpp"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <future>
#include <optional>
#include <unordered_map>
#include <unordered_set>

namespace spillway::pipeline {

namespace {
int64_t now_us() {
    return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

bool Pipeline::seed_sticky_keys() {
    const auto& vt = store_.vt<sw_store_vtable>();
    auto visit = [](void* user, sw_bytes key) {
        if (key.ptr) static_cast<StickyKeys*>(user)->add(std::string(key.ptr, key.len));
    };
    auto scope = store_.call("pending_keys");
    const sw_status st = vt.pending_keys(store_.get(), spec_.name.c_str(), visit, &sticky_);
    if (st == SW_OK || st == SW_UNSUPPORTED) {
        seeded_ = true;
        if (sticky_.size()) log_->info("{} key(s) have events in the outbox; their new events follow them there", sticky_.size());
        return true;
    }
    log_->warn("cannot read pending keys yet ({}); keyed events go to the outbox until it can", store_.describe(st));
    return false;
}

// Keys whose count reached zero while the backlog is not empty: the relay may have settled rows
// this engine never counted (an application's, another engine's), so the store is asked whether
// any row of them is still pending before they go direct again. One read of the pending keys for
// all of them, at most once a second and at most a twentieth of the time (it scans the backlog).
void Pipeline::confirm_sticky_keys() {
    if (sticky_.unsure_size() == 0) return;
    const auto started = std::chrono::steady_clock::now();
    if (started < next_confirm_) return;
    const std::vector<std::string> asked = sticky_.unsure();
    std::unordered_map<std::string, int64_t> pending;
    auto visit = [](void* user, sw_bytes key) {
        if (key.ptr) ++(*static_cast<std::unordered_map<std::string, int64_t>*>(user))[std::string(key.ptr, key.len)];
    };
    sw_status st;
    {
        auto scope = store_.call("pending_keys");
        st = store_.vt<sw_store_vtable>().pending_keys(store_.get(), spec_.name.c_str(), visit, &pending);
    }
    const auto took = std::chrono::steady_clock::now() - started;
    next_confirm_ = started + std::max<std::chrono::steady_clock::duration>(std::chrono::seconds(1), took * 20);
    if (st == SW_UNSUPPORTED) {
        // A store that cannot tell: the counts are all there is (as at start, where it seeded none).
        (void)store_.host().take_error();
        sticky_.confirm(asked, {});
    } else if (st == SW_OK) {
        sticky_.confirm(asked, pending);
    } else {
        (void)store_.host().take_error();  // asked again next time; meanwhile the keys stay
    }
}

void Pipeline::check_backlog() {
    const auto& vt = store_.vt<sw_store_vtable>();
    const uint64_t generation = sticky_.generation();
    sw_store_stats stats{};
    stats.struct_size = sizeof stats;
    auto scope = store_.call("stats");
    if (vt.stats(store_.get(), spec_.name.c_str(), &stats) != SW_OK) return;
    metrics_.set("outbox_pending", labels_, static_cast<double>(stats.pending));
    metrics_.set("outbox_dead", labels_, static_cast<double>(stats.dead));
    metrics_.set("outbox_oldest_age_seconds", labels_, static_cast<double>(stats.oldest_pending_age_ms) / 1000.0);
    if (stats.pending == 0) {
        circuit_.backlog_empty();
        sticky_.clear_if_unchanged(generation);
    }
}

void Pipeline::note_fatal(const plugin::Instance::Use& use, sw_status call, const std::vector<sw_result>& results) {
    bool fatal = call == SW_FATAL;
    for (const auto& r : results) fatal = fatal || r.status == SW_FATAL;
    if (!fatal) return;
    uint64_t none = kNoFatal;
    if (sink_fatal_generation_.compare_exchange_strong(none, use.generation())) {
        log_->error("{} reported a fatal error and cannot send again; the relay rebuilds it "
                    "(events meanwhile go to the outbox)", sink_.id());
        // The spilled events ring the doorbell too; this makes sure the relay looks now.
        wake();
    }
}

// A sink that died for good also just says DOWN, and while it does nobody sends to it: the circuit
// keeps publishers away and the relay does not probe. An empty send costs nothing and tells the
// two apart (a fatal sink fails every call at once).
void Pipeline::check_sink_fatal() {
    auto use = sink_.use();
    auto scope = sink_.call("send");
    const sw_status st = sink_.vt<sw_sink_vtable>().send(use.get(), nullptr, 0, nullptr, 0);
    if (st != SW_OK) (void)sink_.host().take_error();
    note_fatal(use, st, {});
}

// A sink that reported FATAL is unusable until replaced: a fresh instance with the same
// configuration (for Kafka, a new producer and producer id). A failed rebuild is tried again
// with backoff, and meanwhile the circuit keeps events in the outbox.
void Pipeline::rebuild_sink_if_fatal() {
    const uint64_t generation = sink_fatal_generation_.load();
    if (generation == kNoFatal) return;
    const auto now = std::chrono::steady_clock::now();
    if (now < next_rebuild_) return;
    try {
        sink_.rebuild(generation, spec_.shutdown_timeout_ms);
        sink_fatal_generation_ = kNoFatal;
        rebuild_backoff_ = std::chrono::milliseconds(0);
        metrics_.add("sink_rebuilds_total", labels_);
        log_->info("{} rebuilt after its fatal error", sink_.id());
    } catch (const std::exception& e) {
        rebuild_backoff_ = std::clamp(rebuild_backoff_ * 2, std::chrono::milliseconds(500), std::chrono::milliseconds(30000));
        next_rebuild_ = now + rebuild_backoff_;
        log_->warn("cannot rebuild {} (next attempt in {} ms): {}", sink_.id(), rebuild_backoff_.count(), e.what());
    }
}

namespace {
void release_batch(const plugin::Instance& store, sw_batch& batch) {
    if (!batch.plugin_data && !batch.events) return;
    auto scope = store.call("release_batch");
    store.vt<sw_store_vtable>().release_batch(store.get(), &batch);
}
}  // namespace

Pipeline::Claimed::~Claimed() { release_batch(*store_, batch); }

Pipeline::Claimed::Claimed(Claimed&& o) noexcept : store_(o.store_), batch(o.batch) {
    o.batch = sw_batch{sizeof(sw_batch), nullptr, 0, nullptr};
}

Pipeline::Claimed& Pipeline::Claimed::operator=(Claimed&& o) noexcept {
    if (this != &o) {
        release_batch(*store_, batch);
        store_ = o.store_, batch = o.batch;
        o.batch = sw_batch{sizeof(sw_batch), nullptr, 0, nullptr};
    }
    return *this;
}

// claim, or claim_next after `prev`; logs the store's outages once each.
sw_status Pipeline::claim(Claimed& out, size_t limit, const Claimed* prev) {
    const auto& store = store_.vt<sw_store_vtable>();
    auto scope = store_.call(prev ? "claim_next" : "claim");
    const sw_status st = prev ? store.claim_next(store_.get(), &prev->batch, limit, spec_.lease_ms, &out.batch)
                              : store.claim(store_.get(), spec_.name.c_str(), limit, spec_.lease_ms, &out.batch);
    if (st == SW_UNSUPPORTED && prev) {
        (void)store_.host().take_error();
        return st;
    }
    if (st != SW_OK) {
        const std::string why = store_.describe(st);
        if (!store_outage_logged_) log_->warn("cannot claim from the outbox: {}", why);
        store_outage_logged_ = true;
        std::lock_guard lock(error_mutex_);
        last_error_ = "outbox: " + why;
        return st;
    }
    if (store_outage_logged_) log_->info("outbox reachable again");
    store_outage_logged_ = false;
    return SW_OK;
}

// Sends events from the outbox and waits for their reports. Touches only the sink, so the relay
// may run it on a second thread while it works the store.
std::vector<sw_result> Pipeline::send_claimed(std::span<const sw_event> events, bool probe) {
    std::vector<sw_result> results(events.size());
    const int64_t timeout = probe ? kProbeIntervalMs * 2 : std::max<int64_t>(spec_.direct_timeout_ms, 5000);
    sw_status sent;
    {
        auto use = sink_.use();
        auto send_scope = sink_.call("send");
        sent = sink_.vt<sw_sink_vtable>().send(use.get(), events.data(), events.size(), results.data(),
                                               std::min(timeout, spec_.shutdown_timeout_ms));
        note_fatal(use, sent, results);
    }
    if (sent != SW_OK) {
        const std::string why = sink_.describe(sent);
        for (auto& r : results) {
            std::memset(&r, 0, sizeof r);
            r.status = SW_RETRY;
            std::snprintf(r.message, sizeof r.message, "%s", why.c_str());
        }
    }
    return results;
}

// Gives leases back without an attempt: a probe's row while Kafka is down, or events held back
// or never sent.
void Pipeline::release(std::span<const int64_t> ids) {
    if (ids.empty()) return;
    auto scope = store_.call("release_leases");
    const sw_status st = store_.vt<sw_store_vtable>().release_leases(store_.get(), ids.data(), ids.size());
    // The rows stay leased until the lease runs out, then go again, in order.
    if (st != SW_OK) log_->warn("cannot give back {} lease(s): {}", ids.size(), store_.describe(st));
}

// Settles what a send reported: OK deleted, RETRY backed off, REJECT parked; and everything that
// follows from it (metrics, sticky keys, the circuit).
size_t Pipeline::settle(std::span<const sw_event> events, const std::vector<sw_result>& results, bool probe,
                        int& status) {
    const size_t n = events.size();
    std::vector<int64_t> ids(n);
    size_t ok = 0, failed = 0, rejected = 0;
    const int64_t now = now_us();
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
            log_->warn("event {} parked as a dead letter: {}", std::string(e.event_id.ptr, e.event_id.len), results[i].message);
        } else {
            ++failed;
        }
    }

    metrics_.observe_each("outbox_delay_seconds", labels_, delays);

    const auto& store = store_.vt<sw_store_vtable>();
    sw_status settled;
    if (probe && ok == 0 && rejected == 0) {
        // Kafka is known to be down: give the row back untouched rather than count an attempt.
        auto scope = store_.call("release_leases");
        settled = store.release_leases(store_.get(), ids.data(), n);
    } else {
        auto scope = store_.call("complete");
        settled = store.complete(store_.get(), ids.data(), results.data(), n);
    }
    if (settled != SW_OK) {
        // The rows stay leased until the lease runs out, then go again: duplicates, not losses.
        log_->warn("cannot settle {} row(s) in the outbox: {}", n, store_.describe(settled));
        status = SW_RETRY;
        return n;
    }
    log_->debug("relay round{}: {} claimed, {} delivered, {} to retry, {} dead", probe ? " (probe)" : "", n, ok, failed,
                rejected);
    for (size_t i = 0; i < n; ++i) {
        const sw_event& e = events[i];
        if (e.key.ptr && (results[i].status == SW_OK || results[i].status == SW_REJECT))
            sticky_.settle(std::string(e.key.ptr, e.key.len));
    }
    if (ok) {
        metrics_.add("relay_published_total", labels_, static_cast<double>(ok));
        n_relayed_ += ok;
        circuit_.relay_delivered();
        if (outage_logged_) log_->info("Kafka takes events again; draining the outbox");
        outage_logged_ = false;
    }
    if (rejected) {
        metrics_.add("dead_letters_total", labels_, static_cast<double>(rejected));
        n_dead_ += rejected;
    }
    if (failed) {
        observe::Labels l = labels_;
        metrics_.add("relay_failures_total", l, static_cast<double>(failed));
        if (ok == 0 && rejected == 0) {
            status = SW_RETRY;
            if (!outage_logged_) log_->warn("Kafka cannot take events: {}", results[0].message);
            outage_logged_ = true;
            sw_health h{};
            if (sink_.health(h) == SW_OK && h.state == SW_HEALTH_DOWN) circuit_.sink_down();
            std::lock_guard lock(error_mutex_);
            last_error_ = std::string("Kafka: ") + results[0].message;
        }
    }
    return n;
}

// The next claim's limit after one of `limit` that took `n` rows: a deep backlog moves in rounds
// that grow to drain_batch_size (fewer round trips per event), a trickle in batch_size ones.
size_t Pipeline::grown_limit(size_t n, size_t limit) const {
    const size_t base = static_cast<size_t>(spec_.batch_size), most = static_cast<size_t>(spec_.drain_batch_size);
    return n == limit ? std::min(most, std::max(base, limit * 2)) : base;
}

size_t Pipeline::relay_round(int& status, bool probe) {
    const size_t limit = probe ? 1 : next_limit_;
    last_limit_ = limit;
    Claimed batch(store_);
    const sw_status claimed = claim(batch, limit, nullptr);
    if (claimed != SW_OK) {
        status = claimed;
        if (!probe) next_limit_ = static_cast<size_t>(spec_.batch_size);
        return 0;
    }
    const size_t n = batch.size();
    if (!probe) next_limit_ = grown_limit(n, limit);
    if (n == 0) return 0;
    if (!probe && n == limit && overlap_) return drain(std::move(batch), limit, status);
    return settle(batch.events(), send_claimed(batch.events(), probe), probe, status);
}

// A full batch means a backlog: from here each batch is sent while the one before is settled and
// the next claimed (claim_next), each on its own thread and connection, so the store's round trips
// hide behind Kafka's and behind each other.
// Order per key: a batch is sent only once the one before has reported, and its events of a key
// that batch failed to deliver are given back unsent (they follow the failed event when it is
// retried). The run ends with a batch that is not full, the first failure, or shutdown. Returns
// the size of the last claim, as a single round would, for the scheduler.
size_t Pipeline::drain(Claimed first, size_t limit, int& status) {
    Claimed cur = std::move(first);  // claimed with `limit`, and full
    std::vector<sw_event> cur_subset;  // cur without what is held back, when something is
    std::span<const sw_event> cur_events = cur.events();
    struct Sent {
        Claimed batch;
        std::vector<sw_event> subset;
        std::span<const sw_event> events;
        std::vector<sw_result> results;
    };
    std::optional<Sent> prev;
    size_t last = cur.size();
    bool go_on = true;
    for (;;) {
        auto sending = std::async(std::launch::async, [this, cur_events] { return send_claimed(cur_events, false); });
        // The last batch delivered in full (else this run would have ended): its completion goes
        // beside the claim, which takes its rows as settled (claim_next).
        int settled = SW_OK;
        std::future<void> settling;
        if (prev)
            settling = std::async(std::launch::async, [this, &prev, &settled] {
                settle(prev->events, prev->results, false, settled);
            });
        Claimed next(store_);
        bool have_next = false;
        const size_t next_limit = grown_limit(cur.size(), limit);
        if (go_on && status == SW_OK && !stopping_) {
            last_limit_ = next_limit;
            const sw_status st = claim(next, next_limit, &cur);
            if (st == SW_UNSUPPORTED) {
                overlap_ = false;
                log_->info("{} cannot claim ahead (no claim_next); the relay claims one batch at a time", store_.id());
            } else if (st != SW_OK) {
                status = st;
            }
            if (st == SW_OK) last = next.size();
            next_limit_ = st == SW_OK ? grown_limit(next.size(), next_limit) : static_cast<size_t>(spec_.batch_size);
            if (st == SW_OK && next.size()) metrics_.add("relay_claimed_ahead_total", labels_);
            have_next = st == SW_OK && next.size() > 0;
        }
        if (settling.valid()) settling.get();
        if (settled != SW_OK) status = settled;
        prev.reset();
        std::vector<sw_result> results = sending.get();
        std::unordered_set<std::string> failed_keys;
        bool failed = false;
        for (size_t i = 0; i < results.size(); ++i) {
            if (results[i].status == SW_OK || results[i].status == SW_REJECT) continue;
            failed = true;
            next_limit_ = static_cast<size_t>(spec_.batch_size);  // after a failure, small rounds again
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
                metrics_.add("relay_held_back_total", labels_, static_cast<double>(held.size()));
            }
        }
        if (stopping_) {
            // Shutdown: what was claimed ahead goes back unsent.
            for (const sw_event& e : cur_events) held.push_back(e.row_id);
            cur_events = {};
        }
        release(held);
        if (cur_events.empty()) break;
        limit = next_limit;
        // Half-open is the drain after an outage: it goes on as when closed.
        go_on = !failed && cur.size() == limit && circuit_.state() != Circuit::State::Open;
    }
    if (prev) settle(prev->events, prev->results, false, status);
    gauges_stale_ = true;
    return last;
}

void Pipeline::relay_loop() {
    const auto& scheduler = scheduler_.vt<sw_scheduler_vtable>();
    const auto& bell = notifier_.vt<sw_notifier_vtable>();
    int cause = SW_WAKE_START;
    while (!stopping_) {
        if (!seeded_) seed_sticky_keys();
        rebuild_sink_if_fatal();
        int status = SW_OK;
        size_t claimed = 0;
        bool sink_says_down = false;
        if (circuit_.state() == Circuit::State::Open) {
            sw_health h{};
            const bool known = sink_.health(h) == SW_OK && h.state != SW_HEALTH_UNKNOWN;
            if (known && h.state == SW_HEALTH_UP) circuit_.sink_up();
            sink_says_down = known && h.state == SW_HEALTH_DOWN;
        }
        if (circuit_.state() == Circuit::State::Open) {
            // A sink that can tell when its brokers return is asked, not probed: every probe left
            // in the producer's queue would reach Kafka later as a duplicate.
            if (!sink_says_down) claimed = relay_round(status, true);
            else check_sink_fatal();
        } else {
            claimed = relay_round(status, false);
            // A ring can arrive before the row is visible here (another session's commit), or
            // be the leftover of rows an earlier round already took: look again a few times,
            // briefly, before letting the scheduler back off. The pauses listen to the doorbell,
            // so an event committed meanwhile is not kept waiting for them.
            for (int64_t ms : {1, 5, 25}) {
                if (claimed || status != SW_OK || cause != SW_WAKE_DOORBELL || stopping_) break;
                int woken = 0;
                auto wait_scope = notifier_.call("wait");
                bell.wait(notifier_.get(), spec_.name.c_str(), ms, &woken);
                (void)notifier_.host().take_error();
                if (stopping_) break;
                claimed = relay_round(status, false);
            }
        }
        // The backlog count costs a scan of the pending rows. It decides something only while the
        // circuit is not closed (it closes on an empty backlog) or keys are sticky (they clear on
        // one); otherwise it only feeds the gauges, so at most every 5 s while rows move, and
        // once more after they stop.
        const size_t round_limit = last_limit_;  // 1 for a probe
        const auto now = std::chrono::steady_clock::now();
        const bool not_full = claimed < round_limit;
        if (claimed > 0) gauges_stale_ = true;
        // While the sink says it is down the backlog can only grow, so it is counted once a second,
        // not at every look at the health.
        const bool counts = !sink_says_down || now - last_backlog_check_ >= std::chrono::seconds(1);
        if ((not_full && counts && (!circuit_.closed() || sticky_.size() > 0)) ||
            (gauges_stale_ && now - last_backlog_check_ >= std::chrono::seconds(5))) {
            last_backlog_check_ = now;
            gauges_stale_ = claimed > 0;
            check_backlog();
        }
        confirm_sticky_keys();

        sw_round round{};
        round.struct_size = sizeof round;
        round.status = status;
        round.cause = cause;
        round.claimed = claimed;
        round.limit = static_cast<uint64_t>(last_limit_);
        int64_t delay = 1000;
        auto sched_scope = scheduler_.call("next_delay");
        if (scheduler.next_delay(scheduler_.get(), &round, &delay) != SW_OK) delay = 1000;
        if (!circuit_.closed()) delay = std::min(delay, sink_says_down ? kHealthPollMs : kProbeIntervalMs);
        poll_interval_ms_ = delay;
        metrics_.set("relay_interval_seconds", labels_, static_cast<double>(delay) / 1000.0);
        if (stopping_) break;
        if (delay <= 0) {
            cause = SW_WAKE_TIMER;
            continue;
        }
        int woken = 0;
        auto wait_scope = notifier_.call("wait");
        bell.wait(notifier_.get(), spec_.name.c_str(), delay, &woken);
        (void)notifier_.host().take_error();  // an unavailable doorbell already waited out its timeout
        cause = woken ? SW_WAKE_DOORBELL : SW_WAKE_TIMER;
        observe::Labels l = labels_;
        l.emplace_back("cause", woken ? "doorbell" : "timer");
        metrics_.add("relay_wakeups_total", l);
    }
}

}  // namespace spillway::pipeline
