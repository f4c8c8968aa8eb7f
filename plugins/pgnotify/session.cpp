#include "session.hpp"

#include <libpq-fe.h>
#include <poll.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace spillway::plugins::pgnotify {

namespace {

// libpq's messages span lines (a hint indented below the error); logs want one line.
std::string trimmed(const char* message) {
    std::string out;
    bool space = false;
    for (const char* c = message ? message : ""; *c; ++c) {
        if (*c == '\n' || *c == '\t' || *c == ' ') {
            space = !out.empty();
            continue;
        }
        if (space) out += ' ';
        space = false;
        out += *c;
    }
    return out.empty() ? "unknown error" : out;
}

void quiet(void*, const char*) {}  // NOTICEs (e.g. from LISTEN) would go to stderr otherwise

[[noreturn]] void connect_failed(PGconn* conn, const pg::Conninfo& conninfo) {
    const pg::ConnectFailure f = pg::failure_of(conn, conninfo);
    const std::string message =
        "cannot connect: " + f.message + (f.sqlstate.empty() ? "" : " (SQLSTATE " + f.sqlstate + ")");
    if (f.lasting()) throw Refused(message);
    throw Unreachable(message);
}

}  // namespace

std::unique_ptr<Session> Session::open(const pg::Conninfo& conninfo, Deadline deadline, int interrupt_fd) {
    PGconn* conn = pg::start_connection(conninfo, "spillway-pgnotify");
    std::unique_ptr<Session> s(new Session(conn));
    if (PQstatus(conn) == CONNECTION_BAD) connect_failed(conn, conninfo);
    // libpq's documented loop: wait for what PQconnectPoll asks for, starting with "writable".
    for (PostgresPollingStatusType st = PGRES_POLLING_WRITING;; st = PQconnectPoll(conn)) {
        if (st == PGRES_POLLING_OK) break;
        if (st == PGRES_POLLING_FAILED) connect_failed(conn, conninfo);
        s->await(st == PGRES_POLLING_READING ? POLLIN : POLLOUT, deadline, interrupt_fd, "connecting");
    }
    // Statement errors are one line for the logs, not the verbose form asked for while connecting.
    PQsetErrorVerbosity(conn, PQERRORS_DEFAULT);
    PQsetNoticeProcessor(conn, &quiet, nullptr);
    return s;
}

Session::~Session() { PQfinish(conn_); }

int Session::socket() const { return PQsocket(conn_); }

void Session::lost(const std::string& doing) const { throw Unreachable(doing + ": " + trimmed(PQerrorMessage(conn_))); }

void Session::await(short events, Deadline deadline, int interrupt_fd, const char* doing) const {
    for (;;) {
        const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) throw Unreachable(std::string(doing) + ": no answer in time", /*timed_out=*/true);
        pollfd fds[2] = {{PQsocket(conn_), events, 0}, {interrupt_fd, POLLIN, 0}};
        const int n = ::poll(fds, interrupt_fd >= 0 ? 2 : 1, static_cast<int>(left.count()));
        if (n < 0) {
            if (errno == EINTR) continue;
            throw Unreachable(std::string(doing) + ": poll: " + std::strerror(errno));
        }
        if (interrupt_fd >= 0 && fds[1].revents) throw Interrupted();
        if (fds[0].revents) return;
    }
}

void Session::exec(const std::string& sql, std::initializer_list<std::string> params, Deadline deadline,
                   int interrupt_fd) {
    std::vector<const char*> values;
    for (const auto& p : params) values.push_back(p.c_str());
    if (!PQsendQueryParams(conn_, sql.c_str(), static_cast<int>(values.size()), nullptr, values.data(), nullptr,
                           nullptr, 0))
        lost("sending the statement");
    while (PQisBusy(conn_)) {
        await(POLLIN, deadline, interrupt_fd, "waiting for the statement");
        if (!PQconsumeInput(conn_)) lost("reading the answer");
    }
    std::string error;
    while (PGresult* r = PQgetResult(conn_)) {
        const ExecStatusType st = PQresultStatus(r);
        if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && error.empty()) error = trimmed(PQresultErrorMessage(r));
        PQclear(r);
    }
    if (PQstatus(conn_) == CONNECTION_BAD) lost("running the statement");
    if (!error.empty()) throw std::runtime_error(error);
}

void Session::listen(const std::string& channel, Deadline deadline, int interrupt_fd) {
    char* quoted = PQescapeIdentifier(conn_, channel.c_str(), channel.size());
    if (!quoted) lost("quoting the channel name");
    const std::string sql = std::string("LISTEN ") + quoted;
    PQfreemem(quoted);
    exec(sql, {}, deadline, interrupt_fd);
}

void Session::drain(std::set<std::string>& rung) {
    if (!PQconsumeInput(conn_)) lost("reading notifications");
    while (PGnotify* n = PQnotifies(conn_)) {
        rung.insert(n->relname);
        PQfreemem(n);
    }
    if (PQstatus(conn_) == CONNECTION_BAD) lost("reading notifications");
}

}  // namespace spillway::plugins::pgnotify
