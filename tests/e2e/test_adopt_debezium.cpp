// A Debezium-layout outbox table (`outboxevent`: id uuid, aggregatetype, aggregateid, type, payload
// jsonb) relayed by the real `spillway run` with the example config
// configs/examples/adopt-debezium-outbox.toml, its `debezium` transform on: rows the application
// inserts in its own transactions reach Kafka as Debezium's outbox event router documents them.
//
// The expected records are written out here from Debezium's documentation (the outbox event router
// page, "Example of a Debezium outbox message" and the defaults of route.by.field,
// route.topic.replacement, table.field.event.id, table.field.event.key and
// table.field.event.payload), not from Spillway's output:
//   - topic  outbox.event.<aggregatetype>     (route.topic.replacement = outbox.event.${routedByValue})
//   - key    aggregateid                      (table.field.event.key)
//   - value  payload                          (table.field.event.payload), the JSON as stored
//   - header id = the row's id                (table.field.event.id; the only header by default)
// The documentation's row: id 406c07f3-26f0-4eea-a50c-109940064b8f, aggregatetype Order,
// aggregateid 1, type OrderCreated, payload {"id": 1, "lineItems": [...], "orderDate": ..., "customerId": 123}.
#include "pipeline_harness.hpp"

#include <spillway/test_support/ports.hpp>
#include <spillway/test_support/run_command.hpp>
#include <spillway/test_support/spillway_run.hpp>
#include <spillway/test_support/wait.hpp>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <map>
#include <unistd.h>

namespace spillway::e2e {
namespace {

using namespace std::chrono_literals;
using test_support::KafkaRecord;
using test_support::Postgres;
using test_support::run_command;
using test_support::wait_until;
using Headers = std::vector<std::pair<std::string, std::string>>;

// Debezium's documented outbox table (the connector's example schema).
constexpr const char* kCreateOutboxEvent =
    "CREATE TABLE outboxevent ("
    " id uuid NOT NULL PRIMARY KEY,"
    " aggregatetype varchar(255) NOT NULL,"
    " aggregateid varchar(255) NOT NULL,"
    " type varchar(255) NOT NULL,"
    " payload jsonb);";

struct Row {
    std::string id, aggregatetype, aggregateid, type;
    nlohmann::json payload;
};

std::string quoted(const std::string& s) {
    std::string q = "'";
    for (char c : s) q += c == '\'' ? std::string("''") : std::string(1, c);
    return q + "'";
}

// What the application runs: its own transaction, Debezium's columns only.
std::string insert_sql(const Row& r) {
    return "BEGIN; INSERT INTO outboxevent (id, aggregatetype, aggregateid, type, payload) VALUES (" + quoted(r.id) +
           ", " + quoted(r.aggregatetype) + ", " + quoted(r.aggregateid) + ", " + quoted(r.type) + ", " +
           quoted(r.payload.dump()) + "); COMMIT;";
}

Row documented_row() {
    Row r{"406c07f3-26f0-4eea-a50c-109940064b8f", "Order", "1", "OrderCreated", nullptr};
    r.payload = nlohmann::json::parse(R"({"id": 1, "lineItems": [
        {"id": 1, "item": "Debezium in Action", "status": "ENTERED", "quantity": 2, "totalPrice": 39.98},
        {"id": 2, "item": "Debezium for Dummies", "status": "ENTERED", "quantity": 1, "totalPrice": 29.99}],
        "orderDate": "2019-01-31T12:13:01", "customerId": 123})");
    return r;
}

Row row(int n, const std::string& aggregatetype, const std::string& aggregateid, const std::string& type) {
    char id[40];
    std::snprintf(id, sizeof id, "d3b00000-0000-4000-8000-%012d", n);
    return {id, aggregatetype, aggregateid, type, {{"n", n}, {"aggregate", aggregateid}, {"type", type}}};
}

