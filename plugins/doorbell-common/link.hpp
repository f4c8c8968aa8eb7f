// The two-connection skeleton of a network doorbell: a notify link shared by the publisher threads
// and a wait link used by the relay, each connected lazily and reconnected with its own backoff,
// both reporting to one Outage; plus the eventfd that releases a blocked wait. What a connection
// does (the backend's commands) stays in each plugin and comes in as callables:
//   open()        -> std::unique_ptr<Connection>, or nullptr for "no connection, not a failure"
//                    (an interrupted connect); throws Unreachable when the server cannot be used.
//   use(conn)     the backend's command; throws Unreachable when the connection broke (the link
//                    drops it), or any other std::exception for a refusal (an error reply) that
//                    leaves the connection usable.
#ifndef SPILLWAY_PLUGINS_DOORBELL_COMMON_LINK_HPP
#define SPILLWAY_PLUGINS_DOORBELL_COMMON_LINK_HPP

#include "doorbell-common/interrupter.hpp"
#include "doorbell-common/outage.hpp"
#include "doorbell-common/unreachable.hpp"

#include <spillway/sdk.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <string>

namespace spillway::plugins::doorbell {

// When a wait of `timeout_ms` is over. Longer waits are cut to a day: the relay wakes up once in a
// while whatever it asked for.
inline Backoff::Clock::time_point wait_deadline(int64_t timeout_ms) {
    constexpr int64_t kLongestWaitMs = 86'400'000;
    return Backoff::Clock::now() + std::chrono::milliseconds(std::clamp<int64_t>(timeout_ms, 0, kLongestWaitMs));
}

// One connection, guarded by its own mutex, with its own reconnect backoff. Every member but
// lock() and close() expects the caller to hold lock().
template <class Connection>
class Link {
public:
    explicit Link(Outage& outage) : outage_(outage) {}

    std::unique_lock<std::mutex> lock() { return std::unique_lock(mutex_); }
    void close() {
        std::lock_guard guard(mutex_);
        conn_.reset();
    }

    Connection* operator->() const { return conn_.get(); }
    Connection& operator*() const { return *conn_; }
    explicit operator bool() const { return conn_ != nullptr; }
    void drop() { conn_.reset(); }

    // The connection did its job: an outage is over, the next failure backs off from the start.
    void worked() {
        backoff_.reset();
        outage_.ok();
    }
    // The connection cannot be used: drop it, wait before the next attempt, report the outage.
    void failed(const std::string& why) {
        conn_.reset();
        backoff_.failed();
        outage_.failed(why);
    }

    // start(): one attempt to connect, whatever the backoff. Failing is not fatal (the pipeline
    // works without its doorbell, only slower); anything but Unreachable (a configuration error)
    // is for the caller.
    template <class Open>
    void connect_now(Open open) {
        try {
            conn_ = open();
            outage_.ok();
        } catch (const Unreachable& e) {
            backoff_.failed();
            outage_.failed(e.what());
        }
    }

    // notify(): runs `use` once, failing fast with SW_RETRY and never blocking longer than one
    // connect plus one command. Without a connection it connects only when the backoff allows.
    template <class Open, class Use>
    void use_or_retry(Open open, Use use) {
        if (conn_) {
            try {
                use(*conn_);
                worked();
                return;
            } catch (const Unreachable& e) {
                // A connection that worked before may only be stale (the server restarted since):
                // a fresh one gets one try below, so the first ring after a restart is not lost.
                // Not after a timeout: a hung server would then hold the publisher twice as long.
                if (e.timed_out()) down(e);
                conn_.reset();
            } catch (const std::exception& e) {
                throw sdk::Error(SW_RETRY, failure(e));  // refused by the server: the connection is fine
            }
        } else if (!backoff_.ready()) {
            throw sdk::Error(SW_RETRY, outage_.name() + " is down (reconnecting with backoff)");
        }
        try {
            conn_ = open();
            use(*conn_);
        } catch (const Unreachable& e) {
            down(e);
        } catch (const std::exception& e) {
            throw sdk::Error(SW_RETRY, failure(e));
        }
        worked();
    }

    // wait(): returns true once a connection is usable; false when the wait is over instead
    // (interrupted, or `deadline` passed while the backoff kept it from connecting). Sleeps
    // between attempts, interruptibly: a missing doorbell costs the relay no spinning.
    template <class Open>
    bool await(Backoff::Clock::time_point deadline, const Interrupter& interrupter, Open open) {
        for (;;) {
            if (interrupter.fired()) return false;
            if (conn_ || connect(open)) return true;
            if (interrupter.sleep_until(std::min(deadline, backoff_.next()))) return false;
            if (Backoff::Clock::now() >= deadline) return false;
        }
    }

    // The message of a failed command, naming the server.
    std::string failure(const std::exception& e) const { return outage_.name() + ": " + e.what(); }

private:
    [[noreturn]] void down(const Unreachable& e) {
        failed(e.what());
        throw sdk::Error(SW_RETRY, failure(e));
    }
    template <class Open>
    bool connect(Open& open) {
        if (!backoff_.ready()) return false;
        try {
            conn_ = open();
        } catch (const Unreachable& e) {
            backoff_.failed();
            outage_.failed(e.what());
            return false;
        }
        return conn_ != nullptr;
    }

    Outage& outage_;
    std::mutex mutex_;
    std::unique_ptr<Connection> conn_;
    Backoff backoff_;
};

// What both doorbells keep next to their settings: the backend's reachability, its two links, and
// the interrupter of the wait; with the stop(), health() and interrupt() they share.
template <class Connection>
class Backend {
public:
    // `name` says which server ("redis doorbell at 127.0.0.1:6379") in every log line and error.
    Backend(sdk::Host host, std::string name) : outage(host, std::move(name)) {}

    // Drops both connections; a wait blocked on its link is released first, so the lock is free.
    void stop() {
        interrupter.fire();
        wait.close();
        notify.close();
    }
    void health(sw_health& out) const { outage.health(out); }
    // Releases a blocked wait at once (its poll watches the eventfd) and makes later waits return
    // immediately, until the next start().
    void interrupt() { interrupter.fire(); }

    Outage outage;
    Interrupter interrupter;
    Link<Connection> notify{outage};  // shared by the publisher threads
    Link<Connection> wait{outage};    // the relay's; one wait at a time
};

}  // namespace spillway::plugins::doorbell

#endif
