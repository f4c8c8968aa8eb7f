// `spillway run`: start the pipelines and keep them running until SIGINT or SIGTERM.
#include "commands.hpp"

#include "engine/engine.hpp"
#include "engine/http/server.hpp"
#include "engine/observe/log.hpp"
#include "engine/signals.hpp"

#include <csignal>
#include <cstring>
#include <iostream>

namespace spillway::cli {

int run(const ConfigOptions& options) {
    config::LoadOptions load;
    load.environment = options.environment;
    std::unique_ptr<Prepared> prepared;
    try {
        prepared = prepare(options.config, load);
    } catch (const config::ConfigError& e) {
        std::cerr << e.what() << "\n";
        return kInvalidConfig;
    }
    observe::setup_logging(prepared->config.engine.log_level, prepared->config.engine.log_format);
    auto log = observe::logger();
    log->info("spillway {} starting {} (environment {})", SPILLWAY_VERSION, options.config, prepared->config.environment);

    Engine engine(std::move(prepared));
    try {
        engine.start();
    } catch (const plugin::PluginError& e) {
        log->error("{}", e.what());
        return e.status() == SW_INVALID_CONFIG ? kInvalidConfig : kRuntimeFailure;
    }
    // The listener comes up once the pipelines run, and goes before them: no request ever sees a
    // half-started or stopping engine.
    std::unique_ptr<http::Server> server;
    const auto& engine_cfg = engine.prepared().config.engine;
    if (!engine_cfg.http_listen.empty()) {
        try {
            server = std::make_unique<http::Server>(engine, engine_cfg.http_listen, engine_cfg.http_token, engine_cfg.http);
            server->start();
        } catch (const std::exception& e) {
            log->error("{}", e.what());
            engine.stop();
            return kRuntimeFailure;
        }
    }
    log->info("running {} pipeline(s); SIGINT or SIGTERM stops", engine.prepared().config.pipelines.size());
    const int sig = wait_for_shutdown_signal();
    log->info("{} received: shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
    if (server) server->stop();
    engine.stop();
    log->info("stopped cleanly");
    return kOk;
}

}  // namespace spillway::cli
