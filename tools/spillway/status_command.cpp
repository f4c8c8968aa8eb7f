// `spillway status URL`: a compact live view of a running engine, from GET /v1/pipelines.
#include "commands.hpp"

#include "engine/http/client.hpp"
#include "engine/signals.hpp"

#include <nlohmann/json.hpp>

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <functional>
#include <iostream>
#include <sstream>

namespace spillway::cli {

namespace {

using json = nlohmann::json;

std::string num(const json& v) {
    if (v.is_null()) return "?";  // the store did not answer
    return v.dump();
}

std::string age(const json& v) {
    if (!v.is_number()) return "?";
    const int64_t ms = v.get<int64_t>();
    if (ms <= 0) return "-";
    if (ms < 1000) return std::to_string(ms) + "ms";
    if (ms < 120000) return std::to_string(ms / 1000) + "s";
    if (ms < 7200000) return std::to_string(ms / 60000) + "m";
    return std::to_string(ms / 3600000) + "h";
}

std::string text(const json& j, const char* key) {
    return j.contains(key) && j.at(key).is_string() ? j.at(key).get<std::string>() : std::string();
}

// coordination = "shards": one line per member (its shards, when its membership runs out) and the
// shards nobody owns, from GET /v1/pipelines/{name}/shards.
std::string render_shards(const std::string& name, const json& s) {
    std::ostringstream o;
    o << "\nshards of " << name << " (this engine: " << text(s, "member") << ")\n";
    for (const auto& m : s.value("members", json::array()))
        o << "  " << text(m, "member") << "  " << m.value("shards", 0) << " shards"
          << (m.value("sink_ok", true) ? "" : "  sink down") << "  membership " << age(m.at("expires_in_ms"))
          << " left\n";
    int free = 0;
    for (const auto& sh : s.value("shards", json::array()))
        if (sh.at("owner").is_null() || !sh.at("expires_in_ms").is_number() || sh.at("expires_in_ms").get<int64_t>() <= 0)
            ++free;
    if (free) o << "  " << free << " shard(s) without a live owner\n";
    if (s.contains("error")) o << "  " << text(s, "error") << "\n";
    return o.str();
}

std::string render(const json& body, const std::string& url, const std::function<json(const std::string&)>& shards) {
    std::ostringstream o;
    char when[32];
    const std::time_t now = std::time(nullptr);
    std::strftime(when, sizeof when, "%H:%M:%S", std::localtime(&now));
    o << "spillway " << url << "  " << when << "\n\n";
    char line[512];
    std::snprintf(line, sizeof line, "%-16s %-12s %-9s %-8s %8s %6s %7s %7s %9s %8s %8s %8s\n", "PIPELINE", "MODE",
                  "CIRCUIT", "KAFKA", "PENDING", "DEAD", "OLDEST", "POLL", "DIRECT", "OUTBOX", "REFUSED", "RELAYED");
    o << line;
    std::string errors;
    for (const auto& p : body.at("pipelines")) {
        const json& c = p.at("counts");
        const std::string sink = p.contains("sink") ? text(p.at("sink"), "state") : "?";
        std::snprintf(line, sizeof line, "%-16s %-12s %-9s %-8s %8s %6s %7s %7s %9s %8s %8s %8s\n",
                      text(p, "name").c_str(), text(p, "mode").c_str(), text(p, "circuit").c_str(), sink.c_str(),
                      num(p.at("pending")).c_str(), num(p.at("dead")).c_str(), age(p.at("oldest_pending_age_ms")).c_str(),
                      age(p.at("poll_interval_ms")).c_str(), num(c.at("direct")).c_str(), num(c.at("outbox")).c_str(),
                      num(c.at("refused")).c_str(), num(c.at("relayed")).c_str());
        o << line;
        if (const std::string e = text(p, "last_error"); !e.empty()) errors += "  " + text(p, "name") + ": " + e + "\n";
    }
    for (const auto& p : body.at("pipelines"))
        if (text(p, "coordination") == "shards") o << render_shards(text(p, "name"), shards(text(p, "name")));
    for (const auto& p : body.at("pipelines"))
        if (p.value("relay_paused", false))
            o << "\nrelay of " << text(p, "name") << " paused (POST /v1/pipelines/" << text(p, "name")
              << "/resume resumes it)\n";
    if (!errors.empty()) o << "\nlast errors:\n" << errors;
    return o.str();
}

}  // namespace

int status(const StatusOptions& options) {
    std::string token = options.token;
    if (token.empty())
        if (const char* t = std::getenv("SPILLWAY_HTTP_TOKEN")) token = t;
    const bool tty = ::isatty(STDOUT_FILENO) != 0;
    const auto interval = std::chrono::milliseconds(static_cast<int64_t>(std::max(options.interval_s, 0.1) * 1000));
    for (;;) {
        std::string screen;
        bool failed = false;
        try {
            const json body = json::parse(http::admin_get(options.url, "/v1/pipelines", token));
            auto shards = [&](const std::string& name) {
                try {
                    return json::parse(http::admin_get(options.url, "/v1/pipelines/" + name + "/shards", token));
                } catch (const std::exception& e) {
                    return json{{"error", e.what()}};
                }
            };
            if (options.json) {
                json out = body;
                for (auto& p : out.at("pipelines"))
                    if (text(p, "coordination") == "shards") p["shards"] = shards(text(p, "name"));
                screen = out.dump(2) + "\n";
            } else {
                screen = render(body, options.url, shards);
            }
        } catch (const std::exception& e) {  // unreachable, 401, or not our API
            screen = std::string("spillway status: ") + e.what() + "\n";
            failed = true;
        }
        if (options.once || options.json) {
            (failed ? std::cerr : std::cout) << screen;
            return failed ? kRuntimeFailure : kOk;
        }
        if (tty) std::cout << "\033[H\033[2J";  // home, clear: redraw in place
        std::cout << screen << (tty ? "" : "\n") << std::flush;
        if (wait_for_shutdown_signal(interval) != 0) return kOk;
    }
}

}  // namespace spillway::cli
