// The one owner of the sink's condition: every send goes through here, so a FATAL is noticed in
// one place and the instance is rebuilt in one place; the sink's health moves the circuit in one
// place (look). The publisher and the relay ask; neither decides.
#pragma once

#include "engine/pipeline/shared.hpp"
#include "engine/pipeline/transform_chain.hpp"
#include "engine/plugin/ports.hpp"

#include <chrono>
#include <functional>
#include <span>

namespace spillway::pipeline {

class SinkSupervisor {
public:
    // `wake_relay` is rung when a FATAL is first seen: the relay rebuilds the sink.
    SinkSupervisor(Shared& shared, plugin::SinkPort sink, std::function<void()> wake_relay,
                   std::vector<plugin::TransformPort> transforms = {});

    // One send, through the pipeline's transforms first: an event they drop or reject has its
    // result from them and never reaches the sink. A FATAL (the call's or any result's) marks the instance for rebuild; a failed call
    // fills every result as RETRY with the plugin's reason, so callers read only the results.
    void send(std::span<const sw_event> events, std::span<sw_result> results, int64_t timeout_ms);

    // Reads the sink's health and moves the circuit by it: DOWN opens it, UP half-opens an open
    // one. Returns what it read (UNKNOWN for a sink that cannot tell, and for a DOWN that a send
    // has contradicted since: see below).
    sw_health_state look();

    // The health contract (plugin.h): while the sink says DOWN nobody sends to it, so a sink that
    // learns its state only from sends would stay DOWN for ever. The engine therefore tries it
    // itself: one event after 1 s, 2 s, 4 s, then every kTrialMaxMs. True when a trial is due now
    // (and arms the next); the relay makes it. end_trials() when the sink no longer says DOWN.
    bool trial_due();
    void end_trials();

    // A sink that died for good also just says DOWN, and while it does nobody sends to it. An
    // empty send costs nothing and tells the two apart (a fatal sink fails every call at once).
    void check_fatal();
    // Replaces an instance that reported FATAL; a failed rebuild is tried again with backoff
    // (meanwhile the circuit keeps events in the outbox). Called by the relay's thread.
    void rebuild_if_fatal();
    void flush(int64_t timeout_ms);

    const plugin::SinkPort& port() const { return sink_; }

private:
    void send_to_sink(std::span<const sw_event> events, std::span<sw_result> results, int64_t timeout_ms);
    void note_fatal(uint64_t generation, sw_status call, std::span<const sw_result> results);

    Shared& s_;
    plugin::SinkPort sink_;
    std::function<void()> wake_relay_;
    TransformChain transforms_;
    // The sink generation that reported FATAL, for the relay to rebuild (kNoFatal: none).
    static constexpr uint64_t kNoFatal = ~uint64_t{0};
    std::atomic<uint64_t> fatal_generation_{kNoFatal};
    std::chrono::steady_clock::time_point next_rebuild_{};
    std::chrono::milliseconds rebuild_backoff_{0};

    // A send that delivered while the sink said DOWN outranks the health: the sink's answer
    // decides. Its DOWN is then disregarded until it says anything else or a send fails outright.
    std::atomic<bool> said_down_{false};
    std::atomic<bool> down_overruled_{false};
    void note_outcome(std::span<const sw_result> results);

    static constexpr int64_t kTrialFirstMs = 1000, kTrialMaxMs = 5000;
    std::chrono::steady_clock::time_point next_trial_{};  // relay thread only; {}: no trials armed
    std::chrono::milliseconds trial_backoff_{0};
};

}  // namespace spillway::pipeline
