// What every scenario shares: the servers (started once, on first use, on loopback), the run's
// settings, and the scenario registry.
#pragma once

#include "report.hpp"

#include <spillway/test_support/mock_kafka.hpp>
#include <spillway/test_support/postgres.hpp>
#include <spillway/test_support/redis.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace spillway::bench {

struct Settings {
    size_t samples = 2000;         // latency samples per side
    size_t rounds = 5;             // alternating A/B rounds the samples are split into
    size_t batched_events = 100000;  // events per side of the batched publish (in batches of 1,000)
    size_t drain_events = 100000;  // backlog of the drain scenario
    std::vector<size_t> drain_batches;  // batch sizes of the drain sweep; empty: the default sweep
    int idle_seconds = 60;
    int seed_seconds = 20;         // how long the seed design (5 s polling) is sampled
    double rate = 200;             // events/s of the outbox-first scenario
    size_t recovery_rows = 20000;  // backlog of the recovery scenario (over 64 keys)
    size_t recovery_rounds = 3;    // kill/restart rounds of the recovery scenario
    size_t scale_rounds = 5;       // rounds per fault (SIGKILL, SIGSTOP, SIGTERM) of the scale scenario
    double scale_rate = 400;       // rows/s the scale scenario inserts while it injects faults
    size_t scale_drain_events = 300000;  // backlog the scale scenario's engines drain (100,000 took ~1 s)
    bool quick = false;            // smaller scaling sweeps (development runs)
};

// librdkafka properties (--kafka-property name=value) given to both sides of every comparison:
// the engine's kafka sink and the raw producers.
std::vector<std::pair<std::string, std::string>>& extra_kafka_properties();

class Context {
public:
    explicit Context(Settings s) : settings(s) {}

    // PostgreSQL with default durability (fsync on, synchronous_commit on), pg_stat_statements loaded.
    test_support::Postgres& postgres();
    test_support::Redis& redis();
    // Three brokers; the bench topic has 4 partitions, replication 3.
    test_support::MockKafka& kafka();
    // A fresh database on the bench server; returns its conninfo.
    std::string database(const std::string& name);
    std::string fresh_topic(const std::string& stem);
    // pg_stat_statements: forget what was counted so far (every database).
    void reset_statements();
    // The `n` most frequent statements run in database `db` since the last reset, with calls and
    // mean execution time: "120x 0.41 ms UPDATE ... | ...".
    std::string top_statements(const std::string& db, int n = 6);

    const Settings settings;

private:
    std::unique_ptr<test_support::Postgres> pg_;
    std::unique_ptr<test_support::Redis> redis_;
    std::unique_ptr<test_support::MockKafka> kafka_;
    int topics_ = 0;
};

using Clock = std::chrono::steady_clock;
inline double us_since(Clock::time_point t0) {
    return std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
}
inline double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// The scenarios; each fills its Report and returns it.
Report run_direct(Context& ctx);
Report run_outage(Context& ctx);
Report run_doorbell(Context& ctx);
Report run_drain(Context& ctx);
Report run_ingress(Context& ctx);
Report run_idle(Context& ctx);
Report run_recovery(Context& ctx);
Report run_scale(Context& ctx);

struct Scenario {
    const char* name;
    const char* what;
    std::function<Report(Context&)> run;
};
const std::vector<Scenario>& scenarios();

}  // namespace spillway::bench
