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
#include "doorbell-common/link.hpp"
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

class PgNotifyNotifier final : public sdk::Notifier {
public:
    explicit PgNotifyNotifier(sdk::Host host)
        : Notifier(host), settings_(Settings::from(host)), backend_(host, "pgnotify doorbell at " + settings_.where) {}

    void start() override {
        backend_.interrupter.clear();
        auto lock = backend_.notify.lock();
        backend_.notify.connect_now([&] {
            try {
                return open_notifier();
            } catch (const Refused& e) {
                // The server answered, and no retry will change its answer (no such database or
                // role, authentication failed): the url is wrong, which is for the operator to fix now.
                throw sdk::ConfigError("url", backend_.notify.failure(e) + "; waiting will not help: check url");
            }
        });
    }

    void stop(int64_t) override { backend_.stop(); }
    void health(sw_health& out) override { backend_.health(out); }

    void notify(std::string_view pipeline) override {
        const std::string channel = settings_.channel(pipeline);
        {
            std::lock_guard lock(local_mutex_);
            if (!listened_.count(channel)) local_rung_.insert(channel);
        }
        auto lock = backend_.notify.lock();
        backend_.notify.use_or_retry([&] { return open_notifier(); }, [&](Session& session) {
            session.exec("SELECT pg_notify($1, '')", {channel}, bound());
        });
    }

    bool wait(std::string_view pipeline, int64_t timeout_ms) override {
        const std::string channel = settings_.channel(pipeline);
        const auto deadline = doorbell::wait_deadline(timeout_ms);
        auto& link = backend_.wait;
        auto lock = link.lock();  // one relay waits per instance; a second would queue here
        waited_.insert(channel);
        for (;;) {
            if (!link.await(deadline, backend_.interrupter, [&] { return open_waiter(); })) return false;
            try {
                if (!listening_.count(channel)) {
                    link->listen(channel, bound(), backend_.interrupter.fd());
                    listening_.insert(channel);
                    std::lock_guard local(local_mutex_);
                    listened_.insert(channel);
                }
                link->drain(rung_);
                // Only a connection that works ends an outage: a server that accepts connections
                // but refuses LISTEN must not flip between "down" and "back" at every reconnect.
                link.worked();
                if (rung_.erase(channel) | take_local(channel)) return true;
                if (Session::Deadline::clock::now() >= deadline) return false;
                pollfd fds[2] = {{link->socket(), POLLIN, 0}, {backend_.interrupter.fd(), POLLIN, 0}};
                const auto left =
                    std::chrono::ceil<std::chrono::milliseconds>(deadline - Session::Deadline::clock::now());
                if (::poll(fds, 2, static_cast<int>(std::max<int64_t>(0, left.count()))) < 0 && errno != EINTR)
                    throw Unreachable(std::string("poll: ") + std::strerror(errno));
                // Readable, timed out or interrupted: the loop drains once more and decides.
            } catch (const Interrupted&) {
                link.drop();  // a LISTEN may still be running on it
                listening_.clear();
                return false;
            } catch (const std::runtime_error& e) {
                // Connection lost, or LISTEN refused (e.g. on a hot standby): sleep it out.
                link.failed(e.what());
                listening_.clear();
            }
        }
    }

    void interrupt() override { backend_.interrupt(); }

private:
    Session::Deadline bound() const {
        return Session::Deadline::clock::now() + std::chrono::milliseconds(settings_.connect_timeout_ms);
    }

    // pg_notify takes a transaction id, so each ring's commit would wait for a WAL flush; the ring
    // itself needs no durability (a lost commit record only loses a hint), so this session commits
    // asynchronously and a ring costs no fsync. The application's own inserts are not affected.
    std::unique_ptr<Session> open_notifier() const {
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

    // Under the wait link's lock. nullptr when interrupted while connecting.
    std::unique_ptr<Session> open_waiter() {
        std::unique_ptr<Session> s;
        try {
            s = Session::open(settings_.conninfo, bound(), backend_.interrupter.fd());
        } catch (const Interrupted&) {
            return nullptr;
        }
        // Rings sent while no connection listened are gone; count every channel as rung once.
        if (connected_before_) rung_.insert(waited_.begin(), waited_.end());
        connected_before_ = true;
        return s;
    }
    // A ring this instance made before its channel was first LISTENed.
    bool take_local(const std::string& channel) {
        std::lock_guard lock(local_mutex_);
        return local_rung_.erase(channel) > 0;
    }

    const Settings settings_;
    doorbell::Backend<Session> backend_;

    // Under the wait link's lock.
    std::set<std::string> listening_;  // channels LISTENed on the wait connection
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
