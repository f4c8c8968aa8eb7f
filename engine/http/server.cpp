#include "engine/http/server.hpp"

#include "engine/engine.hpp"
#include "engine/http/event_json.hpp"
#include "engine/http/store_admin.hpp"
#include "engine/observe/log.hpp"

#include <httplib.h>
#include <nlohmann/json.hpp>

#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <thread>

namespace spillway::http {

namespace {

using json = nlohmann::json;

const char* const kJson = "application/json";
constexpr size_t kKeepAliveRequests = 100000;  // requests on one connection before httplib closes it

// HELP text for the engine's own metric families (plugins' families go out without HELP).
void describe_metrics(observe::Metrics& m) {
    static const std::pair<const char*, const char*> help[] = {
        {"publish_total", "Events answered by publish, by path (direct, outbox, refused) and reason"},
        {"publish_latency_seconds", "Time from publish to durable (Kafka ack or outbox commit) or refusal"},
        {"circuit_state", "Direct-path circuit: 0 closed, 1 open, 2 half-open"},
        {"circuit_transitions_total", "Circuit state changes, by from and to"},
        {"outbox_pending", "Rows waiting in the outbox, including leased ones"},
        {"outbox_dead", "Dead letters in the outbox"},
        {"outbox_oldest_age_seconds", "Age of the oldest pending outbox row"},
        {"outbox_delay_seconds", "Time from accept to relay delivery for events that went through the outbox"},
        {"relay_published_total", "Outbox rows the relay delivered to Kafka"},
        {"relay_failures_total", "Outbox rows the relay could not deliver and will retry"},
        {"relay_claimed_ahead_total", "Batches the relay claimed while the one before was being sent (a drain)"},
        {"relay_held_back_total", "Outbox rows given back unsent because an earlier row of their key just failed"},
        {"relay_interval_seconds", "The relay's current poll interval"},
        {"relay_wakeups_total", "Relay wake-ups, by cause"},
        {"dead_letters_total", "Rows moved to the dead letters"},
        {"doorbell_failures_total", "Doorbell rings that failed (the relay's poll still finds the rows)"},
        {"http_requests_total", "HTTP requests answered, by route and status code"},
    };
    for (const auto& [name, text] : help) m.describe(name, text);
}

json nullable(int64_t v) { return v < 0 ? json() : json(v); }

const char* health_name(int32_t state) {
    switch (state) {
        case SW_HEALTH_UP: return "up";
        case SW_HEALTH_DEGRADED: return "degraded";
        case SW_HEALTH_DOWN: return "down";
        default: return "unknown";
    }
}

bool temporary(pipeline::Reason r) {
    return r == pipeline::Reason::Unavailable || r == pipeline::Reason::BacklogFull || r == pipeline::Reason::Stopping;
}

void reply(httplib::Response& res, int status, const json& body) {
    res.status = status;
    res.set_content(body.dump(-1, ' ', false, json::error_handler_t::replace) + "\n", kJson);
}

void error(httplib::Response& res, int status, const std::string& message) { reply(res, status, {{"error", message}}); }

// Compares without stopping at the first difference, so timing tells nothing about the token.
bool constant_time_equal(const std::string& a, const std::string& b) {
    if (a.size() != b.size()) return false;
    unsigned char diff = 0;
    for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
    return diff == 0;
}

}  // namespace

std::pair<std::string, int> parse_listen(const std::string& listen) {
    const auto bad = [&](const std::string& why) {
        return std::invalid_argument("http_listen \"" + listen + "\": " + why + " (expected host:port, e.g. 127.0.0.1:8080)");
    };
    const size_t colon = listen.rfind(':');
    if (colon == std::string::npos || colon == 0) throw bad("no host:port");
    std::string host = listen.substr(0, colon);
    if (host.front() == '[') {
        if (host.back() != ']') throw bad("unclosed [");
        host = host.substr(1, host.size() - 2);
    }
    const std::string port_text = listen.substr(colon + 1);
    int port = -1;
    if (!port_text.empty() && port_text.size() <= 5 && port_text.find_first_not_of("0123456789") == std::string::npos)
        port = std::stoi(port_text);
    if (port < 0 || port > 65535) throw bad("port must be 0..65535");
    if (host.empty()) throw bad("empty host");
    return {host, port};
}

struct Server::Impl {
    Engine& engine;
    std::string host;
    int requested_port = 0;
    int port = 0;
    std::string token;
    size_t max_body;
    httplib::Server server;
    std::thread thread;
    std::atomic<bool> listen_returned{false};
    std::shared_ptr<spdlog::logger> log = observe::logger("http");

    Impl(Engine& e, std::string t, size_t m) : engine(e), token(std::move(t)), max_body(m) {}

