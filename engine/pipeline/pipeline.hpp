// One pipeline: the publisher (direct-first with durable fallback, or outbox-first) and the relay
// that drains the outbox, over a sink, a store, a notifier and a scheduler.
#pragma once

#include "engine/config/config.hpp"
#include "engine/observe/metrics.hpp"
#include "engine/pipeline/circuit.hpp"
#include "engine/pipeline/event.hpp"
#include "engine/pipeline/sticky_keys.hpp"
#include "engine/plugin/instance.hpp"

#include <spdlog/spdlog.h>

#include <atomic>
#include <condition_variable>
#include <chrono>
#include <mutex>
#include <shared_mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

namespace spillway::pipeline {

// What an operator sees of a pipeline (admin API, `spillway status`).
struct Status {
    std::string name;
    std::string mode;
    std::string circuit;
    int64_t pending = -1, leased = -1, dead = -1, oldest_pending_age_ms = -1;  // -1: store unreachable
    int64_t poll_interval_ms = 0;
    uint64_t direct = 0, outbox = 0, refused = 0, relayed = 0, dead_lettered = 0;
    std::string last_error;
    size_t sticky_keys = 0;
};

class Pipeline {
public:
    Pipeline(const config::Pipeline& spec, plugin::Instance& sink, plugin::Instance& store,
             plugin::Instance& notifier, plugin::Instance& scheduler, observe::Metrics& metrics);
    ~Pipeline();
    Pipeline(const Pipeline&) = delete;
    Pipeline& operator=(const Pipeline&) = delete;

    // Seeds the sticky keys from the store and starts the relay thread.
    void start();
    // Stops accepting, finishes or releases the relay's batch, flushes the sink.
    void stop();

    // Returns once each event is acknowledged by Kafka or durable in the outbox, or refused.
    Outcome publish(Event event);
    std::vector<Outcome> publish(std::vector<Event> events);

    Status status();
    const std::string& name() const { return spec_.name; }
    const config::Pipeline& spec() const { return spec_; }
    Circuit::State circuit() const { return circuit_.state(); }
    // Wakes the relay now (e.g. after a dead-letter replay).
    void wake();

private:
    // publisher.cpp
    void prepare(Event& e, int64_t accepted_us);
    void publish_direct(std::vector<Event>& events, std::vector<Outcome>& out);
    void append(std::vector<Event>& events, const std::vector<size_t>& pick, Reason reason,
                const std::vector<std::string>& direct_errors, std::vector<Outcome>& out);
    void record(const std::vector<Outcome>& outcomes, int64_t started_us);

    // relay.cpp
    void relay_loop();
    // A claimed batch, given back to the store plugin that owns its memory whatever happens.
    class Claimed {
        const plugin::Instance* store_;

    public:
        explicit Claimed(const plugin::Instance& store) : store_(&store) {}
        ~Claimed();
        Claimed(Claimed&& o) noexcept;
        Claimed& operator=(Claimed&& o) noexcept;
        size_t size() const { return batch.n; }
        std::span<const sw_event> events() const { return {batch.events, batch.n}; }
        sw_batch batch{sizeof(sw_batch), nullptr, 0, nullptr};
    };
    size_t relay_round(int& status, bool probe);
    size_t grown_limit(size_t n, size_t limit) const;
    size_t drain(Claimed first, size_t limit, int& status);
    sw_status claim(Claimed& out, size_t limit, const Claimed* prev);
    std::vector<sw_result> send_claimed(std::span<const sw_event> events, bool probe);
    size_t settle(std::span<const sw_event> events, const std::vector<sw_result>& results, bool probe, int& status);
    void release(std::span<const int64_t> ids);
    void note_fatal(const plugin::Instance::Use& use, sw_status call, const std::vector<sw_result>& results);
    void rebuild_sink_if_fatal();
    void check_sink_fatal();
    void check_backlog();
    void confirm_sticky_keys();
    bool seed_sticky_keys();

    static constexpr int64_t kProbeIntervalMs = 250;  // how often an open circuit looks for Kafka
    // How often an open circuit reads the health of a sink that says it is down: an in-memory read
    // (no event is sent), frequent so the drain starts as soon as the sink sees its brokers again.
    static constexpr int64_t kHealthPollMs = 20;

    const config::Pipeline spec_;
    plugin::Instance& sink_;
    plugin::Instance& store_;
    plugin::Instance& notifier_;
    plugin::Instance& scheduler_;
    observe::Metrics& metrics_;
    std::shared_ptr<spdlog::logger> log_;
    observe::Labels labels_;

    Circuit circuit_;
    StickyKeys sticky_;
    std::atomic<bool> accepting_{false};
    std::atomic<int> publishing_{0};  // publish() calls under way
    std::mutex publishing_mutex_;
    std::condition_variable published_cv_;
    std::atomic<bool> seeded_{false};  // sticky keys known; until then every keyed event spills
    std::atomic<bool> stopping_{false};
    std::thread relay_;
    // The sink generation that reported FATAL, for the relay to rebuild (kNoFatal: none).
    static constexpr uint64_t kNoFatal = ~uint64_t{0};
    std::atomic<uint64_t> sink_fatal_generation_{kNoFatal};
    std::chrono::steady_clock::time_point next_rebuild_{};
    std::chrono::milliseconds rebuild_backoff_{0};
    std::atomic<int64_t> poll_interval_ms_{0};
    std::atomic<uint64_t> n_direct_{0}, n_outbox_{0}, n_refused_{0}, n_relayed_{0}, n_dead_{0};
    std::mutex error_mutex_;
    std::string last_error_;
    bool outage_logged_ = false;  // relay: one warning per sink outage
    bool store_outage_logged_ = false;
    std::chrono::steady_clock::time_point last_backlog_check_{};
    std::chrono::steady_clock::time_point next_confirm_{};  // relay: confirm_sticky_keys' next read
    bool gauges_stale_ = false;  // relay: rows moved since the backlog gauges were last read
    bool overlap_ = true;        // relay: the store has claim_next, so a drain claims ahead
    // relay: the limit of the next claim, and of the last one made. A claim that comes back full
    // doubles the next, up to drain_batch_size; one that does not goes back to batch_size.
    size_t next_limit_ = 0;
    size_t last_limit_ = 0;
};

}  // namespace spillway::pipeline
