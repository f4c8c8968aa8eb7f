#include "pg-common/query.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace spillway::plugins::pg {

namespace {
std::string one_line(std::string s) {
    std::replace(s.begin(), s.end(), '\n', ' ');
    while (!s.empty() && s.back() == ' ') s.pop_back();
    return s;
}
// A session left in the middle of a command cannot take the next one ("another command is
// already in progress", for ever): it is ended here, the server rolls back what the command had
// begun, and the holder sees a broken connection (PQstatus) and opens a new one.
void abandon(PGconn* c) {
    if (PQstatus(c) == CONNECTION_OK && PQsocket(c) >= 0) ::shutdown(PQsocket(c), SHUT_RDWR);
    PQconsumeInput(c);
    while (PGresult* r = PQgetResult(c)) PQclear(r);
}
}  // namespace

Result query(PGconn* c, const char* sql, const std::vector<std::string>& params, std::chrono::milliseconds timeout,
             std::string& error) {
    std::vector<const char*> values;
    for (const auto& p : params) values.push_back(p.c_str());
    Result none(nullptr, &PQclear);
    if (!c) {
        error = "not connected";
        return none;
    }
    if (!PQsendQueryParams(c, sql, static_cast<int>(values.size()), nullptr, values.data(), nullptr, nullptr, 0)) {
        error = one_line(PQerrorMessage(c));
        return none;
    }
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (PQisBusy(c)) {
        // Looked at once more after the deadline: a process stopped (SIGSTOP) past it finds the
        // answer waiting when it runs again, and that is no timeout.
        const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        pollfd fd{PQsocket(c), POLLIN, 0};
        const int n = ::poll(&fd, 1, static_cast<int>(std::max<int64_t>(left.count(), 0)));
        if (n < 0 && errno != EINTR) {
            error = std::string("poll: ") + std::strerror(errno);
            abandon(c);
            return none;
        }
        if (n > 0 && !PQconsumeInput(c)) {
            error = one_line(PQerrorMessage(c));
            abandon(c);
            return none;
        }
        if (n == 0 && left.count() <= 0 && PQisBusy(c)) {
            error = "no answer within " + std::to_string(timeout.count()) + " ms";
            abandon(c);
            return none;
        }
    }
    Result last(nullptr, &PQclear);
    bool failed = false;
    while (PGresult* r = PQgetResult(c)) {
        const auto st = PQresultStatus(r);
        if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK && !failed) {
            failed = true;
            error = one_line(PQresultErrorMessage(r));
        }
        last.reset(r);
    }
    if (failed || !last) {
        if (!failed) error = one_line(PQerrorMessage(c));
        return none;
    }
    return last;
}

PGconn* open_dedicated_session(const Conninfo& info, const std::string& application_name,
                               std::chrono::milliseconds timeout, std::string& error) {
    ConnectFailure failure;
    PGconn* c = connect(info, "spillway-postgres", timeout, failure);
    if (!c) {
        error = "cannot connect to " + info.where() + ": " + failure.message;
        return nullptr;
    }
    if (!query(c,
               "SELECT set_config('application_name', $1, false), set_config('tcp_keepalives_idle', '5', false), "
               "set_config('tcp_keepalives_interval', '2', false), set_config('tcp_keepalives_count', '3', false), "
               "set_config('tcp_user_timeout', '10000', false)",
               {application_name.substr(0, 63)}, timeout, error)) {
        error = info.redact("preparing a session on " + info.where() + ": " + error);
        PQfinish(c);
        return nullptr;
    }
    // The same on this side: a server that went silent (a partition, a host lost) turns into a
    // socket error here within about 15 s, which a holder sees without sending anything
    // (session_lost). Not possible on a Unix socket, where there is nothing to probe.
    const int fd = PQsocket(c);
    const int on = 1, idle = 5, interval = 2, count = 3;
    const unsigned user_timeout_ms = 10000;
    if (fd >= 0 && setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on) == 0) {
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof interval);
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof count);
        setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout_ms, sizeof user_timeout_ms);
    }
    return c;
}

// Reads what the server sent without sending anything: a terminated backend's last message and
// its closed socket, or the keepalives' verdict, show here as a broken connection.
bool session_lost(PGconn* c) {
    return !c || PQstatus(c) != CONNECTION_OK || !PQconsumeInput(c) || PQstatus(c) != CONNECTION_OK;
}

}  // namespace spillway::plugins::pg
