// spillway/testkit/host.hpp — a small stand-alone host for testing a plugin through the C ABI.
//
// It loads a plugin .so (dlopen RTLD_NOW|RTLD_LOCAL, like the engine), serves sw_host_api from a
// plain key/value map (option defaults applied, values parsed by type), and records logs, errors
// and metrics so tests can assert on them. The conformance suites are built on it, and plugin
// authors can use it for their own tests without the engine.
#ifndef SPILLWAY_TESTKIT_HOST_HPP
#define SPILLWAY_TESTKIT_HOST_HPP

#include <spillway/plugin.h>

#include <atomic>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace spillway::testkit {

// A loaded plugin library; stays loaded for the object's lifetime (outlive every instance).
class Plugin {
public:
    explicit Plugin(const std::string& path);
    ~Plugin();
    Plugin(const Plugin&) = delete;
    Plugin& operator=(const Plugin&) = delete;

    const sw_plugin_descriptor& descriptor() const { return *descriptor_; }
    const std::string& path() const { return path_; }
    const sw_option* option(const std::string& name) const;

private:
    std::string path_;
    void* handle_ = nullptr;
    const sw_plugin_descriptor* descriptor_ = nullptr;
};

// The built plugin `name` (e.g. "sqlite"): $SPILLWAY_PLUGIN_DIR, else the build's plugin folder.
std::string plugin_file(const std::string& name);

// Configuration for one instance: scalar values as TOML would spell them ("\"2s\"", "10",
// "true"; bare text such as /tmp/x is taken as a string too), lists separately.
struct Config {
    std::map<std::string, std::string> values;
    std::map<std::string, std::vector<std::string>> lists;

    Config() = default;
    Config(std::initializer_list<std::pair<const std::string, std::string>> init) : values(init) {}
    Config& set(const std::string& key, std::string value) {
        values[key] = std::move(value);
        return *this;
    }
    Config& set_list(const std::string& key, std::vector<std::string> items) {
        lists[key] = std::move(items);
        return *this;
    }
};

struct LogLine {
    sw_log_level level;
    std::string message;
};

// One sw_host_ctx: the host side of one instance.
class HostContext {
public:
    HostContext(const Plugin& plugin, Config config, std::string instance_name = "test.instance",
                std::string environment = "testing");
    HostContext(const HostContext&) = delete;
    HostContext& operator=(const HostContext&) = delete;

    static const sw_host_api* api();
    sw_host_ctx* ctx() { return reinterpret_cast<sw_host_ctx*>(this); }
    static HostContext& from(sw_host_ctx* ctx) { return *reinterpret_cast<HostContext*>(ctx); }

    // What the plugin reported (thread-safe snapshots).
    std::string last_error() const;
    std::vector<std::pair<std::string, std::string>> config_errors() const;  // key, message
    std::vector<LogLine> logs() const;
    size_t count_logs(sw_log_level level, const std::string& needle = "") const;
    double metric(const std::string& name, const std::string& labels = "") const;  // 0 if never set

    // Used by the C callbacks.
    const Plugin& plugin;
    Config config;
    std::string instance_name;
    std::string environment;
    mutable std::mutex mutex;
    std::string error;
    std::vector<std::pair<std::string, std::string>> key_errors;
    std::vector<LogLine> log_lines;
    std::map<std::string, double> metrics;  // "name{labels}" -> value (sum of observations for histograms)
    std::deque<std::string> scratch;        // strings handed to the plugin stay alive (and in place) here
    // Added to the wall clock the plugin reads (now_unix_us): a host whose clock is off, as
    // engines on several hosts are from each other. The monotonic clock is left alone.
    std::atomic<int64_t> wall_clock_skew_us{0};
};

// An instance created through the plugin's vtable; stop+destroy on destruction.
template <class VTable>
class Instance {
public:
    Instance(const Plugin& plugin, Config config, bool start_it = true, std::string environment = "testing")
        : host_(std::make_unique<HostContext>(plugin, std::move(config), "test.instance", std::move(environment))),
          vt_(static_cast<const VTable*>(plugin.descriptor().vtable)) {
        const sw_status st = vt_->create(HostContext::api(), host_->ctx(), &self_);
        if (st != SW_OK || !self_) throw std::runtime_error("create failed (" + std::to_string(st) + "): " + host_->last_error());
        if (start_it) start();
    }
    ~Instance() {
        if (self_) {
            if (started_) vt_->stop(self_, 5000);
            vt_->destroy(self_);
        }
    }
    Instance(const Instance&) = delete;
    Instance& operator=(const Instance&) = delete;

    void start() {
        const sw_status st = vt_->start(self_);
        if (st != SW_OK) throw std::runtime_error("start failed (" + std::to_string(st) + "): " + host_->last_error());
        started_ = true;
    }
    sw_status stop(int64_t timeout_ms = 5000) {
        started_ = false;
        return vt_->stop(self_, timeout_ms);
    }

    sw_instance* get() const { return self_; }
    const VTable& vt() const { return *vt_; }
    HostContext& host() { return *host_; }

private:
    std::unique_ptr<HostContext> host_;
    const VTable* vt_;
    sw_instance* self_ = nullptr;
    bool started_ = false;
};

using SinkInstance = Instance<sw_sink_vtable>;
using StoreInstance = Instance<sw_store_vtable>;
using NotifierInstance = Instance<sw_notifier_vtable>;
using SchedulerInstance = Instance<sw_scheduler_vtable>;
using TransformInstance = Instance<sw_transform_vtable>;

// Applies the option table as the engine does before a plugin sees its values: unknown keys
// (unless the plugin declares SW_PLUGIN_OPEN_OPTIONS), values of the wrong type, a malformed
// duration, a required option missing, each recorded in config_errors() naming the key.
sw_status check_options(const Plugin& plugin, HostContext& host);
// check_options, then the plugin's validate (or create+destroy when it has none).
sw_status validate(const Plugin& plugin, HostContext& host);

}  // namespace spillway::testkit

#endif
