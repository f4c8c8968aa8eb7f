// The direct path's circuit breaker. Closed: publish to the sink. Open (after `threshold` direct
// failures in a row, or when the sink reports DOWN): straight to the outbox, no sink
// wait. Half-open (the relay delivered again, or the sink is back up): still the outbox, so nothing
// overtakes the backlog. Closed again once the pipeline's backlog is empty.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>

namespace spillway::pipeline {

class Circuit {
public:
    enum class State { Closed = 0, Open = 1, HalfOpen = 2 };
    using Listener = std::function<void(State from, State to, const char* why)>;

    explicit Circuit(int64_t threshold, Listener on_change = {}) : threshold_(threshold), on_change_(std::move(on_change)) {}

    State state() const { return state_.load(std::memory_order_acquire); }
    bool closed() const { return state() == State::Closed; }

    void direct_succeeded();
    void direct_failed();
    void sink_down();
    void relay_delivered();  // Open -> HalfOpen
    void sink_up();          // Open -> HalfOpen
    void backlog_empty();    // HalfOpen -> Closed

    static const char* name(State s);

private:
    void move(State from, State to, const char* why);  // caller holds mutex_

    const int64_t threshold_;
    Listener on_change_;
    std::mutex mutex_;
    std::atomic<State> state_{State::Closed};
    int64_t consecutive_failures_ = 0;
};

}  // namespace spillway::pipeline
