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
#include "doorbell-common/link.hpp"
#include "settings.hpp"

#include <spillway/sdk.hpp>

#include <algorithm>
#include <memory>

namespace spillway::plugins::redis {

using doorbell::Backoff;

class RedisNotifier final : public sdk::Notifier {
public:
    explicit RedisNotifier(sdk::Host host)
        : Notifier(host), settings_(Settings::from(host)), backend_(host, "redis doorbell at " + settings_.where()) {}

    void start() override {
        backend_.interrupter.clear();
        auto lock = backend_.notify.lock();
        backend_.notify.connect_now([&] {
            try {
                return Connection::open(settings_);
            } catch (const Refused& e) {
                // Wrong credentials or database: no retry fixes that, so say so at start.
                throw sdk::ConfigError(e.key(), e.what());
            }
        });
    }

    void stop(int64_t) override { backend_.stop(); }
    void health(sw_health& out) override { backend_.health(out); }

    void notify(std::string_view channel) override {
        const std::string key = settings_.key_prefix + std::string(channel);
        auto lock = backend_.notify.lock();
        backend_.notify.use_or_retry([&] { return reopen(); }, [&](Connection& conn) { conn.ring(key); });
    }

    bool wait(std::string_view channel, int64_t timeout_ms) override {
        const std::string key = settings_.key_prefix + std::string(channel);
        const auto deadline = doorbell::wait_deadline(timeout_ms);
        auto& link = backend_.wait;
        auto lock = link.lock();  // one relay waits per instance; a second would queue here
        for (;;) {
            if (!link.await(deadline, backend_.interrupter, [&] { return reopen(); })) return false;
            const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Backoff::Clock::now());
            try {
                const auto popped = link->pop(key, std::max<int64_t>(0, left.count()), backend_.interrupter.fd());
                if (popped == Connection::Popped::interrupted) {
                    link.drop();  // the BLPOP is still pending on it
                    return false;
                }
                // Only a command that worked ends an outage: a server that accepts connections
                // but fails BLPOP must not flip between "down" and "back" at every reconnect.
                link.worked();
                return popped == Connection::Popped::token;
            } catch (const Unreachable& e) {
                link.failed(e.what());
            }
            if (Backoff::Clock::now() >= deadline) return false;
        }
    }

    void interrupt() override { backend_.interrupt(); }

private:
    // After start, credentials changed under us are an outage until they match again.
    std::unique_ptr<Connection> reopen() const {
        try {
            return Connection::open(settings_);
        } catch (const Refused& e) {
            throw Unreachable(e.what());
        }
    }

    const Settings settings_;
    doorbell::Backend<Connection> backend_;
};

}  // namespace spillway::plugins::redis

SW_EXPORT_NOTIFIER(spillway::plugins::redis::RedisNotifier, "redis", "1.0.0",
                   "Redis doorbell: LPUSH+LTRIM to ring, BLPOP to wait", spillway::plugins::redis::kOptions,
                   SW_PLUGIN_THREAD_SAFE)
