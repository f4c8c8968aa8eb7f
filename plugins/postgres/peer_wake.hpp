// The members of a shards-mode pipeline wake each other: a member that hands its shards back at a
// graceful stop says so on a channel every member listens on, and the others run their heartbeat
// at once instead of at its next tick, so the shards have new owners within milliseconds rather
// than within a heartbeat (1 s by default; the graceful handoff's target is 1 s).
#ifndef SPILLWAY_PLUGINS_POSTGRES_PEER_WAKE_HPP
#define SPILLWAY_PLUGINS_POSTGRES_PEER_WAKE_HPP

#include <pg-common/conninfo.hpp>

#include <libpq-fe.h>

#include <functional>
#include <string>
#include <thread>

namespace spillway::plugins::postgres {

class PeerWake {
public:
    // `on_wake` runs on the listener's thread for every notification on `channel`.
    PeerWake(const pg::Conninfo& conninfo, std::string application_name, std::string channel,
             std::function<void()> on_wake);
    ~PeerWake();
    PeerWake(const PeerWake&) = delete;
    PeerWake& operator=(const PeerWake&) = delete;

    // Listens on a session of its own (LISTEN done before it returns, when the database answers),
    // on a thread of its own; a lost session is opened again after a second, and the reopened one
    // wakes once for what it may have missed (the heartbeat still runs meanwhile: only the wake is late).
    void start();
    void stop();
    // Tells every listener of the channel, through `session` (any open session).
    void ring(PGconn* session) const;

private:
    PGconn* listen() const;  // a new listening session, or null
    void run(PGconn* first);

    const pg::Conninfo& conninfo_;
    const std::string application_name_, channel_;
    const std::function<void()> on_wake_;
    int stop_fd_ = -1;  // an eventfd: stop() ends the listener's wait at once
    std::thread thread_;
};

}  // namespace spillway::plugins::postgres

#endif
