// redis: the doorbell over Redis lists, or over pub/sub when every waiter must wake.
//
// fan_out = "one" (the default):
//   notify(P)  LPUSH <key_prefix>P 1, then LTRIM to one element (pipelined, one round trip), on a
//              connection of its own shared by the publisher threads under a mutex. It fails fast
//              (connect_timeout bounds it) and is never retried inline: the event is already
//              durable, and the relay polls anyway.
//   wait(P)    BLPOP on a dedicated connection that only the relay thread uses, polled next to an
//              eventfd so that interrupt() can release it from any thread at once. One token wakes
//              one waiter.
// fan_out = "all" (several engines on one outbox, any of which may own the spilled row):
//   notify(P)  PUBLISH <key_prefix>P 1 on the notify connection, bounded and failing as above.
//   wait(P)    SUBSCRIBE on the wait connection, held across waits: a ring that comes while the
//              relay is busy queues on the socket, and the next wait takes every queued one at once
//              (a burst is one wake). Redis keeps nothing for a channel nobody subscribes to, so,
//              as pgnotify does with LISTEN: a ring through this same instance before its channel
//              was first subscribed is kept in memory, and after a reconnect each channel counts as
//              rung once (rings sent while the connection was down are gone with it).
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
#include <mutex>
#include <set>

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
        if (settings_.fan_out_all()) {
            std::lock_guard local(local_mutex_);
            if (!subscribed_once_.count(key)) local_rung_.insert(key);
        }
        auto lock = backend_.notify.lock();
        backend_.notify.use_or_retry([&] { return reopen(); }, [&](Connection& conn) {
            if (settings_.fan_out_all()) conn.publish(key);
            else conn.ring(key);
        });
    }

    bool wait(std::string_view channel, int64_t timeout_ms) override {
        const std::string key = settings_.key_prefix + std::string(channel);
        const auto deadline = doorbell::wait_deadline(timeout_ms);
        auto lock = backend_.wait.lock();  // one relay waits per instance; a second would queue here
        return settings_.fan_out_all() ? wait_subscribed(key, deadline) : wait_popped(key, deadline);
    }

    void interrupt() override { backend_.interrupt(); }

private:
    // fan_out = "one": BLPOP. Under the wait link's lock.
    bool wait_popped(const std::string& key, Backoff::Clock::time_point deadline) {
        auto& link = backend_.wait;
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

    // fan_out = "all": the held SUBSCRIBE. Under the wait link's lock.
    bool wait_subscribed(const std::string& key, Backoff::Clock::time_point deadline) {
        auto& link = backend_.wait;
        waited_.insert(key);
        for (;;) {
            if (!link.await(deadline, backend_.interrupter, [&] { return open_subscriber(); })) return false;
            try {
                if (!link->subscribe(key, rung_, backend_.interrupter.fd())) {
                    link.drop();  // its SUBSCRIBE is still unconfirmed
                    return false;
                }
                {
                    std::lock_guard local(local_mutex_);
                    subscribed_once_.insert(key);
                }
                // As with BLPOP, only a command that worked ends an outage.
                link.worked();
                // A ring kept in memory needs no waiting, only the messages already received
                // taken with it, so that the same burst does not wake the next wait again.
                const bool kept = take_local(key);
                const auto heard = link->listen(key, rung_, kept ? Backoff::Clock::now() : deadline,
                                                backend_.interrupter.fd());
                return kept || heard == Connection::Heard::ring;
            } catch (const Unreachable& e) {
                link.failed(e.what());
            }
            if (Backoff::Clock::now() >= deadline) return false;
        }
    }

    // Under the wait link's lock.
    std::unique_ptr<Connection> open_subscriber() {
        auto conn = reopen();
        // Rings published while no connection was subscribed are gone: count every channel as
        // rung once, so the relay reads the store instead of trusting the silence.
        if (connected_before_) rung_.insert(waited_.begin(), waited_.end());
        connected_before_ = true;
        return conn;
    }
    // A ring this instance made before its channel was first subscribed.
    bool take_local(const std::string& key) {
        std::lock_guard lock(local_mutex_);
        return local_rung_.erase(key) > 0;
    }

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

    // fan_out = "all", under the wait link's lock.
    std::set<std::string> waited_;  // every channel ever waited on, counted as rung after a reconnect
    std::set<std::string> rung_;    // channels with a ring not yet taken by a wait
    bool connected_before_ = false;

    // fan_out = "all", shared with the publisher threads.
    std::mutex local_mutex_;
    std::set<std::string> subscribed_once_;  // channels subscribed at least once
    std::set<std::string> local_rung_;       // rings made here before their channel was subscribed
};

}  // namespace spillway::plugins::redis

SW_EXPORT_NOTIFIER(spillway::plugins::redis::RedisNotifier, "redis", "1.0.0",
                   "Redis doorbell: LPUSH+LTRIM to ring, BLPOP to wait (fan_out = \"all\": PUBLISH, SUBSCRIBE)", spillway::plugins::redis::kOptions,
                   SW_PLUGIN_THREAD_SAFE)
