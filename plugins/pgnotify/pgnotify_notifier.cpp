// pgnotify: the doorbell over PostgreSQL LISTEN/NOTIFY.
//
//   notify(P)  SELECT pg_notify('<channel_prefix>P', '') on a connection of its own, shared by the
//              publisher threads under a mutex; bounded by connect_timeout, never retried inline.
//   wait(P)    LISTEN on a dedicated connection that only the relay thread uses, then poll() its
//              socket next to an eventfd so that interrupt() releases it at once.
//
// Applications in outbox-first mode ring the same channel from trigger.sql, which PostgreSQL
// delivers on COMMIT only: a rolled-back insert never rings.
//
// Notifications that arrive while nobody waits stay queued on the connection, so a ring before
// the wait is kept; every queued ring of a channel is taken at once, so bursts coalesce. Before
// the first wait of a channel nothing LISTENs yet and the server drops its rings: a ring through
// this same instance (the engine shares it between a pipeline's publisher and relay) is then kept
// in memory as well. A
// notification sent while the wait connection was down is lost with it: after reconnecting, each
// channel counts as rung once, so the relay looks at the store instead of trusting the silence.
//
// A url the server refuses for good at start (no such database or role, authentication failed) is
// a configuration error naming url; other failures at start are not fatal.
//
// Database down: notify returns RETRY at once (one connection attempt per backoff step); wait
// sleeps out its timeout and returns "not rung" with health DOWN. One warning per outage, one info
// line on recovery; reconnects back off from 100 ms to 2 s.
#include "doorbell-common/interrupter.hpp"
#include "doorbell-common/outage.hpp"
#include "session.hpp"
#include "settings.hpp"

#include <spillway/sdk.hpp>

#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <mutex>
#include <set>

namespace spillway::plugins::pgnotify {

using doorbell::Backoff;
using doorbell::Interrupter;
using doorbell::Outage;

// Longer waits are cut to a day: the relay wakes up once in a while whatever it asked for.
inline constexpr int64_t kLongestWaitMs = 86'400'000;

class PgNotifyNotifier final : public sdk::Notifier {
public:
    explicit PgNotifyNotifier(sdk::Host host)
        : Notifier(host), settings_(Settings::from(host)), outage_(host, "pgnotify doorbell at " + settings_.where) {}

