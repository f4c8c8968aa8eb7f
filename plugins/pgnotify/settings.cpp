#include "settings.hpp"

#include <libpq-fe.h>

#include <memory>

namespace spillway::plugins::pgnotify {

namespace {

// Checks the connection string with libpq's own parser and names the server it points at.
std::string describe(const std::string& url) {
    char* error = nullptr;
    PQconninfoOption* options = PQconninfoParse(url.c_str(), &error);
    if (!options) {
        std::string why = error ? error : "out of memory";
        PQfreemem(error);
        while (!why.empty() && (why.back() == '\n' || why.back() == ' ')) why.pop_back();
        throw sdk::ConfigError("url", "url is not a libpq connection string: " + why);
    }
    std::unique_ptr<PQconninfoOption, decltype(&PQconninfoFree)> guard(options, &PQconninfoFree);
    std::string host = "localhost", port = "5432", db;
    for (PQconninfoOption* o = options; o->keyword; ++o) {
        if (!o->val || !*o->val) continue;
        const std::string_view k = o->keyword;
        if (k == "host" || (k == "hostaddr" && host == "localhost")) host = o->val;
        else if (k == "port") port = o->val;
        else if (k == "dbname") db = o->val;
    }
    return host + ":" + port + (db.empty() ? "" : "/" + db);
}

}  // namespace

Settings Settings::from(const sdk::Host& host) {
    Settings s;
    s.url = host.string("url");
    s.where = describe(s.url);
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
