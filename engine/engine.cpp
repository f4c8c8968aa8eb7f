#include "engine/engine.hpp"

#include "engine/observe/catalogue.hpp"
#include "engine/observe/log.hpp"

#include <algorithm>
#include <set>
#include <sstream>

namespace spillway {

std::string Prepared::render(const std::string& pipeline) const {
    auto secret = [this](const config::Component& c, const std::string& key) { return plugin::is_secret(registry, c, key); };
    auto defaults = [this](const config::Component& c) {
        std::vector<std::pair<std::string, std::string>> out;
        auto it = bindings.find(c.id());
        if (it == bindings.end()) return out;
        for (const auto& [key, opt] : it->second.options) {
            if (!opt.defaulted) continue;
            if (opt.secret) out.emplace_back(key, "\"<secret>\"");
            else if (opt.type == SW_OPT_STRING || opt.type == SW_OPT_DURATION)
                out.emplace_back(key, config::Value{opt.text, {}, false}.render());
            else if (opt.type == SW_OPT_STRING_LIST) out.emplace_back(key, config::Value{opt.list, {}, false}.render());
            else out.emplace_back(key, opt.text);
        }
        return out;
    };
    if (pipeline.empty()) return config::render_toml(config, secret, defaults);
    config::Config one = config;
    std::erase_if(one.pipelines, [&](const auto& p) { return p.first != pipeline; });
    std::set<std::string> used;
    for (const auto& [name, p] : one.pipelines) {
        for (const auto& [kind, component] : p.uses) used.insert(kind + "." + component);
        for (const auto& t : p.transforms) used.insert("transform." + t);
    }
    std::erase_if(one.components, [&](const auto& c) { return !used.count(c.first); });
    return config::render_toml(one, secret, defaults);
}

std::vector<std::string> plugin_search_path(const config::Config* cfg, const config::EnvLookup& getenv) {
    if (cfg && !cfg->engine.plugin_path.empty()) return cfg->engine.plugin_path;
    if (auto env = getenv("SPILLWAY_PLUGIN_PATH"); env && !env->empty()) {
        std::vector<std::string> out;
        std::stringstream ss(*env);
        for (std::string dir; std::getline(ss, dir, ':');)
            if (!dir.empty()) out.push_back(dir);
        return out;
    }
    return plugin::default_plugin_path();
}

std::unique_ptr<Prepared> prepare(const std::string& path, const config::LoadOptions& options) {
    auto p = std::make_unique<Prepared>();
    // The loader's errors do not stop the plugin checks: one run reports every problem in the file.
    std::vector<config::Diagnostic> diags;
    p->config = config::load_file(path, options, diags);
    p->registry.scan(plugin_search_path(&p->config, options.getenv));
    // One message per key, the loader's first: an option it could not read is not also "missing".
    std::set<std::string> reported;
    for (const auto& d : diags) reported.insert(d.key_path);
    for (auto& d : plugin::bind_all(p->config, p->registry, p->bindings))
        if (reported.insert(d.key_path).second) diags.push_back(std::move(d));
    // A plugin validates only a component that is complete and typed (no problem under its id).
    auto has_problem = [&](const std::string& id) {
        return std::any_of(reported.begin(), reported.end(),
                           [&](const std::string& k) { return k == id || k.rfind(id + ".", 0) == 0; });
    };
    for (const auto& [id, binding] : p->bindings) {
        if (has_problem(id)) continue;
        auto more = plugin::validate_binding(binding);
        diags.insert(diags.end(), more.begin(), more.end());
    }
    if (!diags.empty()) throw config::ConfigError(std::move(diags));
    return p;
}

Engine::Engine(std::unique_ptr<Prepared> prepared) : prepared_(std::move(prepared)) {
    observe::describe_engine_metrics(metrics_);
}

Engine::~Engine() { stop(); }

pipeline::Pipeline* Engine::pipeline(const std::string& name) {
    for (auto& p : pipelines_)
        if (p->name() == name) return p.get();
    return nullptr;
}

plugin::Instance* Engine::instance(const std::string& pipeline, const std::string& kind) {
    auto it = by_use_.find(pipeline + "/" + kind);
    return it == by_use_.end() ? nullptr : it->second;
}

void Engine::start() {
    auto log = observe::logger();
    for (const auto& w : prepared_->config.warnings) log->warn("{}", w.str());
    std::map<std::string, plugin::Instance*> shared;  // sinks, stores and transforms, by component id
    // Notifiers and schedulers keep per-pipeline state (a channel, a ladder): one instance each.
    auto start_instance = [&](const std::string& id, bool per_pipeline) {
        if (!per_pipeline)
            if (auto it = shared.find(id); it != shared.end()) return it->second;
        auto owned = std::make_unique<plugin::Instance>(prepared_->bindings.at(id), &metrics_);
        owned->start();
        log->info("started {} ({} plugin {})", id, owned->binding().library->name, owned->binding().library->version);
        plugin::Instance* inst = owned.get();
        started_.push_back(std::move(owned));
        if (!per_pipeline) shared[id] = inst;
        return inst;
    };
    try {
        for (const auto& [name, pipeline] : prepared_->config.pipelines) {
            for (const char* kind : config::kKinds) {
                const std::string id = std::string(kind) + "." + pipeline.uses.at(kind);
                by_use_[name + "/" + kind] =
                    start_instance(id, std::string(kind) == "notifier" || std::string(kind) == "scheduler");
            }
            std::vector<plugin::Instance*> transforms;
            for (const auto& t : pipeline.transforms) transforms.push_back(start_instance("transform." + t, false));
            auto p = std::make_unique<pipeline::Pipeline>(pipeline, *by_use_[name + "/sink"], *by_use_[name + "/store"],
                                                          *by_use_[name + "/notifier"], *by_use_[name + "/scheduler"],
                                                          transforms, metrics_);
            p->start();
            pipelines_.push_back(std::move(p));
        }
    } catch (...) {
        stop();
        throw;
    }
}

void Engine::stop() {
    int64_t timeout = 10000;
    for (const auto& [name, p] : prepared_->config.pipelines) timeout = std::min(timeout, p.shutdown_timeout_ms);
    // Pipelines first (stop accepting, finish the relay's batch, flush), then their components.
    while (!pipelines_.empty()) {
        pipelines_.back()->stop();
        pipelines_.pop_back();
    }
    by_use_.clear();
    while (!started_.empty()) {
        auto& inst = started_.back();
        const sw_status st = inst->stop(timeout);
        if (st != SW_OK) observe::logger()->warn("stopping {}: {}", inst->id(), inst->describe(st));
        started_.pop_back();
    }
}

}  // namespace spillway
