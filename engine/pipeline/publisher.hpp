// The accept side of a pipeline: direct to Kafka first (through the SinkSupervisor), and into the
// outbox — with the same event_id — whenever Kafka cannot confirm in time, the key already has
// events waiting (sticky keys), or the circuit is open; or, outbox-first, always the outbox.
#pragma once

#include "engine/observe/log.hpp"
#include "engine/pipeline/event.hpp"
#include "engine/pipeline/shared.hpp"
#include "engine/pipeline/sink_supervisor.hpp"
#include "engine/plugin/ports.hpp"

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <string>
#include <vector>

namespace spillway::pipeline {

// What a publish call leaves behind: its counters, metrics (publish_total, publish_latency_seconds,
// delivery_age_seconds) and per-event debug lines; `events[i]` gave `outcomes[i]` (its type, for
// the optional event_type label). A free function so the bench can time it alone (the
// bookkeeping's share of a batched call).
void record_publish(Shared& s, const std::vector<Event>& events, const std::vector<Outcome>& outcomes,
                    int64_t started_us);

class Publisher {
public:
    Publisher(Shared& shared, SinkSupervisor& sink, plugin::StorePort store, plugin::NotifierPort doorbell);

    // Returns once each event is acknowledged by Kafka or durable in the outbox, or refused.
    std::vector<Outcome> publish(std::vector<Event> events);

    void open() { accepting_ = true; }
    // Refuses new calls and waits up to `timeout_ms` for those under way (they end accepted or
    // refused) before the sink and the store can be stopped under them.
    void close(int64_t timeout_ms);

private:
    void prepare(Event& e, int64_t accepted_us);
    // Fills out[i] for an event the pipeline refuses as it is; false for a valid one.
    bool refuse_invalid(const Event& e, Outcome& out) const;
    void publish_direct(std::vector<Event>& events, std::vector<Outcome>& out);
    // coordination = "shards": asks the store once which keys of events[direct] have pending rows
    // (any engine's). Their events move to `spill` (StickyDb); if the store cannot answer, the keyed
    // ones are refused (Unavailable). Keyless events stay in `direct`.
    void probe_pending_keys(const std::vector<Event>& events, std::vector<size_t>& direct, std::vector<size_t>& spill,
                            std::vector<Reason>& spill_reason, std::vector<Outcome>& out);
    // Appends events[pick] in one transaction; each accepted one gets path Outbox and reasons[i]
    // (and, after a failed direct send, its reason in the message).
    void append(std::vector<Event>& events, const std::vector<size_t>& pick, const std::vector<Reason>& reasons,
                const std::vector<std::string>& direct_errors, std::vector<Outcome>& out);

    Shared& s_;
    SinkSupervisor& sink_;
    plugin::StorePort store_;
    plugin::NotifierPort doorbell_;
    observe::LogLimit rejected_log_{10};  // a line per rejected event, at most 10 a second

    std::atomic<bool> accepting_{false};
    std::atomic<int> publishing_{0};  // publish() calls under way
    std::mutex publishing_mutex_;
    std::condition_variable published_cv_;
};

}  // namespace spillway::pipeline
