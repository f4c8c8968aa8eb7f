// The redis notifier's options, read once from the host's validated config.
#ifndef SPILLWAY_PLUGINS_REDIS_SETTINGS_HPP
#define SPILLWAY_PLUGINS_REDIS_SETTINGS_HPP

#include <spillway/sdk.hpp>

#include <cstdint>
#include <string>

namespace spillway::plugins::redis {

struct Settings {
    std::string host;
    int port = 6379;
    std::string unix_socket;  // non-empty: used instead of host and port
    std::string username;     // ACL user; empty: the default user
    std::string password;     // empty: no AUTH
    int64_t db = 0;
    std::string key_prefix;
    int64_t connect_timeout_ms = 200;

    // Throws sdk::ConfigError naming the key for values that cannot work.
    static Settings from(const sdk::Host& host);
    // "127.0.0.1:6379" or "unix:/run/redis.sock", for messages.
    std::string where() const;
};

// The option table the engine validates a [notifier.*] table against.
inline constexpr sw_option kOptions[] = {
    {"host", SW_OPT_STRING, 0, "127.0.0.1", "Redis host name or address"},
    {"port", SW_OPT_INT, 0, "6379", "Redis TCP port"},
    {"unix_socket", SW_OPT_STRING, 0, nullptr, "path of Redis' unix socket; when set, host and port are not used"},
    {"username", SW_OPT_STRING, 0, nullptr, "ACL user name for AUTH (Redis 6+); unset: the default user"},
    {"password", SW_OPT_STRING, SW_OPT_SECRET, nullptr, "password for AUTH; unset: no AUTH"},
    {"db", SW_OPT_INT, 0, "0", "logical database number (SELECT)"},
    {"key_prefix", SW_OPT_STRING, 0, "spillway:wake:", "the doorbell of pipeline P is the list <key_prefix>P"},
    {"connect_timeout", SW_OPT_DURATION, 0, "200ms",
     "bound on connecting and on each notify command: a notify never blocks a publisher longer"},
};

}  // namespace spillway::plugins::redis

#endif
