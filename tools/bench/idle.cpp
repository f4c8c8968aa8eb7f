// idle: `spillway run` as a child process with four plugins (kafka, postgres, redis, adaptive) and
// one pipeline, nothing to publish. Over the measuring window: statements the store sent to
// PostgreSQL (pg_stat_statements, loaded by the bench's server), the process's CPU time
// (/proc/<pid>/stat utime+stime) and its resident memory (/proc/<pid>/status).
#include "context.hpp"
#include "cpu.hpp"
#include "rig.hpp"

#include <spillway/test_support/spillway_run.hpp>
#include <spillway/test_support/temp_dir.hpp>
#include <spillway/test_support/wait.hpp>

#include <unistd.h>

#include <fstream>
#include <stdexcept>
#include <thread>

namespace spillway::bench {

using namespace std::chrono_literals;

namespace {

// A "Vm..."/"Threads" line of /proc/<pid>/status, as its number (kB for sizes).
long status_field(pid_t pid, const std::string& name) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    for (std::string line; std::getline(in, line);)
        if (line.rfind(name + ":", 0) == 0) return std::stol(line.substr(name.size() + 1));
    return -1;
}

}  // namespace

Report run_idle(Context& ctx) {
    Report rep("idle");
    const auto& s = ctx.settings;
    auto& pg = ctx.postgres();
    RigOptions o = own_store_and_topic(ctx, "bench_idle", "idle");
    ring_redis(o, ctx);
    o.probe = false;
    o.log_level = "info";
    test_support::TempDir dir("bench-idle");
    const std::string toml = dir.path() + "/idle.toml", log = dir.path() + "/spillway.log";
    std::ofstream(toml) << rig_toml(o, ctx.kafka().bootstraps());
    pg.psql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements");

    // SIGTERM when the bench dies, as before: the idle engine has nothing a clean stop could spoil.
    auto child = test_support::spawn_spillway_run(
        {.binary = SPILLWAY_BIN, .config_path = toml, .environment = o.environment, .log_path = log, .death_signal = SIGTERM});
    const bool up = test_support::wait_until(
        [&] { return test_support::file_tail(log, 50).find("running 1 pipeline") != std::string::npos; }, 30s, 20ms);
    if (!up) throw std::runtime_error("idle: spillway run did not start: " + test_support::file_tail(log, 20));

    // The relay's idle ladder (100 ms x2, 1 s x7) reaches its 5 s ceiling after about 7 s.
    std::this_thread::sleep_for(s.quick ? 3s : 10s);
    const std::string in_db = "FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = 'bench_idle'";
    pg.scalar("postgres", "SELECT pg_stat_statements_reset()");
    const double cpu0 = cpu_seconds(child.pid());
    const auto t0 = Clock::now();
    std::this_thread::sleep_for(std::chrono::seconds(s.idle_seconds));
    const double cpu1 = cpu_seconds(child.pid());
    const double wall = seconds_since(t0);
    const double statements = std::stod(pg.scalar("postgres", "SELECT coalesce(sum(calls), 0) " + in_db));
    std::string top;
    for (const auto& r : pg.query("postgres", "SELECT calls, left(regexp_replace(query, '\\s+', ' ', 'g'), 90) " + in_db +
                                                  " ORDER BY calls DESC LIMIT 6"))
        top += (top.empty() ? "" : " | ") + r[0] + "x " + r[1];
    const long rss_kb = status_field(child.pid(), "VmRSS"), hwm_kb = status_field(child.pid(), "VmHWM");
    const long threads = status_field(child.pid(), "Threads");
    const bool stopped = child.stop(SIGTERM, 15s);

    rep.setting("window_s", wall);
    rep.setting("environment", o.environment);
    rep.setting("plugins", "kafka (mock cluster), postgres (store), redis (doorbell), adaptive (scheduler)");
    rep.setting("statements", top);
    auto& q = rep.add(rate_row("idle store statements", "1/s", statements / wall));
    q.targets.push_back(at_most("<= 0.2 /s", q.value, 0.2));
    q.note = "pg_stat_statements over " + std::to_string(static_cast<int>(wall)) + " s: " + top;
    auto& c = rep.add(rate_row("idle CPU", "ms/s", (cpu1 - cpu0) * 1000 / wall));
    c.targets.push_back(at_most("<= 5 ms/s", c.value, 5));
    c.note = "utime+stime of the whole process (" + std::to_string(threads) + " threads), clock-tick resolution";
    auto& m = rep.add(rate_row("RSS, four plugins, one pipeline", "MB", static_cast<double>(rss_kb) / 1024));
    m.targets.push_back(at_most("<= 30 MB", m.value, 30));
    m.note = "VmRSS after the idle window; peak (VmHWM) " + std::to_string(hwm_kb / 1024) + " MB" +
             (stopped ? "" : "; did NOT stop within 15 s of SIGTERM");
    return rep;
}

}  // namespace spillway::bench
