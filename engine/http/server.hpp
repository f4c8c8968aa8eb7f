// The engine's one HTTP listener: event ingress, the admin API, Prometheus metrics and probes.
// cpp-httplib stays behind this header. The server calls into the engine's pipelines; the
// pipelines know nothing of it.
//
//   POST /v1/pipelines/{name}/events                 JSON event (or array), or NDJSON batch
//   GET  /v1/pipelines, /v1/pipelines/{name}         status
//   GET  /v1/pipelines/{name}/dead-letters           ?after=ROW_ID&limit=N
//   POST /v1/pipelines/{name}/dead-letters/replay    {"event_ids":[...]} or empty for all
//   GET  /metrics, /healthz, /readyz
//
// With a token, every /v1/ route needs "Authorization: Bearer <token>"; the probes and /metrics
// stay open.
#pragma once

#include <cstddef>
#include <memory>
#include <stdexcept>
#include <string>

namespace spillway {
class Engine;
}

namespace spillway::http {

// "host:port" or "[v6-host]:port"; port 0 asks for an ephemeral port. Throws std::invalid_argument.
std::pair<std::string, int> parse_listen(const std::string& listen);

class Server {
public:
    static constexpr size_t kDefaultMaxBody = 8u << 20;  // bytes per request body

    // The engine must be started before requests come and outlive the server; stop the server
    // before stopping the engine.
    Server(Engine& engine, std::string listen, std::string token, size_t max_body = kDefaultMaxBody);
    ~Server();
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;

    // Binds and serves on a thread of its own. Throws std::runtime_error naming the address when
    // it cannot bind, std::invalid_argument for a malformed listen address.
    void start();
    // Stops accepting, finishes the requests in flight; idempotent.
    void stop();

    int port() const;                   // the bound port (the ephemeral one for port 0)
    const std::string& host() const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace spillway::http
