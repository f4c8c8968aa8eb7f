// The testkit's stand-alone host: sw_host_api over a key/value map.
#include <spillway/detail/duration.hpp>
#include <spillway/detail/option_type.hpp>
#include <spillway/testkit/host.hpp>

#include <dlfcn.h>

#include <chrono>
#include <cstdlib>
#include <sstream>
#include <cstring>
#include <iterator>

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
    const sw_option* family = nullptr;  // as the engine: an exact row wins over a family's
    for (size_t i = 0; i < descriptor_->n_options; ++i) {
        const sw_option& o = descriptor_->options[i];
        if (!sw_option_matches(o.name, name.c_str())) continue;
        if (name == o.name) return &o;
        family = &o;
    }
    return family;
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

// A configured value as TOML spells it: "text" (a string), true/false, an integer, a number.
// Anything else is bare text, taken as a string as earlier testkits did ({"path", "/tmp/x"}).
struct Spelled {
    enum Kind { String, Integer, Number, Boolean, Bare } kind;
    std::string text;  // a string's content, unquoted; otherwise the spelling
};

Spelled spelled(const std::string& v) {
    if (v.size() >= 2 && v.front() == '"' && v.back() == '"') {
        std::string s;
        for (size_t i = 1; i + 1 < v.size(); ++i) {
            if (v[i] == '\\' && i + 2 < v.size()) ++i;  // \" and \\ as TOML's basic strings
            s += v[i];
        }
        return {Spelled::String, s};
    }
    if (v == "true" || v == "false") return {Spelled::Boolean, v};
    if (!v.empty()) {
        char* end = nullptr;
        (void)std::strtoll(v.c_str(), &end, 10);
        if (!*end) return {Spelled::Integer, v};
        (void)std::strtod(v.c_str(), &end);
        if (!*end && v.find_first_of("0123456789") != std::string::npos) return {Spelled::Number, v};
    }
    return {Spelled::Bare, v};
}

const char* kind_label(Spelled::Kind k) {
    switch (k) {
        case Spelled::String: return "a string";
        case Spelled::Integer: return "an integer";
        case Spelled::Number: return "a number";
        case Spelled::Boolean: return "a boolean";
        default: return "bare text";
    }
}

// The value of a scalar option: the configured one (unquoted), else the option's default.
const std::string* raw(sw_host_ctx* ctx, const char* key) {
    HostContext& h = H(ctx);
    std::lock_guard lock(h.mutex);
    if (auto it = h.config.values.find(key); it != h.config.values.end()) {
        h.scratch.push_back(spelled(it->second).text);
        return &h.scratch.back();
    }
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

namespace {

const char* type_label(uint32_t t) { return spillway::detail::option_type_label(t); }

// Why `value` does not fit option `o`, as the engine would say it, or "".
std::string misfit(const sw_option& o, const std::string& value) {
    const Spelled v = spelled(value);
    const bool text = v.kind == Spelled::String || v.kind == Spelled::Bare;
    switch (o.type) {
        case SW_OPT_STRING:
            if (text) return {};
            break;
        case SW_OPT_INT:
            if (v.kind == Spelled::Integer) return {};
            break;
        case SW_OPT_DOUBLE:
            if (v.kind == Spelled::Integer || v.kind == Spelled::Number) return {};
            break;
        case SW_OPT_BOOL:
            if (v.kind == Spelled::Boolean) return {};
            break;
        case SW_OPT_DURATION:
            if (v.kind == Spelled::Integer && v.text[0] != '-') return {};
            if (text) {
                if (spillway::detail::parse_duration_ms(v.text)) return {};
                return "bad duration \"" + v.text + "\"; write a number with ms, s, m or h, e.g. \"250ms\", \"2s\"";
            }
            break;
        case SW_OPT_STRING_LIST:
            break;
    }
    return std::string("expected ") + type_label(o.type) + ", got " + kind_label(v.kind);
}

}  // namespace

sw_status check_options(const Plugin& plugin, HostContext& host) {
    const sw_plugin_descriptor& d = plugin.descriptor();
    const bool open = d.flags & SW_PLUGIN_OPEN_OPTIONS;
    std::vector<std::pair<std::string, std::string>> problems;
    const auto unknown = [&](const std::string& key) {
        std::string known;
        for (size_t i = 0; i < d.n_options; ++i) known += (known.empty() ? "" : ", ") + std::string(d.options[i].name);
        static const char* const kinds[] = {"", "sink", "store", "notifier", "scheduler", "transform"};
        const char* kind = d.kind < std::size(kinds) ? kinds[d.kind] : "";
        problems.emplace_back(key, "unknown option for " + std::string(kind) + " plugin '" + std::string(d.name) + "'" +
                                       (known.empty() ? " (it takes none)" : " (it takes: " + known + ")"));
    };
    for (const auto& [key, value] : host.config.values) {
        const sw_option* o = plugin.option(key);
        if (!o) {
            if (!open) unknown(key);
            continue;
        }
        if (std::string why = misfit(*o, value); !why.empty()) problems.emplace_back(key, why);
    }
    for (const auto& [key, items] : host.config.lists) {
        const sw_option* o = plugin.option(key);
        if (!o) {
            if (!open) unknown(key);
        } else if (o->type != SW_OPT_STRING_LIST) {
            problems.emplace_back(key, std::string("expected ") + type_label(o->type) + ", got a list");
        }
    }
    for (size_t i = 0; i < d.n_options; ++i) {
        const sw_option& o = d.options[i];
        if (!(o.flags & SW_OPT_REQUIRED) || host.config.values.count(o.name) || host.config.lists.count(o.name)) continue;
        problems.emplace_back(o.name, std::string("missing required option (") + type_label(o.type) +
                                          (o.description ? "): " + std::string(o.description) : ")"));
    }
    if (problems.empty()) return SW_OK;
    std::lock_guard lock(host.mutex);
    for (auto& p : problems) host.key_errors.push_back(p);
    host.error = problems.front().first + ": " + problems.front().second;
    return SW_INVALID_CONFIG;
}

sw_status validate(const Plugin& plugin, HostContext& host) {
    // The option table first, as the engine applies it before the plugin sees the values.
    if (const sw_status st = check_options(plugin, host); st != SW_OK) return st;
    // Every vtable begins with the common slots, so the sink layout serves to reach them.
    const auto* vt = static_cast<const sw_sink_vtable*>(plugin.descriptor().vtable);
    if (vt->validate) return vt->validate(HostContext::api(), host.ctx());
    sw_instance* self = nullptr;
    const sw_status st = vt->create(HostContext::api(), host.ctx(), &self);
    if (self) vt->destroy(self);
    return st;
}

}  // namespace spillway::testkit
