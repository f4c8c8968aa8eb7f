// The relay: wait for the doorbell or the scheduler's interval, claim a batch, send it, settle the
// rows. While the circuit is open it watches the sink's health (or, for a sink that cannot tell,
// probes with one row), giving leases back on failure so an outage burns no attempts and leaves no
// backoff to wait out when Kafka returns. It also keeps what the publisher learns of the backlog
// up to date: the sticky keys (seeded from the store, confirmed against it) and the backlog gauges.
#pragma once

#include "engine/observe/log.hpp"
#include "engine/pipeline/shared.hpp"
#include "engine/pipeline/sink_supervisor.hpp"
#include "engine/plugin/ports.hpp"

#include <chrono>
#include <span>
#include <thread>
#include <vector>

namespace spillway::pipeline {

class Relay {
public:
    Relay(Shared& shared, SinkSupervisor& sink, plugin::StorePort store, plugin::NotifierPort doorbell,
          plugin::SchedulerPort scheduler);
    ~Relay() { stop(); }
    Relay(const Relay&) = delete;
    Relay& operator=(const Relay&) = delete;

    void start();
    // Finishes (settles or gives back) the batch it holds, then returns. Call after
    // shared.stopping is set.
    void stop();
    // Reads the keys of pending rows into the sticky keys; false while the store cannot tell.
    bool seed_sticky_keys();

private:
    // A claimed batch, given back to the store plugin that owns its memory whatever happens.
    class Claimed {
        const plugin::StorePort* store_;

    public:
        explicit Claimed(const plugin::StorePort& store) : store_(&store) {}
        ~Claimed();
        Claimed(Claimed&& o) noexcept;
        Claimed& operator=(Claimed&& o) noexcept;
        size_t size() const { return batch.n; }
        std::span<const sw_event> events() const { return {batch.events, batch.n}; }
        sw_batch batch{sizeof(sw_batch), nullptr, 0, nullptr};
    };
    // What one round (or a drain of several) did, for the scheduler and the backlog check.
    struct Round {
        size_t claimed = 0;  // rows of the last claim
        size_t limit = 0;    // that claim's limit (1 for a probe)
        sw_status status = SW_OK;
        void fail(sw_status st) {
            if (st != SW_OK) status = st;
        }
    };

    void loop();
    // relay.cpp: one round, and a drain of full rounds claimed ahead.
    Round round(bool probe);
    Round drain(Claimed first, size_t limit, int64_t began);
    void processed(int64_t began);
    void count_wake(const char* cause);  // relay_wakeups_total{cause}
    void time_ring(int cause);           // doorbell_wake_seconds{notifier}
    static const char* wake_cause_name(int cause);
    size_t grown_limit(size_t n, size_t limit) const;
    sw_status claim(Claimed& out, size_t limit, const Claimed* prev);
    std::vector<sw_result> send_claimed(std::span<const sw_event> events, bool probe);
    sw_status settle(std::span<const sw_event> events, const std::vector<sw_result>& results, bool probe);
    void release(std::span<const int64_t> ids);

    // backlog.cpp: the sticky keys and the gauges.
    void confirm_sticky_keys();
    void check_backlog();
    void tell_sink_health();
    void maybe_check_backlog(const Round& r, bool sink_says_down);

    sw_health_state told_sink_health_ = SW_HEALTH_UNKNOWN;  // what the store last heard (tell_sink_health)
    static constexpr int64_t kProbeIntervalMs = 250;  // how often an open circuit looks for Kafka
    static constexpr int64_t kShardsPollMs = 500;     // coordination = "shards": the longest idle wait
    static constexpr int64_t kPausedWaitMs = 1000;    // a paused relay looks whether it was resumed
    // How often an open circuit reads the health of a sink that says it is down: an in-memory read
    // (no event is sent), frequent so the drain starts as soon as the sink sees its brokers again.
    static constexpr int64_t kHealthPollMs = 20;

    Shared& s_;
    SinkSupervisor& sink_;
    plugin::StorePort store_;
    plugin::NotifierPort doorbell_;
    plugin::SchedulerPort scheduler_;
    std::thread thread_;

    // Everything below is touched by the relay's thread only.
    bool overlap_ = true;  // the store has claim_next, so a drain claims ahead
    // The limit of the next claim: one that comes back full doubles it, up to drain_batch_size;
    // one that does not, or a failure, puts it back to batch_size.
    size_t next_limit_ = 0;
    bool outage_logged_ = false;  // one warning per sink outage
    observe::LogLimit dead_letter_log_{10};  // a line per dead letter, at most 10 a second
    int wake_cause_ = SW_WAKE_START;  // why the relay's current round runs (sw_round.cause)
    bool store_outage_logged_ = false;
    bool gauges_stale_ = false;  // rows moved since the backlog gauges were last read
    std::chrono::steady_clock::time_point last_backlog_check_{};
    std::chrono::steady_clock::time_point next_confirm_{};  // confirm_sticky_keys' next read
};

}  // namespace spillway::pipeline
