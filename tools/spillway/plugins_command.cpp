// `spillway plugins`: what is on the plugin path, and why any file there was refused.
#include "commands.hpp"

#include "engine/engine.hpp"
#include "engine/plugin/loader.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <iostream>

namespace spillway::cli {

namespace {

const char* type_name(uint32_t t) {
    switch (t) {
        case SW_OPT_STRING: return "string";
        case SW_OPT_INT: return "integer";
        case SW_OPT_DOUBLE: return "number";
        case SW_OPT_BOOL: return "boolean";
        case SW_OPT_DURATION: return "duration";
        case SW_OPT_STRING_LIST: return "list of strings";
        default: return "unknown";
    }
}

nlohmann::json options_json(const plugin::Library& lib) {
    nlohmann::json opts = nlohmann::json::array();
    for (size_t i = 0; i < lib.descriptor->n_options; ++i) {
        const sw_option& o = lib.descriptor->options[i];
        opts.push_back({{"name", o.name},
                        {"type", type_name(o.type)},
                        {"required", (o.flags & SW_OPT_REQUIRED) != 0},
                        {"secret", (o.flags & SW_OPT_SECRET) != 0},
                        {"default", o.default_value ? nlohmann::json(o.default_value) : nlohmann::json()},
                        {"description", o.description ? o.description : ""}});
    }
    return opts;
}

std::vector<std::string> search_path(const std::vector<std::string>& given) {
    return given.empty() ? plugin_search_path(nullptr, config::process_environment()) : given;
}

}  // namespace

int plugin_info(const PluginInfoOptions& options) {
    plugin::Registry registry;
    registry.scan(search_path(options.plugin_path));
    std::vector<const plugin::Library*> found;
    for (const auto& lib : registry.libraries())
        if (lib->name == options.name && (options.kind.empty() || options.kind == plugin::kind_name(lib->kind)))
            found.push_back(lib.get());
    if (found.empty()) {
        std::cerr << "no plugin named '" << options.name << "'" << (options.kind.empty() ? "" : " of kind " + options.kind)
                  << " on the plugin path (spillway plugins lists what is there)\n";
        return kInvalidConfig;
    }
    if (found.size() > 1) {
        std::cerr << "several plugins are named '" << options.name << "'; choose one with --kind\n";
        return kUsage;
    }
    const plugin::Library& lib = *found.front();
    if (options.json) {
        std::cout << nlohmann::json{{"name", lib.name},
                                    {"kind", plugin::kind_name(lib.kind)},
                                    {"version", lib.version},
                                    {"description", lib.description},
                                    {"path", lib.path},
                                    {"open_options", lib.open_options()},
                                    {"options", options_json(lib)}}
                         .dump(2)
                  << "\n";
        return kOk;
    }
    std::cout << plugin::kind_name(lib.kind) << " plugin " << lib.name << " " << lib.version << " (" << lib.path << ")\n"
              << lib.description << "\n\noptions:\n";
    for (size_t i = 0; i < lib.descriptor->n_options; ++i) {
        const sw_option& o = lib.descriptor->options[i];
        std::cout << "  " << o.name << " (" << type_name(o.type);
        if (o.flags & SW_OPT_REQUIRED) std::cout << ", required";
        if (o.flags & SW_OPT_SECRET) std::cout << ", secret";
        if (o.default_value) std::cout << ", default " << (*o.default_value ? o.default_value : "\"\"");
        std::cout << ")\n      " << (o.description ? o.description : "") << "\n";
    }
    if (lib.descriptor->n_options == 0) std::cout << "  (none)\n";
    if (lib.open_options()) std::cout << "\nOther keys are passed through to the plugin, which validates them itself.\n";
    return kOk;
}

int plugins(const PluginsOptions& options) {
    const auto path = search_path(options.plugin_path);
    plugin::Registry registry;
    registry.scan(path);

    if (options.json) {
        nlohmann::json out = {{"search_path", path}, {"plugins", nlohmann::json::array()}, {"refused", nlohmann::json::array()}};
        for (const auto& lib : registry.libraries()) {
            const nlohmann::json opts = options_json(*lib);
            out["plugins"].push_back({{"name", lib->name},
                                      {"kind", plugin::kind_name(lib->kind)},
                                      {"version", lib->version},
                                      {"abi", std::to_string(lib->descriptor->abi_major) + "." +
                                                  std::to_string(lib->descriptor->abi_minor)},
                                      {"description", lib->description},
                                      {"path", lib->path},
                                      {"options", opts}});
        }
        for (const auto& r : registry.refused()) out["refused"].push_back({{"path", r.path}, {"reason", r.reason}});
        std::cout << out.dump(2) << "\n";
        return kOk;
    }

    int name_width = 10;  // the column fits the longest name (cloudevents)
    for (const auto& lib : registry.libraries()) name_width = std::max(name_width, static_cast<int>(lib->name.size()));
    std::printf("%-10s %-*s %-9s %-5s %s\n", "KIND", name_width, "NAME", "VERSION", "ABI", "PATH");
    for (const auto& lib : registry.libraries())
        std::printf("%-10s %-*s %-9s %u.%-3u %s\n", plugin::kind_name(lib->kind), name_width, lib->name.c_str(),
                    lib->version.c_str(), lib->descriptor->abi_major, lib->descriptor->abi_minor, lib->path.c_str());
    if (registry.libraries().empty()) {
        std::printf("(no plugins found; searched:");
        for (const auto& p : path) std::printf(" %s", p.c_str());
        std::printf(")\n");
    }
    if (!registry.refused().empty()) {
        std::printf("\nrefused:\n");
        for (const auto& r : registry.refused()) std::printf("  %s\n", r.str().c_str());
    }
    return kOk;
}

}  // namespace spillway::cli
