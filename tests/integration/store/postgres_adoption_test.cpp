// Adopting the original system's `event_outbox` table on PostgreSQL, end to end through the store:
// its id is a UUID, it has no event-id column and no pipeline, its event_data is a JSON envelope
// carrying the event id, the topic and optional headers, and published_at NULL means unpublished.
// The store is configured as configs/adopt-event-outbox.toml configures it.
#include <spillway/test_support/postgres.hpp>
#define SPILLWAY_STORE_SUITE_HELPERS_ONLY
#include <spillway/testkit/store_suite.hpp>

namespace {

using namespace spillway::testkit;
using namespace spillway::testkit::store_suite;
using spillway::test_support::Postgres;

const std::string& database() {
    static const std::string conninfo = Postgres::shared().create_database("store_adoption");
    return conninfo;
}

Postgres& server() {
    database();
    return Postgres::shared();
}

Plugin& postgres_plugin() {
    static Plugin plugin(plugin_file("postgres"));
    return plugin;
}

std::string migrate_report(StoreInstance& s) {
    {
        std::lock_guard lock(s.host().mutex);
        s.host().error.clear();
    }
    EXPECT_EQ(s.vt().migrate(s.get()), SW_OK) << s.host().last_error();
    return s.host().last_error();
}

// The table as the original's models.py and migrations define it, with the rows its application
// wrote: one already published, two of one aggregate in order, one with envelope headers, one
// retried twice.
void create_event_outbox(Postgres& pg, const std::string& table) {
    pg.psql("store_adoption",
            "CREATE TABLE " + table +
                " (id UUID PRIMARY KEY DEFAULT gen_random_uuid(), aggregate_id VARCHAR(255) NOT NULL, "
                "aggregate_type VARCHAR(100) NOT NULL, event_type VARCHAR(255) NOT NULL, event_data JSON NOT NULL, "
                "event_key VARCHAR(255), topic VARCHAR(255) NOT NULL, created_at TIMESTAMPTZ NOT NULL DEFAULT now(), "
                "published_at TIMESTAMPTZ, retry_count INTEGER NOT NULL DEFAULT 0, last_error TEXT);"
                "CREATE INDEX ix_" + table + "_unpublished ON " + table +
                " (published_at, created_at) WHERE published_at IS NULL;"
                "INSERT INTO " + table +
                " (aggregate_id, aggregate_type, event_type, event_data, event_key, topic, published_at) VALUES "
                "('b-0', 'batch', 'batch.created', '{\"event_id\": \"11111111-0000-4000-8000-000000000000\", "
                "\"topic\": \"huleedu.batch.v1\", \"data\": {}}', 'b-0', 'huleedu.batch.v1', now() - interval '1 day');"
                "INSERT INTO " + table +
                " (aggregate_id, aggregate_type, event_type, event_data, event_key, topic) VALUES "
                "('b-1', 'batch', 'batch.created', '{\"event_id\": \"11111111-0000-4000-8000-000000000001\", "
                "\"topic\": \"huleedu.batch.v1\", \"data\": {\"n\": 1}}', 'b-1', 'huleedu.batch.v1');"
                "INSERT INTO " + table +
                " (aggregate_id, aggregate_type, event_type, event_data, event_key, topic) VALUES "
                "('b-1', 'batch', 'batch.ready', '{\"event_id\": \"11111111-0000-4000-8000-000000000002\", "
                "\"topic\": \"huleedu.batch.v1\", \"data\": {\"n\": 2}, \"headers\": {\"trace_id\": \"abc\", "
                "\"content_type\": \"application/json\"}}', 'b-1', 'huleedu.batch.v1');"
                "INSERT INTO " + table +
                " (aggregate_id, aggregate_type, event_type, event_data, event_key, topic, retry_count, last_error) "
                "VALUES ('e-7', 'essay', 'essay.scored', '{\"event_id\": \"11111111-0000-4000-8000-000000000003\", "
                "\"topic\": \"huleedu.essay.v1\", \"data\": {}}', NULL, 'huleedu.essay.v1', 2, 'broker down')");
}

// configs/adopt-event-outbox.toml's store section.
Config event_outbox_config(const std::string& table) {
    return Config{{"url", database()},
                  {"table", table},
                  {"columns.id", "spillway_id"},
                  {"columns.key", "event_key"},
                  {"columns.payload", "event_data"},
                  {"columns.attempts", "retry_count"},
                  {"columns.created_at", "spillway_created_at"},
                  {"adopt_pipeline", "orders"},
                  {"event_id_field", "event_id"},
                  {"headers_field", "headers"},
                  {"retention", "168h"}};
}

TEST(PostgresAdoption, TheOriginalEventOutboxIsRelayedWithItsEventIdsKeysTopicsAndHeaders) {
    auto& pg = server();
    create_event_outbox(pg, "event_outbox");
    StoreInstance s(postgres_plugin(), event_outbox_config("event_outbox"));

    const std::string report = migrate_report(s);
    EXPECT_NE(report.find("adopted existing table event_outbox, added columns: spillway_id, event_id, pipeline"),
              std::string::npos)
        << report;
    EXPECT_NE(report.find("1 row(s) with published_at set marked published"), std::string::npos) << report;
    EXPECT_NE(report.find("4 row(s) without a pipeline adopted by pipeline 'orders'"), std::string::npos) << report;
    EXPECT_NE(report.find("column default"), std::string::npos) << report;
    EXPECT_EQ(migrate_report(s), "");

    // The application goes on writing its way, knowing nothing of Spillway's columns.
    pg.psql("store_adoption",
            "INSERT INTO event_outbox (aggregate_id, aggregate_type, event_type, event_data, event_key, topic) VALUES "
            "('b-1', 'batch', 'batch.done', '{\"event_id\": \"11111111-0000-4000-8000-000000000004\", "
            "\"topic\": \"huleedu.batch.v1\", \"headers\": {\"trace_id\": \"def\"}}', 'b-1', 'huleedu.batch.v1')");

    // What the relay hands the Kafka sink.
    const auto rows = claim(s, "orders", 10);
    ASSERT_EQ(rows.size(), 4u) << "the published row is not relayed again; " << s.host().last_error();
    EXPECT_EQ(rows[0].event_id, "11111111-0000-4000-8000-000000000001") << "the envelope's event id, kept";
    EXPECT_EQ(rows[0].key, "b-1");
    EXPECT_EQ(rows[0].topic, "huleedu.batch.v1");
    EXPECT_EQ(rows[0].event_type, "batch.created");
    EXPECT_TRUE(rows[0].headers.empty());
    EXPECT_EQ(rows[1].event_id, "11111111-0000-4000-8000-000000000002");
    EXPECT_EQ(rows[1].key, "b-1");
    EXPECT_EQ(rows[1].headers, (std::vector<std::pair<std::string, std::string>>{
                                   {"trace_id", "abc"}, {"content_type", "application/json"}}));
    EXPECT_EQ(rows[1].payload.find("headers"), std::string::npos) << "headers leave the payload: " << rows[1].payload;
    EXPECT_NE(rows[1].payload.find("\"n\": 2"), std::string::npos) << rows[1].payload;
    EXPECT_EQ(rows[2].event_id, "11111111-0000-4000-8000-000000000003");
    EXPECT_FALSE(rows[2].has_key);
    EXPECT_EQ(rows[2].topic, "huleedu.essay.v1");
    EXPECT_EQ(rows[2].attempts, 2) << "retry_count carries on as the attempt count";
    EXPECT_EQ(rows[3].event_id, "11111111-0000-4000-8000-000000000004") << "inserted after the migration";
    EXPECT_EQ(rows[3].headers, (std::vector<std::pair<std::string, std::string>>{{"trace_id", "def"}}));

    ASSERT_EQ(complete(s, rows, SW_OK), SW_OK) << s.host().last_error();
    // Marked published as the application's own tooling expects (retention keeps them 168h).
    EXPECT_EQ(pg.scalar("store_adoption", "SELECT count(*) FROM event_outbox WHERE published_at IS NULL"), "0");
    EXPECT_EQ(pg.scalar("store_adoption",
                        "SELECT count(*) FROM event_outbox WHERE published_at > now() - interval '1 minute'"),
              "4");
    EXPECT_EQ(stats(s, "orders").pending, 0);
    EXPECT_EQ(stats(s, "*").pending, 0);
}

TEST(PostgresAdoption, WithoutAdoptPipelineTheRowsAreCountedOnlyInTheWholeTable) {
    auto& pg = server();
    create_event_outbox(pg, "event_outbox_unadopted");
    Config config = event_outbox_config("event_outbox_unadopted");
    config.values.erase("adopt_pipeline");
    StoreInstance s(postgres_plugin(), config);
    EXPECT_EQ(s.host().count_logs(SW_LOG_WARN, "3 pending row(s) without a pipeline"), 1u);
    EXPECT_EQ(stats(s, "orders").pending, 0);
    EXPECT_EQ(stats(s, "").pending, 3);
    EXPECT_EQ(stats(s, "*").pending, 3);
    // Set later, the option adopts them at the next migration.
    StoreInstance adopting(postgres_plugin(), event_outbox_config("event_outbox_unadopted"));
    EXPECT_NE(migrate_report(adopting).find("adopted by pipeline 'orders'"), std::string::npos);
    EXPECT_EQ(stats(adopting, "orders").pending, 3);
}

TEST(PostgresAdoption, AUuidIdColumnMustBeMappedAway) {
    auto& pg = server();
    create_event_outbox(pg, "event_outbox_unmapped");
    Config config = event_outbox_config("event_outbox_unmapped");
    config.values.erase("columns.id");
    try {
        StoreInstance s(postgres_plugin(), config);
        ADD_FAILURE() << "started on a uuid id column";
    } catch (const std::runtime_error& e) {
        const std::string what = e.what();
        EXPECT_NE(what.find("start failed (" + std::to_string(SW_FATAL) + ")"), std::string::npos) << what;
        EXPECT_NE(what.find("set columns.id to a new column name"), std::string::npos) << what;
    }
}

}  // namespace
