// The pgnotify notifier's options, read once from the host's validated config.
#ifndef SPILLWAY_PLUGINS_PGNOTIFY_SETTINGS_HPP
#define SPILLWAY_PLUGINS_PGNOTIFY_SETTINGS_HPP

#include "pg-common/conninfo.hpp"

#include <spillway/options.hpp>

#include <cstdint>
#include <string>
#include <string_view>

namespace spillway::plugins::pgnotify {

// PostgreSQL truncates identifiers to NAMEDATALEN - 1 bytes; pg_notify refuses longer channels.
inline constexpr size_t kMaxChannelBytes = 63;

// The options as written. `url` stays a plain string here because only libpq may parse it and
// pg::Conninfo has no empty state for the table to fill: Settings::from parses it right after
// reading, and this struct (the only other copy of the password) dies there.
struct WrittenOptions {
    std::string url;
    std::string channel_prefix;
    int64_t connect_timeout_ms;
};

// The option table the engine validates a [notifier.*] table against, and the reading of it.
// Defaults, bounds and descriptions are written here only (the engine fills unset options).
inline const sdk::Options<WrittenOptions> kOptions{
    sdk::option<&WrittenOptions::url>(
        "url", nullptr,
        "libpq connection string of the database whose outbox rings the bell, as key=value pairs "
        "(`host=db dbname=app user=relay`) or a `postgresql://` / `postgres://` URI "
        "(`postgresql://relay:secret@db:5432/app?sslmode=require`); checked with libpq's parser, so `spillway "
        "validate` refuses a malformed one naming `url`. Connections are named `spillway-pgnotify` unless "
        "`application_name` is set. The password is never printed")
        .required()
        .secret(),
    sdk::option<&WrittenOptions::channel_prefix>(
        "channel_prefix", "spillway_wake_",
        "the doorbell of pipeline P is the NOTIFY channel <channel_prefix>P, byte for byte (case-sensitive, "
        "at most 63 bytes in all); must match the argument of the shipped trigger"),
    sdk::duration<&WrittenOptions::connect_timeout_ms>(
        "connect_timeout", "1s", "bound on connecting and on each notify statement: a notify never blocks a publisher longer")
        .at_least(1),
};

struct Settings {
    pg::Conninfo conninfo;  // the url, parsed; holds the password: redact what may quote it
    std::string channel_prefix;
    int64_t connect_timeout_ms;
    std::string where;  // "host:port/dbname" from the url, for messages (never the password)

    // Throws sdk::ConfigError naming the key for values that cannot work.
    static Settings from(const sdk::Host& host);
    // The NOTIFY channel of a pipeline; throws sdk::Error(SW_INVALID_CONFIG) when it cannot be one.
    std::string channel(std::string_view pipeline) const;
};

}  // namespace spillway::plugins::pgnotify

#endif
