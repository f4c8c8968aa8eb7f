// One query on a plain libpq connection with a deadline: a blocking PQexec waits on a silent
// network for as long as TCP does, which a heartbeat or a guard cannot afford.
#ifndef SPILLWAY_PLUGINS_PG_COMMON_QUERY_HPP
#define SPILLWAY_PLUGINS_PG_COMMON_QUERY_HPP

#include "pg-common/conninfo.hpp"

#include <libpq-fe.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace spillway::plugins::pg {

using Result = std::unique_ptr<PGresult, decltype(&PQclear)>;

// Runs `sql` with text parameters ($1, $2, ...), waiting at most `timeout` for the answer. The
// last result, or null when the query failed or timed out; then `error` says why, on one line.
Result query(PGconn* c, const char* sql, const std::vector<std::string>& params, std::chrono::milliseconds timeout,
             std::string& error);

// The value at (row, column) of a result, "" when NULL.
inline std::string value(const Result& r, int row, int column) {
    return PQgetisnull(r.get(), row, column) ? std::string() : std::string(PQgetvalue(r.get(), row, column));
}

// A session of its own for a holder of session state (advisory locks, a member row): connected
// within `timeout`, named `application_name` (cut to PostgreSQL's 63 bytes) for pg_stat_activity,
// and with server-side TCP keepalives and a user timeout, so that the server drops the session,
// and the holds with it, within about 15 s of this host going silent (ignored on a Unix socket,
// where a dead process closes it at once). The open connection, which the caller owns (PQfinish),
// or null with `error` saying why on one line, the password redacted.
PGconn* open_dedicated_session(const Conninfo& info, const std::string& application_name,
                               std::chrono::milliseconds timeout, std::string& error);

// Whether a dedicated session is gone, found without a statement (an idle engine's guard would
// otherwise cost the database one every few seconds).
bool session_lost(PGconn* c);

}  // namespace spillway::plugins::pg

#endif
