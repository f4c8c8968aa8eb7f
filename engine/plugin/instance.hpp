// One live plugin instance: the host context the plugin talks to (config, logs, errors, metrics)
// and the create/start/stop/destroy lifecycle, with every failure turned into a message that
// names the component, the plugin file and the plugin's own reason.
#pragma once

#include "engine/observe/metrics.hpp"
#include "engine/plugin/call_scope.hpp"
#include "engine/plugin/binding.hpp"

#include <spdlog/spdlog.h>

#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace spillway::plugin {

const char* status_name(int status);  // "OK", "RETRY", ...

class PluginError : public std::runtime_error {
public:
    PluginError(sw_status status, const std::string& message) : std::runtime_error(message), status_(status) {}
    sw_status status() const noexcept { return status_; }

private:
    sw_status status_;
};

// The host side of one instance; its address is the sw_host_ctx the plugin holds.
class HostContext {
public:
    HostContext(const Binding& binding, observe::Metrics* metrics);
    HostContext(const HostContext&) = delete;
    HostContext& operator=(const HostContext&) = delete;

    static const sw_host_api* api();
    sw_host_ctx* ctx() { return reinterpret_cast<sw_host_ctx*>(this); }
    static HostContext& from(sw_host_ctx* c) { return *reinterpret_cast<HostContext*>(c); }

    // The message the plugin set for its last non-OK status ("" if none), then forgotten.
    std::string take_error();
    // Keys the plugin blamed, as diagnostics with the key's file:line:col.
    std::vector<config::Diagnostic> take_config_errors();

    const Binding& binding;
    const std::string id;  // "store.outbox"
    observe::Metrics* metrics;
    std::shared_ptr<spdlog::logger> log;

    // Used by the C callbacks. Errors are kept per calling thread: a thread-safe plugin may fail
    // two calls at once, and each caller must read its own reason.
    std::mutex mutex;
    std::map<std::thread::id, std::string> errors;
    std::vector<config::Diagnostic> key_errors;
};

// Asks the plugin to check its configuration beyond the option table (no side effects).
std::vector<config::Diagnostic> validate_binding(const Binding& binding);

class Instance {
public:
    // Calls create; throws PluginError naming the component and plugin file on failure.
    Instance(const Binding& binding, observe::Metrics* metrics);
    ~Instance();
    Instance(const Instance&) = delete;
    Instance& operator=(const Instance&) = delete;

    void start();                       // throws PluginError
    sw_status stop(int64_t timeout_ms); // idempotent
    sw_status health(sw_health& out);

    // The live plugin instance, held for the length of one or a few calls: rebuild() waits until
    // no Use is held. Each one names the generation it saw, so that of several callers that
    // all saw the same instance fail, only the first rebuilds it.
    class Use {
    public:
        explicit Use(const Instance& i) : lock_(i.life_), self_(i.self_), generation_(i.generation_) {}
        sw_instance* get() const { return self_; }
        uint64_t generation() const { return generation_; }

    private:
        std::shared_lock<std::shared_mutex> lock_;
        sw_instance* self_;
        uint64_t generation_;
    };
    Use use() const { return Use(*this); }

    // Replaces an instance that reported FATAL: creates and starts a fresh one, switches every
    // later Use to it, then stops and destroys the old one. Does nothing when `seen` is no longer
    // the current generation (another caller rebuilt it). Throws PluginError, keeping the old
    // instance, when the fresh one cannot be created or started.
    void rebuild(uint64_t seen, int64_t stop_timeout_ms);

    uint32_t kind() const { return binding_.library->kind; }
    const std::string& id() const { return id_; }
    sw_instance* get() const { return self_; }  // for instances that are never rebuilt
    HostContext& host() { return *host_; }
    const Binding& binding() const { return binding_; }
    // The slots every kind has (create, start, stop, destroy, health).
    const sw_vtable_common& common() const {
        return *static_cast<const sw_vtable_common*>(binding_.library->descriptor->vtable);
    }
    template <class VTable>
    const VTable& vt() const {
        return *static_cast<const VTable*>(binding_.library->descriptor->vtable);
    }
    // "RETRY: <the plugin's message>", for logs and results.
    std::string describe(sw_status status);
    // True when the plugin's vtable has the slot at `offset` (struct_size covers it and it is set).
    bool has_slot(size_t offset) const;
    // One call into the plugin, for as long as it is in scope: marks this thread as inside `slot`
    // of this instance (crash reports) and, for a plugin that does not declare
    // SW_PLUGIN_THREAD_SAFE, holds the instance's lock, so that the host calls it from one thread
    // at a time as plugin.h promises. notifier.interrupt is exempt: it must reach a blocked wait.
    class Call {
    public:
        Call(const Instance& i, const char* slot);
        Call(const Call&) = delete;
        Call& operator=(const Call&) = delete;

    private:
        std::unique_lock<std::recursive_mutex> lock_;
        CallScope scope_;
    };
    Call call(const char* slot) const { return Call(*this, slot); }
    bool serialized() const { return serialized_; }

private:
    const Binding& binding_;
    std::string id_;
    std::string label_;  // "sink.kafka (kafka plugin, /path/spillway-kafka.so)"
    std::unique_ptr<HostContext> host_;
    sw_instance* create_instance();
    void start_instance(sw_instance* self);

    sw_instance* self_ = nullptr;
    bool started_ = false;
    mutable std::shared_mutex life_;  // shared by each Use, exclusive while rebuilding; taken before serial_
    const bool serialized_;           // the plugin is not thread safe: calls take serial_
    mutable std::recursive_mutex serial_;
    uint64_t generation_ = 0;
};

}  // namespace spillway::plugin
