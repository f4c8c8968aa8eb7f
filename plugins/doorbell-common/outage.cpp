#include "outage.hpp"

#include <cstdio>

namespace spillway::plugins::doorbell {

void Outage::failed(const std::string& why) {
    std::lock_guard lock(mutex_);
    ++failures_;
    message_ = why;
    if (state_ == State::down) return;
    state_ = State::down;
    since_us_ = host_.monotonic_us();
    failures_ = 1;
    host_.warn(backend_ + " is unreachable: " + why + "; the relay falls back to polling until it is back");
    host_.count("notifier_outages_total");
}

void Outage::ok() {
    std::lock_guard lock(mutex_);
    if (state_ == State::up) return;
    const int64_t now = host_.monotonic_us();
    if (state_ == State::down) {
        const double seconds = static_cast<double>(now - since_us_) / 1e6;
        char buf[32];
        std::snprintf(buf, sizeof buf, "%.1f", seconds);
        host_.info(backend_ + " is reachable again after " + buf + " s (" + std::to_string(failures_) +
                   " failed call" + (failures_ == 1 ? "" : "s") + ")");
    }
    state_ = State::up;
    since_us_ = now;
    failures_ = 0;
    message_.clear();
}

bool Outage::down() const {
    std::lock_guard lock(mutex_);
    return state_ == State::down;
}

void Outage::health(sw_health& out) const {
    std::lock_guard lock(mutex_);
    out.state = state_ == State::up ? SW_HEALTH_UP : state_ == State::down ? SW_HEALTH_DOWN : SW_HEALTH_UNKNOWN;
    out.since_us = since_us_;
    sdk::set_message(out, state_ == State::down ? backend_ + ": " + message_ : backend_);
}

}  // namespace spillway::plugins::doorbell
