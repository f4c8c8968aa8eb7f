#include "engine/pipeline/sink_supervisor.hpp"

#include <algorithm>
#include <cstdio>
#include <cstring>

namespace spillway::pipeline {

SinkSupervisor::SinkSupervisor(Shared& shared, plugin::SinkPort sink, std::function<void()> wake_relay,
                               std::vector<plugin::TransformPort> transforms)
    : s_(shared), sink_(sink), wake_relay_(std::move(wake_relay)), transforms_(shared, std::move(transforms)) {}

void SinkSupervisor::send(std::span<const sw_event> events, std::span<sw_result> results, int64_t timeout_ms) {
    if (transforms_.empty() || events.empty()) return send_to_sink(events, results, timeout_ms);
    const TransformChain::Applied applied = transforms_.apply(events, results);
    if (applied.events().empty()) return;
    std::vector<sw_result> sent(applied.events().size());
    send_to_sink(applied.events(), sent, timeout_ms);
    for (size_t j = 0; j < sent.size(); ++j) results[applied.from()[j]] = sent[j];
}

void SinkSupervisor::send_to_sink(std::span<const sw_event> events, std::span<sw_result> results, int64_t timeout_ms) {
    const auto sent = sink_.send(events, results, timeout_ms);
    note_fatal(sent.generation, sent.status, results);
    if (sent.status == SW_OK) {
        note_outcome(results);
        return;
    }
    down_overruled_ = false;
    const std::string why = sink_.describe(sent.status);
    for (auto& r : results) {
        std::memset(&r, 0, sizeof r);
        r.status = SW_RETRY;
        std::snprintf(r.message, sizeof r.message, "%s", why.c_str());
    }
}

sw_health_state SinkSupervisor::look() {
    sw_health h{};
    if (sink_.health(h) != SW_OK) return SW_HEALTH_UNKNOWN;
    said_down_ = h.state == SW_HEALTH_DOWN;
    if (h.state != SW_HEALTH_DOWN) down_overruled_ = false;
    else if (down_overruled_) return SW_HEALTH_UNKNOWN;
    if (h.state == SW_HEALTH_DOWN) s_.circuit.sink_down();
    if (h.state == SW_HEALTH_UP) s_.circuit.sink_up();
    return static_cast<sw_health_state>(h.state);
}

void SinkSupervisor::note_outcome(std::span<const sw_result> results) {
    // The usual case, a sink that never said DOWN: nothing to overrule, nothing to scan.
    if (results.empty() || (!said_down_ && !down_overruled_)) return;
    const bool delivered =
        std::any_of(results.begin(), results.end(), [](const sw_result& r) { return r.status == SW_OK; });
    if (!delivered) {
        if (std::all_of(results.begin(), results.end(), [](const sw_result& r) { return r.status == SW_RETRY; }))
            down_overruled_ = false;
        return;
    }
    if (said_down_ && !down_overruled_.exchange(true))
        s_.log->info("{} delivered while its health said DOWN: the engine goes by the delivery until the sink "
                     "reports otherwise or a send fails",
                     sink_.id());
}

bool SinkSupervisor::trial_due() {
    const auto now = std::chrono::steady_clock::now();
    if (next_trial_ == std::chrono::steady_clock::time_point{}) {
        trial_backoff_ = std::chrono::milliseconds(kTrialFirstMs);
        next_trial_ = now + trial_backoff_;
        return false;
    }
    if (now < next_trial_) return false;
    trial_backoff_ = std::min(trial_backoff_ * 2, std::chrono::milliseconds(kTrialMaxMs));
    next_trial_ = now + trial_backoff_;
    s_.metrics.add("sink_trials_total", s_.labels);
    return true;
}

void SinkSupervisor::end_trials() { next_trial_ = {}; }

void SinkSupervisor::note_fatal(uint64_t generation, sw_status call, std::span<const sw_result> results) {
    const bool fatal =
        call == SW_FATAL || std::any_of(results.begin(), results.end(), [](const sw_result& r) { return r.status == SW_FATAL; });
    if (!fatal) return;
    uint64_t none = kNoFatal;
    if (fatal_generation_.compare_exchange_strong(none, generation)) {
        s_.log->error("{} reported a fatal error and cannot send again; the relay rebuilds it "
                      "(events meanwhile go to the outbox)",
                      sink_.id());
        // The spilled events ring the doorbell too; this makes sure the relay looks now.
        wake_relay_();
    }
}

void SinkSupervisor::check_fatal() {
    const auto sent = sink_.send({}, {}, 0);
    if (sent.status != SW_OK) sink_.forget_error();
    note_fatal(sent.generation, sent.status, {});
}

void SinkSupervisor::rebuild_if_fatal() {
    const uint64_t generation = fatal_generation_.load();
    if (generation == kNoFatal) return;
    const auto now = std::chrono::steady_clock::now();
    if (now < next_rebuild_) return;
    try {
        // A fresh instance with the same configuration (for Kafka, a new producer and producer id).
        sink_.rebuild(generation, s_.spec.shutdown_timeout_ms);
        fatal_generation_ = kNoFatal;
        rebuild_backoff_ = std::chrono::milliseconds(0);
        s_.metrics.add("sink_rebuilds_total", s_.labels);
        s_.log->info("{} rebuilt after its fatal error", sink_.id());
    } catch (const std::exception& e) {
        rebuild_backoff_ = std::clamp(rebuild_backoff_ * 2, std::chrono::milliseconds(500), std::chrono::milliseconds(30000));
        next_rebuild_ = now + rebuild_backoff_;
        s_.log->warn("cannot rebuild {} (next attempt in {} ms): {}", sink_.id(), rebuild_backoff_.count(), e.what());
    }
}

void SinkSupervisor::flush(int64_t timeout_ms) {
    const sw_status flushed = sink_.flush(timeout_ms);
    if (flushed != SW_OK) s_.log->warn("flushing the sink: {}", sink_.describe(flushed));
}

}  // namespace spillway::pipeline
