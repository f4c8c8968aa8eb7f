// One libpq connection whose every blocking step (connect, statement) is bounded by a deadline and
// can be cut short by an interrupt fd, so neither a publisher nor the relay hangs on a dead server.
#ifndef SPILLWAY_PLUGINS_PGNOTIFY_SESSION_HPP
#define SPILLWAY_PLUGINS_PGNOTIFY_SESSION_HPP

#include "doorbell-common/unreachable.hpp"
#include "pg-common/conninfo.hpp"

#include <chrono>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>

typedef struct pg_conn PGconn;

namespace spillway::plugins::pgnotify {

using doorbell::Unreachable;

// The server refused the connection for a reason waiting will not fix (no such database or role,
// authentication failed: ConnectFailure::lasting). Still Unreachable to callers that only back
// off and retry; start() turns it into a configuration error naming url.
class Refused : public Unreachable {
public:
    explicit Refused(const std::string& message) : Unreachable(message) {}
};

// interrupt_fd became readable while waiting. The session is unusable if a statement was running.
class Interrupted : public std::runtime_error {
public:
    Interrupted() : std::runtime_error("interrupted") {}
};

class Session {
public:
    using Deadline = std::chrono::steady_clock::time_point;

    // Connects (libpq's non-blocking connect, polled) before `deadline`. interrupt_fd < 0: none.
    // Throws Refused, Unreachable or Interrupted; messages never hold the password.
    static std::unique_ptr<Session> open(const pg::Conninfo& conninfo, Deadline deadline, int interrupt_fd = -1);
    ~Session();
    Session(const Session&) = delete;
    Session& operator=(const Session&) = delete;

    // Runs one statement with text parameters ($1...). Throws Unreachable, Interrupted, or
    // std::runtime_error with the server's message for an SQL error (the session stays usable).
    void exec(const std::string& sql, std::initializer_list<std::string> params, Deadline deadline,
              int interrupt_fd = -1);
    // LISTEN on a channel, quoted as an identifier (channel names are case-sensitive bytes).
    void listen(const std::string& channel, Deadline deadline, int interrupt_fd = -1);
    // Reads whatever has arrived, without blocking, and adds the channel of each notification to
    // `rung`. Throws Unreachable when the connection is gone.
    void drain(std::set<std::string>& rung);
    int socket() const;

private:
    explicit Session(PGconn* conn) : conn_(conn) {}
    // Waits until the socket has `events` or throws (deadline passed, interrupted, poll failed).
    void await(short events, Deadline deadline, int interrupt_fd, const char* doing) const;
    [[noreturn]] void lost(const std::string& doing) const;

    PGconn* conn_;
};

}  // namespace spillway::plugins::pgnotify

#endif
