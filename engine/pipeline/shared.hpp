// What a pipeline's parts share: its settings, its circuit, its sticky keys, its counters and the
// last error an operator sees. The Publisher, the Relay and the SinkSupervisor each hold a
// reference; everything here is safe to touch from their threads at once.
#pragma once

#include "engine/config/config.hpp"
#include "engine/observe/capped_label.hpp"
#include "engine/observe/metrics.hpp"
#include "engine/pipeline/circuit.hpp"
#include "engine/pipeline/sticky_keys.hpp"

#include <spdlog/spdlog.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <string>

namespace spillway::pipeline {

struct Shared {
    Shared(const config::Pipeline& spec, observe::Metrics& metrics);

    const config::Pipeline spec;
    observe::Metrics& metrics;
    const std::shared_ptr<spdlog::logger> log;
    const observe::Labels labels;  // {pipeline=<name>}
    observe::CappedLabel event_types;  // publish_total's event_type (spec.metrics_event_types)

    Circuit circuit;
    StickyKeys sticky;
    std::atomic<bool> seeded{false};  // sticky keys known; until then every keyed event spills
    std::atomic<bool> stopping{false};
    // The admin API paused the relay (POST /v1/pipelines/{name}/pause): it claims nothing until
    // resumed. Kept in memory only: a restarted engine relays again.
    std::atomic<bool> paused{false};

    // What `spillway status` counts.
    std::atomic<uint64_t> n_direct{0}, n_outbox{0}, n_refused{0}, n_relayed{0}, n_dead{0};
    std::atomic<int64_t> poll_interval_ms{0};
    // When this engine rang the doorbell first since the relay's last claim (0: not since): the
    // relay times from there to the claim the ring woke (doorbell_wake_seconds).
    std::atomic<int64_t> rung_at_us{0};
    // Called before this engine rings the doorbell: keeps the first ring's time (rung_at_us).
    void mark_ring();

    void set_last_error(std::string error);
    std::string last_error() const;

private:
    mutable std::mutex error_mutex_;
    std::string last_error_;
};

}  // namespace spillway::pipeline
