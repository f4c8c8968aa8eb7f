// The engine's one HTTP listener (routes in engine/http/routes.hpp), asynchronous on Boost.Beast:
// a slow or idle client holds a socket, never a thread. The transport enforces every limit of
// config::HttpLimits itself, before the bytes it bounds are read: the header (size, field count),
// the token (before any body byte), the body (Content-Length, chunked, decompressed), the time a
// request may take, the connections open. Handlers that can block on the engine run on a worker
// pool, so /healthz answers while publishes wait for Kafka.
//
// With a token, every /v1/ route needs "Authorization: Bearer <token>"; the probes and /metrics
// stay open.
#pragma once

#include "engine/config/config.hpp"

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

class Connection;  // server.cpp

class Server {
public:
    // The engine must be started before requests come and outlive the server; stop the server
    // before stopping the engine.
    Server(Engine& engine, std::string listen, std::string token, config::HttpLimits limits = {});
    ~Server();
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;

    // Binds and serves on threads of its own. Throws std::runtime_error naming the address when
    // it cannot bind, std::invalid_argument for a malformed listen address.
    void start();
    // Stops accepting, closes idle connections, gives requests in flight up to
    // limits.shutdown_timeout_ms to finish, then closes the rest; idempotent.
    void stop();

    int port() const;                   // the bound port (the ephemeral one for port 0)
    const std::string& host() const;

private:
    friend class Connection;
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace spillway::http
