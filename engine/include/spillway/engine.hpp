// spillway/engine.hpp — the engine inside a C++ service: open a pipeline file, publish events,
// get per-event outcomes, stop.
//
//   #include <spillway/engine.hpp>
//
//   spillway::embed::Engine engine("/etc/spillway/orders.toml", {.environment = "production"});
//   spillway::embed::Pipeline& orders = engine.pipeline("orders");
//   spillway::embed::Event e;
//   e.key = "customer-7";
//   e.payload = R"({"order":42})";
//   spillway::embed::Outcome o = orders.publish(std::move(e));
//   if (!o.accepted()) retry_later(o.message);   // refused: nothing was stored
//
// Link with the installed library: CMake `find_package(Spillway 1)` and `Spillway::engine`, or
// pkg-config `spillway-engine`. The engine loads its plugins (Kafka, the stores, the doorbells)
// from the pipeline file's plugin_path, else $SPILLWAY_PLUGIN_PATH, else the plugin folder
// installed beside this library (<libdir>/spillway/plugins).
//
// The delivery contract is the engine's (README, "Delivery contract"): an accepted event
// (Path::direct or Path::outbox) is in Kafka or durable in the outbox when publish() returns, and
// reaches Kafka at least once, in order per key. A refused one (Path::refused) was not stored.
//
// Versioning: this header and libspillway-engine.so.1 make up API/ABI 1. Within 1 the types
// below keep their layout and the functions their signatures (checked by abidiff in CI); new
// things come as new functions, never as new members of these structs. The header needs only the
// C++20 standard library.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#define SPILLWAY_ENGINE_API_MAJOR 1
#define SPILLWAY_ENGINE_API_MINOR 0

namespace spillway::embed {

// One event, as a service hands it over. Only the payload is needed; the rest has defaults.
struct Event {
    std::optional<std::string> key;  // events of one key reach Kafka in publish order; none: no order
    std::string payload;             // JSON text, or opaque bytes when `binary`
    bool binary = false;
    std::string topic;               // empty: the pipeline's default topic
    std::string event_type;          // the event_type record header, when set
    std::string correlation_id;      // the correlation_id record header, when set
    // Empty: the engine gives the event a fresh id (UUIDv7). Set it to make a retry of the same
    // event recognisable downstream (consumers deduplicate on the event_id record header).
    std::string event_id;
    std::vector<std::pair<std::string, std::string>> headers;  // more record headers, in order
    // W3C trace context, written as the traceparent/tracestate record headers; empty: none.
    std::string traceparent;
    std::string tracestate;
};

// Which way an event went.
enum class Path {
    direct,   // Kafka acknowledged it
    outbox,   // durable in the outbox; the relay sends it when Kafka can take it
    refused,  // not stored: see reason and message
};

// Why, beside the path. Names as in the HTTP API's "reason" and the metrics' reason label.
enum class Reason {
    none,          // direct, nothing to say
    failure,       // Kafka did not confirm in time: spilled to the outbox
    sticky,        // its key had events in the outbox: queued behind them, to keep the key's order
    sticky_db,     // the same, found by asking the outbox (coordination = "shards")
    circuit,       // Kafka is down: straight to the outbox
    outbox_first,  // an outbox-first pipeline: stored for the relay
    rejected,      // Kafka refused it for good (too large, unknown topic, not authorised)
    unavailable,   // neither Kafka nor the outbox could take it: try again later
    backlog_full,  // the outbox holds max_pending events: try again later
    invalid,       // the event itself is malformed (message says how): do not retry as is
    stopping,      // the engine is stopping or stopped
};

// "none", "failure", "sticky", ... as the HTTP API spells them.
const char* to_string(Reason reason) noexcept;
// "direct", "outbox", "refused".
const char* to_string(Path path) noexcept;

struct Outcome {
    std::string event_id;  // the event's id (the caller's, or the one the engine gave it)
    Path path = Path::refused;
    Reason reason = Reason::none;
    std::string message;   // why, for the outbox and refused paths
    bool accepted() const noexcept { return path != Path::refused; }
    // Refused for a reason that passes: the same event may be published again later.
    bool retryable() const noexcept {
        return path == Path::refused && (reason == Reason::unavailable || reason == Reason::backlog_full ||
                                         reason == Reason::stopping);
    }
};

// A pipeline file that does not load (every problem, file:line:col), a plugin that refuses to
// start, an unknown pipeline name, or an HTTP listener that cannot bind.
class Error : public std::runtime_error {
public:
    explicit Error(const std::string& what);
    ~Error() override;
};

struct Options {
    // testing, development, staging or production: which [env.<name>] overlay of the pipeline
    // file applies. Empty: $SPILLWAY_ENV, else $ENVIRONMENT, else development (as `spillway run`).
    std::string environment;
    // ${VAR} values in the pipeline file (and SPILLWAY_ENV, SPILLWAY_PLUGIN_PATH): these first,
    // then the process environment.
    std::map<std::string, std::string> variables;
    // Serve the file's [engine] http_listen (the HTTP API, /metrics, /healthz, /readyz) when it
    // names one. False: no listener, whatever the file says.
    bool http = true;
    // Apply the file's log_level and log_format to spdlog's stderr logging (loggers "spillway",
    // "pipeline.<name>", ...; the level is spdlog's global one). False: leave spdlog as it is.
    bool configure_logging = true;
};

class Engine;

// A running pipeline. Owned by its Engine: valid until the Engine is destroyed. Thread-safe: any
// number of threads may publish at once, also while stop() runs (they get Reason::stopping).
class Pipeline {
public:
    Pipeline(const Pipeline&) = delete;
    Pipeline& operator=(const Pipeline&) = delete;

    const std::string& name() const noexcept;
    // Returns once the event is acknowledged by Kafka, durable in the outbox, or refused.
    Outcome publish(Event event);
    // A batch, one outcome per event in the same order; events of one key keep their order.
    // Faster per event than single publishes (one outbox transaction, one wait for Kafka).
    std::vector<Outcome> publish(std::vector<Event> events);
    // Events waiting in the outbox (all engines'); -1 when the outbox cannot be read now.
    int64_t pending();

private:
    friend class Engine;
    struct State;
    explicit Pipeline(std::shared_ptr<State> state);
    std::shared_ptr<State> state_;
};

// The engine: the pipelines of one pipeline file, running on threads of their own.
class Engine {
public:
    // Loads and checks the file, loads the plugins, starts every pipeline (and the HTTP listener,
    // see Options::http). Throws Error naming every problem; nothing keeps running then.
    explicit Engine(const std::string& pipeline_file, const Options& options = {});
    // Stops, as stop() does.
    ~Engine();
    Engine(const Engine&) = delete;
    Engine& operator=(const Engine&) = delete;

    // A pipeline by its name in the file; throws Error naming the pipelines there are.
    Pipeline& pipeline(std::string_view name);
    // The pipelines' names, in file order.
    std::vector<std::string> pipelines() const;
    // The HTTP listener's port (the bound one when http_listen asks for port 0); 0 without one.
    int http_port() const noexcept;
    // Stops accepting (publishes from then on answer Reason::stopping), waits for publishes under
    // way, hands the relay's batch back, flushes Kafka and stops the plugins, each pipeline within
    // its shutdown_timeout. Idempotent; the Pipeline references stay valid.
    void stop();

    // The library's version, "1.0.0"-like (the project's, not the API's).
    static const char* version() noexcept;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace spillway::embed
