// One pipeline: the publisher (direct-first with durable fallback, or outbox-first) and the relay
// that drains the outbox, over a sink, a store, a notifier and a scheduler.
#pragma once

#include "engine/pipeline/event.hpp"
#include "engine/pipeline/publisher.hpp"
#include "engine/pipeline/relay.hpp"
#include "engine/pipeline/shared.hpp"
#include "engine/pipeline/sink_supervisor.hpp"
#include "engine/plugin/instance.hpp"
#include "engine/plugin/ports.hpp"

#include <mutex>
#include <string>
#include <vector>

namespace spillway::pipeline {

// What an operator sees of a pipeline (admin API, `spillway status`).
struct Status {
    std::string name;
    std::string mode;
    std::string circuit;
    int64_t pending = -1, leased = -1, dead = -1, oldest_pending_age_ms = -1;  // -1: store unreachable
    int64_t poll_interval_ms = 0;
    uint64_t direct = 0, outbox = 0, refused = 0, relayed = 0, dead_lettered = 0;
    std::string last_error;
    size_t sticky_keys = 0;
    bool paused = false;  // the relay, by the admin API
};

// The parts, wired: a Publisher (accept), a Relay (drain) and the SinkSupervisor they share, over
// the pipeline's Shared state. Following a publish means reading publisher.cpp; following the
// drain, relay.cpp; the sink's health, FATAL and rebuild, sink_supervisor.cpp.
class Pipeline {
public:
    Pipeline(const config::Pipeline& spec, plugin::Instance& sink, plugin::Instance& store,
             plugin::Instance& notifier, plugin::Instance& scheduler, const std::vector<plugin::Instance*>& transforms,
             observe::Metrics& metrics);
    ~Pipeline();
    Pipeline(const Pipeline&) = delete;
    Pipeline& operator=(const Pipeline&) = delete;

    // Holds the pipeline in the store (one direct-first engine per pipeline), seeds the sticky
    // keys from the store and starts the relay thread. Throws plugin::PluginError when another
    // engine runs the pipeline in a conflicting mode.
    void start();
    // Stops accepting, finishes or releases the relay's batch, flushes the sink.
    void stop();

    // Returns once each event is acknowledged by Kafka or durable in the outbox, or refused.
    Outcome publish(Event event);
    std::vector<Outcome> publish(std::vector<Event> events) { return publisher_.publish(std::move(events)); }

    Status status();
    // The store's JSON account of how engines share the pipeline (GET .../shards) into `out`;
    // false with the store's message in `out` when it cannot tell now.
    bool coordination(std::string& out);
    const std::string& name() const { return shared_.spec.name; }
    const config::Pipeline& spec() const { return shared_.spec; }
    Circuit::State circuit() const { return shared_.circuit.state(); }
    // Wakes the relay now (e.g. after a dead-letter replay).
    void wake();
    // The relay stops claiming (a drain ends after the batch it is sending) until resume();
    // publishing goes on. Returns whether it was paused before.
    bool pause();
    bool resume();

private:
    void hold();

    Shared shared_;
    plugin::StorePort store_;
    plugin::NotifierPort doorbell_;
    plugin::SchedulerPort scheduler_;
    SinkSupervisor sink_;
    Publisher publisher_;
    Relay relay_;
    bool running_ = false;
    std::mutex pause_mutex_;  // pause() and resume(): the flag and the relay_paused gauge agree
};

}  // namespace spillway::pipeline
