#include "settings.hpp"

namespace spillway::plugins::redis {

Settings Settings::from(const sdk::Host& host) {
    Settings s;
    s.host = host.opt_string("host").value_or("127.0.0.1");
    const int64_t port = host.opt_int("port").value_or(6379);
    if (port < 1 || port > 65535) throw sdk::ConfigError("port", "port must be between 1 and 65535");
    s.port = static_cast<int>(port);
    s.unix_socket = host.opt_string("unix_socket").value_or("");
    s.username = host.opt_string("username").value_or("");
    s.password = host.opt_string("password").value_or("");
    if (!s.username.empty() && s.password.empty())
        throw sdk::ConfigError("username", "username needs a password (AUTH takes both)");
    s.db = host.opt_int("db").value_or(0);
    if (s.db < 0) throw sdk::ConfigError("db", "db must be 0 or more");
    s.key_prefix = host.opt_string("key_prefix").value_or("spillway:wake:");
    s.connect_timeout_ms = host.opt_duration_ms("connect_timeout").value_or(200);
    if (s.connect_timeout_ms < 1) throw sdk::ConfigError("connect_timeout", "connect_timeout must be at least 1ms");
    if (s.host.empty() && s.unix_socket.empty()) throw sdk::ConfigError("host", "host is empty");
    return s;
}

std::string Settings::where() const {
    return unix_socket.empty() ? host + ":" + std::to_string(port) : "unix:" + unix_socket;
}

}  // namespace spillway::plugins::redis
