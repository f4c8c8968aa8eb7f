#include "context.hpp"

namespace spillway::bench {

std::vector<std::pair<std::string, std::string>>& extra_kafka_properties() {
    static std::vector<std::pair<std::string, std::string>> props;
    return props;
}

test_support::Postgres& Context::postgres() {
    if (!pg_) {
        test_support::PostgresOptions o;
        o.fast = false;  // the targets are stated for PostgreSQL's default durability
        o.settings = {"shared_preload_libraries=pg_stat_statements", "max_connections=200"};
        pg_ = std::make_unique<test_support::Postgres>(o);
    }
    return *pg_;
}

test_support::Redis& Context::redis() {
    if (!redis_) redis_ = std::make_unique<test_support::Redis>();
    return *redis_;
}

test_support::MockKafka& Context::kafka() {
    if (!kafka_) kafka_ = std::make_unique<test_support::MockKafka>(3);
    return *kafka_;
}

std::string Context::database(const std::string& name) { return postgres().create_database(name); }

std::string Context::fresh_topic(const std::string& stem) {
    std::string t = "bench." + stem + "." + std::to_string(topics_++);
    kafka().create_topic(t, 4, 3);
    return t;
}

void Context::reset_statements() {
    postgres().psql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements");
    postgres().scalar("postgres", "SELECT pg_stat_statements_reset()");
}

std::string Context::top_statements(const std::string& db, int n) {
    std::string out;
    for (const auto& r : postgres().query(
             "postgres", "SELECT calls, round(mean_exec_time::numeric, 3), left(regexp_replace(query, '\\s+', ' ', 'g'), 80) "
                         "FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = '" + db +
                             "' ORDER BY calls DESC LIMIT " + std::to_string(n)))
        out += (out.empty() ? "" : " | ") + r[0] + "x " + r[1] + " ms " + r[2];
    return out;
}

const std::vector<Scenario>& scenarios() {
    static const std::vector<Scenario> all = {
        {"direct", "direct publish (sync and batched) vs a raw librdkafka producer; 1-4 pipelines", run_direct},
        {"outage", "caller latency with Kafka down (circuit open, PostgreSQL outbox) vs raw SOCI insert+commit; calls in flight at the onset", run_outage},
        {"doorbell", "outbox-first COMMIT -> Kafka ack with pgnotify and redis doorbells vs raw hiredis; seed design", run_doorbell},
        {"drain", "backlog drain PostgreSQL -> Kafka at batch sizes 1..1000 vs a raw SOCI claim/delete loop + producer", run_drain},
        {"ingress", "HTTP ingress (NDJSON batches of 100) vs the C++ API", run_ingress},
        {"idle", "an idle `spillway run` with four plugins: store statements/s, CPU, RSS", run_idle},
        {"recovery", "`spillway run` SIGKILLed mid-drain and restarted: time to the first row relayed and to an empty outbox", run_recovery},
        {"scale", "three `spillway run` engines in coordination = \"shards\": failover per fault (SIGKILL, SIGSTOP, SIGTERM), direct publish single vs shards, drain by 1-3 engines with CPU per event", run_scale},
    };
    return all;
}

}  // namespace spillway::bench
