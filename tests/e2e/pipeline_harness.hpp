// An engine with one pipeline over real plugins (kafka on a mock cluster, a SQLite file or a
// throwaway PostgreSQL, an inproc/redis/pgnotify doorbell, the adaptive scheduler), and an
// independent consumer that checks what reached Kafka: nothing lost, per-key order kept.
#pragma once

#include "engine/engine.hpp"

#include <spillway/test_support/mock_kafka.hpp>
#include <spillway/test_support/postgres.hpp>
#include <spillway/test_support/temp_dir.hpp>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace spillway::e2e {

enum class StoreKind { Sqlite, Postgres };

struct HarnessOptions {
    StoreKind store = StoreKind::Sqlite;
    std::string notifier = "inproc";  // inproc | redis | pgnotify
    std::string mode = "direct-first";
    std::string extra_sink;           // more TOML lines for [sink.kafka]
    std::string extra_notifier;
    std::string extra_scheduler;      // more TOML lines for [scheduler.poll] (the adaptive one)
    std::string extra_store;          // more TOML lines for [store.outbox]
    std::string extra_pipeline;
    std::string extra_engine;         // more TOML lines for [engine] (e.g. http_listen)
    std::string lease = "5s";
    std::string direct_timeout = "1s";
    int message_timeout_ms = 1000;    // the sink's message.timeout.ms
    std::string pg_conninfo;          // for Postgres; default: a fresh database on the shared server
    std::function<void(test_support::MockKafka&)> before_start;  // e.g. errors for the first requests
};

// The TOML of the pipeline the harness runs, for tests that start `spillway run` themselves.
std::string pipeline_toml(const HarnessOptions& o, const std::string& bootstraps, const std::string& sqlite_path,
                          const std::string& topic);

class Harness {
public:
    explicit Harness(HarnessOptions options = {});
    ~Harness();

    test_support::MockKafka& kafka() { return kafka_; }
    Engine& engine() { return *engine_; }
    pipeline::Pipeline& pipeline() { return *engine_->pipeline("orders"); }
    const std::string& topic() const { return topic_; }
    const std::string& pg_conninfo() const { return pg_conninfo_; }
    const std::string& dir() const { return dir_.path(); }

    // Publishes one event of `key` with a per-key sequence number; records it when accepted.
    pipeline::Outcome publish(const std::string& key, const std::string& payload = "");
    std::vector<pipeline::Outcome> publish_batch(std::vector<pipeline::Event> events);
    const std::vector<std::pair<std::string, std::string>>& accepted() const { return accepted_; }  // (event_id, key)

    // Waits until every accepted event was consumed; then checks per-key order of first
    // deliveries. Fills lost/order violations/duplicates; returns true when nothing was lost.
    struct Delivery {
        size_t consumed = 0, unique = 0, duplicates = 0, lost = 0;
        size_t order_violations = 0;  // keys whose first deliveries are out of accept order
        size_t overtaken = 0;         // first deliveries of an event accepted before one already delivered
        std::string first_problem;
    };
    Delivery await_delivery(std::chrono::milliseconds deadline);

    int64_t pending();  // rows waiting in the outbox for the pipeline

private:
    HarnessOptions options_;
    test_support::TempDir dir_{"e2e"};
    test_support::MockKafka kafka_{1};
    std::string topic_ = "orders.events";
    std::string pg_conninfo_;
    std::unique_ptr<Engine> engine_;
    std::vector<std::pair<std::string, std::string>> accepted_;
    std::map<std::string, int> seq_;
};

// Reads `topic` until every accepted event arrived (or the deadline) and checks it.
Harness::Delivery await_records(const test_support::MockKafka& kafka, const std::string& topic,
                                const std::vector<std::pair<std::string, std::string>>& accepted,
                                std::chrono::milliseconds deadline);

// Checks `records` against `accepted` (event_id, key) in accept order; key "" is a keyless event,
// checked for loss only.
Harness::Delivery check_delivery(const std::vector<test_support::KafkaRecord>& records,
                                 const std::vector<std::pair<std::string, std::string>>& accepted);

}  // namespace spillway::e2e
