// spillway — the engine's command line. Subcommands live in their own files (commands.hpp);
// this file keeps CLI11, the slowest header to compile, to one translation unit.
#include "commands.hpp"

#include "engine/plugin/call_scope.hpp"
#include "engine/signals.hpp"

#include <CLI/CLI.hpp>

int main(int argc, char** argv) {
    // Before any thread exists, so every thread inherits the mask and only `run` takes them.
    spillway::block_shutdown_signals();
    // A plugin that crashes takes the process down; the report says which one was in the call.
    spillway::plugin::install_crash_reporter();

    CLI::App app{"Spillway: gets domain events into Kafka fast, with a durable outbox behind it"};
    app.require_subcommand(1);
    app.set_version_flag("--version", std::string("spillway ") + SPILLWAY_VERSION);

    spillway::cli::PluginsOptions plugins;
    auto* cmd_plugins = app.add_subcommand("plugins", "List the plugins found on the plugin path, and the files refused");
    cmd_plugins->add_flag("--json", plugins.json, "Print JSON instead of a table");
    cmd_plugins->add_option("--plugin-path", plugins.plugin_path,
                            "A folder or file to search (repeatable; default $SPILLWAY_PLUGIN_PATH or next to the binary)");

    spillway::cli::PluginInfoOptions info;
    auto* cmd_info = app.add_subcommand("plugin-info", "Show one plugin's options: types, defaults, descriptions");
    cmd_info->add_option("name", info.name, "The plugin's name, e.g. kafka")->required();
    cmd_info->add_option("--kind", info.kind, "sink, store, notifier or scheduler (when two kinds share a name)");
    cmd_info->add_flag("--json", info.json, "Print JSON instead of text");
    cmd_info->add_option("--plugin-path", info.plugin_path, "A folder or file to search (repeatable)");

    spillway::cli::ReferenceOptions reference;
    auto* cmd_reference =
        app.add_subcommand("reference", "Print the [engine] and [pipeline] key tables, or fill the reference tables of READMEs");
    cmd_reference->add_option("--write", reference.write,
                              "A README whose <!-- keys:... --> and <!-- options:... --> tables to make anew (repeatable)");
    cmd_reference->add_option("--plugin-path", reference.plugin_path, "A folder or file to search for plugins (repeatable)");

    spillway::cli::ConfigOptions validate;
    auto* cmd_validate = app.add_subcommand("validate", "Check a pipeline file and print the effective configuration");
    cmd_validate->add_option("config", validate.config, "The pipeline TOML file")->required();
    cmd_validate->add_option("--env", validate.environment,
                             "Environment: testing, development, staging or production (default $SPILLWAY_ENV, $ENVIRONMENT, development)");

    spillway::cli::ConfigOptions run;
    auto* cmd_run = app.add_subcommand("run", "Run the pipelines of a pipeline file until SIGINT or SIGTERM");
    cmd_run->add_option("config", run.config, "The pipeline TOML file")->required();
    cmd_run->add_option("--env", run.environment, "Environment (as for validate)");

    spillway::cli::PublishOptions publish;
    auto* cmd_publish = app.add_subcommand("publish", "Publish NDJSON events from stdin through a pipeline; one result line per event");
    cmd_publish->add_option("config", publish.config.config, "The pipeline TOML file")->required();
    cmd_publish->add_option("--pipeline,-p", publish.pipeline, "The pipeline to publish through")->required();
    cmd_publish->add_option("--env", publish.config.environment, "Environment (as for validate)");
    cmd_publish->add_option("--batch", publish.batch, "Events published together at most")->capture_default_str()->check(CLI::PositiveNumber);
    cmd_publish->footer("Exit status: 0 when every event was accepted, 3 when any was refused or malformed.");

    spillway::cli::OutboxOptions outbox;
    auto* cmd_outbox = app.add_subcommand("outbox", "Inspect and repair the outbox (runs the store only, never Kafka)");
    cmd_outbox->add_option("config", outbox.config.config, "The pipeline TOML file")->required();
    cmd_outbox->add_option("action", outbox.action, "status | dead | replay | purge | migrate")
        ->required()
        ->check(CLI::IsMember({"status", "dead", "replay", "purge", "migrate"}));
    cmd_outbox->add_option("--pipeline,-p", outbox.pipelines, "Only this pipeline (repeatable; default all)");
    cmd_outbox->add_option("--event-id", outbox.event_ids, "replay/purge: only these dead letters (repeatable)");
    cmd_outbox->add_flag("--all", outbox.all, "purge: every dead letter of the pipelines");
    cmd_outbox->add_flag("--json", outbox.json, "status: print JSON");
    cmd_outbox->add_option("--limit", outbox.limit, "dead: at most this many per pipeline (default all)");
    cmd_outbox->add_option("--env", outbox.config.environment, "Environment (as for validate)");

    spillway::cli::StatusOptions status;
    auto* cmd_status = app.add_subcommand("status", "A live view of a running engine's pipelines, from its admin API");
    cmd_status->add_option("url", status.url, "The engine's HTTP address, e.g. http://127.0.0.1:8080")->required();
    cmd_status->add_option("--token", status.token, "Bearer token (default $SPILLWAY_HTTP_TOKEN)");
    cmd_status->add_flag("--once", status.once, "Print once and exit (3 when the engine cannot be reached)");
    cmd_status->add_flag("--json", status.json,
                         "Print once, as JSON: {\"pipelines\": [...]} as GET /v1/pipelines answers, each shards-mode "
                         "pipeline with its \"shards\" (GET /v1/pipelines/{name}/shards)");
    cmd_status->add_option("--interval", status.interval_s, "Seconds between refreshes")->capture_default_str();

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        const int code = app.exit(e);
        return code == 0 ? 0 : spillway::cli::kUsage;
    }

    if (cmd_plugins->parsed()) return spillway::cli::plugins(plugins);
    if (cmd_info->parsed()) return spillway::cli::plugin_info(info);
    if (cmd_reference->parsed()) return spillway::cli::reference(reference);
    if (cmd_validate->parsed()) return spillway::cli::validate(validate);
    if (cmd_run->parsed()) return spillway::cli::run(run);
    if (cmd_publish->parsed()) return spillway::cli::publish(publish);
    if (cmd_outbox->parsed()) return spillway::cli::outbox(outbox);
    if (cmd_status->parsed()) return spillway::cli::status(status);
    return spillway::cli::kUsage;
}