    void routes();
    json pipeline_status(pipeline::Pipeline& p);
    void publish(const httplib::Request& req, httplib::Response& res);
    void list_dead(const httplib::Request& req, httplib::Response& res);
    void replay(const httplib::Request& req, httplib::Response& res);
    void ready(httplib::Response& res);
    void metrics(httplib::Response& res);
    pipeline::Pipeline* find(const httplib::Request& req, httplib::Response& res) {
        const std::string name = req.matches[1];
        pipeline::Pipeline* p = engine.pipeline(name);
        if (!p) error(res, 404, "no pipeline named '" + name + "'");
        return p;
    }
};

json Server::Impl::pipeline_status(pipeline::Pipeline& p) {
    const pipeline::Status s = p.status();
    json j = {{"name", s.name},
              {"mode", s.mode},
              {"topic", p.spec().topic},
              {"circuit", s.circuit},
              {"store_reachable", s.pending >= 0},
              {"pending", nullable(s.pending)},
              {"leased", nullable(s.leased)},
              {"dead", nullable(s.dead)},
              {"oldest_pending_age_ms", nullable(s.oldest_pending_age_ms)},
              {"poll_interval_ms", s.poll_interval_ms},
              {"sticky_keys", s.sticky_keys},
              {"counts",
               {{"direct", s.direct}, {"outbox", s.outbox}, {"refused", s.refused}, {"relayed", s.relayed},
                {"dead_lettered", s.dead_lettered}}},
              {"last_error", s.last_error.empty() ? json() : json(s.last_error)}};
    if (plugin::Instance* sink = engine.instance(s.name, "sink")) {
        sw_health h{};
        h.struct_size = sizeof h;
        if (sink->health(h) == SW_OK) j["sink"] = {{"state", health_name(h.state)}, {"message", h.message}};
        else j["sink"] = {{"state", "unknown"}, {"message", sink->host().take_error()}};
    }
    return j;
}

void Server::Impl::publish(const httplib::Request& req, httplib::Response& res) {
    pipeline::Pipeline* p = find(req, res);
    if (!p) return;
    std::vector<pipeline::Event> events;
    try {
        events = parse_events(req.body, body_format(req.get_header_value("Content-Type")), p->spec().topic);
    } catch (const BadRequest& e) {
        return error(res, 400, e.what());
    }
    const std::vector<pipeline::Outcome> outcomes = p->publish(std::move(events));
    // 202 when every event is durable. Otherwise the per-event results say which were refused:
    // 503 (retry later) if any refusal is temporary, 422 if every refusal is permanent.
    size_t refused = 0;
    bool any_temporary = false, all_invalid = true;
    std::string body = "{\"results\":[";
    body.reserve(outcomes.size() * 72 + 64);  // an accepted event's result is about 70 bytes
    for (size_t i = 0; i < outcomes.size(); ++i) {
        const auto& o = outcomes[i];
        if (!o.accepted()) {
            ++refused;
            any_temporary = any_temporary || temporary(o.reason);
            all_invalid = all_invalid && o.reason == pipeline::Reason::Invalid;
        }
        if (i) body += ',';
        body += outcome_json(o);
    }
    body += "],\"accepted\":" + std::to_string(outcomes.size() - refused) + ",\"refused\":" + std::to_string(refused) + "}\n";
    // 400 when no event was accepted and each was refused for its own content (e.g. its topic).
    res.status = refused == 0 ? 202 : any_temporary ? 503 : all_invalid && refused == outcomes.size() ? 400 : 422;
    if (any_temporary) res.set_header("Retry-After", "1");
    res.set_content(body, kJson);
}

void Server::Impl::list_dead(const httplib::Request& req, httplib::Response& res) {
    pipeline::Pipeline* p = find(req, res);
    if (!p) return;
    int64_t after = 0;
    int64_t limit = 100;
    try {
        if (req.has_param("after")) after = std::stoll(req.get_param_value("after"));
        if (req.has_param("limit")) limit = std::stoll(req.get_param_value("limit"));
    } catch (const std::exception&) {
        return error(res, 400, "query: after and limit must be integers");
    }
    if (limit < 1 || limit > 1000) return error(res, 400, "query: limit must be 1..1000");
    plugin::Instance* store = engine.instance(p->name(), "store");
    if (!store) return error(res, 503, "pipeline '" + p->name() + "' is not running");
    try {
        const auto dead = StoreAdmin(*store).list_dead(p->name(), after, static_cast<size_t>(limit));
        std::string body = "{\"dead_letters\":[";
        for (size_t i = 0; i < dead.size(); ++i) body += (i ? "," : "") + dead_letter_json(dead[i]);
        body += "],\"next_after\":" +
                (static_cast<int64_t>(dead.size()) == limit ? std::to_string(dead.back().row_id) : std::string("null")) + "}\n";
        res.status = 200;
        res.set_content(body, kJson);
    } catch (const plugin::PluginError& e) {
        error(res, 503, e.what());
    }
}

void Server::Impl::replay(const httplib::Request& req, httplib::Response& res) {
    pipeline::Pipeline* p = find(req, res);
    if (!p) return;
    std::vector<std::string> ids;
    if (req.body.find_first_not_of(" \t\r\n") != std::string::npos) {
        const json j = json::parse(req.body, nullptr, false);
        if (j.is_discarded() || !j.is_object()) return error(res, 400, "body: expected {\"event_ids\": [...]} or an empty body for all");
        for (const auto& [name, value] : j.items())
            if (name != "event_ids") return error(res, 400, "field '" + name + "': unknown field (known: event_ids)");
        if (j.contains("event_ids")) {
            const json& list = j.at("event_ids");
            if (!list.is_array() || list.empty()) return error(res, 400, "field 'event_ids': expected a non-empty array of strings");
            for (size_t i = 0; i < list.size(); ++i) {
                if (!list[i].is_string() || list[i].get_ref<const std::string&>().empty())
                    return error(res, 400, "field 'event_ids[" + std::to_string(i) + "]': expected a non-empty string");
                ids.push_back(list[i].get<std::string>());
            }
        }
    }
    plugin::Instance* store = engine.instance(p->name(), "store");
    if (!store) return error(res, 503, "pipeline '" + p->name() + "' is not running");
    try {
        const int64_t n = StoreAdmin(*store).replay(p->name(), ids);
        if (n > 0) p->wake();
        log->info("replayed {} dead letter(s) of pipeline {}", n, p->name());
        reply(res, 200, {{"replayed", n}});
    } catch (const plugin::PluginError& e) {
        error(res, 503, e.what());
    }
}

void Server::Impl::ready(httplib::Response& res) {
    json reasons = json::array();
    for (const auto& [name, spec] : engine.prepared().config.pipelines) {
        pipeline::Pipeline* p = engine.pipeline(name);
        if (!p) reasons.push_back("pipeline '" + name + "' is not running");
        else if (p->status().pending < 0) reasons.push_back("pipeline '" + name + "': the store is unreachable");
    }
    if (reasons.empty()) reply(res, 200, {{"ready", true}});
    else reply(res, 503, {{"ready", false}, {"reasons", reasons}});
}

void Server::Impl::metrics(httplib::Response& res) {
    // The relay refreshes the backlog gauges on its own schedule; a scrape gets current numbers.
    observe::Metrics& m = engine.metrics();
    for (const auto& p : engine.pipelines()) {
        const pipeline::Status s = p->status();
        if (s.pending < 0) continue;
        const observe::Labels l{{"pipeline", s.name}};
        m.set("outbox_pending", l, static_cast<double>(s.pending));
        m.set("outbox_dead", l, static_cast<double>(s.dead));
        m.set("outbox_oldest_age_seconds", l, static_cast<double>(s.oldest_pending_age_ms) / 1000.0);
    }
    res.status = 200;
    res.set_content(m.render(), "text/plain; version=0.0.4; charset=utf-8");
}

void Server::Impl::routes() {
    const std::string name = "([^/]+)";
    server.set_payload_max_length(max_body);
    // httplib's default sets SO_REUSEPORT, which lets a second engine bind the same address and
    // silently take half the requests. SO_REUSEADDR alone still allows a quick restart.
    server.set_socket_options([](socket_t sock) {
        int yes = 1;
        ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    });

    server.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
        if (token.empty() || req.path.rfind("/v1/", 0) != 0) return httplib::Server::HandlerResponse::Unhandled;
        const std::string auth = req.get_header_value("Authorization");
        const std::string prefix = "Bearer ";
        if (auth.rfind(prefix, 0) == 0 && constant_time_equal(auth.substr(prefix.size()), token))
            return httplib::Server::HandlerResponse::Unhandled;
        res.set_header("WWW-Authenticate", "Bearer");
        error(res, 401, auth.empty() ? "missing Authorization: Bearer token" : "wrong bearer token");
        return httplib::Server::HandlerResponse::Handled;
    });

    server.Post("/v1/pipelines/" + name + "/events", [this](const auto& req, auto& res) { publish(req, res); });
    server.Get("/v1/pipelines", [this](const auto&, auto& res) {
        json list = json::array();
        for (const auto& p : engine.pipelines()) list.push_back(pipeline_status(*p));
        reply(res, 200, {{"pipelines", list}});
    });
    server.Get("/v1/pipelines/" + name, [this](const auto& req, auto& res) {
        if (pipeline::Pipeline* p = find(req, res)) reply(res, 200, pipeline_status(*p));
    });
    server.Get("/v1/pipelines/" + name + "/dead-letters", [this](const auto& req, auto& res) { list_dead(req, res); });
    server.Post("/v1/pipelines/" + name + "/dead-letters/replay", [this](const auto& req, auto& res) { replay(req, res); });
    server.Get("/metrics", [this](const auto&, auto& res) { metrics(res); });
    server.Get("/healthz", [](const auto&, auto& res) { reply(res, 200, {{"status", "ok"}}); });
    server.Get("/readyz", [this](const auto&, auto& res) { ready(res); });

    // Small JSON answers must not wait for Nagle's algorithm (a 40 ms stall per request otherwise).
    server.set_tcp_nodelay(true);
    // httplib closes a keep-alive connection after 5 requests by default: a publishing client
    // would reconnect (handshake, accept, a new worker task) every fifth batch. Idle connections
    // still close after the keep-alive timeout (5 s).
    server.set_keep_alive_max_count(kKeepAliveRequests);
    // Errors httplib answers itself (no route, body too large, ...) get a JSON body too.
    server.set_error_handler(httplib::Server::HandlerWithResponse([this](const httplib::Request& req, httplib::Response& res) {
        if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
        std::string message = "HTTP " + std::to_string(res.status);
        if (res.status == 404) message = "no route " + req.method + " " + req.path;
        if (res.status == 413) message = "request body larger than " + std::to_string(max_body) + " bytes";
        error(res, res.status, message);
        return httplib::Server::HandlerResponse::Handled;
    }));
    server.set_exception_handler([this](const httplib::Request& req, httplib::Response& res, std::exception_ptr ep) {
        std::string what = "unknown error";
        try {
            std::rethrow_exception(ep);
        } catch (const std::exception& e) {
            what = e.what();
        } catch (...) {
        }
        log->error("{} {}: {}", req.method, req.path, what);
        error(res, 500, "internal error: " + what);
    });
    // Counted before the response goes out (the logger runs after), so a client that saw the
    // answer also sees it counted.
    server.set_post_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
        // The route, not the path: pipeline names would make the label set unbounded.
        std::string route = req.path;
        if (route.rfind("/v1/pipelines/", 0) == 0) {
            route = "/v1/pipelines/{name}";
            if (req.path.find("/events") != std::string::npos) route += "/events";
            else if (req.path.find("/dead-letters/replay") != std::string::npos) route += "/dead-letters/replay";
            else if (req.path.find("/dead-letters") != std::string::npos) route += "/dead-letters";
        } else if (route != "/v1/pipelines" && route != "/metrics" && route != "/healthz" && route != "/readyz") {
            route = "other";
        }
        engine.metrics().add("http_requests_total", {{"route", route}, {"code", std::to_string(res.status)}});
    });
    server.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
        log->debug("{} {} -> {}", req.method, req.path, res.status);
    });
}

