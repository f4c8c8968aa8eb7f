// redis: the doorbell over Redis lists.
//
//   notify(P)  LPUSH <key_prefix>P 1, then LTRIM to one element (pipelined, one round trip), on a
//              connection of its own shared by the publisher threads under a mutex. It fails fast
//              (connect_timeout bounds it) and is never retried inline: the event is already
//              durable, and the relay polls anyway.
//   wait(P)    BLPOP on a dedicated connection that only the relay thread uses, polled next to an
//              eventfd so that interrupt() can release it from any thread at once.
//
// Redis down: notify returns RETRY at once (after one connection attempt per backoff step); wait
// sleeps out its timeout and returns "not rung" with health DOWN — the relay then polls the store
// on its timer, which is exactly what a missing doorbell should cost. One warning per outage, one
// info line on recovery; reconnects back off from 100 ms to 2 s.
#include "connection.hpp"
#include "doorbell-common/interrupter.hpp"
#include "doorbell-common/outage.hpp"
#include "settings.hpp"

#include <spillway/sdk.hpp>

#include <algorithm>
#include <memory>
#include <mutex>

namespace spillway::plugins::redis {

using doorbell::Backoff;
using doorbell::Interrupter;
using doorbell::Outage;

// Longer waits are cut to a day: the relay wakes up once in a while whatever it asked for.
inline constexpr int64_t kLongestWaitMs = 86'400'000;

class RedisNotifier final : public sdk::Notifier {
public:
    explicit RedisNotifier(sdk::Host host)
        : Notifier(host), settings_(Settings::from(host)), outage_(host, "redis doorbell at " + settings_.where()) {}

    void start() override {
        interrupter_.clear();
        std::lock_guard lock(notify_mutex_);
        try {
            notify_conn_ = Connection::open(settings_);
            outage_.ok();
        } catch (const Refused& e) {
            // Wrong credentials or database: no retry fixes that, so say so at start.
            throw sdk::ConfigError(e.key(), e.what());
        } catch (const Unreachable& e) {
            // Not fatal: the pipeline works without its doorbell, only slower.
            notify_backoff_.failed();
            outage_.failed(e.what());
        }
    }

    void stop(int64_t) override {
        interrupter_.fire();
        {
            std::lock_guard lock(wait_mutex_);
            wait_conn_.reset();
        }
        std::lock_guard lock(notify_mutex_);
        notify_conn_.reset();
    }

    void health(sw_health& out) override { outage_.health(out); }

    void notify(std::string_view channel) override {
        const std::string key = settings_.key_prefix + std::string(channel);
        std::lock_guard lock(notify_mutex_);
        if (notify_conn_) {
            try {
                notify_conn_->ring(key);
                rang();
                return;
            } catch (const Unreachable& e) {
                // A connection that worked before may only be stale (Redis restarted since): a
                // fresh one gets one try below, so the first ring after a restart is not lost.
                // Not after a timeout: a hung server would then hold the publisher twice as long.
                if (e.timed_out()) down(e);
                notify_conn_.reset();
            } catch (const std::exception& e) {
                throw sdk::Error(SW_RETRY, failure(e));  // an error reply: the connection is fine
            }
        } else if (!notify_backoff_.ready()) {
            throw sdk::Error(SW_RETRY,
                             "redis doorbell at " + settings_.where() + " is down (reconnecting with backoff)");
        }
        try {
            notify_conn_ = Connection::open(settings_);
            notify_conn_->ring(key);
        } catch (const Unreachable& e) {
            down(e);
        } catch (const Refused& e) {
            down(e);  // credentials changed under us: an outage until they match again
        } catch (const std::exception& e) {
            throw sdk::Error(SW_RETRY, failure(e));
        }
        rang();
    }

    bool wait(std::string_view channel, int64_t timeout_ms) override {
        const std::string key = settings_.key_prefix + std::string(channel);
        const auto deadline =
            Backoff::Clock::now() + std::chrono::milliseconds(std::clamp<int64_t>(timeout_ms, 0, kLongestWaitMs));
        std::lock_guard lock(wait_mutex_);  // one relay waits per instance; a second would queue here
        for (;;) {
            if (interrupter_.fired()) return false;
            if (!wait_conn_ && !connect_waiter()) {
                // Degraded: sleep until the deadline or the next connection attempt, interruptibly.
                if (interrupter_.sleep_until(std::min(deadline, wait_backoff_.next()))) return false;
                if (Backoff::Clock::now() >= deadline) return false;
                continue;
            }
            const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Backoff::Clock::now());
            try {
                const auto popped = wait_conn_->pop(key, std::max<int64_t>(0, left.count()), interrupter_.fd());
                if (popped == Connection::Popped::interrupted) {
                    wait_conn_.reset();  // the BLPOP is still pending on it
                    return false;
                }
                // Only a command that worked ends an outage: a server that accepts connections
                // but fails BLPOP must not flip between "down" and "back" at every reconnect.
                wait_backoff_.reset();
                outage_.ok();
                return popped == Connection::Popped::token;
            } catch (const Unreachable& e) {
                wait_conn_.reset();
                wait_backoff_.failed();
                outage_.failed(e.what());
            }
            if (Backoff::Clock::now() >= deadline) return false;
        }
    }

    // Releases a blocked wait at once (its poll watches the eventfd) and makes later waits return
    // immediately, until the next start().
    void interrupt() override { interrupter_.fire(); }

private:
    std::string failure(const std::exception& e) const {
        return "redis doorbell at " + settings_.where() + ": " + e.what();
    }
    // Under notify_mutex_.
    void rang() {
        notify_backoff_.reset();
        outage_.ok();
    }
    [[noreturn]] void down(const std::exception& e) {
        notify_conn_.reset();
        notify_backoff_.failed();
        outage_.failed(e.what());
        throw sdk::Error(SW_RETRY, failure(e));
    }

    // Under wait_mutex_. True when wait_conn_ is usable.
    bool connect_waiter() {
        if (!wait_backoff_.ready()) return false;
        try {
            wait_conn_ = Connection::open(settings_);
        } catch (const std::exception& e) {
            wait_backoff_.failed();
            outage_.failed(e.what());
            return false;
        }
        return true;
    }

    const Settings settings_;
    Outage outage_;
    Interrupter interrupter_;

    std::mutex notify_mutex_;
    std::unique_ptr<Connection> notify_conn_;
    Backoff notify_backoff_;

    std::mutex wait_mutex_;
    std::unique_ptr<Connection> wait_conn_;
    Backoff wait_backoff_;
};

}  // namespace spillway::plugins::redis

SW_EXPORT_NOTIFIER(spillway::plugins::redis::RedisNotifier, "redis", "1.0.0",
                   "Redis doorbell: LPUSH+LTRIM to ring, BLPOP to wait", spillway::plugins::redis::kOptions,
                   SW_PLUGIN_THREAD_SAFE)
