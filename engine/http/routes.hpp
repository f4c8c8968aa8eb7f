// What each HTTP route means: the ingress, the admin API, metrics and probes, over plain request
// and response values. The transport (engine/http/server.cpp) decides when a request may be read
// and how far; this file decides what it says. No Beast here.
//
//   POST /v1/pipelines/{name}/events                 JSON event (or array), or NDJSON batch
//   GET  /v1/pipelines, /v1/pipelines/{name}         status
//   GET  /v1/pipelines/{name}/dead-letters           ?after=ROW_ID&limit=N
//   POST /v1/pipelines/{name}/dead-letters/replay    {"event_ids":[...]} or empty for all
//   GET  /metrics, /healthz, /readyz
#pragma once

#include "engine/config/config.hpp"

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace spillway {
class Engine;
}

namespace spillway::pipeline {
class Pipeline;
}  // namespace spillway::pipeline

namespace spillway::http {

enum class Route {
    Publish, List, Status, Shards, DeadLetters, Replay, Pause, Resume, Config, Metrics, Healthz, Readyz, NotFound,
    WrongMethod
};

struct RouteMatch {
    Route route = Route::NotFound;
    std::string pipeline;  // {name}, percent-decoded
    const char* allow = nullptr;  // the method the path takes, for a 405
};

// Matches a request target's path (the query already cut off).
RouteMatch match_route(std::string_view method, std::string_view path);

// The label of `http_requests_total`: the route, never the path (pipeline names would make the
// label set unbounded).
const char* route_label(Route route);

inline bool takes_body(Route r) { return r == Route::Publish || r == Route::Replay; }
inline bool is_probe(Route r) { return r == Route::Healthz || r == Route::Readyz || r == Route::Metrics; }
// Routes behind the bearer token: everything under /v1/, known or not.
inline bool needs_token(std::string_view path) { return path.substr(0, 4) == "/v1/" || path == "/v1"; }

struct Request {
    RouteMatch match;
    std::string target;        // as sent, for messages
    std::string query;         // after '?', raw
    std::string content_type;  // header value, may be empty
    std::string body;          // decoded (Content-Encoding undone)
    // W3C trace context headers, for every event of the request that has none of its own.
    // `traceparents` counts the traceparent headers (more than one is refused); the tracestate
    // headers are joined with ',' as the spec combines them.
    std::string traceparent, tracestate;
    size_t traceparents = 0;
};

struct Response {
    int status = 200;
    std::string body;
    std::string content_type = "application/json";
    std::vector<std::pair<std::string, std::string>> headers;
};

// {"error": message} with `status`.
Response error_response(int status, const std::string& message);

// Content types the events route reads; empty when `content_type` is one of them, otherwise the
// refusal's message (415).
std::string refuse_content_type(std::string_view content_type);

class Api {
public:
    Api(Engine& engine, const config::HttpLimits& limits);
    // Answers a matched request (Route NotFound / WrongMethod included). May block on the engine
    // (publish waits for Kafka's acknowledgement or the outbox commit); Healthz never does.
    Response handle(const Request& req);

private:
    Response publish(const Request& req);
    Response list_dead(const Request& req);
    Response shards(pipeline::Pipeline& p);
    Response replay(const Request& req);
    Response ready();
    Response metrics();

    Engine& engine_;
    config::HttpLimits limits_;
};

}  // namespace spillway::http
