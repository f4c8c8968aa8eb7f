#include "engine/http/routes.hpp"

#include "engine/engine.hpp"
#include "engine/http/event_json.hpp"
#include "engine/plugin/store_admin.hpp"
#include "engine/observe/log.hpp"
#include "engine/pipeline/trace_context.hpp"

#include <nlohmann/json.hpp>

#include <charconv>

namespace spillway::http {

namespace {

using json = nlohmann::json;

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

Response reply(int status, const json& body) {
    Response r;
    r.status = status;
    r.body = body.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
    return r;
}

std::string percent_decode(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (size_t i = 0; i < s.size(); ++i) {
        unsigned v = 0;
        if (s[i] == '%' && i + 2 < s.size() &&
            std::from_chars(s.data() + i + 1, s.data() + i + 3, v, 16).ptr == s.data() + i + 3) {
            out += static_cast<char>(v);
            i += 2;
        } else {
            out += s[i];
        }
    }
    return out;
}

// The value of `name` in a query string ("after=5&limit=10"), percent-decoded; nullopt when absent.
std::optional<std::string> query_param(std::string_view query, std::string_view name) {
    while (!query.empty()) {
        const size_t amp = query.find('&');
        const std::string_view pair = query.substr(0, amp);
        const size_t eq = pair.find('=');
        if (pair.substr(0, eq) == name) return percent_decode(eq == std::string_view::npos ? "" : pair.substr(eq + 1));
        if (amp == std::string_view::npos) break;
        query.remove_prefix(amp + 1);
    }
    return std::nullopt;
}

std::optional<int64_t> to_int(const std::string& s) {
    int64_t v = 0;
    const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || ptr != s.data() + s.size() || s.empty()) return std::nullopt;
    return v;
}

json pipeline_status(Engine& engine, pipeline::Pipeline& p) {
    const pipeline::Status s = p.status();
    json j = {{"name", s.name},
              {"mode", s.mode},
              {"coordination", p.spec().coordination == config::Coordination::Shards ? "shards" : "single"},
              {"topic", p.spec().topic},
              {"circuit", s.circuit},
              {"store_reachable", s.pending >= 0},
              {"pending", nullable(s.pending)},
              {"leased", nullable(s.leased)},
              {"dead", nullable(s.dead)},
              {"oldest_pending_age_ms", nullable(s.oldest_pending_age_ms)},
              {"poll_interval_ms", s.poll_interval_ms},
              {"sticky_keys", s.sticky_keys},
              {"relay_paused", s.paused},
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

}  // namespace

Response error_response(int status, const std::string& message) { return reply(status, {{"error", message}}); }

RouteMatch match_route(std::string_view method, std::string_view path) {
    RouteMatch m;
    auto want = [&](const char* verb, Route r) {
        if (method == verb) m.route = r;
        else m.route = Route::WrongMethod, m.allow = verb;
        return m;
    };
    if (path == "/healthz") return want("GET", Route::Healthz);
    if (path == "/readyz") return want("GET", Route::Readyz);
    if (path == "/metrics") return want("GET", Route::Metrics);
    if (path == "/v1/pipelines") return want("GET", Route::List);
    constexpr std::string_view prefix = "/v1/pipelines/";
    if (path.substr(0, prefix.size()) != prefix) return m;
    std::string_view rest = path.substr(prefix.size());
    const size_t slash = rest.find('/');
    const std::string_view name = rest.substr(0, slash);
    if (name.empty()) return m;
    m.pipeline = percent_decode(name);
    const std::string_view tail = slash == std::string_view::npos ? "" : rest.substr(slash);
    if (tail.empty()) return want("GET", Route::Status);
    if (tail == "/events") return want("POST", Route::Publish);
    if (tail == "/shards") return want("GET", Route::Shards);
    if (tail == "/dead-letters") return want("GET", Route::DeadLetters);
    if (tail == "/dead-letters/replay") return want("POST", Route::Replay);
    if (tail == "/pause") return want("POST", Route::Pause);
    if (tail == "/config") return want("GET", Route::Config);
    if (tail == "/resume") return want("POST", Route::Resume);
    m.pipeline.clear();
    return m;
}

const char* route_label(Route route) {
    switch (route) {
        case Route::Publish: return "/v1/pipelines/{name}/events";
        case Route::List: return "/v1/pipelines";
        case Route::Status: return "/v1/pipelines/{name}";
        case Route::Shards: return "/v1/pipelines/{name}/shards";
        case Route::DeadLetters: return "/v1/pipelines/{name}/dead-letters";
        case Route::Replay: return "/v1/pipelines/{name}/dead-letters/replay";
        case Route::Pause: return "/v1/pipelines/{name}/pause";
        case Route::Config: return "/v1/pipelines/{name}/config";
        case Route::Resume: return "/v1/pipelines/{name}/resume";
        case Route::Metrics: return "/metrics";
        case Route::Healthz: return "/healthz";
        case Route::Readyz: return "/readyz";
        default: return "other";
    }
}

std::string refuse_content_type(std::string_view content_type) {
    std::string type(content_type.substr(0, content_type.find(';')));
    while (!type.empty() && (type.back() == ' ' || type.back() == '\t')) type.pop_back();
    for (char& c : type) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (type.empty() || type == "application/json") return "";
    for (const char* nd : {"application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonlines"})
        if (type == nd) return "";
    return "Content-Type " + type +
           " is not accepted; send application/json (one event or an array) or application/x-ndjson (one event per "
           "line); with curl: -H 'Content-Type: application/json'";
}

Api::Api(Engine& engine, const config::HttpLimits& limits) : engine_(engine), limits_(limits) {}

Response Api::handle(const Request& req) {
    switch (req.match.route) {
        case Route::Healthz: return reply(200, {{"status", "ok"}});
        case Route::Readyz: return ready();
        case Route::Metrics: return metrics();
        case Route::List: {
            json list = json::array();
            for (const auto& p : engine_.pipelines()) list.push_back(pipeline_status(engine_, *p));
            return reply(200, {{"pipelines", list}});
        }
        case Route::NotFound: return error_response(404, "no route " + req.target.substr(0, 200));
        case Route::WrongMethod:
            return error_response(405, "method not allowed on " + req.target.substr(0, 200) + "; use " + req.match.allow);
        default: break;
    }
    if (!engine_.pipeline(req.match.pipeline)) return error_response(404, "no pipeline named '" + req.match.pipeline + "'");
    switch (req.match.route) {
        case Route::Status: return reply(200, pipeline_status(engine_, *engine_.pipeline(req.match.pipeline)));
        case Route::Publish: return publish(req);
        case Route::Shards: return shards(*engine_.pipeline(req.match.pipeline));
        case Route::DeadLetters: return list_dead(req);
        case Route::Replay: return replay(req);
        case Route::Config: {
            // The effective settings, defaults included, secrets and environment values redacted:
            // what `spillway validate` prints, for this pipeline only.
            Response res;
            res.body = engine_.prepared().render(req.match.pipeline);
            res.content_type = "application/toml; charset=utf-8";
            return res;
        }
        case Route::Pause:
        case Route::Resume: {
            pipeline::Pipeline& p = *engine_.pipeline(req.match.pipeline);
            const bool pausing = req.match.route == Route::Pause;
            const bool was = pausing ? p.pause() : p.resume();
            return reply(200, {{"pipeline", req.match.pipeline}, {"paused", pausing}, {"was_paused", was}});
        }
        default: return error_response(404, "no route " + req.target.substr(0, 200));
    }
}

namespace {
// The request's trace context headers go to every event without a traceparent of its own (an
// event's own tracestate belongs to its own traceparent). "" or why the headers are refused.
std::string apply_trace_context(const Request& req, std::vector<pipeline::Event>& events) {
    if (req.traceparents > 1) return "header traceparent: sent " + std::to_string(req.traceparents) + " times; send one";
    if (req.traceparents == 0) {
        if (!req.tracestate.empty()) return "header tracestate: sent without a traceparent header";
        return {};
    }
    if (std::string p = pipeline::traceparent_problem(req.traceparent); !p.empty()) return "header traceparent: " + p;
    if (std::string p = pipeline::tracestate_problem(req.tracestate); !p.empty()) return "header tracestate: " + p;
    for (auto& e : events)
        if (e.traceparent.empty()) e.traceparent = req.traceparent, e.tracestate = req.tracestate;
    return {};
}
}  // namespace

Response Api::publish(const Request& req) {
    pipeline::Pipeline* p = engine_.pipeline(req.match.pipeline);
    std::vector<pipeline::Event> events;
    try {
        events = parse_events(req.body, body_format(req.content_type), p->spec().topic, static_cast<size_t>(limits_.max_depth));
    } catch (const BadRequest& e) {
        return error_response(400, e.what());
    }
    if (std::string why = apply_trace_context(req, events); !why.empty()) return error_response(400, why);
    if (events.size() > static_cast<size_t>(limits_.max_events))
        return error_response(413, "more than " + std::to_string(limits_.max_events) +
                                       " events in one request (engine.http_max_events); send smaller batches");
    const std::vector<pipeline::Outcome> outcomes = p->publish(std::move(events));
    // 202 when every event is durable. Otherwise the per-event results say which were refused:
    // 503 (retry later) if any refusal is temporary, 422 if every refusal is permanent.
    size_t refused = 0;
    bool any_temporary = false, all_invalid = true;
    Response res;
    std::string& body = res.body;
    body = "{\"results\":[";
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
    if (any_temporary) res.headers.emplace_back("Retry-After", "1");
    return res;
}

// GET /v1/pipelines/{name}/shards: how engines share the pipeline, as the store tells it (members,
// owners, epochs, lease deadlines); {"coordination":"single"} for a pipeline one engine runs.
Response Api::shards(pipeline::Pipeline& p) {
    std::string text;
    if (!p.coordination(text)) return error_response(503, "the store cannot tell: " + text);
    json j = json::parse(text, nullptr, false);
    if (j.is_discarded()) return error_response(502, "the store's answer is not JSON");
    return reply(200, j);
}

Response Api::list_dead(const Request& req) {
    pipeline::Pipeline* p = engine_.pipeline(req.match.pipeline);
    int64_t after = 0;
    int64_t limit = 100;
    const auto after_text = query_param(req.query, "after");
    const auto limit_text = query_param(req.query, "limit");
    if ((after_text && !to_int(*after_text)) || (limit_text && !to_int(*limit_text)))
        return error_response(400, "query: after and limit must be integers");
    if (after_text) after = *to_int(*after_text);
    if (limit_text) limit = *to_int(*limit_text);
    if (limit < 1 || limit > 1000) return error_response(400, "query: limit must be 1..1000");
    plugin::Instance* store = engine_.instance(p->name(), "store");
    if (!store) return error_response(503, "pipeline '" + p->name() + "' is not running");
    try {
        const auto dead = plugin::StoreAdmin(*store).list_dead(p->name(), after, static_cast<size_t>(limit));
        Response res;
        res.body = "{\"dead_letters\":[";
        for (size_t i = 0; i < dead.size(); ++i) res.body += (i ? "," : "") + dead_letter_json(dead[i]);
        res.body += "],\"next_after\":" +
                    (static_cast<int64_t>(dead.size()) == limit ? std::to_string(dead.back().row_id) : std::string("null")) +
                    "}\n";
        return res;
    } catch (const plugin::PluginError& e) {
        return error_response(503, e.what());
    }
}

Response Api::replay(const Request& req) {
    pipeline::Pipeline* p = engine_.pipeline(req.match.pipeline);
    std::vector<std::string> ids;
    if (req.body.find_first_not_of(" \t\r\n") != std::string::npos) {
        try {
            check_json_depth(req.body, "body: ", static_cast<size_t>(limits_.max_depth));
        } catch (const BadRequest& e) {
            return error_response(400, e.what());
        }
        const json j = json::parse(req.body, nullptr, false);
        if (j.is_discarded() || !j.is_object())
            return error_response(400, "body: expected {\"event_ids\": [...]} or an empty body for all");
        for (const auto& [name, value] : j.items())
            if (name != "event_ids") return error_response(400, "field '" + name + "': unknown field (known: event_ids)");
        if (j.contains("event_ids")) {
            const json& list = j.at("event_ids");
            if (!list.is_array() || list.empty())
                return error_response(400, "field 'event_ids': expected a non-empty array of strings");
            for (size_t i = 0; i < list.size(); ++i) {
                if (!list[i].is_string() || list[i].get_ref<const std::string&>().empty())
                    return error_response(400, "field 'event_ids[" + std::to_string(i) + "]': expected a non-empty string");
                ids.push_back(list[i].get<std::string>());
            }
        }
    }
    plugin::Instance* store = engine_.instance(p->name(), "store");
    if (!store) return error_response(503, "pipeline '" + p->name() + "' is not running");
    try {
        const int64_t n = plugin::StoreAdmin(*store).replay(p->name(), ids);
        if (n > 0) p->wake();
        observe::logger("http")->info("replayed {} dead letter(s) of pipeline {}", n, p->name());
        return reply(200, {{"replayed", n}});
    } catch (const plugin::PluginError& e) {
        return error_response(503, e.what());
    }
}

Response Api::ready() {
    json reasons = json::array();
    for (const auto& [name, spec] : engine_.prepared().config.pipelines) {
        pipeline::Pipeline* p = engine_.pipeline(name);
        if (!p) reasons.push_back("pipeline '" + name + "' is not running");
        else if (p->status().pending < 0) reasons.push_back("pipeline '" + name + "': the store is unreachable");
    }
    if (reasons.empty()) return reply(200, {{"ready", true}});
    return reply(503, {{"ready", false}, {"reasons", reasons}});
}

Response Api::metrics() {
    // The relay refreshes the backlog gauges on its own schedule; a scrape gets current numbers.
    observe::Metrics& m = engine_.metrics();
    for (const auto& p : engine_.pipelines()) {
        const pipeline::Status s = p->status();
        if (s.pending < 0) continue;
        const observe::Labels l{{"pipeline", s.name}};
        m.set("outbox_pending", l, static_cast<double>(s.pending));
        m.set("outbox_dead", l, static_cast<double>(s.dead));
        m.set("outbox_oldest_age_seconds", l, static_cast<double>(s.oldest_pending_age_ms) / 1000.0);
    }
    Response res;
    res.body = m.render();
    res.content_type = "text/plain; version=0.0.4; charset=utf-8";
    return res;
}

}  // namespace spillway::http