    void start() override {
        interrupter_.clear();
        std::lock_guard lock(notify_mutex_);
        try {
            notify_conn_ = open_notifier();
            outage_.ok();
        } catch (const Refused& e) {
            // The server answered, and no retry will change its answer (no such database or role,
            // authentication failed): the url is wrong, which is for the operator to fix now.
            throw sdk::ConfigError("url", failure(e) + "; waiting will not help: check url");
        } catch (const std::exception& e) {
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

    void notify(std::string_view pipeline) override {
        const std::string channel = settings_.channel(pipeline);
        {
            std::lock_guard lock(local_mutex_);
            if (!listened_.count(channel)) local_rung_.insert(channel);
        }
        std::lock_guard lock(notify_mutex_);
        if (notify_conn_) {
            try {
                ring(channel);
                return;
            } catch (const Unreachable& e) {
                // A connection that worked before may only be stale (the server restarted since):
                // a fresh one gets one try below, so the first ring after a restart is not lost.
                // Not after a timeout: a hung server would then hold the publisher twice as long.
                notify_conn_.reset();
                if (e.timed_out()) {
                    notify_backoff_.failed();
                    outage_.failed(e.what());
                    throw sdk::Error(SW_RETRY, failure(e));
                }
            }
        } else if (!notify_backoff_.ready()) {
            throw sdk::Error(SW_RETRY,
                             "pgnotify doorbell at " + settings_.where + " is down (reconnecting with backoff)");
        }
        try {
            notify_conn_ = open_notifier();
            ring(channel);
        } catch (const Unreachable& e) {
            notify_conn_.reset();
            notify_backoff_.failed();
            outage_.failed(e.what());
            throw sdk::Error(SW_RETRY, failure(e));
        }
    }

    bool wait(std::string_view pipeline, int64_t timeout_ms) override {
        const std::string channel = settings_.channel(pipeline);
        const auto deadline = Session::Deadline::clock::now() +
                              std::chrono::milliseconds(std::clamp<int64_t>(timeout_ms, 0, kLongestWaitMs));
        std::lock_guard lock(wait_mutex_);  // one relay waits per instance; a second would queue here
        waited_.insert(channel);
        for (;;) {
            if (interrupter_.fired()) return false;
            if (!wait_conn_ && !connect_waiter()) {
                // Degraded: sleep until the deadline or the next connection attempt, interruptibly.
                if (interrupter_.sleep_until(std::min(deadline, wait_backoff_.next()))) return false;
                if (Session::Deadline::clock::now() >= deadline) return false;
                continue;
            }
            try {
                if (!listening_.count(channel)) {
                    wait_conn_->listen(channel, bound(), interrupter_.fd());
                    listening_.insert(channel);
                    std::lock_guard local(local_mutex_);
                    listened_.insert(channel);
                }
                wait_conn_->drain(rung_);
                // Only a connection that works ends an outage: a server that accepts connections
                // but refuses LISTEN must not flip between "down" and "back" at every reconnect.
                wait_backoff_.reset();
                outage_.ok();
                if (rung_.erase(channel) | take_local(channel)) return true;
                if (Session::Deadline::clock::now() >= deadline) return false;
                pollfd fds[2] = {{wait_conn_->socket(), POLLIN, 0}, {interrupter_.fd(), POLLIN, 0}};
                const auto left =
                    std::chrono::ceil<std::chrono::milliseconds>(deadline - Session::Deadline::clock::now());
                if (::poll(fds, 2, static_cast<int>(std::max<int64_t>(0, left.count()))) < 0 && errno != EINTR)
                    throw Unreachable(std::string("poll: ") + std::strerror(errno));
                // Readable, timed out or interrupted: the loop drains once more and decides.
            } catch (const Interrupted&) {
                drop_waiter();  // a LISTEN may still be running on it
                return false;
            } catch (const std::runtime_error& e) {
                // Connection lost, or LISTEN refused (e.g. on a hot standby): sleep it out.
                drop_waiter();
                wait_backoff_.failed();
                outage_.failed(e.what());
            }
        }
    }

    // Releases a blocked wait at once (its poll watches the eventfd) and makes later waits return
    // immediately, until the next start().
    void interrupt() override { interrupter_.fire(); }

private:
    Session::Deadline bound() const {
        return Session::Deadline::clock::now() + std::chrono::milliseconds(settings_.connect_timeout_ms);
    }
    std::string failure(const std::exception& e) const {
        return "pgnotify doorbell at " + settings_.where + ": " + e.what();
    }

    // pg_notify takes a transaction id, so each ring's commit would wait for a WAL flush; the ring
    // itself needs no durability (a lost commit record only loses a hint), so this session commits
    // asynchronously and a ring costs no fsync. The application's own inserts are not affected.
    std::unique_ptr<Session> open_notifier() {
        auto s = Session::open(settings_.conninfo, bound());
        try {
            s->exec("SET synchronous_commit TO off", {}, bound());
        } catch (const Unreachable&) {
            throw;
        } catch (const std::runtime_error&) {
            // Refused (e.g. a pooler that forbids SET): rings still work, each with a flush.
        }
        return s;
    }

    // Under notify_mutex_.
    void ring(const std::string& channel) {
        try {
            notify_conn_->exec("SELECT pg_notify($1, '')", {channel}, bound());
        } catch (const Unreachable&) {
            throw;
        } catch (const std::runtime_error& e) {
            throw sdk::Error(SW_RETRY, failure(e));  // refused by the server: the connection is fine
        }
        notify_backoff_.reset();
        outage_.ok();
    }

    // Under wait_mutex_. True when wait_conn_ is usable.
    bool connect_waiter() {
        if (!wait_backoff_.ready()) return false;
        try {
            wait_conn_ = Session::open(settings_.conninfo, bound(), interrupter_.fd());
        } catch (const Interrupted&) {
            return false;
        } catch (const Unreachable& e) {
            wait_backoff_.failed();
            outage_.failed(e.what());
            return false;
        }
        // Rings sent while no connection listened are gone; count every channel as rung once.
        if (connected_before_) rung_.insert(waited_.begin(), waited_.end());
        connected_before_ = true;
        return true;
    }
    // A ring this instance made before its channel was first LISTENed.
    bool take_local(const std::string& channel) {
        std::lock_guard lock(local_mutex_);
        return local_rung_.erase(channel) > 0;
    }
    void drop_waiter() {
        wait_conn_.reset();
        listening_.clear();
    }

    const Settings settings_;
    Outage outage_;
    Interrupter interrupter_;

    std::mutex notify_mutex_;
    std::unique_ptr<Session> notify_conn_;
    Backoff notify_backoff_;

    std::mutex wait_mutex_;
    std::unique_ptr<Session> wait_conn_;
    Backoff wait_backoff_;
    std::set<std::string> listening_;  // channels LISTENed on wait_conn_
    std::set<std::string> waited_;     // every channel ever waited on, re-LISTENed after a reconnect
    std::set<std::string> rung_;       // channels with a ring not yet taken by a wait
    bool connected_before_ = false;

    std::mutex local_mutex_;
    std::set<std::string> listened_;    // channels LISTENed at least once
    std::set<std::string> local_rung_;  // rings made here before their channel was LISTENed
};

}  // namespace spillway::plugins::pgnotify

SW_EXPORT_NOTIFIER(spillway::plugins::pgnotify::PgNotifyNotifier, "pgnotify", "1.0.0",
                   "PostgreSQL LISTEN/NOTIFY doorbell (with an outbox trigger for outbox-first mode)",
                   spillway::plugins::pgnotify::kOptions, SW_PLUGIN_THREAD_SAFE)