Server::Server(Engine& engine, std::string listen, std::string token, size_t max_body)
    : impl_(std::make_unique<Impl>(engine, std::move(token), max_body)) {
    auto [host, port] = parse_listen(listen);
    impl_->host = host;
    impl_->requested_port = port;
    describe_metrics(engine.metrics());
    impl_->routes();
}

Server::~Server() { stop(); }

void Server::start() {
    Impl& d = *impl_;
    if (d.thread.joinable()) return;
    if (d.requested_port == 0) {
        d.port = d.server.bind_to_any_port(d.host);
        if (d.port < 0) d.port = 0;
    } else if (d.server.bind_to_port(d.host, d.requested_port)) {
        d.port = d.requested_port;
    }
    if (d.port <= 0)
        throw std::runtime_error("http: cannot listen on " + d.host + ":" + std::to_string(d.requested_port) +
                                 " (address in use, or not an address of this host)");
    d.listen_returned = false;
    d.thread = std::thread([&d] {
        d.server.listen_after_bind();
        d.listen_returned = true;
    });
    // httplib's stop() does nothing until the accept loop runs: wait for it, or a stop() right
    // after start() would leave the thread in accept() for good.
    while (!d.server.is_running() && !d.listen_returned) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    d.log->info("HTTP listening on {}:{}{}", d.host, d.port, d.token.empty() ? "" : " (bearer token required on /v1/)");
}

void Server::stop() {
    Impl& d = *impl_;
    if (!d.thread.joinable()) return;
    d.server.stop();
    d.thread.join();
}

int Server::port() const { return impl_->port; }
const std::string& Server::host() const { return impl_->host; }

}  // namespace spillway::http
