// Typed ports: the host-side mirror of sdk.hpp. One class per plugin kind wraps an Instance and
// spells each slot once: its name for the crash reporter and the serialising lock (Instance::Call),
// its vtable, and for a sink the Use that keeps a rebuild from pulling the instance away mid-call.
// Callers read as `store.claim(...)`, never `vt<sw_store_vtable>().claim(x.get(), ...)`.
#pragma once

#include "engine/plugin/instance.hpp"

#include <span>
#include <string>
#include <type_traits>

namespace spillway::plugin {

// What every port shares: the instance, its id, and its last error message.
class Port {
public:
    explicit Port(Instance& instance) : i_(&instance) {}
    Instance& instance() const { return *i_; }
    const std::string& id() const { return i_->id(); }
    bool thread_safe() const { return i_->binding().library->thread_safe(); }
    // "RETRY: <the plugin's message>", taking the message.
    std::string describe(sw_status status) const { return i_->describe(status); }
    // Forgets the plugin's message for a failure the caller has nothing to say about.
    void forget_error() const { (void)i_->host().take_error(); }

protected:
    Instance* i_;
};

class SinkPort : public Port {
public:
    using Port::Port;
    struct Sent {
        sw_status status;
        uint64_t generation;  // of the instance that answered (see Instance::rebuild)
    };
    Sent send(std::span<const sw_event> events, std::span<sw_result> results, int64_t timeout_ms) const;
    sw_status flush(int64_t timeout_ms) const;
    sw_status health(sw_health& out) const { return i_->health(out); }
    void rebuild(uint64_t seen, int64_t stop_timeout_ms) const { i_->rebuild(seen, stop_timeout_ms); }
};

class StorePort : public Port {
public:
    using Port::Port;
    sw_status migrate() const;
    sw_status append(std::span<const sw_event> events, std::span<sw_result> results) const;
    sw_status claim(const std::string& pipeline, size_t limit, int64_t lease_ms, sw_batch& out) const;
    bool has_claim_next() const;
    sw_status claim_next(const sw_batch& prev, size_t limit, int64_t lease_ms, sw_batch& out) const;
    bool has_pending_among() const;
    // found[i] = 1 when the pipeline has a pending row of keys[i] (sizes equal).
    sw_status pending_among(const std::string& pipeline, std::span<const sw_bytes> keys, std::span<uint8_t> found) const;
    bool has_coordination() const;
    // The store's JSON account of how the pipeline is coordinated, into `out`.
    sw_status coordination(const std::string& pipeline, std::string& out) const;
    bool has_sink_health() const;
    sw_status sink_health(const std::string& pipeline, sw_health_state state) const;
    bool has_hold() const;
    sw_status hold(const std::string& pipeline, sw_hold_mode mode, const std::string& member) const;
    void release_batch(sw_batch& batch) const;
    sw_status complete(std::span<const int64_t> row_ids, std::span<const sw_result> results) const;
    sw_status release_leases(std::span<const int64_t> row_ids) const;
    sw_status stats(const std::string& pipeline, sw_store_stats& out) const;
    // `visit(sw_bytes key)` once per pending row.
    template <class Visit>
    sw_status pending_keys(const std::string& pipeline, Visit& visit) const {
        auto thunk = [](void* user, sw_bytes key) { (*static_cast<Visit*>(user))(key); };
        return pending_keys(pipeline, thunk, &visit);
    }
    sw_status list_dead(const std::string& pipeline, int64_t after_row_id, size_t limit, sw_batch& out) const;
    sw_status replay_dead(const std::string& pipeline, std::span<const sw_bytes> event_ids, int64_t& replayed) const;
    sw_status purge_dead(const std::string& pipeline, std::span<const sw_bytes> event_ids, int64_t& purged) const;

private:
    sw_status pending_keys(const std::string& pipeline, sw_key_visit_fn visit, void* user) const;
};

class NotifierPort : public Port {
public:
    using Port::Port;
    sw_status notify(const std::string& channel) const;
    // True when rung; false on timeout, interrupt or an unavailable doorbell (whose message is
    // dropped: it waited out the timeout, and the relay polls anyway).
    bool wait(const std::string& channel, int64_t timeout_ms) const;
    void interrupt() const;
};

class SchedulerPort : public Port {
public:
    using Port::Port;
    // The plugin's delay, or `fallback_ms` when it fails.
    int64_t next_delay(const sw_round& round, int64_t fallback_ms) const;
};

class TransformPort : public Port {
public:
    using Port::Port;
    // results[i] and out.events[i] for each event (sizes equal); out goes back through release_batch.
    sw_status apply(std::span<const sw_event> events, std::span<sw_result> results, sw_batch& out) const;
    void release_batch(sw_batch& batch) const;
};

}  // namespace spillway::plugin
