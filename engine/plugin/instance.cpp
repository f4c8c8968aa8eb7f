#include "engine/plugin/instance.hpp"

#include "engine/observe/clock.hpp"
#include "engine/observe/log.hpp"

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstring>

namespace spillway::plugin {

const char* status_name(int status) {
    switch (status) {
        case SW_OK: return "OK";
        case SW_RETRY: return "RETRY";
        case SW_REJECT: return "REJECT";
        case SW_FATAL: return "FATAL";
        case SW_INVALID_CONFIG: return "INVALID_CONFIG";
        case SW_UNSUPPORTED: return "UNSUPPORTED";
        case SW_FULL: return "FULL";
        default: return "UNKNOWN_STATUS";
    }
}

HostContext::HostContext(const Binding& b, observe::Metrics* m)
    : binding(b), id(b.id()), metrics(m), log(observe::logger(id)) {}

std::string HostContext::take_error() {
    std::lock_guard lock(mutex);
    auto it = errors.find(std::this_thread::get_id());
    if (it == errors.end()) return {};
    std::string msg = std::move(it->second);
    errors.erase(it);
    return msg;
}

std::vector<config::Diagnostic> HostContext::take_config_errors() {
    std::lock_guard lock(mutex);
    return std::exchange(key_errors, {});
}

namespace {

HostContext& H(sw_host_ctx* c) { return HostContext::from(c); }

const Option* find_option(sw_host_ctx* c, const char* key) {
    if (!key) return nullptr;
    const auto& opts = H(c).binding.options;
    auto it = opts.find(key);
    return it == opts.end() ? nullptr : &it->second;
}

void cb_log(sw_host_ctx* c, sw_log_level level, const char* msg) {
    static const spdlog::level::level_enum map[] = {spdlog::level::trace, spdlog::level::debug, spdlog::level::info,
                                                    spdlog::level::warn, spdlog::level::err};
    const auto lvl = (level >= SW_LOG_TRACE && level <= SW_LOG_ERROR) ? map[level] : spdlog::level::info;
    H(c).log->log(lvl, "{}", msg ? msg : "");
}
void cb_set_error(sw_host_ctx* c, const char* msg) {
    std::lock_guard lock(H(c).mutex);
    H(c).errors[std::this_thread::get_id()] = msg ? msg : "";
}
void cb_config_error(sw_host_ctx* c, const char* key, const char* msg) {
    HostContext& h = H(c);
    const std::string k = key ? key : "";
    std::lock_guard lock(h.mutex);
    h.key_errors.push_back({h.binding.where(k), h.id + (k.empty() ? "" : "." + k), msg ? msg : ""});
    h.errors[std::this_thread::get_id()] = msg ? msg : "";
}
sw_status cb_string(sw_host_ctx* c, const char* key, const char** out) {
    const Option* o = find_option(c, key);
    if (!o) return SW_UNSUPPORTED;
    *out = o->text.c_str();  // the binding outlives the instance
    return SW_OK;
}
sw_status cb_int(sw_host_ctx* c, const char* key, int64_t* out) {
    const Option* o = find_option(c, key);
    if (!o) return SW_UNSUPPORTED;
    if (o->type != SW_OPT_INT && o->type != SW_OPT_DURATION) return SW_INVALID_CONFIG;
    *out = o->integer;
    return SW_OK;
}
sw_status cb_double(sw_host_ctx* c, const char* key, double* out) {
    const Option* o = find_option(c, key);
    if (!o) return SW_UNSUPPORTED;
    if (o->type == SW_OPT_INT) *out = static_cast<double>(o->integer);
    else if (o->type == SW_OPT_DOUBLE) *out = o->real;
    else return SW_INVALID_CONFIG;
    return SW_OK;
}
sw_status cb_bool(sw_host_ctx* c, const char* key, int* out) {
    const Option* o = find_option(c, key);
    if (!o) return SW_UNSUPPORTED;
    if (o->type != SW_OPT_BOOL) return SW_INVALID_CONFIG;
    *out = o->boolean ? 1 : 0;
    return SW_OK;
}
sw_status cb_duration(sw_host_ctx* c, const char* key, int64_t* out) {
    const Option* o = find_option(c, key);
    if (!o) return SW_UNSUPPORTED;
    if (o->type != SW_OPT_DURATION && o->type != SW_OPT_INT) return SW_INVALID_CONFIG;
    *out = o->integer;
    return SW_OK;
}
sw_status cb_list_size(sw_host_ctx* c, const char* key, size_t* out) {
    const Option* o = find_option(c, key);
    if (!o) return SW_UNSUPPORTED;
    if (o->type != SW_OPT_STRING_LIST) return SW_INVALID_CONFIG;
    *out = o->list.size();
    return SW_OK;
}
sw_status cb_list_item(sw_host_ctx* c, const char* key, size_t i, const char** out) {
    const Option* o = find_option(c, key);
    if (!o || o->type != SW_OPT_STRING_LIST || i >= o->list.size()) return SW_UNSUPPORTED;
    *out = o->list[i].c_str();
    return SW_OK;
}
void cb_each(sw_host_ctx* c, sw_config_visit_fn visit, void* user) {
    for (const auto& [k, o] : H(c).binding.options) visit(user, k.c_str(), o.text.c_str());
}

observe::Labels labels_for(sw_host_ctx* c, const char* labels) {
    observe::Labels l = observe::parse_labels(labels);
    l.emplace_back("component", H(c).id);
    std::sort(l.begin(), l.end());
    return l;
}
void cb_metric_add(sw_host_ctx* c, const char* name, const char* labels, double delta) {
    if (H(c).metrics && name) H(c).metrics->add(name, labels_for(c, labels), delta);
}
void cb_metric_set(sw_host_ctx* c, const char* name, const char* labels, double value) {
    if (H(c).metrics && name) H(c).metrics->set(name, labels_for(c, labels), value);
}
void cb_metric_observe(sw_host_ctx* c, const char* name, const char* labels, double value) {
    if (H(c).metrics && name) H(c).metrics->observe(name, labels_for(c, labels), value);
}
int64_t cb_now(sw_host_ctx*) { return observe::unix_us(); }
int64_t cb_mono(sw_host_ctx*) { return observe::monotonic_us(); }
const char* cb_instance_name(sw_host_ctx* c) { return H(c).id.c_str(); }
const char* cb_environment(sw_host_ctx* c) { return H(c).binding.environment.c_str(); }

const sw_host_api kHostApi = {sizeof(sw_host_api), SW_ABI_MAJOR, SW_ABI_MINOR, &cb_log, &cb_set_error,
                              &cb_config_error, &cb_string, &cb_int, &cb_double, &cb_bool, &cb_duration,
                              &cb_list_size, &cb_list_item, &cb_each, &cb_metric_add, &cb_metric_set,
                              &cb_metric_observe, &cb_now, &cb_mono, &cb_instance_name, &cb_environment, {}};

std::string where_text(const Binding& b) {
    return b.id() + " (" + b.library->name + " plugin, " + b.library->path + ")";
}

}  // namespace

// common() reads every kind's vtable through sw_vtable_common: their first members must match it.
#define SW_SAME_PREFIX(vtable)                                                                       \
    static_assert(offsetof(vtable, create) == offsetof(sw_vtable_common, create) &&                  \
                  offsetof(vtable, health) == offsetof(sw_vtable_common, health) &&                  \
                  sizeof(vtable) > sizeof(sw_vtable_common), #vtable " starts with the common slots")
SW_SAME_PREFIX(sw_sink_vtable);
SW_SAME_PREFIX(sw_store_vtable);
SW_SAME_PREFIX(sw_notifier_vtable);
SW_SAME_PREFIX(sw_scheduler_vtable);
#undef SW_SAME_PREFIX

const sw_host_api* HostContext::api() { return &kHostApi; }

std::vector<config::Diagnostic> validate_binding(const Binding& binding) {
    const auto& vt = *static_cast<const sw_vtable_common*>(binding.library->descriptor->vtable);
    if (!vt.validate) return {};
    HostContext host(binding, nullptr);
    const sw_status st = vt.validate(HostContext::api(), host.ctx());
    auto diags = host.take_config_errors();
    if (st != SW_OK && diags.empty()) {
        std::string msg = host.take_error();
        diags.push_back({binding.spec->where, binding.id(),
                         std::string("refused by the ") + binding.library->name + " plugin (" + status_name(st) + ")" +
                             (msg.empty() ? "" : ": " + msg)});
    }
    return diags;
}

Instance::Instance(const Binding& binding, observe::Metrics* metrics)
    : binding_(binding), id_(binding.id()), label_(where_text(binding)), host_(std::make_unique<HostContext>(binding, metrics)),
      serialized_(!binding.library->thread_safe()) {
    self_ = create_instance();
}

Instance::Call::Call(const Instance& i, const char* slot)
    : lock_(i.serialized_ && std::strcmp(slot, "interrupt") != 0 ? std::unique_lock<std::recursive_mutex>(i.serial_)
                                                                  : std::unique_lock<std::recursive_mutex>()),
      scope_(i.label_.c_str(), slot) {}

sw_instance* Instance::create_instance() {
    const auto& vt = common();
    auto scope = call("create");
    sw_instance* self = nullptr;
    const sw_status st = vt.create(HostContext::api(), host_->ctx(), &self);
    if (st != SW_OK || !self) {
        std::string msg = host_->take_error();
        for (const auto& d : host_->take_config_errors()) msg += (msg.empty() ? "" : "; ") + d.str();
        throw PluginError(st == SW_OK ? SW_FATAL : st,
                          where_text(binding_) + ": create failed (" + status_name(st) + ")" +
                              (msg.empty() ? std::string(st == SW_OK ? ": it returned no instance" : "") : ": " + msg));
    }
    return self;
}

Instance::~Instance() {
    if (!self_) return;
    if (started_) stop(binding_.spec ? 5000 : 0);
    auto scope = call("destroy");
    common().destroy(self_);
}

void Instance::start_instance(sw_instance* self) {
    auto scope = call("start");
    const sw_status st = common().start(self);
    if (st == SW_OK) return;
    // A key the plugin blamed at start (e.g. a url the server refuses for good) is a configuration
    // error: reported at the key's file:line:col, whatever status came with it.
    if (auto blamed = host_->take_config_errors(); !blamed.empty()) {
        host_->take_error();
        std::string msg;
        for (const auto& d : blamed) msg += (msg.empty() ? "" : "\n") + d.str();
        throw PluginError(SW_INVALID_CONFIG, msg);
    }
    throw PluginError(st, where_text(binding_) + ": start failed: " + describe(st));
}

void Instance::start() {
    start_instance(self_);
    started_ = true;
}

void Instance::rebuild(uint64_t seen, int64_t stop_timeout_ms) {
    // The fresh instance shares the host context: the plugin's logs, errors and metrics keep
    // their names, and a caller still reading the old one's error finds it.
    sw_instance* old = nullptr;
    {
        std::unique_lock lock(life_);
        if (seen != generation_) return;
        sw_instance* fresh = create_instance();
        try {
            start_instance(fresh);
        } catch (...) {
            auto scope = call("destroy");
            common().destroy(fresh);
            throw;
        }
        old = self_;
        self_ = fresh;
        ++generation_;
    }
    // No Use can reach the old instance any more.
    {
        auto scope = call("stop");
        common().stop(old, stop_timeout_ms);
    }
    auto scope = call("destroy");
    common().destroy(old);
}

sw_status Instance::stop(int64_t timeout_ms) {
    if (!started_) return SW_OK;
    started_ = false;
    std::unique_lock lock(life_);
    auto scope = call("stop");
    return common().stop(self_, timeout_ms);
}

sw_status Instance::health(sw_health& out) {
    std::memset(&out, 0, sizeof out);
    out.struct_size = sizeof out;
    const auto& vt = common();
    if (!vt.health) return SW_UNSUPPORTED;
    Use use(*this);
    auto scope = call("health");
    return vt.health(use.get(), &out);
}

std::string Instance::describe(sw_status status) {
    std::string msg = host_->take_error();
    return std::string(status_name(status)) + (msg.empty() ? "" : ": " + msg);
}

bool Instance::has_slot(size_t offset) const {
    const auto* vt = &common();
    if (vt->struct_size < offset + sizeof(void*)) return false;
    void* slot = nullptr;
    std::memcpy(&slot, reinterpret_cast<const char*>(vt) + offset, sizeof slot);
    return slot != nullptr;
}

}  // namespace spillway::plugin
