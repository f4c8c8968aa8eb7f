#include "pipeline_harness.hpp"

#include <spillway/test_support/pipeline_toml.hpp>
#include <spillway/test_support/wait.hpp>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <set>
#include <unordered_map>

namespace spillway::e2e {

using namespace std::chrono_literals;

std::string pipeline_toml(const HarnessOptions& o, const std::string& bootstraps, const std::string& sqlite_path,
                          const std::string& topic) {
    test_support::PipelineToml toml(SPILLWAY_PLUGIN_DIR);
    toml.engine().set("log_level", "warn").add_lines(o.extra_engine);
    // Fast reconnects and a message timeout within direct_timeout, as the toolchain notes advise.
    toml.kafka_sink(bootstraps)
        .set_integer("reconnect.backoff.ms", 10)
        .set_integer("reconnect.backoff.max.ms", 200)
        .set_integer("message.timeout.ms", o.message_timeout_ms)
        .add_lines(o.extra_sink);
    if (o.store == StoreKind::Sqlite) toml.sqlite_store(sqlite_path).add_lines(o.extra_store);
    else toml.postgres_store(o.pg_conninfo).add_lines(o.extra_store);
    toml.notifier(o.notifier).add_lines(o.extra_notifier);
    toml.adaptive_scheduler().add_lines(o.extra_scheduler);
    toml.pipeline("orders")
        .set("mode", o.mode)
        .set("topic", topic)
        .set("direct_timeout", o.direct_timeout)
        .set("lease", o.lease)
        .add_lines(o.extra_pipeline);
    return toml.text();
}

Harness::Harness(HarnessOptions options) : options_(std::move(options)) {
    static std::atomic<int> n{0};
    if (options_.store == StoreKind::Postgres && options_.pg_conninfo.empty())
        options_.pg_conninfo = test_support::Postgres::shared().create_database("e2e_" + std::to_string(getpid()) + "_" + std::to_string(n++));
    pg_conninfo_ = options_.pg_conninfo;
    kafka_.create_topic(topic_, 4, 1);
    if (options_.before_start) options_.before_start(kafka_);
    const std::string path = dir_.path() + "/pipeline.toml";
    std::ofstream(path) << pipeline_toml(options_, kafka_.bootstraps(), dir_.path() + "/outbox.db", topic_);
    config::LoadOptions lo;
    lo.environment = "testing";
    engine_ = std::make_unique<Engine>(prepare(path, lo));
    engine_->start();
}

Harness::~Harness() {
    if (engine_) engine_->stop();
}

pipeline::Outcome Harness::publish(const std::string& key, const std::string& payload) {
    pipeline::Event e;
    e.key = key;
    const int seq = seq_[key]++;
    e.payload = payload.empty() ? "{\"key\":\"" + key + "\",\"seq\":" + std::to_string(seq) + "}" : payload;
    auto out = pipeline().publish(std::move(e));
    if (out.accepted()) accepted_.emplace_back(out.event_id, key);
    return out;
}

Harness::Delivery check_delivery(const std::vector<test_support::KafkaRecord>& records,
                                 const std::vector<std::pair<std::string, std::string>>& accepted) {
    Harness::Delivery d;
    d.consumed = records.size();
    // First deliveries per key, in the order Kafka holds them (one key lives in one partition).
    std::unordered_map<std::string, std::vector<std::string>> first_by_key;
    std::set<std::string> seen;
    for (const auto& r : records) {
        const auto id = r.header("event_id");
        if (!id) continue;
        if (!seen.insert(*id).second) {
            ++d.duplicates;
            continue;
        }
        first_by_key[r.key.value_or("")].push_back(*id);
    }
    d.unique = seen.size();
    std::unordered_map<std::string, std::vector<std::string>> accepted_by_key;
    for (const auto& [id, key] : accepted) {
        accepted_by_key[key].push_back(id);
        if (!seen.count(id)) {
            if (d.lost++ == 0) d.first_problem = "lost " + id + " (key " + key + ")";
        }
    }
    for (const auto& [key, ids] : accepted_by_key) {
        if (key.empty()) continue;  // keyless events: owed delivery, not order
        // The delivered order restricted to accepted ids must equal the accepted order.
        std::set<std::string> want(ids.begin(), ids.end());
        std::vector<std::string> got;
        for (const auto& id : first_by_key[key])
            if (want.count(id)) got.push_back(id);
        std::unordered_map<std::string, size_t> rank;
        for (size_t i = 0; i < ids.size(); ++i) rank.emplace(ids[i], i);
        size_t latest = 0;
        for (size_t i = 0; i < got.size(); ++i) {
            const size_t r = rank[got[i]];
            if (i > 0 && r < latest) ++d.overtaken;
            latest = std::max(latest, r);
        }
        for (size_t i = 0; i < got.size() && i < ids.size(); ++i) {
            if (got[i] != ids[i]) {
                if (d.order_violations++ == 0 && d.first_problem.empty())
                    d.first_problem = "key " + key + ": position " + std::to_string(i) + " has " + got[i] + ", expected " + ids[i];
                break;
            }
        }
    }
    return d;
}

Harness::Delivery await_records(const test_support::MockKafka& kafka, const std::string& topic,
                                const std::vector<std::pair<std::string, std::string>>& accepted,
                                std::chrono::milliseconds deadline) {
    std::vector<test_support::KafkaRecord> records;
    Harness::Delivery d;
    size_t expected = accepted.size();
    test_support::wait_until(
        [&] {
            records = kafka.consume_all(topic, expected, 2s);
            d = check_delivery(records, accepted);
            // Duplicates make the topic longer than what was accepted: read further next time.
            expected = std::max(expected, records.size() + d.lost);
            return d.lost == 0;
        },
        deadline, 50ms);
    return d;
}

std::vector<pipeline::Outcome> Harness::publish_batch(std::vector<pipeline::Event> events) {
    std::vector<std::string> keys;
    for (const auto& e : events) keys.push_back(e.key.value_or(""));
    auto out = pipeline().publish(std::move(events));
    for (size_t i = 0; i < out.size(); ++i)
        if (out[i].accepted()) accepted_.emplace_back(out[i].event_id, keys[i]);
    return out;
}

Harness::Delivery Harness::await_delivery(std::chrono::milliseconds deadline) {
    return await_records(kafka_, topic_, accepted_, deadline);
}

int64_t Harness::pending() { return pipeline().status().pending; }

}  // namespace spillway::e2e
