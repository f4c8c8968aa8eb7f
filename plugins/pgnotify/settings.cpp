#include "settings.hpp"

namespace spillway::plugins::pgnotify {

Settings Settings::from(const sdk::Host& host) {
    // A string libpq refuses is a ConfigError naming url, so `spillway validate` refuses it too.
    Settings s{pg::Conninfo("url", host.string("url")), "", 1000, ""};
    s.where = s.conninfo.where();
    s.channel_prefix = host.opt_string("channel_prefix").value_or("spillway_wake_");
    if (s.channel_prefix.size() >= kMaxChannelBytes)
        throw sdk::ConfigError("channel_prefix", "channel_prefix is " + std::to_string(s.channel_prefix.size()) +
                                                     " bytes; channel names are at most 63, pipeline name included");
    s.connect_timeout_ms = host.opt_duration_ms("connect_timeout").value_or(1000);
    if (s.connect_timeout_ms < 1) throw sdk::ConfigError("connect_timeout", "connect_timeout must be at least 1ms");
    return s;
}

std::string Settings::channel(std::string_view pipeline) const {
    std::string name = channel_prefix + std::string(pipeline);
    if (name.empty()) throw sdk::Error(SW_INVALID_CONFIG, "pgnotify: empty channel name (empty prefix and pipeline)");
    if (name.size() > kMaxChannelBytes)
        throw sdk::Error(SW_INVALID_CONFIG, "pgnotify: channel '" + name + "' is " + std::to_string(name.size()) +
                                                " bytes; PostgreSQL allows 63: shorten channel_prefix or the "
                                                "pipeline name");
    return name;
}

}  // namespace spillway::plugins::pgnotify
