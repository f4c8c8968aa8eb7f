// One query on a plain libpq connection with a deadline: a blocking PQexec waits on a silent
// network for as long as TCP does, which a heartbeat or a guard cannot afford.
#ifndef SPILLWAY_PLUGINS_PG_COMMON_QUERY_HPP
#define SPILLWAY_PLUGINS_PG_COMMON_QUERY_HPP

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

}  // namespace spillway::plugins::pg

#endif
