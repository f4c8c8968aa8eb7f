// recovery: the real `spillway run` (single engine, lease at its default 30 s) drains a keyed
// PostgreSQL backlog in small relay rounds, so that it holds leases on rows of every key, and is
// SIGKILLed mid-drain; then it is started again. The figures: from the restart's spawn to the
// first row the new process relays (its admin API's counts.relayed, which starts at 0), and to
// the backlog being empty. Every key's next row waits behind a leased one, so a new process that
// waited for the dead one's leases to run out would relay nothing for 30 s.
#include "context.hpp"
#include "events.hpp"
#include "raw_store.hpp"
#include "rig.hpp"

#include <spillway/test_support/ports.hpp>
#include <spillway/test_support/spillway_run.hpp>
#include <spillway/test_support/temp_dir.hpp>
#include <spillway/test_support/wait.hpp>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <regex>
#include <stdexcept>

namespace spillway::bench {

using namespace std::chrono_literals;

namespace {

constexpr size_t kBatch = 64;  // one claim covers every key once (rows go key-0..key-63 in turn)
constexpr int kRecoveryKeys = 64;

// The running engine's view of pipeline p0, or null when it does not answer (yet).
nlohmann::json pipeline_status(httplib::Client& client) {
    auto res = client.Get("/v1/pipelines/p0");
    if (!res || res->status != 200) return nullptr;
    auto j = nlohmann::json::parse(res->body, nullptr, false);
    return j.is_discarded() ? nlohmann::json() : j;
}

int64_t relayed(const nlohmann::json& status) {
    return status.is_object() && status.contains("counts") ? status["counts"].value("relayed", int64_t{-1}) : -1;
}

std::string fixed(double v) {
    char b[32];
    std::snprintf(b, sizeof b, "%.3f", v);
    return b;
}

struct Round {
    double answered_s = -1;  // restart's spawn -> its admin API answers
    double first_s = -1;     // -> counts.relayed > 0
    double empty_s = -1;     // -> no pending row left
    long long pending_at_kill = 0, leased_rows = 0, leased_keys = 0, relayed_before_kill = 0, remaining = 0;
    std::string took_back;   // the new process's log line about the dead one's leases
};

}  // namespace

Report run_recovery(Context& ctx) {
    Report rep("recovery");
    const auto& s = ctx.settings;
    const std::string db = "bench_recovery";
    RigOptions o = own_store_and_topic(ctx, db, "recovery");
    o.probe = false;
    o.log_level = "info";  // the store says when it takes back a dead engine's leases
    const int port = test_support::free_port();
    o.engine_toml = "http_listen = \"127.0.0.1:" + std::to_string(port) + "\"\n";
    o.pipeline_toml = "batch_size = " + std::to_string(kBatch) + "\ndrain_batch_size = " + std::to_string(kBatch) + "\n";
    { Rig migrate(ctx, o); }  // the outbox table, for the backlog written before the first engine runs

    test_support::TempDir dir("bench-recovery");
    const std::string toml = dir.path() + "/recovery.toml";
    std::ofstream(toml) << rig_toml(o, ctx.kafka().bootstraps());
    RawStore app(o.store_url, "p0");
    httplib::Client admin("127.0.0.1", port);
    admin.set_connection_timeout(1s);
    admin.set_read_timeout(5s);

    const size_t rows = s.recovery_rows;
    const size_t kill_after = std::max<size_t>(1, rows / 10);
    const size_t rounds = s.quick ? 1 : s.recovery_rounds;
    std::vector<Round> results;
    for (size_t r = 0; r < rounds; ++r) {
        Round round;
        app.backlog(rows, o.topic, kPayloadBytes - 30, kRecoveryKeys);
        const std::string log1 = dir.path() + "/run-" + std::to_string(r) + "-killed.log";
        const std::string log2 = dir.path() + "/run-" + std::to_string(r) + "-restarted.log";
        auto spawn = [&](const std::string& log) {
            return test_support::spawn_spillway_run(
                {.binary = SPILLWAY_BIN, .config_path = toml, .environment = o.environment, .log_path = log});
        };

        // The engine that dies: killed once its relay is well into the backlog.
        {
            auto first = spawn(log1);
            const bool draining = test_support::wait_until(
                [&] {
                    round.relayed_before_kill = relayed(pipeline_status(admin));
                    return round.relayed_before_kill >= static_cast<long long>(kill_after) || !first.running();
                },
                60s, 2ms);
            if (!draining || !first.running())
                throw std::runtime_error("recovery: the first engine did not relay " + std::to_string(kill_after) +
                                         " rows within 60 s (" + first.describe_exit() + "): " + test_support::file_tail(log1, 20));
            const pid_t pid = first.pid();
            first.signal(SIGKILL);
            // Reaped: a zombie would still count as a live process to the store's check.
            if (!first.wait_exit(10s)) throw std::runtime_error("recovery: the first engine did not die of SIGKILL");
            round.pending_at_kill = app.pending();
            // What it left leased: its lease rows name it by host-pid-random.
            const auto left = ctx.postgres().query(
                db, "SELECT count(*), count(DISTINCT o.key) FROM spillway_outbox o JOIN spillway_outbox_leases l "
                    "ON o.id = ANY(CAST(translate(l.row_ids, '[]', '{}') AS bigint[])) WHERE l.pipeline = 'p0' "
                    "AND l.lease_owner LIKE '%-" + std::to_string(pid) + "-%'");
            if (!left.empty() && left[0].size() == 2) {
                round.leased_rows = std::stoll(left[0][0]);
                round.leased_keys = std::stoll(left[0][1]);
            }
        }
        if (round.pending_at_kill == 0)
            throw std::runtime_error("recovery: the backlog drained before the kill (raise --recovery-rows)");

        // The restart, timed from its spawn.
        const auto spawned = Clock::now();
        auto second = spawn(log2);
        const bool resumed = test_support::wait_until(
            [&] {
                const auto st = pipeline_status(admin);
                if (st.is_object() && round.answered_s < 0) round.answered_s = seconds_since(spawned);
                return relayed(st) > 0 || !second.running();
            },
            60s, 1ms);
        round.first_s = seconds_since(spawned);
        if (!resumed || !second.running())
            throw std::runtime_error("recovery: the restarted engine relayed nothing within 60 s (" + second.describe_exit() +
                                     "): " + test_support::file_tail(log2, 20));
        const bool emptied = test_support::wait_until([&] { return app.pending() == 0; }, 120s, 5ms);
        round.empty_s = seconds_since(spawned);
        round.remaining = emptied ? 0 : app.pending();
        const std::string tail = test_support::file_tail(log2, 400);
        std::smatch m;
        if (std::regex_search(tail, m, std::regex("took back [0-9]+ lease\\(s\\)"))) round.took_back = m.str();
        second.stop(SIGTERM, 15s);
        if (!emptied)
            throw std::runtime_error("recovery: " + std::to_string(round.remaining) +
                                     " rows still pending 120 s after the restart: " + test_support::file_tail(log2, 20));
        results.push_back(round);
    }

    std::vector<double> first_s, empty_s;
    std::string per_round;
    size_t bounded_by_api = 0;  // rounds where rows were already relayed when the admin API first answered
    for (const Round& r : results) {
        bounded_by_api += r.answered_s >= 0 && r.first_s - r.answered_s < 0.002;
        first_s.push_back(r.first_s);
        empty_s.push_back(r.empty_s);
        per_round += (per_round.empty() ? "" : "; ") + fixed(r.first_s) + " s (admin API up " + fixed(r.answered_s) +
                     " s) / empty " + fixed(r.empty_s) + " s, killed at " + std::to_string(r.relayed_before_kill) +
                     " relayed, " + std::to_string(r.pending_at_kill) + " pending, " + std::to_string(r.leased_rows) +
                     " rows of " + std::to_string(r.leased_keys) + " keys leased by the dead engine" +
                     (r.took_back.empty() ? ", no take-back logged" : ", new engine: " + r.took_back);
    }
    const double worst_first = *std::max_element(first_s.begin(), first_s.end());
    const double worst_empty = *std::max_element(empty_s.begin(), empty_s.end());
    auto& first = rep.add(rate_row("recovery: SIGKILL, restart -> first row relayed", "s", worst_first));
    first.targets.push_back(at_most("<= 1 s after start", worst_first, 1.0));
    first.note = "slowest of " + std::to_string(results.size()) + " kill/restart rounds (lease 30 s, the default): " + per_round +
                 ". Includes the process start, plugin loading, the store's first claim and a produce round; seen by "
                 "polling the admin API every 1 ms" +
                 (bounded_by_api ? " (in " + std::to_string(bounded_by_api) + " of " + std::to_string(results.size()) +
                                       " rounds rows were already relayed at its first answer: an upper bound, set by the API coming up)"
                                 : std::string());
    auto& empty = rep.add(rate_row("recovery: restart -> backlog empty", "s", worst_empty));
    empty.note = "the rest of a " + std::to_string(rows) + "-row backlog over " + std::to_string(kRecoveryKeys) +
                 " keys, relay rounds of " + std::to_string(kBatch) + " (batch_size = drain_batch_size = " +
                 std::to_string(kBatch) + ")";
    rep.setting("backlog_rows", rows);
    rep.setting("keys", kRecoveryKeys);
    rep.setting("batch", kBatch);
    rep.setting("lease", "30s (default)");
    rep.setting("kill_after_relayed", kill_after);
    rep.setting("restart_to_first_relayed_s", first_s);
    rep.setting("restart_to_empty_s", empty_s);
    return rep;
}

}  // namespace spillway::bench
