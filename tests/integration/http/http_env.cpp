#include "http_env.hpp"

#include <fstream>

namespace spillway::http_test {

std::string pipeline_toml(const EnvOptions& o, const std::string& bootstraps, const std::string& sqlite_path,
                          const std::string& topic) {
    std::string t;
    t += "[engine]\nplugin_path = [\"" + std::string(SPILLWAY_PLUGIN_DIR) + "\"]\nlog_level = \"warn\"\n\n";
    t += "[sink.kafka]\nplugin = \"kafka\"\n\"bootstrap.servers\" = \"" + bootstraps + "\"\n";
    // Fast reconnects and a message timeout within direct_timeout (see the toolchain notes).
    t += "\"reconnect.backoff.ms\" = 10\n\"reconnect.backoff.max.ms\" = 200\n\"message.timeout.ms\" = 1000\n\n";
    if (o.pg_conninfo.empty())
        t += "[store.outbox]\nplugin = \"sqlite\"\npath = \"" + sqlite_path + "\"\n";
    else
        t += "[store.outbox]\nplugin = \"postgres\"\nurl = \"" + o.pg_conninfo + "\"\n";
    t += o.extra_store + "\n";
    t += "[notifier.bell]\nplugin = \"inproc\"\n\n[scheduler.poll]\nplugin = \"adaptive\"\n\n";
    t += "[pipeline.orders]\nsink = \"kafka\"\nstore = \"outbox\"\nnotifier = \"bell\"\nscheduler = \"poll\"\n";
    t += "mode = \"" + o.mode + "\"\ntopic = \"" + topic + "\"\ndirect_timeout = \"1s\"\nlease = \"5s\"\n";
    t += o.extra_pipeline;
    return t;
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
