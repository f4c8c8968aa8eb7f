// spillway-bench: runs the benchmark scenarios against real servers it starts itself (PostgreSQL
// with default durability, Redis, librdkafka's mock cluster), each next to its raw baseline in the
// same run, prints a table per scenario and writes JSON.
//
//   spillway-bench --scenario direct --samples 5000 --json out.json
//   spillway-bench --all --out-dir var/bench
#include "context.hpp"

#include "engine/observe/log.hpp"

#include <CLI/CLI.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>

namespace {

std::string names() {
    std::string n;
    for (const auto& s : spillway::bench::scenarios()) n += (n.empty() ? "" : ", ") + std::string(s.name);
    return n;
}

}  // namespace

int main(int argc, char** argv) {
    using namespace spillway::bench;
    CLI::App app{"spillway-bench: Spillway's benchmark scenarios, each next to its raw baseline"};
    std::vector<std::string> chosen;
    bool all = false, list = false;
    std::string json_path, out_dir;
    Settings s;
    app.add_option("--scenario", chosen, "Scenario(s) to run: " + names())->delimiter(',');
    app.add_flag("--all", all, "Run every scenario");
    app.add_flag("--list", list, "List the scenarios and exit");
    app.add_option("--json", json_path, "Write all results to this JSON file");
    app.add_option("--out-dir", out_dir, "Write <scenario>.json per scenario and summary.json into this folder");
    app.add_option("--samples", s.samples, "Latency samples per side and measure")->capture_default_str()->check(CLI::PositiveNumber);
    app.add_option("--rounds", s.rounds, "Alternating A/B rounds the samples are split into")->capture_default_str()->check(CLI::PositiveNumber);
    app.add_option("--batched-events", s.batched_events, "Events per side of the batched publish measure (batches of 1,000)")
        ->capture_default_str()
        ->check(CLI::PositiveNumber);
    app.add_option("--drain-events", s.drain_events, "Backlog of the drain scenario")->capture_default_str()->check(CLI::PositiveNumber);
    app.add_option("--drain-batches", s.drain_batches, "Batch sizes of the drain sweep (default 1,10,100,500,1000)")
        ->delimiter(',')
        ->check(CLI::PositiveNumber);
    app.add_option("--idle-seconds", s.idle_seconds, "Measuring window of the idle scenario")->capture_default_str()->check(CLI::PositiveNumber);
    app.add_option("--seed-seconds", s.seed_seconds, "How long the seed-design comparison runs")->capture_default_str()->check(CLI::PositiveNumber);
    app.add_option("--rate", s.rate, "Events/s of the outbox-first doorbell measurement")->capture_default_str()->check(CLI::PositiveNumber);
    app.add_option("--recovery-rows", s.recovery_rows, "Backlog of the recovery scenario (64 keys)")->capture_default_str()->check(CLI::PositiveNumber);
    app.add_option("--recovery-rounds", s.recovery_rounds, "Kill/restart rounds of the recovery scenario")->capture_default_str()->check(CLI::PositiveNumber);
    app.add_option("--scale-rounds", s.scale_rounds, "Rounds per fault (SIGKILL, SIGSTOP, SIGTERM) of the scale scenario")
        ->capture_default_str()
        ->check(CLI::PositiveNumber);
    app.add_option("--scale-rate", s.scale_rate, "Rows/s the scale scenario inserts while it injects faults")
        ->capture_default_str()
        ->check(CLI::PositiveNumber);
    app.add_option("--scale-drain-events", s.scale_drain_events, "Backlog the scale scenario's engines drain")
        ->capture_default_str()
        ->check(CLI::PositiveNumber);
    std::vector<std::string> kafka_props;
    app.add_option("--kafka-property", kafka_props,
                   "name=value: a librdkafka property for both the engine's sink and the raw producers (repeatable)");
    app.add_flag("--quick", s.quick, "Shorter warm-ups and sweeps, for development runs");
    CLI11_PARSE(app, argc, argv);

    for (const auto& kv : kafka_props) {
        const auto eq = kv.find('=');
        if (eq == std::string::npos || eq == 0) {
            std::cerr << "spillway-bench: --kafka-property wants name=value, got '" << kv << "'\n";
            return 2;
        }
        extra_kafka_properties().emplace_back(kv.substr(0, eq), kv.substr(eq + 1));
    }
    if (list) {
        for (const auto& sc : scenarios()) std::printf("%-10s %s\n", sc.name, sc.what);
        return 0;
    }
    std::vector<const Scenario*> run;
    for (const auto& sc : scenarios())
        if (all || std::find(chosen.begin(), chosen.end(), sc.name) != chosen.end()) run.push_back(&sc);
    for (const auto& c : chosen)
        if (std::none_of(scenarios().begin(), scenarios().end(), [&](const Scenario& sc) { return c == sc.name; })) {
            std::cerr << "spillway-bench: unknown scenario '" << c << "'; expected one of " << names() << "\n";
            return 2;
        }
    if (run.empty()) {
        std::cerr << "spillway-bench: name a --scenario (" << names() << ") or --all\n";
        return 2;
    }

    spillway::observe::setup_logging("error", "text");
    const nlohmann::json machine = machine_info();
    nlohmann::json summary{{"machine", machine},
                           {"command", [&] {
                                std::string c;
                                for (int i = 0; i < argc; ++i) c += (i ? " " : "") + std::string(argv[i]);
                                return c;
                            }()},
                           {"settings",
                            {{"samples", s.samples}, {"rounds", s.rounds}, {"batched_events", s.batched_events}, {"drain_events", s.drain_events},
                             {"idle_seconds", s.idle_seconds}, {"seed_seconds", s.seed_seconds}, {"rate", s.rate},
                             {"recovery_rows", s.recovery_rows}, {"recovery_rounds", s.recovery_rounds},
                             {"scale_rounds", s.scale_rounds}, {"scale_rate", s.scale_rate}, {"scale_drain_events", s.scale_drain_events},
                             {"quick", s.quick}, {"kafka_properties", kafka_props}}},
                           {"scenarios", nlohmann::json::array()}};
    std::printf("spillway-bench: %s, %s cpus, load %s\n", machine.value("cpu", "?").c_str(),
                machine["cpus_online"].dump().c_str(), machine["loadavg"].dump().c_str());
    if (!out_dir.empty()) std::filesystem::create_directories(out_dir);

    Context ctx(s);
    int failures = 0;
    for (const Scenario* sc : run) {
        std::printf("\nrunning %s: %s ...\n", sc->name, sc->what);
        std::fflush(stdout);
        nlohmann::json j;
        const auto t0 = Clock::now();
        try {
            Report r = sc->run(ctx);
            r.print();
            j = r.json();
        } catch (const std::exception& e) {
            ++failures;
            std::fprintf(stderr, "spillway-bench: scenario %s failed: %s\n", sc->name, e.what());
            j = {{"scenario", sc->name}, {"error", e.what()}};
        }
        j["seconds"] = seconds_since(t0);
        j["machine"] = machine;
        double load[3] = {};
        if (getloadavg(load, 3) == 3) j["loadavg_after"] = {load[0], load[1], load[2]};
        if (!out_dir.empty()) std::ofstream(out_dir + "/" + sc->name + ".json") << j.dump(2) << "\n";
        j.erase("machine");
        summary["scenarios"].push_back(std::move(j));
    }
    if (!out_dir.empty()) std::ofstream(out_dir + "/summary.json") << summary.dump(2) << "\n";
    if (!json_path.empty()) std::ofstream(json_path) << summary.dump(2) << "\n";
    return failures ? 3 : 0;
}
