// The testkit's stand-alone host: sw_host_api over a key/value map.
#include <spillway/detail/duration.hpp>
#include <spillway/testkit/host.hpp>

#include <dlfcn.h>

#include <chrono>
#include <cstdlib>
#include <sstream>
#include <cstring>

namespace spillway::testkit {

Plugin::Plugin(const std::string& path) : path_(path) {
    handle_ = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!handle_) throw std::runtime_error(path + ": " + dlerror());
    auto entry = reinterpret_cast<sw_plugin_entry_fn>(dlsym(handle_, SW_ENTRY_SYMBOL));
    if (!entry) throw std::runtime_error(path + ": no " SW_ENTRY_SYMBOL " symbol");
    descriptor_ = entry(SW_ABI_MAJOR, SW_ABI_MINOR);
    if (!descriptor_ || descriptor_->magic != SW_ABI_MAGIC || descriptor_->abi_major != SW_ABI_MAJOR)
        throw std::runtime_error(path + ": not a compatible Spillway plugin");
}

Plugin::~Plugin() {
    // Never dlclose: a plugin's threads or atexit handlers may still reference its code.
}

const sw_option* Plugin::option(const std::string& name) const {
    for (size_t i = 0; i < descriptor_->n_options; ++i)
        if (name == descriptor_->options[i].name) return &descriptor_->options[i];
    return nullptr;
}

std::string plugin_file(const std::string& name) {
    std::string dir;
    if (const char* env = std::getenv("SPILLWAY_PLUGIN_DIR"); env && *env) dir = env;
#ifdef SPILLWAY_BUILD_PLUGIN_DIR
    else dir = SPILLWAY_BUILD_PLUGIN_DIR;
#endif
    return dir + "/spillway-" + name + ".so";
}

HostContext::HostContext(const Plugin& p, Config c, std::string name, std::string env)
    : plugin(p), config(std::move(c)), instance_name(std::move(name)), environment(std::move(env)) {}

std::string HostContext::last_error() const {
    std::lock_guard lock(mutex);
    return error;
}
std::vector<std::pair<std::string, std::string>> HostContext::config_errors() const {
    std::lock_guard lock(mutex);
    return key_errors;
}
std::vector<LogLine> HostContext::logs() const {
    std::lock_guard lock(mutex);
    return log_lines;
}
size_t HostContext::count_logs(sw_log_level level, const std::string& needle) const {
    std::lock_guard lock(mutex);
    size_t n = 0;
    for (const auto& l : log_lines)
        if (l.level == level && l.message.find(needle) != std::string::npos) ++n;
    return n;
}
double HostContext::metric(const std::string& name, const std::string& labels) const {
    std::lock_guard lock(mutex);
    auto it = metrics.find(name + "{" + labels + "}");
    return it == metrics.end() ? 0.0 : it->second;
}

