#include "pg-common/conninfo.hpp"

#include <libpq-fe.h>
#include <poll.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <memory>
#include <new>

namespace spillway::plugins::pg {

namespace {

// libpq's messages span lines (a detail or hint indented below the error); ours are one line.
std::string one_line(std::string_view text) {
    std::string out;
    bool space = false;
    for (const char c : text) {
        if (c == '\n' || c == '\t' || c == '\r' || c == ' ') {
            space = !out.empty();
            continue;
        }
        if (space) out += ' ';
        space = false;
        out += c;
    }
    return out;
}

int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// Tolerant: a '%' not followed by two hex digits stays as it is (this only feeds redaction).
std::string percent_decoded(std::string_view s) {
    std::string out;
    for (size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '%' && i + 2 < s.size() && hex_digit(s[i + 1]) >= 0 && hex_digit(s[i + 2]) >= 0) {
            out += static_cast<char>(hex_digit(s[i + 1]) * 16 + hex_digit(s[i + 2]));
            i += 2;
        } else {
            out += s[i];
        }
    }
    return out;
}

std::string percent_encoded(std::string_view s) {
    static const char kHex[] = "0123456789ABCDEF";
    std::string out;
    for (const char c : s) {
        const auto u = static_cast<unsigned char>(c);
        if (std::isalnum(u) || c == '-' || c == '.' || c == '_' || c == '~') {
            out += c;
        } else {
            out += '%';
            out += kHex[u >> 4];
            out += kHex[u & 0xF];
        }
    }
    return out;
}

void add_secret(std::vector<std::string>& secrets, std::string s) {
    if (!s.empty() && std::find(secrets.begin(), secrets.end(), s) == secrets.end()) secrets.push_back(std::move(s));
}

// Every spelling of a password `text` may hold, found without libpq (the text may not parse):
// the URI's user info after ':', a password query parameter, a password = value pair (quoted or
// not). Generous on purpose: hiding a little too much beats printing a secret.
std::vector<std::string> secrets_in(std::string_view text) {
    std::vector<std::string> secrets;
    for (const std::string_view scheme : {"postgresql://", "postgres://"}) {
        if (text.substr(0, scheme.size()) != scheme) continue;
        const std::string_view rest = text.substr(scheme.size());
        const size_t query = rest.find('?');
        const size_t at = rest.substr(0, query).rfind('@');
        if (at != std::string_view::npos) {
            const std::string_view userinfo = rest.substr(0, at);
            if (const size_t colon = userinfo.find(':'); colon != std::string_view::npos) {
                add_secret(secrets, std::string(userinfo.substr(colon + 1)));
                add_secret(secrets, percent_decoded(userinfo.substr(colon + 1)));
            }
        }
    }
    // password=... in a URI query or a key=value string, with optional spaces around '=' (the
    // latter allows them).
    for (size_t pos = text.find("password"); pos != std::string_view::npos; pos = text.find("password", pos + 1)) {
        size_t i = pos + std::strlen("password");
        while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
        if (i >= text.size() || text[i] != '=') continue;
        ++i;
        while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
        if (i < text.size() && text[i] == '\'') {
            std::string unquoted;
            size_t j = i + 1;
            for (; j < text.size() && text[j] != '\''; ++j) {
                if (text[j] == '\\' && j + 1 < text.size()) ++j;
                unquoted += text[j];
            }
            add_secret(secrets, std::string(text.substr(i, j + 1 - i)));
            add_secret(secrets, std::string(text.substr(i + 1, j - i - 1)));
            add_secret(secrets, unquoted);
        } else {
            size_t j = i;
            while (j < text.size() && text[j] != '&' && !std::isspace(static_cast<unsigned char>(text[j]))) ++j;
            add_secret(secrets, std::string(text.substr(i, j - i)));
            add_secret(secrets, percent_decoded(text.substr(i, j - i)));
        }
    }
    return secrets;
}

std::string replaced(std::string message, std::vector<std::string> secrets) {
    // Longest first, so a secret that contains another is hidden whole.
    std::sort(secrets.begin(), secrets.end(), [](const auto& a, const auto& b) { return a.size() > b.size(); });
    for (const auto& s : secrets) {
        if (s.empty()) continue;
        for (size_t pos = message.find(s); pos != std::string::npos; pos = message.find(s, pos + 3))
            message.replace(pos, s.size(), "***");
    }
    return message;
}

bool all_digits(std::string_view s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// Values libpq checks only when it connects, checked here so that `spillway validate` and start
// refuse them as the configuration error they are, not as a server to wait for.
void check_values(const std::string& key, const std::vector<std::pair<std::string, std::string>>& params) {
    auto one_of = [](std::string_view v, std::initializer_list<std::string_view> allowed) {
        return std::find(allowed.begin(), allowed.end(), v) != allowed.end();
    };
    for (const auto& [k, v] : params) {
        bool ok = true;
        std::string expected;
        if (k == "port") {
            // One per host, comma-separated; an empty one means the default.
            size_t start = 0;
            for (;;) {
                const size_t comma = v.find(',', start);
                const std::string_view one = std::string_view(v).substr(start, comma - start);
                if (!one.empty() && (!all_digits(one) || one.size() > 5 || std::stoi(std::string(one)) > 65535 ||
                                     std::stoi(std::string(one)) < 1))
                    ok = false;
                if (comma == std::string::npos) break;
                start = comma + 1;
            }
            expected = "a port number 1..65535 (one per host, comma-separated)";
        } else if (k == "connect_timeout" || k == "keepalives" || k == "keepalives_idle" ||
                   k == "keepalives_interval" || k == "keepalives_count" || k == "tcp_user_timeout") {
            ok = all_digits(v) || (v.size() > 1 && v[0] == '-' && all_digits(v.substr(1)));
            expected = "an integer";
        } else if (k == "sslmode") {
            ok = one_of(v, {"disable", "allow", "prefer", "require", "verify-ca", "verify-full"});
            expected = "disable, allow, prefer, require, verify-ca or verify-full";
        } else if (k == "gssencmode") {
            ok = one_of(v, {"disable", "prefer", "require"});
            expected = "disable, prefer or require";
        } else if (k == "channel_binding") {
            ok = one_of(v, {"disable", "prefer", "require"});
            expected = "disable, prefer or require";
        } else if (k == "target_session_attrs") {
            ok = one_of(v, {"any", "read-write", "read-only", "primary", "standby", "prefer-standby"});
            expected = "any, read-write, read-only, primary, standby or prefer-standby";
        }
        if (!ok)
            throw sdk::ConfigError(key, key + ": connection parameter " + k + " = \"" + v + "\" is not " + expected);
    }
}

}  // namespace

Conninfo::Conninfo(std::string key, const std::string& text) : key_(std::move(key)), secrets_(secrets_in(text)) {
    if (text.empty())
        throw sdk::ConfigError(key_, key_ + " is empty: give a libpq connection string (\"host=db dbname=app "
                                            "user=relay\") or URI (postgresql://relay@db/app)");
    char* error = nullptr;
    PQconninfoOption* options = PQconninfoParse(text.c_str(), &error);
    if (!options) {
        std::string why = error ? one_line(error) : "out of memory";
        PQfreemem(error);
        throw sdk::ConfigError(key_, redact(key_ + " is not a libpq connection string or URI: " + why));
    }
    std::unique_ptr<PQconninfoOption, decltype(&PQconninfoFree)> guard(options, &PQconninfoFree);
    for (const PQconninfoOption* o = options; o->keyword; ++o)
        if (o->val) params_.emplace_back(o->keyword, o->val);
    if (auto password = get("password")) add_secret(secrets_, *password);
    check_values(key_, params_);
}

std::optional<std::string> Conninfo::get(std::string_view keyword) const {
    for (const auto& [k, v] : params_)
        if (k == keyword) return v;
    return std::nullopt;
}

std::string Conninfo::where() const {
    std::string host = get("host").value_or("");
    if (host.empty()) host = get("hostaddr").value_or("");
    if (host.empty()) host = "localhost";
    std::string port = get("port").value_or("");
    if (port.empty()) port = "5432";
    const std::string db = get("dbname").value_or("");
    return host + ":" + port + (db.empty() ? "" : "/" + db);
}

std::string Conninfo::as_uri(std::string_view fallback_application_name) const {
    std::string uri = "postgresql://?";
    bool first = true;
    for (const auto& [k, v] : params_) {
        uri += (first ? "" : "&") + k + "=" + percent_encoded(v);
        first = false;
    }
    // Always at least one '=' in the string: the rewriting described in the header appends one to
    // a string without any.
    if (!get("fallback_application_name"))
        uri += (first ? "" : "&") + std::string("fallback_application_name=") + percent_encoded(fallback_application_name);
    return uri;
}

std::string Conninfo::redact(std::string message) const { return replaced(std::move(message), secrets_); }

std::string redact(std::string message, std::string_view text) {
    return replaced(std::move(message), secrets_in(text));
}

bool ConnectFailure::lasting() const {
    // 3D000 no such database; 28000 no such role, or pg_hba.conf rejects; 28P01 wrong password;
    // 42501 no CONNECT privilege on the database.
    static constexpr std::array<std::string_view, 4> kLasting = {"3D000", "28000", "28P01", "42501"};
    return needs_password || std::find(kLasting.begin(), kLasting.end(), sqlstate) != kLasting.end();
}

PGconn* start_connection(const Conninfo& info, const char* fallback_application_name) {
    std::vector<const char*> keys, values;
    for (const auto& [k, v] : info.params()) {
        keys.push_back(k.c_str());
        values.push_back(v.c_str());
    }
    if (!info.get("fallback_application_name")) {
        keys.push_back("fallback_application_name");
        values.push_back(fallback_application_name);
    }
    keys.push_back(nullptr);
    values.push_back(nullptr);
    // expand_dbname = 0: the values are final (a dbname is a name, not another connection string),
    // as they are for the SOCI sessions opened from as_uri().
    PGconn* conn = PQconnectStartParams(keys.data(), values.data(), 0);
    if (!conn) throw std::bad_alloc();
    // Verbose errors carry the server's SQLSTATE ("FATAL:  3D000: ..."), which is how a failure is
    // classified without reading its (possibly translated) words.
    PQsetErrorVerbosity(conn, PQERRORS_VERBOSE);
    return conn;
}

ConnectFailure failure_of(PGconn* conn, const Conninfo& info) {
    ConnectFailure f;
    f.needs_password = PQconnectionNeedsPassword(conn) != 0;
    const std::string raw = PQerrorMessage(conn);
    std::string kept;
    size_t start = 0;
    while (start < raw.size()) {
        size_t end = raw.find('\n', start);
        if (end == std::string::npos) end = raw.size();
        std::string line = raw.substr(start, end - start);
        start = end + 1;
        if (line.rfind("LOCATION:", 0) == 0) continue;  // the server's source file and line
        // "<severity>:  <SQLSTATE>: <message>": the severity may be translated, the code is not.
        for (size_t at = line.find(":  "); at != std::string::npos; at = line.find(":  ", at + 1)) {
            const size_t code = at + 3;
            if (code + 6 > line.size() || line[code + 5] != ':') continue;
            const std::string candidate = line.substr(code, 5);
            if (!std::all_of(candidate.begin(), candidate.end(),
                             [](char c) { return std::isdigit(static_cast<unsigned char>(c)) || std::isupper(static_cast<unsigned char>(c)); }))
                continue;
            if (f.sqlstate.empty()) f.sqlstate = candidate;
            line.erase(code, 7);  // "XXXXX: "
            break;
        }
        kept += line + "\n";
    }
    f.message = info.redact(one_line(kept));
    if (f.message.empty()) f.message = "connection failed";
    return f;
}

PGconn* connect(const Conninfo& info, const char* fallback_application_name, std::chrono::milliseconds timeout,
                ConnectFailure& failure) {
    using Clock = std::chrono::steady_clock;
    std::unique_ptr<PGconn, decltype(&PQfinish)> conn(start_connection(info, fallback_application_name), &PQfinish);
    std::optional<Clock::time_point> deadline;
    if (timeout.count() > 0) {
        deadline = Clock::now() + timeout;
    } else if (auto t = info.get("connect_timeout"); t && all_digits(*t) && t->size() < 7 && std::stoi(*t) > 0) {
        // libpq's rule: at least 2 s per host tried.
        const std::string hosts = info.get("host").value_or(info.get("hostaddr").value_or(""));
        const auto per_host = std::chrono::seconds(std::max(2, std::stoi(*t)));
        deadline = Clock::now() + per_host * (1 + std::count(hosts.begin(), hosts.end(), ','));
    }
    auto failed = [&](ConnectFailure f) -> PGconn* {
        failure = std::move(f);
        return nullptr;
    };
    if (PQstatus(conn.get()) == CONNECTION_BAD) return failed(failure_of(conn.get(), info));
    for (PostgresPollingStatusType st = PGRES_POLLING_WRITING;; st = PQconnectPoll(conn.get())) {
        if (st == PGRES_POLLING_OK) return conn.release();
        if (st == PGRES_POLLING_FAILED) return failed(failure_of(conn.get(), info));
        for (;;) {
            int wait_ms = -1;
            if (deadline) {
                const auto left = std::chrono::ceil<std::chrono::milliseconds>(*deadline - Clock::now());
                if (left.count() <= 0) return failed(ConnectFailure{"", false, "no answer from " + info.where() + " in time"});
                wait_ms = static_cast<int>(std::min<int64_t>(left.count(), 1'000'000'000));
            }
            pollfd fd{PQsocket(conn.get()), static_cast<short>(st == PGRES_POLLING_READING ? POLLIN : POLLOUT), 0};
            const int n = ::poll(&fd, 1, wait_ms);
            if (n > 0) break;
            if (n < 0 && errno != EINTR) return failed(ConnectFailure{"", false, std::string("poll: ") + std::strerror(errno)});
        }
    }
}

std::optional<ConnectFailure> probe(const Conninfo& info, const char* fallback_application_name,
                                    std::chrono::milliseconds timeout) {
    ConnectFailure failure;
    PGconn* conn = connect(info, fallback_application_name, timeout, failure);
    if (!conn) return failure;
    PQfinish(conn);
    return std::nullopt;
}

}  // namespace spillway::plugins::pg
