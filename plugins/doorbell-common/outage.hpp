// Reachability of the doorbell's backend, as the host sees it: health, one warning when an outage
// begins, one info line when it ends (never a line per failed call), and reconnect backoff.
#ifndef SPILLWAY_PLUGINS_DOORBELL_OUTAGE_HPP
#define SPILLWAY_PLUGINS_DOORBELL_OUTAGE_HPP

#include <spillway/sdk.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>

namespace spillway::plugins::doorbell {

// Shared by the notify and the wait paths of one instance; thread-safe.
class Outage {
public:
    Outage(sdk::Host host, std::string backend) : host_(host), backend_(std::move(backend)) {}

    // A call failed for `why`. The first failure of an outage logs a warning and marks health DOWN.
    void failed(const std::string& why);
    // A call succeeded. Ends an outage with one info line; the first success marks health UP.
    void ok();
    bool down() const;
    void health(sw_health& out) const;
    // Which server, as every line about it says ("redis doorbell at 127.0.0.1:6379").
    const std::string& name() const { return backend_; }

private:
    enum class State { unknown, up, down };
    sdk::Host host_;
    std::string backend_;
    mutable std::mutex mutex_;
    State state_ = State::unknown;
    int64_t since_us_ = 0;
    uint64_t failures_ = 0;  // in the current outage
    std::string message_;
};

// When the next connection attempt is allowed: 100 ms after the first failure, doubling to 2 s.
// Not thread-safe: each connection's owner keeps one under its own lock.
class Backoff {
public:
    using Clock = std::chrono::steady_clock;
    bool ready(Clock::time_point now = Clock::now()) const { return now >= next_; }
    Clock::time_point next() const { return next_; }
    void failed(Clock::time_point now = Clock::now()) {
        next_ = now + delay_;
        delay_ = std::min(delay_ * 2, kMax);
    }
    void reset() {
        delay_ = kInitial;
        next_ = {};
    }

private:
    static constexpr std::chrono::milliseconds kInitial{100}, kMax{2000};
    std::chrono::milliseconds delay_ = kInitial;
    Clock::time_point next_{};
};

}  // namespace spillway::plugins::doorbell

#endif
