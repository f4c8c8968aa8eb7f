#include "settings.hpp"

namespace spillway::plugins::pgnotify {

Settings Settings::from(const sdk::Host& host) {
    const WrittenOptions written = kOptions.read(host);
    // An absent url reads as "", which libpq would take as "every default". The engine refuses a
    // config without it (the row says required); kOptions.read does not check that, and not every
    // host does (the testkit's hands the plugin what the test wrote).
    if (!host.opt_string("url")) throw sdk::ConfigError("url", "missing required option 'url'");
    // A string libpq refuses is a ConfigError naming url, so `spillway validate` refuses it too.
    Settings s{pg::Conninfo("url", written.url), written.channel_prefix, written.connect_timeout_ms, ""};
    s.where = s.conninfo.where();
    if (s.channel_prefix.size() >= kMaxChannelBytes)
        throw sdk::ConfigError("channel_prefix", "channel_prefix is " + std::to_string(s.channel_prefix.size()) +
                                                     " bytes; channel names are at most 63, pipeline name included");
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
