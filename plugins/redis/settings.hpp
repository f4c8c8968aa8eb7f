// The redis notifier's options, read once from the host's validated config.
#ifndef SPILLWAY_PLUGINS_REDIS_SETTINGS_HPP
#define SPILLWAY_PLUGINS_REDIS_SETTINGS_HPP

#include <spillway/options.hpp>

#include <cstdint>
#include <string>

namespace spillway::plugins::redis {

// Defaults, bounds and descriptions are kOptions' (the engine fills unset options from it).
struct Settings {
    std::string host;
    int port;
    std::string unix_socket;  // non-empty: used instead of host and port
    std::string username;     // ACL user; empty: the default user
    std::string password;     // empty: no AUTH
    int64_t db;
    std::string key_prefix;
    int64_t connect_timeout_ms;
    std::string fan_out;  // "one" or "all" (kOptions checks)

    // fan_out = "all": rings are PUBLISHed to every subscribed waiter instead of pushed to a list
    // that one waiter pops.
    bool fan_out_all() const { return fan_out == "all"; }

    // Throws sdk::ConfigError naming the key for values that cannot work.
    static Settings from(const sdk::Host& host);
    // "127.0.0.1:6379" or "unix:/run/redis.sock", for messages.
    std::string where() const;
};

// The option table the engine validates a [notifier.*] table against, and the reading of it.
inline const sdk::Options<Settings> kOptions{
    sdk::option<&Settings::host>("host", "127.0.0.1", "Redis host name or address"),
    sdk::option<&Settings::port>("port", "6379", "Redis TCP port").range(1, 65535),
    sdk::option<&Settings::unix_socket>("unix_socket", nullptr,
                                        "path of Redis' unix socket; when set, `host` and `port` are not used"),
    sdk::option<&Settings::username>("username", nullptr, "ACL user for `AUTH` (Redis 6+); needs `password`"),
    sdk::option<&Settings::password>("password", nullptr, "password for `AUTH`; unset: no `AUTH`").secret(),
    sdk::option<&Settings::db>("db", "0", "logical database number (`SELECT`)").at_least(0),
    sdk::option<&Settings::key_prefix>("key_prefix", "spillway:wake:",
                                       "pipeline `P` rings the list (with `fan_out = \"all\"`: the channel) `<key_prefix>P`"),
    sdk::duration<&Settings::connect_timeout_ms>(
        "connect_timeout", "200ms", "bound on connecting and on each `notify` command: a notify never blocks a publisher longer")
        .at_least(1),
    sdk::option<&Settings::fan_out>(
        "fan_out", "one",
        "which waiting relays one ring wakes: `one` (`LPUSH` to ring, `BLPOP` to wait) or `all` (`PUBLISH` to ring, a "
        "held `SUBSCRIBE` to wait), for several engines on one outbox; every engine of an outbox needs the same")
        .one_of({"one", "all"}),
};

}  // namespace spillway::plugins::redis

#endif
