// An engine with one pipeline ("orders") over real plugins — kafka on a mock cluster, a SQLite file
// or a PostgreSQL database, the inproc doorbell, the adaptive scheduler — and its HTTP server on an
// ephemeral loopback port.
#pragma once

#include "engine/engine.hpp"
#include "engine/http/server.hpp"

#include <spillway/test_support/mock_kafka.hpp>
#include <spillway/test_support/temp_dir.hpp>

#include <httplib.h>

#include <memory>
#include <string>

namespace spillway::http_test {

struct EnvOptions {
    std::string token;                   // bearer token of the server
    size_t max_body = static_cast<size_t>(config::HttpLimits{}.max_body_bytes);
    std::string mode = "direct-first";
    std::string pg_conninfo;             // non-empty: the postgres store instead of SQLite
    std::string extra_store;             // more TOML lines for [store.outbox]
    std::string extra_sink;              // more TOML lines for the kafka sink
    std::string extra_pipeline;          // more TOML lines for [pipeline.orders]
    bool start_server = true;
};

// The pipeline file: `bootstraps` for the kafka sink, the SQLite file at `sqlite_path` unless
// `o.pg_conninfo` is set.
std::string pipeline_toml(const EnvOptions& o, const std::string& bootstraps, const std::string& sqlite_path,
                          const std::string& topic);

class Env {
public:
    explicit Env(EnvOptions options = {});
    ~Env();

    test_support::MockKafka& kafka() { return kafka_; }
    Engine& engine() { return *engine_; }
    pipeline::Pipeline& pipeline() { return *engine_->pipeline("orders"); }
    http::Server& server() { return *server_; }
    const std::string& topic() const { return topic_; }
    const std::string& dir() const { return dir_.path(); }
    const std::string& config_path() const { return config_path_; }
    std::string url() const { return "http://127.0.0.1:" + std::to_string(server_->port()); }

    // Stops the server and the engine; the files (SQLite outbox, config) stay for the CLI.
    void stop_engine();

    // A client of the server with generous timeouts (a publish waits for Kafka or the store).
    std::unique_ptr<httplib::Client> client() const;

private:
    EnvOptions options_;
    test_support::TempDir dir_{"http"};
    test_support::MockKafka kafka_{1};
    std::string topic_ = "orders.events";
    std::string config_path_;
    std::unique_ptr<Engine> engine_;
    std::unique_ptr<http::Server> server_;
};

}  // namespace spillway::http_test
