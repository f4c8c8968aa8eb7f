#include "rig.hpp"

#include "ack_probe.hpp"

#include <spillway/test_support/pipeline_toml.hpp>

#include <fstream>

namespace spillway::bench {

RigOptions own_store_and_topic(Context& ctx, const std::string& database, const std::string& topic_stem) {
    RigOptions o;
    o.store_url = ctx.database(database);
    o.topic = ctx.fresh_topic(topic_stem);
    return o;
}

void ring_redis(RigOptions& o, Context& ctx) {
    o.notifier = "redis";
    o.notifier_toml = "host = \"127.0.0.1\"\nport = " + std::to_string(ctx.redis().port()) + "\n";
}

std::string rig_toml(const RigOptions& o, const std::string& bootstraps) {
    test_support::PipelineToml toml(SPILLWAY_PLUGIN_DIR);
    toml.engine().set("log_level", o.log_level).add_lines(o.engine_toml);
    auto& sink = toml.kafka_sink(bootstraps);
    if (o.probe) sink.set("plugin.library.paths", spillway_bench_probe_path());
    for (const auto& [k, v] : extra_kafka_properties()) sink.set(k, v);
    sink.add_lines(o.sink_toml);
    toml.postgres_store(o.store_url);
    toml.notifier(o.notifier).add_lines(o.notifier_toml);
    toml.adaptive_scheduler().add_lines(o.scheduler_toml);
    for (int i = 0; i < o.pipelines; ++i) {
        auto& p = toml.pipeline("p" + std::to_string(i)).set("mode", o.mode).set("topic", o.topic).add_lines(o.pipeline_toml);
        if (auto only = o.pipeline_only_toml.find(i); only != o.pipeline_only_toml.end()) p.add_lines(only->second);
    }
    return toml.text() + (o.tables_toml.empty() ? "" : "\n" + o.tables_toml);
}

Rig::Rig(Context& ctx, RigOptions options) : options_(std::move(options)) {
    const std::string path = dir_.path() + "/pipeline.toml";
    std::ofstream(path) << rig_toml(options_, ctx.kafka().bootstraps());
    config::LoadOptions lo;
    lo.environment = options_.environment;
    engine_ = std::make_unique<Engine>(prepare(path, lo));
    engine_->start();
}

Rig::~Rig() {
    if (engine_) engine_->stop();
}

AckTracker::AckTracker() { spillway_bench_probe_set(&AckTracker::on_ack, this); }
AckTracker::~AckTracker() { spillway_bench_probe_set(nullptr, nullptr); }

void AckTracker::on_ack(const char* id, size_t len, int64_t ns, void* self) {
    auto* t = static_cast<AckTracker*>(self);
    const Clock::time_point when{std::chrono::duration_cast<Clock::duration>(std::chrono::nanoseconds(ns))};
    bool wake = false;
    {
        std::lock_guard lock(t->mutex_);
        std::string event_id(id, len);
        wake = t->order_.size() + 1 >= t->wake_at_count_ || (!t->wake_on_id_.empty() && event_id == t->wake_on_id_);
        t->acks_.emplace(std::move(event_id), when);
        t->order_.push_back(when);
    }
    if (wake) t->cv_.notify_all();
}

std::optional<Clock::time_point> AckTracker::wait_for(const std::string& event_id, std::chrono::milliseconds deadline) {
    std::unique_lock lock(mutex_);
    std::optional<Clock::time_point> at;
    wake_on_id_ = event_id;
    cv_.wait_for(lock, deadline, [&] {
        auto it = acks_.find(event_id);
        if (it != acks_.end()) at = it->second;
        return at.has_value();
    });
    wake_on_id_.clear();
    return at;
}

bool AckTracker::wait_count(size_t n, std::chrono::milliseconds deadline) {
    std::unique_lock lock(mutex_);
    wake_at_count_ = n;
    const bool got = cv_.wait_for(lock, deadline, [&] { return order_.size() >= n; });
    wake_at_count_ = SIZE_MAX;
    return got;
}

size_t AckTracker::count() {
    std::lock_guard lock(mutex_);
    return order_.size();
}

std::vector<Clock::time_point> AckTracker::times() {
    std::lock_guard lock(mutex_);
    return order_;
}

void AckTracker::clear() {
    std::lock_guard lock(mutex_);
    acks_.clear();
    order_.clear();
}

}  // namespace spillway::bench
