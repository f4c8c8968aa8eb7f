// The pgnotify notifier's options, read once from the host's validated config.
#ifndef SPILLWAY_PLUGINS_PGNOTIFY_SETTINGS_HPP
#define SPILLWAY_PLUGINS_PGNOTIFY_SETTINGS_HPP

#include "pg-common/conninfo.hpp"

#include <spillway/sdk.hpp>

#include <cstdint>
#include <string>
#include <string_view>

namespace spillway::plugins::pgnotify {

// PostgreSQL truncates identifiers to NAMEDATALEN - 1 bytes; pg_notify refuses longer channels.
inline constexpr size_t kMaxChannelBytes = 63;

inline constexpr sw_option kOptions[] = {
    {"url", SW_OPT_STRING, SW_OPT_REQUIRED | SW_OPT_SECRET, nullptr,
     "libpq connection string (key=value pairs) or postgresql:// URI of the database whose outbox rings "
     "the bell; checked with libpq's parser"},
    {"channel_prefix", SW_OPT_STRING, 0, "spillway_wake_",
     "the doorbell of pipeline P is the NOTIFY channel <channel_prefix>P, byte for byte (case-sensitive, "
     "at most 63 bytes in all); must match the argument of the shipped trigger"},
    {"connect_timeout", SW_OPT_DURATION, 0, "1s",
     "bound on connecting and on each notify statement: a notify never blocks a publisher longer"},
};

struct Settings {
    pg::Conninfo conninfo;  // the url, parsed; holds the password: redact what may quote it
    std::string channel_prefix;
    int64_t connect_timeout_ms = 1000;
    std::string where;  // "host:port/dbname" from the url, for messages (never the password)

    // Throws sdk::ConfigError naming the key for values that cannot work.
    static Settings from(const sdk::Host& host);
    // The NOTIFY channel of a pipeline; throws sdk::Error(SW_INVALID_CONFIG) when it cannot be one.
    std::string channel(std::string_view pipeline) const;
};

}  // namespace spillway::plugins::pgnotify

#endif
