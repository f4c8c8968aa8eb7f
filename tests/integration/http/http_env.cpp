#include "http_env.hpp"

#include <spillway/test_support/pipeline_toml.hpp>

#include <fstream>

namespace spillway::http_test {

std::string pipeline_toml(const EnvOptions& o, const std::string& bootstraps, const std::string& sqlite_path,
                          const std::string& topic) {
    test_support::PipelineToml toml(SPILLWAY_PLUGIN_DIR);
    toml.engine().set("log_level", "warn");
    // Fast reconnects and a message timeout within direct_timeout (see the toolchain notes).
    toml.kafka_sink(bootstraps)
        .set_integer("reconnect.backoff.ms", 10)
        .set_integer("reconnect.backoff.max.ms", 200)
        .set_integer("message.timeout.ms", 1000)
        .add_lines(o.extra_sink);
    auto& store = o.pg_conninfo.empty() ? toml.sqlite_store(sqlite_path) : toml.postgres_store(o.pg_conninfo);
    store.add_lines(o.extra_store);
    toml.notifier("inproc");
    toml.adaptive_scheduler();
    toml.pipeline("orders")
        .set("mode", o.mode)
        .set("topic", topic)
        .set("direct_timeout", "1s")
        .set("lease", "5s")
        .add_lines(o.extra_pipeline);
    return toml.text();
}

Env::Env(EnvOptions options) : options_(std::move(options)) {
    kafka_.create_topic(topic_, 2, 1);
    config_path_ = dir_.path() + "/pipeline.toml";
    std::ofstream(config_path_) << pipeline_toml(options_, kafka_.bootstraps(), dir_.path() + "/outbox.db", topic_);
    config::LoadOptions lo;
    lo.environment = "testing";
    engine_ = std::make_unique<Engine>(prepare(config_path_, lo));
    engine_->start();
    if (options_.start_server) {
        config::HttpLimits limits;
        limits.max_body_bytes = static_cast<int64_t>(options_.max_body);
        server_ = std::make_unique<http::Server>(*engine_, "127.0.0.1:0", options_.token, limits);
        server_->start();
    }
}

Env::~Env() { stop_engine(); }

void Env::stop_engine() {
    if (server_) server_->stop();
    server_.reset();
    if (engine_) engine_->stop();
    engine_.reset();
}

std::unique_ptr<httplib::Client> Env::client() const {
    auto c = std::make_unique<httplib::Client>("127.0.0.1", server_->port());
    c->set_connection_timeout(std::chrono::seconds(10));
    c->set_read_timeout(std::chrono::seconds(60));
    c->set_write_timeout(std::chrono::seconds(10));
    return c;
}

}  // namespace spillway::http_test
