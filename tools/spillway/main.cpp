// spillway — the engine's command line. Subcommands live in their own files (commands.hpp);
// this file keeps CLI11, the slowest header to compile, to one translation unit.
#include "commands.hpp"

#include "engine/signals.hpp"

#include <CLI/CLI.hpp>

int main(int argc, char** argv) {
    // Before any thread exists, so every thread inherits the mask and only `run` takes them.
    spillway::block_shutdown_signals();

    CLI::App app{"Spillway: gets domain events into Kafka fast, with a durable outbox behind it"};
    app.require_subcommand(1);
    app.set_version_flag("--version", std::string("spillway ") + SPILLWAY_VERSION);

    spillway::cli::PluginsOptions plugins;
    auto* cmd_plugins = app.add_subcommand("plugins", "List the plugins found on the plugin path, and the files refused");
    cmd_plugins->add_flag("--json", plugins.json, "Print JSON instead of a table");
    cmd_plugins->add_option("--plugin-path", plugins.plugin_path,
                            "A folder or file to search (repeatable; default $SPILLWAY_PLUGIN_PATH or next to the binary)");

    spillway::cli::ConfigOptions validate;
    auto* cmd_validate = app.add_subcommand("validate", "Check a pipeline file and print the effective configuration");
    cmd_validate->add_option("config", validate.config, "The pipeline TOML file")->required();
    cmd_validate->add_option("--env", validate.environment,
                             "Environment: testing, development, staging or production (default $SPILLWAY_ENV, $ENVIRONMENT, development)");

    spillway::cli::ConfigOptions run;
    auto* cmd_run = app.add_subcommand("run", "Run the pipelines of a pipeline file until SIGINT or SIGTERM");
    cmd_run->add_option("config", run.config, "The pipeline TOML file")->required();
    cmd_run->add_option("--env", run.environment, "Environment (as for validate)");

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        const int code = app.exit(e);
        return code == 0 ? 0 : spillway::cli::kUsage;
    }

    if (cmd_plugins->parsed()) return spillway::cli::plugins(plugins);
    if (cmd_validate->parsed()) return spillway::cli::validate(validate);
    if (cmd_run->parsed()) return spillway::cli::run(run);
    return spillway::cli::kUsage;
}