TEST(AdoptDebezium, TheExampleConfigRelaysADebeziumTableAsTheEventRouterDocumentsIt) {
    auto& pg = Postgres::shared();
    const std::string db = "e2e_debezium_" + std::to_string(getpid());
    pg.create_database(db);
    const std::string url = "postgresql://postgres@127.0.0.1:" + std::to_string(pg.port()) + "/" + db;
    test_support::MockKafka kafka(1);
    kafka.create_topic("outbox.event.Order", 4, 1);
    kafka.create_topic("outbox.event.Customer", 4, 1);
    test_support::TempDir dir("debezium");

    const std::string config = std::string(SPILLWAY_SOURCE_DIR) + "/configs/examples/adopt-debezium-outbox.toml";
    const std::vector<std::string> env = {
        "OUTBOX_DATABASE_URL=" + url,
        "KAFKA_BROKERS=" + kafka.bootstraps(),
        "SPILLWAY_PLUGIN_PATH=" SPILLWAY_PLUGIN_DIR,
        "SPILLWAY_HTTP=127.0.0.1:" + std::to_string(test_support::free_port()),
        "SPILLWAY_ENV=testing",
    };

    pg.psql(db, kCreateOutboxEvent);
    std::vector<Row> expected;
    // Before Spillway: the documentation's row, and more of the same aggregate.
    expected.push_back(documented_row());
    expected.push_back(row(1, "Order", "1", "OrderLineUpdated"));
    for (const auto& r : expected) pg.psql(db, insert_sql(r));
    auto r = run_command({SPILLWAY_BIN, "outbox", config, "migrate"}, "", env);
    ASSERT_EQ(r.code, 0) << r.out << r.err;

    const std::string log = dir.path() + "/run.log";
    auto engine = test_support::spawn_spillway_run(
        {.binary = SPILLWAY_BIN, .config_path = config, .environment = "", .log_path = log, .env = env});
    ASSERT_TRUE(wait_until([&] { return !kafka.consume_all("outbox.event.Order", 1, 200ms).empty(); }, 60s, 20ms))
        << test_support::file_tail(log);

    // While it runs, the application goes on: two aggregate types, several aggregates, each
    // aggregate's next row only after its previous one committed.
    for (int n = 2; n < 32; ++n) {
        const bool customer = n % 4 == 0;
        Row next = row(n, customer ? "Customer" : "Order", customer ? "123" : std::to_string(n % 3 + 1),
                       customer ? "CustomerUpdated" : "OrderUpdated");
        pg.psql(db, insert_sql(next));
        expected.push_back(std::move(next));
    }

    std::map<std::string, size_t> per_topic;
    std::vector<std::pair<std::string, std::string>> accepted;  // (event id, key) in insertion order
    for (const auto& e : expected) {
        ++per_topic["outbox.event." + e.aggregatetype];
        accepted.emplace_back(e.id, e.aggregateid);
    }
    std::map<std::string, std::vector<KafkaRecord>> records;
    // The consumer's dedupe key is Debezium's `id` header; check_delivery reads event_id.
    auto with_event_id = [](std::vector<KafkaRecord> list) {
        for (auto& rec : list)
            if (auto id = rec.header("id")) rec.headers.emplace_back("event_id", *id);
        return list;
    };
    Harness::Delivery d;
    wait_until(
        [&] {
            std::vector<KafkaRecord> all;
            for (const auto& [topic, count] : per_topic) {
                records[topic] = kafka.consume_all(topic, count, 1s);
                auto marked = with_event_id(records[topic]);
                all.insert(all.end(), marked.begin(), marked.end());
            }
            d = check_delivery(all, accepted);
            return d.lost == 0;
        },
        90s, 50ms);
    std::vector<KafkaRecord> all;
    for (const auto& [topic, count] : per_topic) {
        records[topic] = kafka.consume_all(topic, count + 1, 1s);  // anything beyond, too
        auto marked = with_event_id(records[topic]);
        all.insert(all.end(), marked.begin(), marked.end());
    }
    d = check_delivery(all, accepted);
    ASSERT_EQ(d.lost, 0u) << d.first_problem << "\n" << test_support::file_tail(log);
    EXPECT_EQ(d.order_violations, 0u) << d.first_problem;
    EXPECT_EQ(d.duplicates, 0u) << "no fault, so exactly once";

    std::map<std::string, const Row*> by_id;
    for (const auto& e : expected) by_id[e.id] = &e;
    size_t checked = 0;
    for (const auto& [topic, list] : records) {
        for (const auto& rec : list) {
            // Debezium's record: the id header and nothing else (envelope_headers = false).
            ASSERT_EQ(rec.headers.size(), 1u) << topic << ": headers other than id";
            ASSERT_EQ(rec.headers[0].first, "id");
            const auto it = by_id.find(rec.headers[0].second);
            ASSERT_NE(it, by_id.end()) << "unexpected id " << rec.headers[0].second;
            const Row& want = *it->second;
            ++checked;
            EXPECT_EQ(topic, "outbox.event." + want.aggregatetype);
            EXPECT_EQ(rec.key, want.aggregateid);
            ASSERT_TRUE(rec.payload);
            EXPECT_EQ(nlohmann::json::parse(*rec.payload, nullptr, false), want.payload) << *rec.payload;
        }
    }
    EXPECT_EQ(checked, expected.size());
    // The documentation's own row, in full.
    bool documented = false;
    for (const auto& rec : records["outbox.event.Order"]) {
        if (rec.header("id") != documented_row().id) continue;
        documented = true;
        EXPECT_EQ(rec.key, std::optional<std::string>("1"));
        EXPECT_EQ(nlohmann::json::parse(*rec.payload)["lineItems"][0]["item"], "Debezium in Action");
    }
    EXPECT_TRUE(documented);

    ASSERT_TRUE(engine.stop(SIGTERM, 30s)) << test_support::file_tail(log);
    EXPECT_TRUE(engine.exited_ok()) << engine.describe_exit() << "\n" << test_support::file_tail(log);
    EXPECT_EQ(pg.scalar(db, "SELECT count(*) FROM outboxevent WHERE state = 'pending'"), "0");
}

}  // namespace
}  // namespace spillway::e2e
