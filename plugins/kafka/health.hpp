// Broker reachability as librdkafka reports it, for the pipeline's circuit breaker.
//
// DOWN  on ALL_BROKERS_DOWN (error callback) or a fatal producer error (which never clears);
// UP    on a successful delivery report, a statistics report with a broker in state UP, or an
//       answered metadata request while down (BrokerWatch);
// UNKNOWN until the first of those.
#ifndef SPILLWAY_PLUGINS_KAFKA_HEALTH_HPP
#define SPILLWAY_PLUGINS_KAFKA_HEALTH_HPP

#include <spillway/plugin.h>

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>

namespace spillway::plugins::kafka {

class Health {
public:
    // Returns true when the state changed (for logging).
    bool set(sw_health_state state, const std::string& message, int64_t now_us);
    // "Delivery succeeded"; the hot path checks up() first to skip building the message.
    bool up() const { return state_.load(std::memory_order_acquire) == SW_HEALTH_UP; }
    bool mark_up(const std::string& message, int64_t now_us) {
        if (up()) return false;
        return set(SW_HEALTH_UP, message, now_us);
    }
    bool down() const { return state_.load(std::memory_order_acquire) == SW_HEALTH_DOWN; }
    bool set_fatal(const std::string& message, int64_t now_us);
    bool fatal() const { return fatal_.load(std::memory_order_acquire); }
    std::string fatal_message() const;
    void fill(sw_health& out) const;

private:
    mutable std::mutex mutex_;
    std::atomic<int> state_{SW_HEALTH_UNKNOWN};
    std::atomic<bool> fatal_{false};
    std::string message_ = "not connected yet";
    int64_t since_us_ = 0;
};

}  // namespace spillway::plugins::kafka

#endif
