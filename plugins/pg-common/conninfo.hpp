// A PostgreSQL connection string as libpq reads it, for the plugins that take one as `url`.
//
// Both forms libpq documents are accepted, and only libpq parses them (PQconninfoParse):
//   key=value   host=db port=5432 dbname=app user=relay password='s e c' sslmode=require
//   URI         postgresql://relay:s%20e%20c@db:5432/app?sslmode=require  (or postgres://)
// A string libpq refuses is a configuration error naming the option's key. The password never
// appears in a message: every text that may quote the string goes through redact().
#ifndef SPILLWAY_PLUGINS_PG_COMMON_CONNINFO_HPP
#define SPILLWAY_PLUGINS_PG_COMMON_CONNINFO_HPP

#include <spillway/sdk.hpp>

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

typedef struct pg_conn PGconn;

namespace spillway::plugins::pg {

class Conninfo {
public:
    // Throws sdk::ConfigError(key, ...) when libpq refuses `text` (malformed URI, unknown keyword,
    // unterminated quote, bad percent-encoding); the message says why, password redacted.
    Conninfo(std::string key, const std::string& text);

    const std::string& key() const noexcept { return key_; }
    // The parameters the string sets, in libpq's keyword order, values decoded.
    const std::vector<std::pair<std::string, std::string>>& params() const noexcept { return params_; }
    std::optional<std::string> get(std::string_view keyword) const;
    // "host:port/dbname" (libpq's defaults where unset), for messages: no user, no password.
    std::string where() const;
    // The same parameters as a postgresql:// URI with every value in the query, percent-encoded,
    // plus fallback_application_name unless the string sets one. It has no spaces, quotes or
    // bare '=' in values, so it passes unchanged through code that re-tokenises connection
    // strings (SOCI 4.0's postgresql backend splits on spaces and '=' and appends "=" to a
    // word without one, which turned "postgresql://u@h/db" into dbname "db=").
    std::string as_uri(std::string_view fallback_application_name) const;
    // `message` with the password, as written and as decoded, replaced by "***".
    std::string redact(std::string message) const;

private:
    std::string key_;
    std::vector<std::pair<std::string, std::string>> params_;
    std::vector<std::string> secrets_;  // longest first
};

// Replaces in `message` whatever in `text` reads as a password (URI user info, a password query
// parameter, a password= pair), for when `text` may not even parse.
std::string redact(std::string message, std::string_view text);

// Why a connection attempt failed.
struct ConnectFailure {
    std::string sqlstate;  // the server's error code; "" when the server never answered
    bool needs_password = false;  // the server asked for a password the string does not give
    std::string message;   // libpq's message on one line, without the code, password redacted

    // Waiting cannot fix it: the database or role does not exist, authentication failed, no
    // pg_hba.conf entry, no CONNECT privilege. Everything else (refused, timed out, the server
    // starting up or shutting down, too many connections) may pass.
    bool lasting() const;
};

// Starts a non-blocking connection (PQconnectStartParams) with exactly the parsed parameters plus
// the fallback application name, and asks for verbose errors so a failure carries its SQLSTATE.
// The caller polls it (PQconnectPoll) and owns it (PQfinish). Never null.
PGconn* start_connection(const Conninfo& info, const char* fallback_application_name);

// What went wrong on a connection started by start_connection whose poll failed.
ConnectFailure failure_of(PGconn* conn, const Conninfo& info);

// Connects, blocking at most `timeout` (as probe below): the open connection, which the caller
// owns (PQfinish), or null with `failure` filled.
PGconn* connect(const Conninfo& info, const char* fallback_application_name, std::chrono::milliseconds timeout,
                ConnectFailure& failure);

// Connects once and disconnects: nullopt when it worked. Blocks at most `timeout`; zero means the
// string's own connect_timeout per host (libpq's rule, at least 2 s) or, without one, as long as
// the network takes, as a plain PQconnectdb would.
std::optional<ConnectFailure> probe(const Conninfo& info, const char* fallback_application_name,
                                    std::chrono::milliseconds timeout = std::chrono::milliseconds(0));

}  // namespace spillway::plugins::pg

#endif
