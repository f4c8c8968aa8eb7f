#include "engine/pipeline/circuit.hpp"

namespace spillway::pipeline {

const char* Circuit::name(State s) {
    switch (s) {
        case State::Closed: return "closed";
        case State::Open: return "open";
        default: return "half-open";
    }
}

void Circuit::move(State from, State to, const char* why) {
    if (from == to) return;
    state_.store(to, std::memory_order_release);
    if (on_change_) on_change_(from, to, why);
}

void Circuit::direct_succeeded() {
    std::lock_guard lock(mutex_);
    consecutive_failures_ = 0;
}

void Circuit::direct_failed() {
    std::lock_guard lock(mutex_);
    if (++consecutive_failures_ >= threshold_ && state() == State::Closed)
        move(State::Closed, State::Open, "consecutive direct failures");
}

void Circuit::sink_down() {
    std::lock_guard lock(mutex_);
    const State s = state();
    if (s != State::Open) move(s, State::Open, "the sink reports DOWN");
}

void Circuit::relay_delivered() {
    std::lock_guard lock(mutex_);
    if (state() == State::Open) move(State::Open, State::HalfOpen, "relay delivered");
}

void Circuit::sink_up() {
    std::lock_guard lock(mutex_);
    if (state() == State::Open) move(State::Open, State::HalfOpen, "the sink reports UP");
}

void Circuit::backlog_empty() {
    std::lock_guard lock(mutex_);
    if (state() == State::HalfOpen) {
        consecutive_failures_ = 0;
        move(State::HalfOpen, State::Closed, "backlog drained");
    }
}

}  // namespace spillway::pipeline
