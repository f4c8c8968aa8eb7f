// The engine: a checked configuration bound to loaded plugins, and the running components.
#pragma once

#include "engine/config/config.hpp"
#include "engine/observe/metrics.hpp"
#include "engine/pipeline/pipeline.hpp"
#include "engine/plugin/binding.hpp"
#include "engine/plugin/instance.hpp"
#include "engine/plugin/loader.hpp"

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace spillway {

// A configuration that passed every check, with its plugins loaded and bound.
struct Prepared {
    config::Config config;
    plugin::Registry registry;
    std::map<std::string, plugin::Binding> bindings;  // by component id

    // The effective config, secrets redacted; with `pipeline`, only that pipeline, the components
    // it uses and the engine's settings (GET /v1/pipelines/{name}/config).
    std::string render(const std::string& pipeline = {}) const;
};

// Where plugins are looked for: the config's plugin_path, else $SPILLWAY_PLUGIN_PATH (':'-separated),
// else the folders next to the executable.
std::vector<std::string> plugin_search_path(const config::Config* cfg, const config::EnvLookup& getenv);

// Loads `path`, finds the plugins, checks every component against its plugin's options and the
// plugin's own validate. Throws config::ConfigError listing every problem.
std::unique_ptr<Prepared> prepare(const std::string& path, const config::LoadOptions& options = {});

// Runs the components of a prepared configuration. Sinks and stores are shared by the pipelines
// that name them; notifiers and schedulers hold per-pipeline state, so each pipeline gets its own.
class Engine {
public:
    explicit Engine(std::unique_ptr<Prepared> prepared);
    ~Engine();
    Engine(const Engine&) = delete;
    Engine& operator=(const Engine&) = delete;

    // Creates and starts every component; throws plugin::PluginError naming the failing one
    // (components already started are stopped again).
    void start();
    // Stops everything in reverse order, within each pipeline's shutdown_timeout. A publish() under
    // way when stop() begins finishes first; a pipeline pointer must not be used once stop() has
    // returned (the pipelines are destroyed).
    void stop();

    const Prepared& prepared() const { return *prepared_; }
    observe::Metrics& metrics() { return metrics_; }
    // The instance a pipeline uses for `kind` ("sink", ...); nullptr before start.
    plugin::Instance* instance(const std::string& pipeline, const std::string& kind);
    // A running pipeline by name; nullptr if there is none.
    pipeline::Pipeline* pipeline(const std::string& name);
    const std::vector<std::unique_ptr<pipeline::Pipeline>>& pipelines() const { return pipelines_; }

private:
    std::unique_ptr<Prepared> prepared_;
    observe::Metrics metrics_;
    std::vector<std::unique_ptr<plugin::Instance>> started_;  // in start order
    std::map<std::string, plugin::Instance*> by_use_;         // "pipeline/kind" -> instance
    std::vector<std::unique_ptr<pipeline::Pipeline>> pipelines_;
};

}  // namespace spillway