namespace {

HostContext& H(sw_host_ctx* ctx) { return HostContext::from(ctx); }

// The raw text of a scalar option: the configured value, else the option's default.
const std::string* raw(sw_host_ctx* ctx, const char* key) {
    HostContext& h = H(ctx);
    std::lock_guard lock(h.mutex);
    if (auto it = h.config.values.find(key); it != h.config.values.end()) return &it->second;
    if (const sw_option* o = h.plugin.option(key); o && o->default_value) {
        h.scratch.emplace_back(o->default_value);
        return &h.scratch.back();
    }
    return nullptr;
}

void log(sw_host_ctx* ctx, sw_log_level level, const char* msg) {
    std::lock_guard lock(H(ctx).mutex);
    H(ctx).log_lines.push_back({level, msg ? msg : ""});
}
void set_error(sw_host_ctx* ctx, const char* msg) {
    std::lock_guard lock(H(ctx).mutex);
    H(ctx).error = msg ? msg : "";
}
void config_error(sw_host_ctx* ctx, const char* key, const char* msg) {
    std::lock_guard lock(H(ctx).mutex);
    H(ctx).key_errors.emplace_back(key ? key : "", msg ? msg : "");
    H(ctx).error = msg ? msg : "";
}
sw_status config_string(sw_host_ctx* ctx, const char* key, const char** out) {
    const std::string* v = raw(ctx, key);
    if (!v) return SW_UNSUPPORTED;
    std::lock_guard lock(H(ctx).mutex);
    H(ctx).scratch.push_back(*v);  // a stable copy, alive until the context dies
    *out = H(ctx).scratch.back().c_str();
    return SW_OK;
}
sw_status config_int(sw_host_ctx* ctx, const char* key, int64_t* out) {
    const std::string* v = raw(ctx, key);
    if (!v) return SW_UNSUPPORTED;
    char* end = nullptr;
    const long long n = std::strtoll(v->c_str(), &end, 10);
    if (end == v->c_str() || *end) return SW_INVALID_CONFIG;
    *out = n;
    return SW_OK;
}
sw_status config_double(sw_host_ctx* ctx, const char* key, double* out) {
    const std::string* v = raw(ctx, key);
    if (!v) return SW_UNSUPPORTED;
    char* end = nullptr;
    const double d = std::strtod(v->c_str(), &end);
    if (end == v->c_str() || *end) return SW_INVALID_CONFIG;
    *out = d;
    return SW_OK;
}
sw_status config_bool(sw_host_ctx* ctx, const char* key, int* out) {
    const std::string* v = raw(ctx, key);
    if (!v) return SW_UNSUPPORTED;
    if (*v == "true") *out = 1;
    else if (*v == "false") *out = 0;
    else return SW_INVALID_CONFIG;
    return SW_OK;
}
sw_status config_duration_ms(sw_host_ctx* ctx, const char* key, int64_t* out) {
    const std::string* v = raw(ctx, key);
    if (!v) return SW_UNSUPPORTED;
    auto ms = spillway::detail::parse_duration_ms(*v);
    if (!ms) return SW_INVALID_CONFIG;
    *out = *ms;
    return SW_OK;
}
// The configured list, else the option's default ("a,b,c", as the engine splits it), kept in
// config.lists from the first look on.
std::map<std::string, std::vector<std::string>>::iterator list_of(HostContext& h, const char* key) {
    auto it = h.config.lists.find(key);
    if (it != h.config.lists.end()) return it;
    const sw_option* o = h.plugin.option(key);
    if (!o || o->type != SW_OPT_STRING_LIST || !o->default_value) return h.config.lists.end();
    std::vector<std::string> items;
    std::stringstream text(o->default_value);
    for (std::string item; std::getline(text, item, ',');)
        if (!item.empty()) items.push_back(item);
    return h.config.lists.emplace(key, std::move(items)).first;
}
sw_status config_list_size(sw_host_ctx* ctx, const char* key, size_t* out) {
    std::lock_guard lock(H(ctx).mutex);
    auto it = list_of(H(ctx), key);
    if (it == H(ctx).config.lists.end()) return SW_UNSUPPORTED;
    *out = it->second.size();
    return SW_OK;
}
sw_status config_list_item(sw_host_ctx* ctx, const char* key, size_t i, const char** out) {
    std::lock_guard lock(H(ctx).mutex);
    auto it = list_of(H(ctx), key);
    if (it == H(ctx).config.lists.end() || i >= it->second.size()) return SW_UNSUPPORTED;
    *out = it->second[i].c_str();
    return SW_OK;
}
void config_each(sw_host_ctx* ctx, sw_config_visit_fn visit, void* user) {
    std::map<std::string, std::string> copy;
    {
        std::lock_guard lock(H(ctx).mutex);
        copy = H(ctx).config.values;
    }
    for (const auto& [k, v] : copy) visit(user, k.c_str(), v.c_str());
}
std::string metric_key(const char* name, const char* labels) {
    return std::string(name) + "{" + (labels ? labels : "") + "}";
}
void metric_add(sw_host_ctx* ctx, const char* name, const char* labels, double delta) {
    std::lock_guard lock(H(ctx).mutex);
    H(ctx).metrics[metric_key(name, labels)] += delta;
}
void metric_set(sw_host_ctx* ctx, const char* name, const char* labels, double value) {
    std::lock_guard lock(H(ctx).mutex);
    H(ctx).metrics[metric_key(name, labels)] = value;
}
void metric_observe(sw_host_ctx* ctx, const char* name, const char* labels, double value) {
    std::lock_guard lock(H(ctx).mutex);
    H(ctx).metrics[metric_key(name, labels)] += value;
    H(ctx).metrics[metric_key(name, labels) + "_count"] += 1;
}
int64_t now_unix_us(sw_host_ctx* ctx) {
    return std::chrono::duration_cast<std::chrono::microseconds>(
               std::chrono::system_clock::now().time_since_epoch()).count() +
           H(ctx).wall_clock_skew_us.load();
}
int64_t monotonic_us(sw_host_ctx*) {
    return std::chrono::duration_cast<std::chrono::microseconds>(
               std::chrono::steady_clock::now().time_since_epoch()).count();
}
const char* instance_name(sw_host_ctx* ctx) { return H(ctx).instance_name.c_str(); }
const char* environment(sw_host_ctx* ctx) { return H(ctx).environment.c_str(); }

const sw_host_api kApi = {
    sizeof(sw_host_api), SW_ABI_MAJOR, SW_ABI_MINOR, &log, &set_error, &config_error,
    &config_string, &config_int, &config_double, &config_bool, &config_duration_ms,
    &config_list_size, &config_list_item, &config_each, &metric_add, &metric_set, &metric_observe,
    &now_unix_us, &monotonic_us, &instance_name, &environment, {}};

}  // namespace

const sw_host_api* HostContext::api() { return &kApi; }

sw_status validate(const Plugin& plugin, HostContext& host) {
    // Every vtable begins with the common slots, so the sink layout serves to reach them.
    const auto* vt = static_cast<const sw_sink_vtable*>(plugin.descriptor().vtable);
    if (vt->validate) return vt->validate(HostContext::api(), host.ctx());
    sw_instance* self = nullptr;
    const sw_status st = vt->create(HostContext::api(), host.ctx(), &self);
    if (self) vt->destroy(self);
    return st;
}

}  // namespace spillway::testkit
