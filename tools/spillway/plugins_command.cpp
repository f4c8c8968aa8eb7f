// `spillway plugins`: what is on the plugin path, and why any file there was refused.
#include "commands.hpp"

#include "engine/engine.hpp"
#include "engine/plugin/loader.hpp"

#include <nlohmann/json.hpp>

#include <cstdio>
#include <iostream>

namespace spillway::cli {

int plugins(const PluginsOptions& options) {
    const auto path = options.plugin_path.empty() ? plugin_search_path(nullptr, config::process_environment())
                                                  : options.plugin_path;
    plugin::Registry registry;
    registry.scan(path);

    if (options.json) {
        nlohmann::json out = {{"search_path", path}, {"plugins", nlohmann::json::array()}, {"refused", nlohmann::json::array()}};
        for (const auto& lib : registry.libraries()) {
            nlohmann::json opts = nlohmann::json::array();
            for (size_t i = 0; i < lib->descriptor->n_options; ++i) {
                const sw_option& o = lib->descriptor->options[i];
                opts.push_back({{"name", o.name},
                                {"required", (o.flags & SW_OPT_REQUIRED) != 0},
                                {"secret", (o.flags & SW_OPT_SECRET) != 0},
                                {"default", o.default_value ? nlohmann::json(o.default_value) : nlohmann::json()},
                                {"description", o.description ? o.description : ""}});
            }
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

    std::printf("%-10s %-10s %-9s %-5s %s\n", "KIND", "NAME", "VERSION", "ABI", "PATH");
    for (const auto& lib : registry.libraries())
        std::printf("%-10s %-10s %-9s %u.%-3u %s\n", plugin::kind_name(lib->kind), lib->name.c_str(), lib->version.c_str(),
                    lib->descriptor->abi_major, lib->descriptor->abi_minor, lib->path.c_str());
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
