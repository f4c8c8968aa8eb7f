#include "health.hpp"

#include <spillway/sdk.hpp>

namespace spillway::plugins::kafka {

bool Health::set(sw_health_state state, const std::string& message, int64_t now_us) {
    std::lock_guard lock(mutex_);
    if (fatal_.load(std::memory_order_relaxed)) return false;  // a fatal producer stays down
    const bool changed = state_.load(std::memory_order_relaxed) != state;
    if (changed) since_us_ = now_us;
    message_ = message;
    state_.store(state, std::memory_order_release);
    return changed;
}

bool Health::set_fatal(const std::string& message, int64_t now_us) {
    std::lock_guard lock(mutex_);
    if (fatal_.load(std::memory_order_relaxed)) return false;
    state_.store(SW_HEALTH_DOWN, std::memory_order_release);
    message_ = "fatal producer error: " + message;
    since_us_ = now_us;
    fatal_.store(true, std::memory_order_release);
    return true;
}

std::string Health::fatal_message() const {
    std::lock_guard lock(mutex_);
    return message_;
}

void Health::fill(sw_health& out) const {
    std::lock_guard lock(mutex_);
    out.state = state_.load(std::memory_order_relaxed);
    out.since_us = since_us_;
    sdk::set_message(out, message_);
}

}  // namespace spillway::plugins::kafka
