// The original system's `event_outbox` table (../shared/reference/original-system.md, §1.1) relayed
// to Kafka by the real `spillway run` with the example config configs/examples/adopt-event-outbox.toml, used
// as an operator would: the file itself, its ${...} variables set in the environment. The table is
// created by SQL exactly as the original had it, with rows its application wrote before Spillway
// came (one of them already published by the old relay); `spillway outbox migrate` adopts it; the
// application goes on inserting rows in its own transactions, knowing nothing of Spillway's
// columns. An independent consumer checks what reached Kafka.
#include "pipeline_harness.hpp"

#include <spillway/test_support/ports.hpp>
#include <spillway/test_support/run_command.hpp>
#include <spillway/test_support/spillway_run.hpp>
#include <spillway/test_support/wait.hpp>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <map>
#include <optional>
#include <unistd.h>

namespace spillway::e2e {
namespace {

using namespace std::chrono_literals;
using test_support::KafkaRecord;
using test_support::Postgres;
using test_support::run_command;
using test_support::wait_until;
using Headers = std::vector<std::pair<std::string, std::string>>;

constexpr const char* kBatchTopic = "huleedu.batch.v1";
constexpr const char* kEssayTopic = "huleedu.essay.v1";

// One row as the original application's OutboxManager wrote it: the serialised envelope plus
// "topic" and, when the caller passed them, "headers", in event_data; the key and topic in columns.
struct AppRow {
    std::string event_id;
    std::optional<std::string> key;  // event_key is nullable
    std::string topic;
    std::string event_type;
    nlohmann::json envelope;  // event_data, headers included
    Headers headers;          // the envelope's headers, in the order written
};

AppRow make_row(int n, std::optional<std::string> key, const std::string& topic, const std::string& event_type,
                Headers headers = {}) {
    AppRow r;
    char id[40];
    std::snprintf(id, sizeof id, "5a1e0000-0000-4000-8000-%012d", n);
    r.event_id = id;
    r.key = std::move(key);
    r.topic = topic;
    r.event_type = event_type;
    r.headers = std::move(headers);
    r.envelope = nlohmann::json::object();
    r.envelope["event_id"] = r.event_id;
    r.envelope["event_type"] = event_type;
    r.envelope["event_timestamp"] = "2025-11-20T10:00:00Z";
    r.envelope["source_service"] = "batch_orchestrator_service";
    r.envelope["correlation_id"] = "c0ffee00-0000-4000-8000-" + std::string(id).substr(24);
    r.envelope["data"] = {{"n", n}, {"entity_id", r.key.value_or("none")}};
    r.envelope["topic"] = topic;
    if (!r.headers.empty()) {
        nlohmann::json h = nlohmann::json::object();
        for (const auto& [name, value] : r.headers) h[name] = value;
        r.envelope["headers"] = h;
    }
    return r;
}

std::string quoted(const std::string& s) {
    std::string q = "'";
    for (char c : s) q += c == '\'' ? std::string("''") : std::string(1, c);
    return q + "'";
}

// The application's INSERT: its own transaction, its own columns only (no pipeline, no event id,
// no state: it does not know Spillway is there).
std::string insert_sql(const AppRow& r, const std::string& extra_columns = "", const std::string& extra_values = "") {
    return "BEGIN; INSERT INTO event_outbox (aggregate_id, aggregate_type, event_type, event_data, event_key, topic" +
           extra_columns + ") VALUES (" + quoted(r.key.value_or("orphan")) + ", 'batch', " + quoted(r.event_type) +
           ", " + quoted(r.envelope.dump()) + ", " + (r.key ? quoted(*r.key) : std::string("NULL")) + ", " +
           quoted(r.topic) + extra_values + "); COMMIT;";
}

// models.py and the Alembic migrations (the template, then the explicit-topic migration): JSON (not
// jsonb) event_data, created_at timestamptz, published_at NULL = unpublished, the UUID id.
constexpr const char* kCreateEventOutbox =
    "CREATE TABLE event_outbox ("
    " id UUID PRIMARY KEY DEFAULT gen_random_uuid(),"
    " aggregate_id VARCHAR(255) NOT NULL,"
    " aggregate_type VARCHAR(100) NOT NULL,"
    " event_type VARCHAR(255) NOT NULL,"
    " event_data JSON NOT NULL,"
    " event_key VARCHAR(255),"
    " topic VARCHAR(255) NOT NULL,"
    " created_at TIMESTAMPTZ NOT NULL DEFAULT now(),"
    " published_at TIMESTAMPTZ,"
    " retry_count INTEGER NOT NULL DEFAULT 0,"
    " last_error TEXT);"
    "COMMENT ON TABLE event_outbox IS 'Event outbox table for reliable event publishing to Kafka';"
    "CREATE INDEX ix_event_outbox_unpublished_topic ON event_outbox (published_at, topic, created_at)"
    " WHERE published_at IS NULL;"
    "CREATE INDEX ix_event_outbox_topic ON event_outbox (topic);"
    "CREATE INDEX ix_event_outbox_aggregate ON event_outbox (aggregate_type, aggregate_id);"
    "CREATE INDEX ix_event_outbox_event_type ON event_outbox (event_type);";

std::string describe(const KafkaRecord& r) {
    std::string s = "record p" + std::to_string(r.partition) + "@" + std::to_string(r.offset) + " key=" +
                    r.key.value_or("(none)") + " headers:";
    for (const auto& [n, v] : r.headers) s += " " + n + "=" + v;
    return s;
}

// `spillway outbox status --json`, which must succeed without a warning and list one pipeline,
// "events": its entry (null when there is not one, the failure reported).
nlohmann::json events_status(const std::string& config, const std::vector<std::string>& env) {
    const auto r = run_command({SPILLWAY_BIN, "outbox", config, "status", "--json"}, "", env);
    EXPECT_EQ(r.code, 0) << r.out << r.err;
    EXPECT_EQ(r.err.find("warning"), std::string::npos) << r.err;
    const auto status = nlohmann::json::parse(r.out, nullptr, false);
    if (!status.is_array() || status.size() != 1) {
        ADD_FAILURE() << "not one pipeline's status: " << r.out;
        return nullptr;
    }
    EXPECT_EQ(status[0]["pipeline"], "events");
    return status[0];
}

TEST(AdoptEventOutbox, TheExampleConfigRelaysTheOriginalTableToKafkaEndToEnd) {
    auto& pg = Postgres::shared();
    const std::string db = "e2e_adopt_" + std::to_string(getpid());
    pg.create_database(db);
    // The URI form the example's comment shows (the key=value form works too).
    const std::string url = "postgresql://postgres@127.0.0.1:" + std::to_string(pg.port()) + "/" + db;
    test_support::MockKafka kafka(1);
    kafka.create_topic(kBatchTopic, 4, 1);
    kafka.create_topic(kEssayTopic, 4, 1);
    test_support::TempDir dir("adopt");

    // The example file as shipped; only its variables come from the environment.
    const std::string config = std::string(SPILLWAY_SOURCE_DIR) + "/configs/examples/adopt-event-outbox.toml";
    const std::vector<std::string> env = {
        "OUTBOX_DATABASE_URL=" + url,
        "KAFKA_BROKERS=" + kafka.bootstraps(),
        "SPILLWAY_PLUGIN_PATH=" SPILLWAY_PLUGIN_DIR,
        "SPILLWAY_HTTP=127.0.0.1:" + std::to_string(test_support::free_port()),
        "SPILLWAY_ENV=testing",  // the adaptive scheduler's testing profile: short idle polls
    };

    // --- What the application wrote before Spillway: several keys, several rows per key, on two
    // topics; the first row of b-1 already published by the old relay; envelope headers on some;
    // one row without a key; one the old relay retried twice.
    pg.psql(db, kCreateEventOutbox);
    const AppRow already_published = make_row(0, "b-1", kBatchTopic, "batch.created");
    pg.psql(db, insert_sql(already_published, ", published_at", ", now() - interval '1 day'"));
    std::vector<AppRow> expected;  // every row that must reach Kafka, in insertion order
    auto legacy = [&](AppRow r, const std::string& extra_columns = "", const std::string& extra_values = "") {
        pg.psql(db, insert_sql(r, extra_columns, extra_values));
        expected.push_back(std::move(r));
    };
    int n = 1;
    legacy(make_row(n++, "b-1", kBatchTopic, "batch.essays.registered"));
    legacy(make_row(n++, "b-2", kBatchTopic, "batch.created"));
    legacy(make_row(n++, "b-1", kBatchTopic, "batch.ready", {{"trace_id", "t-3"}, {"content_type", "application/json"}}));
    legacy(make_row(n++, "e-7", kEssayTopic, "essay.scored"), ", retry_count, last_error", ", 2, 'broker down'");
    legacy(make_row(n++, "b-2", kBatchTopic, "batch.essays.registered"));
    legacy(make_row(n++, std::nullopt, kEssayTopic, "essay.orphaned"));
    legacy(make_row(n++, "e-7", kEssayTopic, "essay.feedback", {{"trace_id", "t-7"}}));
    legacy(make_row(n++, "b-1", kBatchTopic, "batch.completed"));
    legacy(make_row(n++, "b-2", kBatchTopic, "batch.ready"));
    const size_t legacy_rows = expected.size();

    // --- migrate, as the example's comment says to run it first: it reports what it did...
    auto r = run_command({SPILLWAY_BIN, "outbox", config, "migrate"}, "", env);
    ASSERT_EQ(r.code, 0) << r.out << r.err;
    for (const std::string& step : std::vector<std::string>{
             "store.event_outbox: adopted existing table event_outbox, added columns: spillway_id, event_id, pipeline",
          "store.event_outbox: 1 row(s) with published_at set marked published",
          // Pending and dead rows only: the old relay's published row keeps no pipeline.
          "store.event_outbox: " + std::to_string(legacy_rows) +
              " row(s) without a pipeline adopted by pipeline 'events'",
          "store.event_outbox: rows inserted without a pipeline go to pipeline 'events' (column default)"})
        EXPECT_NE(r.out.find(step), std::string::npos) << "missing \"" << step << "\" in:\n" << r.out;
    EXPECT_EQ(r.out.find("up to date"), std::string::npos) << r.out;
    // ...and a second run finds nothing left to do.
    r = run_command({SPILLWAY_BIN, "outbox", config, "migrate"}, "", env);
    ASSERT_EQ(r.code, 0) << r.out << r.err;
    EXPECT_EQ(r.out, "store.event_outbox: schema up to date\n");
    // The legacy rows are pending for the pipeline, none is left to no one.
    const auto adopted = events_status(config, env);
    ASSERT_TRUE(adopted.is_object());
    EXPECT_EQ(adopted["pending"], static_cast<int64_t>(legacy_rows)) << adopted;

    // --- The engine, as `spillway run configs/examples/adopt-event-outbox.toml`.
    const std::string log = dir.path() + "/run.log";
    auto engine = test_support::spawn_spillway_run(
        {.binary = SPILLWAY_BIN, .config_path = config, .environment = "", .log_path = log, .env = env});
    // It relays: the first legacy row arrives (which also proves it started).
    ASSERT_TRUE(wait_until([&] { return !kafka.consume_all(kBatchTopic, 1, 200ms).empty(); }, 60s, 20ms))
        << test_support::file_tail(log);

    // --- The application keeps writing while the engine runs: its own transactions, its own
    // columns, old keys and a new one, headers on some.
    for (int i = 0; i < 40; ++i) {
        const int k = i % 5;
        std::optional<std::string> key = k < 2 ? "b-" + std::to_string(k + 1) : k < 4 ? "e-" + std::to_string(k + 5) : "b-9";
        const std::string topic = key->front() == 'b' ? kBatchTopic : kEssayTopic;
        Headers headers;
        if (i % 3 == 0) headers = {{"trace_id", "live-" + std::to_string(i)}, {"source_service", "essay_lifecycle"}};
        AppRow row = make_row(n++, key, topic, "live.event." + std::to_string(i), headers);
        pg.psql(db, insert_sql(row));
        expected.push_back(std::move(row));
    }

    // --- What an independent consumer reads.
    std::vector<std::pair<std::string, std::string>> accepted;  // (event_id, key) in insertion order
    std::map<std::string, size_t> per_topic;
    for (const auto& row : expected) {
        accepted.emplace_back(row.event_id, row.key.value_or(""));
        ++per_topic[row.topic];
    }
    std::map<std::string, std::vector<KafkaRecord>> records;
    Harness::Delivery d;
    wait_until(
        [&] {
            std::vector<KafkaRecord> all;
            for (auto& [topic, count] : per_topic) {
                records[topic] = kafka.consume_all(topic, count, 1s);
                all.insert(all.end(), records[topic].begin(), records[topic].end());
                // A record that should not be there (a duplicate, the published row) fills the
                // count: read further next time, so that everything on the topic is checked.
                count = std::max(count, records[topic].size() + 1);
            }
            d = check_delivery(all, accepted);
            return d.lost == 0;
        },
        90s, 50ms);
    // Everything expected is there; one more read, waiting a moment for anything beyond it.
    std::vector<KafkaRecord> all;
    for (const auto& [topic, count] : per_topic) {
        records[topic] = kafka.consume_all(topic, records[topic].size() + 1, 1s);
        all.insert(all.end(), records[topic].begin(), records[topic].end());
    }
    d = check_delivery(all, accepted);
    ASSERT_EQ(d.lost, 0u) << d.first_problem << "\n" << test_support::file_tail(log);
    EXPECT_EQ(d.order_violations, 0u) << d.first_problem;
    EXPECT_EQ(d.duplicates, 0u) << "no fault, so exactly once";

    std::map<std::string, const AppRow*> by_id;
    for (const auto& row : expected) by_id[row.event_id] = &row;
    size_t checked = 0;
    for (const auto& [topic, list] : records) {
        for (const auto& rec : list) {
            const auto id = rec.header("event_id");
            ASSERT_TRUE(id) << describe(rec);
            EXPECT_NE(*id, already_published.event_id) << "a row the old relay published was sent again";
            const auto it = by_id.find(*id);
            ASSERT_NE(it, by_id.end()) << "unexpected event id " << *id << " on " << topic;
            const AppRow& row = *it->second;
            ++checked;
            EXPECT_EQ(topic, row.topic) << *id << ": the topic column decides";
            EXPECT_EQ(rec.key, row.key) << *id << ": event_key is the Kafka key";
            // event_id (the envelope's own), event_type (the column), then the envelope's headers.
            ASSERT_GE(rec.headers.size(), 2u) << describe(rec);
            EXPECT_EQ(rec.headers[0], (std::pair<std::string, std::string>{"event_id", row.event_id}));
            EXPECT_EQ(rec.headers[1], (std::pair<std::string, std::string>{"event_type", row.event_type}));
            Headers envelope_headers(rec.headers.begin() + 2, rec.headers.end()), want = row.headers;
            std::sort(envelope_headers.begin(), envelope_headers.end());
            std::sort(want.begin(), want.end());
            EXPECT_EQ(envelope_headers, want) << describe(rec);
            // The payload is the envelope, its headers taken out (jsonb may respace it).
            nlohmann::json want_payload = row.envelope;
            want_payload.erase("headers");
            ASSERT_TRUE(rec.payload) << describe(rec);
            EXPECT_EQ(nlohmann::json::parse(*rec.payload, nullptr, false), want_payload) << *rec.payload;
        }
    }
    EXPECT_EQ(checked, expected.size());

    // --- The table afterwards: every relayed row marked published_at (retention 168h keeps them),
    // the old relay's row untouched.
    EXPECT_TRUE(wait_until(
        [&] { return pg.scalar(db, "SELECT count(*) FROM event_outbox WHERE published_at IS NULL") == "0"; }, 30s,
        20ms))
        << pg.scalar(db, "SELECT count(*) FROM event_outbox WHERE published_at IS NULL") << " row(s) unpublished";
    EXPECT_EQ(pg.scalar(db, "SELECT count(*) FROM event_outbox WHERE published_at > now() - interval '1 hour'"),
              std::to_string(expected.size()));
    EXPECT_EQ(pg.scalar(db, "SELECT count(*) FROM event_outbox WHERE published_at < now() - interval '23 hours' AND "
                            "event_data->>'event_id' = " + quoted(already_published.event_id)),
              "1");
    EXPECT_EQ(pg.scalar(db, "SELECT count(*) FROM event_outbox"), std::to_string(expected.size() + 1))
        << "nothing deleted within the retention";

    ASSERT_TRUE(engine.stop(SIGTERM, 30s)) << test_support::file_tail(log);
    EXPECT_TRUE(engine.exited_ok()) << engine.describe_exit() << "\n" << test_support::file_tail(log);

    // --- status: nothing pending, no row left that no pipeline relays.
    const auto drained = events_status(config, env);
    ASSERT_TRUE(drained.is_object());
    EXPECT_EQ(drained["pending"], 0) << drained;
    EXPECT_EQ(drained["leased"], 0) << drained;
    EXPECT_EQ(drained["dead"], 0) << drained;
}

}  // namespace
}  // namespace spillway::e2e
