#include "pg-common/query.hpp"

#include <poll.h>

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
        const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) {
            error = "no answer within " + std::to_string(timeout.count()) + " ms";
            return none;
        }
        pollfd fd{PQsocket(c), POLLIN, 0};
        const int n = ::poll(&fd, 1, static_cast<int>(left.count()));
        if (n < 0 && errno != EINTR) {
            error = std::string("poll: ") + std::strerror(errno);
            return none;
        }
        if (n > 0 && !PQconsumeInput(c)) {
            error = one_line(PQerrorMessage(c));
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
    return c;
}

}  // namespace spillway::plugins::pg
