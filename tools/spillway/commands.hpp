// The spillway command's subcommands, one file each; main.cpp only parses the command line.
#pragma once

#include <cstddef>
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

struct PluginInfoOptions {
    std::string name;
    std::string kind;  // empty: any kind
    bool json = false;
    std::vector<std::string> plugin_path;
};
// One plugin's options (types, defaults, descriptions): the table the validator checks against.
int plugin_info(const PluginInfoOptions& options);

struct ReferenceOptions {
    std::vector<std::string> write;        // READMEs whose table markers to fill; none: print the key tables
    std::vector<std::string> plugin_path;  // empty: $SPILLWAY_PLUGIN_PATH or the defaults
};
// The reference tables, made from the loader's key tables and the plugins' option tables.
int reference(const ReferenceOptions& options);

struct ConfigOptions {
    std::string config;
    std::optional<std::string> environment;
};
int validate(const ConfigOptions& options);
int run(const ConfigOptions& options);

// `spillway publish CONFIG --pipeline P`: NDJSON events on stdin, one JSON result line per event
// on stdout; exit 0 when every event was accepted, 3 when any was refused or malformed.
struct PublishOptions {
    ConfigOptions config;
    std::string pipeline;
    size_t batch = 100;  // events published together at most
};
int publish(const PublishOptions& options);

// `spillway outbox CONFIG status|dead|replay|purge|migrate`: the store alone, no Kafka, no relay.
struct OutboxOptions {
    ConfigOptions config;
    std::string action;
    std::vector<std::string> pipelines;  // empty: every pipeline of the config
    std::vector<std::string> event_ids;  // replay/purge: these only
    bool all = false;                    // purge: every dead letter (required without --event-id)
    bool json = false;                   // status: JSON instead of a table
    size_t limit = 0;                    // dead: at most this many per pipeline (0 = all)
};
int outbox(const OutboxOptions& options);

// `spillway status URL`: a live view of a running engine's admin API.
struct StatusOptions {
    std::string url;
    std::string token;  // default $SPILLWAY_HTTP_TOKEN
    bool once = false;
    bool json = false;  // print once, as JSON (implies once)
    double interval_s = 1.0;
};
int status(const StatusOptions& options);

}  // namespace spillway::cli
