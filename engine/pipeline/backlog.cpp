// What the relay keeps up to date about the backlog for the rest of the pipeline: the sticky keys
// (which keys' new events must follow older ones into the outbox), the backlog gauges, and the
// empty backlog that closes a half-open circuit.
#include "engine/pipeline/relay.hpp"

#include <algorithm>
#include <string>
#include <unordered_map>

namespace spillway::pipeline {

bool Relay::seed_sticky_keys() {
    auto visit = [this](sw_bytes key) {
        if (key.ptr) s_.sticky.add(std::string(key.ptr, key.len));
    };
    const sw_status st = store_.pending_keys(s_.spec.name, visit);
    if (st == SW_OK || st == SW_UNSUPPORTED) {
        s_.seeded = true;
        if (s_.sticky.size())
            s_.log->info("{} key(s) have events in the outbox; their new events follow them there", s_.sticky.size());
        return true;
    }
    s_.log->warn("cannot read pending keys yet ({}); keyed events go to the outbox until it can", store_.describe(st));
    return false;
}

// Keys whose count reached zero while the backlog is not empty: the relay may have settled rows
// this engine never counted (an application's, another engine's), so the store is asked whether
// any row of them is still pending before they go direct again. One read of the pending keys for
// all of them, at most once a second and at most a twentieth of the time (it scans the backlog).
void Relay::confirm_sticky_keys() {
    if (s_.sticky.unsure_size() == 0) return;
    const auto started = std::chrono::steady_clock::now();
    if (started < next_confirm_) return;
    const std::vector<std::string> asked = s_.sticky.unsure();
    std::unordered_map<std::string, int64_t> pending;
    auto visit = [&pending](sw_bytes key) {
        if (key.ptr) ++pending[std::string(key.ptr, key.len)];
    };
    const sw_status st = store_.pending_keys(s_.spec.name, visit);
    const auto took = std::chrono::steady_clock::now() - started;
    next_confirm_ = started + std::max<std::chrono::steady_clock::duration>(std::chrono::seconds(1), took * 20);
    if (st == SW_UNSUPPORTED) {
        // A store that cannot tell: the counts are all there is (as at start, where it seeded none).
        store_.forget_error();
        s_.sticky.confirm(asked, {});
    } else if (st == SW_OK) {
        s_.sticky.confirm(asked, pending);
    } else {
        store_.forget_error();  // asked again next time; meanwhile the keys stay
    }
}

void Relay::check_backlog() {
    const uint64_t generation = s_.sticky.generation();
    sw_store_stats stats{};
    if (store_.stats(s_.spec.name, stats) != SW_OK) return;
    s_.metrics.set("outbox_pending", s_.labels, static_cast<double>(stats.pending));
    s_.metrics.set("outbox_dead", s_.labels, static_cast<double>(stats.dead));
    s_.metrics.set("outbox_oldest_age_seconds", s_.labels, static_cast<double>(stats.oldest_pending_age_ms) / 1000.0);
    if (stats.pending == 0) {
        s_.circuit.backlog_empty();
        s_.sticky.clear_if_unchanged(generation);
    }
}

// The backlog count costs a scan of the pending rows. It decides something only while the circuit
// is not closed (it closes on an empty backlog) or keys are sticky (they clear on one); otherwise
// it only feeds the gauges, so at most every 5 s while rows move, and once more after they stop.
// While the sink says it is down the backlog can only grow, so it is counted once a second, not
// at every look at the health.
void Relay::maybe_check_backlog(const Round& r, bool sink_says_down) {
    const auto now = std::chrono::steady_clock::now();
    const bool not_full = r.claimed < r.limit;
    if (r.claimed > 0) gauges_stale_ = true;
    const bool counts = !sink_says_down || now - last_backlog_check_ >= std::chrono::seconds(1);
    if ((not_full && counts && (!s_.circuit.closed() || s_.sticky.size() > 0)) ||
        (gauges_stale_ && now - last_backlog_check_ >= std::chrono::seconds(5))) {
        last_backlog_check_ = now;
        gauges_stale_ = r.claimed > 0;
        check_backlog();
    }
}

}  // namespace spillway::pipeline
