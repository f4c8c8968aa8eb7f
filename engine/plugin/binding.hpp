// Binding a configured component to its plugin: find the plugin, check every key against the
// plugin's option table (types, required keys, unknown keys), apply defaults — all before the
// plugin's create is called, so mistakes come back with file:line:col.
#pragma once

#include "engine/config/config.hpp"
#include "engine/plugin/loader.hpp"

#include <map>
#include <string>
#include <vector>

namespace spillway::plugin {

// One option value, typed per the plugin's table.
struct Option {
    uint32_t type = SW_OPT_STRING;  // sw_option_type
    std::string text;               // string form (what config_string and config_each give)
    int64_t integer = 0;            // SW_OPT_INT, and SW_OPT_DURATION in milliseconds
    double real = 0;
    bool boolean = false;
    config::List list;
    config::Location where;
    bool declared = true;           // false: a pass-through key of an open-options plugin
    bool secret = false;
    bool defaulted = false;
};

struct Binding {
    const config::Component* spec = nullptr;
    const Library* library = nullptr;
    std::string environment;
    std::map<std::string, Option> options;

    std::string id() const { return spec->id(); }
    // Where a key was written, else the component's table header.
    config::Location where(const std::string& key) const;
};

// Binds every component of `cfg`; returns the problems found (empty = all bound).
std::vector<config::Diagnostic> bind_all(const config::Config& cfg, const Registry& registry,
                                         std::map<std::string, Binding>& out);

// True when the option `key` of `component` is declared secret by its plugin.
bool is_secret(const Registry& registry, const config::Component& component, const std::string& key);

}  // namespace spillway::plugin
