// A pipeline's transforms, run in the order the pipeline lists them, immediately before each send
// to the sink (the SinkSupervisor calls them, so the direct path, the relay and its trials all pass
// through). The store keeps every event as it was accepted; what a transform makes of it exists only
// for the send, which is why transforms must be pure: a retried event must become the same record.
#pragma once

#include "engine/observe/log.hpp"
#include "engine/pipeline/shared.hpp"
#include "engine/plugin/ports.hpp"

#include <memory>
#include <span>
#include <vector>

namespace spillway::pipeline {

class TransformChain {
public:
    TransformChain(Shared& shared, std::vector<plugin::TransformPort> transforms);
    bool empty() const { return transforms_.empty(); }

    // The events of one send after every transform: those that go on to the sink, and where each
    // came from. Keeps the plugins' batches (the events' spans point into them) until it goes.
    class Applied {
    public:
        Applied() = default;
        Applied(Applied&&) = default;
        Applied& operator=(Applied&&) = delete;
        ~Applied();
        std::span<const sw_event> events() const { return stages_.empty() ? std::span<const sw_event>{} : stages_.back(); }
        // from()[j]: the index, in the batch given to apply, of events()[j].
        const std::vector<size_t>& from() const { return from_; }

    private:
        friend class TransformChain;
        struct Held {
            const plugin::TransformPort* port;
            sw_batch batch;
        };
        std::vector<Held> held_;
        std::vector<std::vector<sw_event>> stages_;
        std::vector<size_t> from_;
    };

    // Runs the chain over `events`. Fills results[i] of every event that goes no further: OK with
    // SW_RESULT_DROPPED, REJECT with the transform's reason, or RETRY when a transform call failed
    // (then nothing goes on); the caller sends the rest and fills theirs.
    Applied apply(std::span<const sw_event> events, std::span<sw_result> results) const;

private:
    void fail_all(const plugin::TransformPort& t, const std::string& why, const std::vector<size_t>& from,
                  std::span<sw_result> results) const;

    Shared& s_;
    std::vector<plugin::TransformPort> transforms_;
    std::vector<observe::Labels> labels_;  // {pipeline, transform} per transform
    mutable observe::LogLimit dropped_log_{10};
};

}  // namespace spillway::pipeline
