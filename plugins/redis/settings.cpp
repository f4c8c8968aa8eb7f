#include "settings.hpp"

namespace spillway::plugins::redis {

Settings Settings::from(const sdk::Host& host) {
    const Settings s = kOptions.read(host);
    if (!s.username.empty() && s.password.empty())
        throw sdk::ConfigError("username", "username needs a password (AUTH takes both)");
    if (s.host.empty() && s.unix_socket.empty()) throw sdk::ConfigError("host", "host is empty");
    return s;
}

std::string Settings::where() const {
    return unix_socket.empty() ? host + ":" + std::to_string(port) : "unix:" + unix_socket;
}

}  // namespace spillway::plugins::redis
