#include "engine/plugin/loader.hpp"

#include "engine/plugin/needed_libraries.hpp"

#include <boost/dll/runtime_symbol_info.hpp>
#include <boost/dll/shared_library.hpp>

#include <algorithm>
#include <cstddef>
#include <filesystem>
#include <mutex>

namespace spillway::plugin {

namespace fs = std::filesystem;

const char* kind_name(uint32_t kind) {
    switch (kind) {
        case SW_KIND_SINK: return "sink";
        case SW_KIND_STORE: return "store";
        case SW_KIND_NOTIFIER: return "notifier";
        case SW_KIND_SCHEDULER: return "scheduler";
        case SW_KIND_TRANSFORM: return "transform";
        default: return "unknown";
    }
}

uint32_t kind_from_name(const std::string& name) {
    for (uint32_t k = SW_KIND_SINK; k <= SW_KIND_TRANSFORM; ++k)
        if (name == kind_name(k)) return k;
    return 0;
}

const sw_option* Library::option(const std::string& key) const {
    const sw_option* family = nullptr;  // an exact row wins over a family's
    for (size_t i = 0; i < descriptor->n_options; ++i) {
        const sw_option& o = descriptor->options[i];
        if (!o.name || !sw_option_matches(o.name, key.c_str())) continue;
        if (key == o.name) return &o;
        family = &o;
    }
    return family;
}

namespace {

// Libraries are kept here, never destroyed: unloading code that a plugin thread or an atexit
// handler may still run is a crash waiting for shutdown.
std::vector<boost::dll::shared_library>& loaded_forever() {
    static auto* libs = new std::vector<boost::dll::shared_library>();
    return *libs;
}
std::mutex& loaded_mutex() {
    static auto* m = new std::mutex();
    return *m;
}

// The minor that brought each kind: an engine of an older minor does not know it.
uint16_t kind_minor(uint32_t kind) { return kind == SW_KIND_TRANSFORM ? 2 : 0; }

// The smallest vtable a plugin may hand over: the common slots plus the kind's own, as the minor
// that brought the kind had them.
size_t min_vtable_size(uint32_t kind) {
    switch (kind) {
        case SW_KIND_SINK: return offsetof(sw_sink_vtable, reserved);
        // 1.2 grew the store's vtable past 1.0's: its last 1.0 slot is the bound.
        case SW_KIND_STORE: return offsetof(sw_store_vtable, purge_dead) + sizeof(void*);
        case SW_KIND_NOTIFIER: return offsetof(sw_notifier_vtable, reserved);
        case SW_KIND_SCHEDULER: return offsetof(sw_scheduler_vtable, reserved);
        case SW_KIND_TRANSFORM: return offsetof(sw_transform_vtable, reserved);
        default: return 0;
    }
}

}  // namespace

std::string descriptor_problem(const sw_plugin_descriptor* d, uint16_t host_minor) {
    const std::string host = std::to_string(SW_ABI_MAJOR) + "." + std::to_string(host_minor);
    if (!d) return "sw_plugin_entry returned NULL (the plugin declined this host's ABI " + host + ")";
    if (d->magic != SW_ABI_MAGIC) {
        char buf[64];
        std::snprintf(buf, sizeof buf, "bad magic 0x%08x (expected 0x%08x)", d->magic, SW_ABI_MAGIC);
        return std::string(buf) + ": not a Spillway plugin descriptor";
    }
    if (d->struct_size < offsetof(sw_plugin_descriptor, reserved0))
        return "descriptor struct_size " + std::to_string(d->struct_size) + " is smaller than ABI 1.0's";
    if (d->abi_major != SW_ABI_MAJOR)
        return "built for ABI major " + std::to_string(d->abi_major) + ", this engine speaks major " +
               std::to_string(SW_ABI_MAJOR);
    if (d->abi_minor > host_minor)
        return "needs ABI " + std::to_string(d->abi_major) + "." + std::to_string(d->abi_minor) +
               ", newer than this engine's " + host;
    if (d->kind < SW_KIND_SINK || d->kind > SW_KIND_TRANSFORM)
        return "unknown plugin kind " + std::to_string(d->kind);
    // A kind is known from the minor that brought it: a plugin of it says it needs that minor.
    if (kind_minor(d->kind) > host_minor)
        return "unknown plugin kind " + std::to_string(d->kind) + " (" + kind_name(d->kind) + " plugins came with ABI " +
               std::to_string(SW_ABI_MAJOR) + "." + std::to_string(kind_minor(d->kind)) + "; this engine speaks " +
               host + ")";
    if (d->abi_minor < kind_minor(d->kind))
        return std::string(kind_name(d->kind)) + " plugins came with ABI " + std::to_string(SW_ABI_MAJOR) + "." +
               std::to_string(kind_minor(d->kind)) + ", but the descriptor says it needs only " +
               std::to_string(d->abi_major) + "." + std::to_string(d->abi_minor);
    if (!d->name || !*d->name) return "the descriptor has no name";
    if (!d->vtable) return "the descriptor has no vtable";
    const auto* common = static_cast<const sw_vtable_common*>(d->vtable);
    if (common->struct_size < min_vtable_size(d->kind))
        return std::string(kind_name(d->kind)) + " vtable struct_size " + std::to_string(common->struct_size) +
               " is smaller than ABI 1." + std::to_string(kind_minor(d->kind)) + "'s " +
               std::to_string(min_vtable_size(d->kind));
    if (!common->create || !common->destroy || !common->start || !common->stop)
        return "the vtable lacks create, start, stop or destroy";
    if (d->n_options && !d->options) return "the descriptor counts options but has no option table";
    for (size_t i = 0; i < d->n_options; ++i)
    {
        if (!d->options[i].name || d->options[i].type < SW_OPT_STRING || d->options[i].type > SW_OPT_STRING_LIST)
            return "option #" + std::to_string(i) + " has no name or an unknown type";
        const std::string name = d->options[i].name;
        if (name.size() >= 2 && name.compare(name.size() - 2, 2, ".*") == 0 &&
            ((d->options[i].flags & SW_OPT_REQUIRED) || d->options[i].default_value))
            return "option '" + name + "' names a family of keys: it cannot be required or have a default";
    }
    return {};
}

std::shared_ptr<const Library> load_library(const std::string& path, Refusal& why) {
    why = Refusal{path, {}};
    if (const std::string runtime = missing_sanitizer_runtime(path); !runtime.empty()) {
        why.reason = "built with a sanitizer: it needs " + runtime +
                     ", which must be the process's first library, and this engine was not built with it (loading it "
                     "would abort the engine); build the plugin without -fsanitize, or run an engine built the same way";
        return nullptr;
    }
    boost::dll::shared_library lib;
    try {
        lib.load(fs::absolute(path).string(),
                 boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local);
    } catch (const std::exception& e) {
        why.reason = std::string("cannot be loaded: ") + e.what();
        return nullptr;
    }
    // Once mapped, a library stays mapped, refused or not: its constructors may have started
    // something that unmapping would pull the code from under.
    struct KeepLoaded {
        boost::dll::shared_library& lib;
        ~KeepLoaded() {
            std::lock_guard lock(loaded_mutex());
            loaded_forever().push_back(std::move(lib));
        }
    } keep{lib};
    if (!lib.has(SW_ENTRY_SYMBOL)) {
        why.reason = "no " SW_ENTRY_SYMBOL " symbol (not a Spillway plugin, or built without the export macro)";
        return nullptr;
    }
    const sw_plugin_descriptor* d = nullptr;
    try {
        auto& entry = lib.get<const sw_plugin_descriptor*(uint16_t, uint16_t)>(SW_ENTRY_SYMBOL);
        d = entry(SW_ABI_MAJOR, SW_ABI_MINOR);
    } catch (const std::exception& e) {
        why.reason = std::string("sw_plugin_entry failed: ") + e.what();
        return nullptr;
    }
    if (std::string reason = descriptor_problem(d, SW_ABI_MINOR); !reason.empty()) {
        why.reason = reason;
        return nullptr;
    }
    auto out = std::make_shared<Library>();
    out->path = path;
    out->descriptor = d;
    out->kind = d->kind;
    out->name = d->name;
    out->version = d->version ? d->version : "";
    out->description = d->description ? d->description : "";
    return out;
}

void Registry::add(const std::string& path) {
    Refusal why;
    auto lib = load_library(path, why);
    if (!lib) {
        refused_.push_back(std::move(why));
        return;
    }
    if (const Library* first = find(lib->kind, lib->name)) {
        refused_.push_back({path, std::string("duplicate ") + kind_name(lib->kind) + " plugin '" + lib->name +
                                      "'; already loaded from " + first->path});
        return;
    }
    libraries_.push_back(std::move(lib));
}

void Registry::scan(const std::vector<std::string>& paths) {
    for (const auto& p : paths) {
        searched_.push_back(p);
        std::error_code ec;
        if (fs::is_regular_file(p, ec)) {
            add(p);
            continue;
        }
        if (!fs::is_directory(p, ec)) continue;
        std::vector<std::string> files;
        for (const auto& entry : fs::directory_iterator(p, ec))
            if (entry.is_regular_file() && entry.path().extension() == ".so") files.push_back(entry.path().string());
        std::sort(files.begin(), files.end());  // a stable order makes "duplicate" deterministic
        for (const auto& f : files) add(f);
    }
}

const Library* Registry::find(uint32_t kind, const std::string& name) const {
    for (const auto& l : libraries_)
        if (l->kind == kind && l->name == name) return l.get();
    return nullptr;
}

std::vector<std::string> Registry::names(uint32_t kind) const {
    std::vector<std::string> out;
    for (const auto& l : libraries_)
        if (l->kind == kind) out.push_back(l->name);
    return out;
}

std::vector<std::string> default_plugin_path() {
    const fs::path exe_dir = boost::dll::program_location().parent_path().string();
    std::vector<std::string> out = {(exe_dir / ".." / "plugins").lexically_normal().string(),
                                    (exe_dir / ".." / "lib" / "spillway" / "plugins").lexically_normal().string()};
    // Where `cmake --install` put them: lib/x86_64-linux-gnu/... under /usr.
    const std::string installed = (exe_dir / ".." / SPILLWAY_INSTALL_LIBDIR / "spillway" / "plugins").lexically_normal().string();
    if (installed != out[1]) out.push_back(installed);
    // Inside libspillway-engine (a service embedding the engine), the plugins installed beside the
    // library: <libdir>/spillway/plugins, or plugins/ of the build tree for build/lib.
    const fs::path code_dir = boost::dll::this_line_location().parent_path().string();
    if (code_dir != exe_dir) {
        for (const fs::path& p : {code_dir / "spillway" / "plugins", code_dir / ".." / "plugins"}) {
            std::string dir = p.lexically_normal().string();
            if (std::find(out.begin(), out.end(), dir) == out.end()) out.push_back(std::move(dir));
        }
    }
    return out;
}

}  // namespace spillway::plugin
