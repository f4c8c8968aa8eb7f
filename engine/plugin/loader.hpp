// Finding and loading plugin libraries: Boost.DLL with rtld_now | rtld_local, the ABI checks, and
// the registry that keeps every library loaded for the life of the process.
#pragma once

#include <spillway/plugin.h>

#include <memory>
#include <string>
#include <vector>

namespace spillway::plugin {

const char* kind_name(uint32_t kind);  // "sink", ... or "unknown"
// The sw_kind for "sink" etc.; 0 for anything else.
uint32_t kind_from_name(const std::string& name);

// A plugin library that passed every check. Never unloaded: instances, threads and event spans of
// a plugin may outlive any one owner, so libraries stay mapped until the process exits.
struct Library {
    std::string path;
    const sw_plugin_descriptor* descriptor = nullptr;
    uint32_t kind = 0;
    std::string name, version, description;

    const sw_option* option(const std::string& key) const;
    bool open_options() const { return descriptor->flags & SW_PLUGIN_OPEN_OPTIONS; }
    bool thread_safe() const { return descriptor->flags & SW_PLUGIN_THREAD_SAFE; }
};

// A file that is not a usable plugin, and why.
struct Refusal {
    std::string path;
    std::string reason;
    std::string str() const { return path + ": " + reason; }
};

// Why `d` cannot be used by an engine of ABI 1.<host_minor>, or "" when it can. The loader asks
// with this engine's minor; a test asks with an older one to see what an older engine says.
std::string descriptor_problem(const sw_plugin_descriptor* d, uint16_t host_minor);

// Loads one file; on refusal returns nullptr and fills `why`.
std::shared_ptr<const Library> load_library(const std::string& path, Refusal& why);

class Registry {
public:
    // Loads every *.so in each folder (and each file named directly). Later duplicates of a
    // kind+name are refused, naming the file that won.
    void scan(const std::vector<std::string>& paths);

    const Library* find(uint32_t kind, const std::string& name) const;
    std::vector<std::string> names(uint32_t kind) const;
    const std::vector<std::shared_ptr<const Library>>& libraries() const { return libraries_; }
    const std::vector<Refusal>& refused() const { return refused_; }
    const std::vector<std::string>& searched() const { return searched_; }

private:
    void add(const std::string& path);
    std::vector<std::shared_ptr<const Library>> libraries_;
    std::vector<Refusal> refused_;
    std::vector<std::string> searched_;
};

// Default plugin folders when neither the config nor SPILLWAY_PLUGIN_PATH names one: next to the
// running executable's build tree (../plugins) and install tree (../lib/spillway/plugins), and,
// in a service that embeds libspillway-engine, beside that library (<libdir>/spillway/plugins).
std::vector<std::string> default_plugin_path();

}  // namespace spillway::plugin
