// The public C++ API (include/spillway/engine.hpp) over the engine's own classes: what a service
// that embeds the engine calls. Nothing of the engine's types crosses into the header.
#include <spillway/engine.hpp>

#include "engine/engine.hpp"
#include "engine/http/server.hpp"
#include "engine/observe/log.hpp"

#include <condition_variable>
#include <cstdlib>
#include <mutex>

namespace spillway::embed {

namespace {

Reason public_reason(pipeline::Reason r) {
    switch (r) {
        case pipeline::Reason::None: return Reason::none;
        case pipeline::Reason::DirectFailed: return Reason::failure;
        case pipeline::Reason::StickyKey: return Reason::sticky;
        case pipeline::Reason::StickyDb: return Reason::sticky_db;
        case pipeline::Reason::CircuitOpen: return Reason::circuit;
        case pipeline::Reason::Relayed: return Reason::outbox_first;
        case pipeline::Reason::Rejected: return Reason::rejected;
        case pipeline::Reason::Unavailable: return Reason::unavailable;
        case pipeline::Reason::BacklogFull: return Reason::backlog_full;
        case pipeline::Reason::Invalid: return Reason::invalid;
        case pipeline::Reason::Stopping: return Reason::stopping;
    }
    return Reason::unavailable;
}

Path public_path(pipeline::Path p) {
    switch (p) {
        case pipeline::Path::Direct: return Path::direct;
        case pipeline::Path::Outbox: return Path::outbox;
        case pipeline::Path::Refused: return Path::refused;
    }
    return Path::refused;
}

pipeline::Event engine_event(Event&& e) {
    pipeline::Event out;
    out.event_id = std::move(e.event_id);
    out.topic = std::move(e.topic);
    out.key = std::move(e.key);
    out.payload = std::move(e.payload);
    out.binary = e.binary;
    out.headers = std::move(e.headers);
    out.event_type = std::move(e.event_type);
    out.correlation_id = std::move(e.correlation_id);
    out.traceparent = std::move(e.traceparent);
    out.tracestate = std::move(e.tracestate);
    return out;
}

Outcome public_outcome(pipeline::Outcome&& o) {
    return {std::move(o.event_id), public_path(o.path), public_reason(o.reason), std::move(o.message)};
}

// Publishes pass through here: stop() closes it and waits until the calls inside have left,
// before the engine destroys the pipelines they call into. The engine's own stop would let a call
// under way finish too, but not one that has read the pipeline's address and not yet called it.
class Gate {
public:
    bool enter() {
        std::lock_guard lock(mutex_);
        if (closed_) return false;
        ++inside_;
        return true;
    }
    void leave() {
        std::lock_guard lock(mutex_);
        if (--inside_ == 0 && closed_) left_.notify_all();
    }
    void close_and_wait() {
        std::unique_lock lock(mutex_);
        closed_ = true;
        left_.wait(lock, [&] { return inside_ == 0; });
    }

private:
    std::mutex mutex_;
    std::condition_variable left_;
    int inside_ = 0;
    bool closed_ = false;
};

std::vector<Outcome> stopping(std::vector<Event>& events, const std::string& pipeline) {
    std::vector<Outcome> out;
    out.reserve(events.size());
    for (auto& e : events)
        out.push_back({std::move(e.event_id), Path::refused, Reason::stopping, "pipeline " + pipeline + " is not running"});
    return out;
}

}  // namespace

const char* to_string(Reason reason) noexcept {
    switch (reason) {
        case Reason::none: return "none";
        case Reason::failure: return "failure";
        case Reason::sticky: return "sticky";
        case Reason::sticky_db: return "sticky-db";
        case Reason::circuit: return "circuit";
        case Reason::outbox_first: return "outbox-first";
        case Reason::rejected: return "rejected";
        case Reason::unavailable: return "unavailable";
        case Reason::backlog_full: return "backlog-full";
        case Reason::invalid: return "invalid";
        case Reason::stopping: return "stopping";
    }
    return "unknown";
}

const char* to_string(Path path) noexcept {
    switch (path) {
        case Path::direct: return "direct";
        case Path::outbox: return "outbox";
        case Path::refused: return "refused";
    }
    return "unknown";
}

Error::Error(const std::string& what) : std::runtime_error(what) {}
Error::~Error() = default;

struct Pipeline::State {
    std::string name;
    pipeline::Pipeline* running;  // valid while the gate lets calls in
    std::shared_ptr<Gate> gate;
};

Pipeline::Pipeline(std::shared_ptr<State> state) : state_(std::move(state)) {}

const std::string& Pipeline::name() const noexcept { return state_->name; }

Outcome Pipeline::publish(Event event) {
    std::vector<Event> one;
    one.push_back(std::move(event));
    return std::move(publish(std::move(one)).front());
}

std::vector<Outcome> Pipeline::publish(std::vector<Event> events) {
    if (!state_->gate->enter()) return stopping(events, state_->name);
    struct Leave {
        Gate& gate;
        ~Leave() { gate.leave(); }
    } leave{*state_->gate};
    std::vector<pipeline::Event> in;
    in.reserve(events.size());
    for (auto& e : events) in.push_back(engine_event(std::move(e)));
    std::vector<pipeline::Outcome> done = state_->running->publish(std::move(in));
    std::vector<Outcome> out;
    out.reserve(done.size());
    for (auto& o : done) out.push_back(public_outcome(std::move(o)));
    return out;
}

int64_t Pipeline::pending() {
    if (!state_->gate->enter()) return -1;
    struct Leave {
        Gate& gate;
        ~Leave() { gate.leave(); }
    } leave{*state_->gate};
    return state_->running->status().pending;
}

struct Engine::Impl {
    std::unique_ptr<spillway::Engine> engine;
    std::unique_ptr<http::Server> server;
    std::shared_ptr<Gate> gate = std::make_shared<Gate>();
    std::vector<std::unique_ptr<Pipeline>> pipelines;  // file order
    std::mutex stop_mutex;
    bool stopped = false;
};

Engine::Engine(const std::string& pipeline_file, const Options& options) : impl_(std::make_unique<Impl>()) {
    config::LoadOptions load;
    if (!options.environment.empty()) load.environment = options.environment;
    load.getenv = [variables = options.variables,
                   process = config::process_environment()](const std::string& name) -> std::optional<std::string> {
        if (auto it = variables.find(name); it != variables.end()) return it->second;
        return process(name);
    };
    std::unique_ptr<Prepared> prepared;
    try {
        prepared = prepare(pipeline_file, load);
    } catch (const config::ConfigError& e) {
        throw Error(e.what());
    }
    if (options.configure_logging)
        observe::setup_logging(prepared->config.engine.log_level, prepared->config.engine.log_format);
    const auto engine_cfg = prepared->config.engine;
    impl_->engine = std::make_unique<spillway::Engine>(std::move(prepared));
    try {
        impl_->engine->start();
    } catch (const plugin::PluginError& e) {
        throw Error(e.what());
    }
    // As `spillway run` does: the listener comes up once the pipelines run.
    if (options.http && !engine_cfg.http_listen.empty()) {
        try {
            impl_->server = std::make_unique<http::Server>(*impl_->engine, engine_cfg.http_listen, engine_cfg.http_token,
                                                           engine_cfg.http);
            impl_->server->start();
        } catch (const std::exception& e) {
            impl_->server.reset();
            impl_->engine->stop();
            throw Error(e.what());
        }
    }
    for (const auto& p : impl_->engine->pipelines()) {
        auto state = std::make_shared<Pipeline::State>(Pipeline::State{p->name(), p.get(), impl_->gate});
        impl_->pipelines.push_back(std::unique_ptr<Pipeline>(new Pipeline(std::move(state))));
    }
}

Engine::~Engine() { stop(); }

Pipeline& Engine::pipeline(std::string_view name) {
    for (auto& p : impl_->pipelines)
        if (p->name() == name) return *p;
    std::string known;
    for (const auto& p : impl_->pipelines) known += (known.empty() ? "" : ", ") + p->name();
    throw Error("no pipeline named '" + std::string(name) + "' (the file has: " + known + ")");
}

std::vector<std::string> Engine::pipelines() const {
    std::vector<std::string> out;
    for (const auto& p : impl_->pipelines) out.push_back(p->name());
    return out;
}

int Engine::http_port() const noexcept { return impl_->server ? impl_->server->port() : 0; }

void Engine::stop() {
    std::lock_guard lock(impl_->stop_mutex);
    if (impl_->stopped || !impl_->engine) return;
    impl_->stopped = true;
    // The listener first, as `spillway run` does: no request sees a stopping engine.
    if (impl_->server) impl_->server->stop();
    impl_->gate->close_and_wait();
    impl_->engine->stop();
}

const char* Engine::version() noexcept { return SPILLWAY_VERSION; }

}  // namespace spillway::embed
