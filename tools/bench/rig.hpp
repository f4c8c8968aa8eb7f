// An engine running in the bench process over the real plugins, built from a TOML file written to
// a temp dir (as `spillway run` would read it), plus the ack tracker fed by the probe.
#pragma once

#include "context.hpp"

#include "engine/engine.hpp"

#include <spillway/test_support/temp_dir.hpp>

#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <unordered_map>

namespace spillway::bench {

struct RigOptions {
    std::string environment = "production";  // the adaptive scheduler's profile comes from it
    std::string engine_toml;                 // extra lines for [engine] (e.g. http_listen)
    std::string store_url;                   // PostgreSQL conninfo
    std::string notifier = "inproc";         // inproc | redis | pgnotify
    std::string notifier_toml;               // extra lines for [notifier.bell]
    std::string scheduler_toml;              // extra lines for [scheduler.poll]
    std::string sink_toml;                   // extra librdkafka properties for [sink.kafka]
    std::string pipeline_toml;               // extra lines for every [pipeline.pN]
    std::map<int, std::string> pipeline_only_toml;  // extra lines for one [pipeline.pN], by N
    std::string tables_toml;                 // whole tables after the rest (e.g. [transform.x])
    std::string mode = "direct-first";
    int pipelines = 1;                       // named p0, p1, ...
    std::string topic;
    bool probe = true;                       // load the ack probe into the producer
    std::string log_level = "error";
};

// Options for an engine with a store and a topic of its own: a fresh database named `database`, a
// fresh topic from `topic_stem`, the rest as RigOptions has it.
RigOptions own_store_and_topic(Context& ctx, const std::string& database, const std::string& topic_stem);
// `o`'s doorbell: the bench's Redis server.
void ring_redis(RigOptions& o, Context& ctx);

// The pipeline file for `o`, with Kafka at `bootstraps`.
std::string rig_toml(const RigOptions& o, const std::string& bootstraps);

class Rig {
public:
    Rig(Context& ctx, RigOptions options);
    ~Rig();
    Engine& engine() { return *engine_; }
    pipeline::Pipeline& pipeline(int i = 0) { return *engine_->pipeline("p" + std::to_string(i)); }
    const RigOptions& options() const { return options_; }

private:
    RigOptions options_;
    test_support::TempDir dir_{"bench"};
    std::unique_ptr<Engine> engine_;
};

// Collects the probe's acknowledgements while alive: event_id -> steady-clock time.
class AckTracker {
public:
    AckTracker();
    ~AckTracker();
    AckTracker(const AckTracker&) = delete;
    AckTracker& operator=(const AckTracker&) = delete;

    // Waits until `event_id` was acknowledged; its ack time, or nullopt after `deadline`.
    std::optional<Clock::time_point> wait_for(const std::string& event_id, std::chrono::milliseconds deadline);
    // Waits until at least `n` acks arrived in total.
    bool wait_count(size_t n, std::chrono::milliseconds deadline);
    size_t count();
    std::vector<Clock::time_point> times();  // every ack time so far, in arrival order
    void clear();

private:
    static void on_ack(const char* id, size_t len, int64_t ns, void* self);
    std::mutex mutex_;
    std::condition_variable cv_;
    std::unordered_map<std::string, Clock::time_point> acks_;
    std::vector<Clock::time_point> order_;
    // What the waiter waits for: acks wake it only then, not 100,000 times in a drain (each wake
    // a context switch taken from the engine being measured).
    size_t wake_at_count_ = SIZE_MAX;
    std::string wake_on_id_;
};

}  // namespace spillway::bench
