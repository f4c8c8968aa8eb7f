// The spillway command's subcommands, one file each; main.cpp only parses the command line.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace spillway::cli {

// Exit codes, the same for every subcommand.
enum Exit : int { kOk = 0, kInvalidConfig = 1, kUsage = 2, kRuntimeFailure = 3 };

struct PluginsOptions {
    bool json = false;
    std::vector<std::string> plugin_path;  // empty: $SPILLWAY_PLUGIN_PATH or the defaults
};
int plugins(const PluginsOptions& options);

struct ConfigOptions {
    std::string config;
    std::optional<std::string> environment;
};
int validate(const ConfigOptions& options);
int run(const ConfigOptions& options);

}  // namespace spillway::cli
