// Adopting the original system's `event_outbox` table on PostgreSQL, end to end through the store:
// its id is a UUID, it has no event-id column and no pipeline, its event_data is a JSON envelope
// carrying the event id, the topic and optional headers, and published_at NULL means unpublished.
// The store is configured as configs/examples/adopt-event-outbox.toml configures it.
#include "store_test_support.hpp"

namespace {

using namespace spillway::testkit;
using namespace spillway::testkit::store_suite;
using spillway::store_test::postgres_plugin;
using spillway::test_support::Postgres;

spillway::store_test::PostgresDatabase database("store_adoption");

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

// configs/examples/adopt-event-outbox.toml's store section.
Config event_outbox_config(const std::string& table) {
    return Config{{"url", database.conninfo()},
                  {"table", table},
                  {"columns.id", "spillway_id"},
                  {"columns.key", "event_key"},
                  {"columns.payload", "event_data"},
                  {"columns.attempts", "retry_count"},
                  {"columns.created_at", "spillway_created_at"},
                  {"adopt_pipeline", "orders"},
                  {"adopt_order_by", "created_at"},
                  {"event_id_field", "event_id"},
                  {"headers_field", "headers"},
                  {"retention", "168h"}};
}

TEST(PostgresAdoption, TheOriginalEventOutboxIsRelayedWithItsEventIdsKeysTopicsAndHeaders) {
    auto& pg = database.server();
    create_event_outbox(pg, "event_outbox");
    StoreInstance s(postgres_plugin(), event_outbox_config("event_outbox"));

    const std::string report = migrate_report(s);
    EXPECT_NE(report.find("adopted existing table event_outbox, added columns: spillway_id, event_id, pipeline"),
              std::string::npos)
        << report;
    EXPECT_NE(report.find("1 row(s) with published_at set marked published"), std::string::npos) << report;
    EXPECT_NE(report.find("3 row(s) without a pipeline adopted by pipeline 'orders'"), std::string::npos)
        << "the published row is left as it is; " << report;
    EXPECT_NE(report.find("4 existing row(s) numbered in the order of created_at"), std::string::npos) << report;
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
    auto& pg = database.server();
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

// The rows there are numbered by adopt_order_by, not by their place on disk: an UPDATE (the old
// relay's retry_count += 1) moves a row to the end of the table, and numbered in physical order
// a key's earlier event got the higher id and went out after its later one.
TEST(PostgresAdoption, ExistingRowsAreNumberedByAdoptOrderByNotByTheirPlaceOnDisk) {
    auto& pg = database.server();
    for (const std::string table : {"event_outbox_ordered", "event_outbox_physical"}) {
        pg.psql("store_adoption",
                "CREATE TABLE " + table + " (id UUID PRIMARY KEY DEFAULT gen_random_uuid(), event_data JSON NOT NULL, "
                "event_key VARCHAR(255), topic VARCHAR(255) NOT NULL, created_at TIMESTAMPTZ NOT NULL, "
                "published_at TIMESTAMPTZ, retry_count INTEGER NOT NULL DEFAULT 0, last_error TEXT);"
                "INSERT INTO " + table + " (event_data, event_key, topic, created_at) VALUES "
                "('{\"event_id\": \"first\"}', 'k', 't', '2026-01-01 00:00:01+00'),"
                "('{\"event_id\": \"second\"}', 'k', 't', '2026-01-01 00:00:02+00'),"
                "('{\"event_id\": \"third\"}', 'k', 't', '2026-01-01 00:00:03+00');"
                // A failed attempt by the old relay: the row's new version goes to the end.
                "UPDATE " + table + " SET retry_count = 1, last_error = 'broker down' WHERE event_data->>'event_id' = 'first'");
        ASSERT_EQ(pg.scalar("store_adoption", "SELECT event_data->>'event_id' FROM " + table + " ORDER BY ctid DESC LIMIT 1"),
                  "first")
            << "the updated row is last on disk";
    }
    Config config = event_outbox_config("event_outbox_ordered");
    StoreInstance s(postgres_plugin(), config);
    EXPECT_EQ(event_ids(claim(s, "orders", 10)), (std::vector<std::string>{"first", "second", "third"}));

    // Without the option the physical order stands, and the migration says so.
    config = event_outbox_config("event_outbox_physical");
    config.values.erase("adopt_order_by");
    StoreInstance physical(postgres_plugin(), config);
    const std::string report = migrate_report(physical);
    EXPECT_NE(report.find("3 existing row(s) numbered in the table's physical order"), std::string::npos) << report;
    EXPECT_EQ(event_ids(claim(physical, "orders", 10)), (std::vector<std::string>{"second", "third", "first"}));

    // New rows take the sequence's next value, after every numbered one.
    pg.psql("store_adoption", "INSERT INTO event_outbox_ordered (event_data, event_key, topic, created_at) VALUES "
                              "('{\"event_id\": \"fourth\"}', 'k2', 't', now())");
    EXPECT_EQ(pg.scalar("store_adoption", "SELECT spillway_id FROM event_outbox_ordered WHERE event_data->>'event_id' = 'fourth'"),
              "4");
    EXPECT_EQ(event_ids(claim(s, "orders", 10)), (std::vector<std::string>{"fourth"}));

    Config missing = event_outbox_config("event_outbox_no_such_order");
    pg.psql("store_adoption", "CREATE TABLE event_outbox_no_such_order (id UUID PRIMARY KEY, event_data JSON NOT NULL, "
                              "event_key TEXT, topic TEXT NOT NULL)");
    missing.values["adopt_order_by"] = "inserted_at";
    try {
        StoreInstance bad(postgres_plugin(), missing);
        ADD_FAILURE() << "adopted by a column the table does not have";
    } catch (const std::runtime_error& e) {
        EXPECT_NE(std::string(e.what()).find("has no column 'inserted_at'"), std::string::npos) << e.what();
    }
}

// An envelope's headers leave the payload only when they become the row's headers: an object, in
// a row with no headers of its own.
TEST(PostgresAdoption, AHeadersFieldThatIsNotAnObjectOrNotUsedStaysInThePayload) {
    auto& pg = database.server();
    pg.psql("store_adoption",
            "CREATE TABLE event_outbox_headers (id UUID PRIMARY KEY DEFAULT gen_random_uuid(), event_data JSON NOT NULL, "
            "event_key VARCHAR(255), topic VARCHAR(255) NOT NULL, created_at TIMESTAMPTZ NOT NULL DEFAULT now());"
            "INSERT INTO event_outbox_headers (event_data, event_key, topic, created_at) VALUES "
            "('{\"event_id\": \"e-1\", \"headers\": [\"a\", \"b\"]}', 'k1', 't', '2026-01-01 00:00:01+00'),"
            "('{\"event_id\": \"e-2\", \"headers\": \"trace=1\"}', 'k2', 't', '2026-01-01 00:00:02+00'),"
            "('{\"event_id\": \"e-3\", \"headers\": {\"from\": \"payload\"}}', 'k3', 't', '2026-01-01 00:00:03+00'),"
            "('{\"event_id\": \"e-4\", \"headers\": {\"x\": \"y\"}}', 'k4', 't', '2026-01-01 00:00:04+00')");
    StoreInstance s(postgres_plugin(), event_outbox_config("event_outbox_headers"));
    pg.psql("store_adoption", "UPDATE event_outbox_headers SET headers = '[[\"own\", \"1\"]]' WHERE event_key = 'k3'");
    const auto rows = claim(s, "orders", 10);
    ASSERT_EQ(rows.size(), 4u) << s.host().last_error();
    EXPECT_NE(rows[0].payload.find(R"("headers": ["a", "b"])"), std::string::npos) << rows[0].payload;
    EXPECT_TRUE(rows[0].headers.empty());
    EXPECT_NE(rows[1].payload.find(R"("headers": "trace=1")"), std::string::npos) << rows[1].payload;
    EXPECT_NE(rows[2].payload.find(R"("headers": {"from": "payload"})"), std::string::npos) << rows[2].payload;
    EXPECT_EQ(rows[2].headers, (std::vector<std::pair<std::string, std::string>>{{"own", "1"}}));
    EXPECT_EQ(rows[3].payload.find("headers"), std::string::npos) << rows[3].payload;
    EXPECT_EQ(rows[3].headers, (std::vector<std::pair<std::string, std::string>>{{"x", "y"}}));
}

// "<table>-<row id>" repeated in every service's own event_outbox; the token drawn at adoption
// tells them apart and stays the same for the table from then on.
TEST(PostgresAdoption, DerivedEventIdsAreStableAcrossRestartsAndDifferBetweenDatabases) {
    auto& pg = database.server();
    static const std::string other = pg.create_database("store_adoption_other");
    auto legacy = [&](const std::string& db) {
        pg.psql(db, "CREATE TABLE event_outbox_ids (id UUID PRIMARY KEY DEFAULT gen_random_uuid(), event_data TEXT NOT NULL, "
                    "event_key TEXT, topic TEXT NOT NULL, created_at TIMESTAMPTZ NOT NULL DEFAULT now());"
                    "INSERT INTO event_outbox_ids (event_data, event_key, topic) VALUES ('not json', 'k', 't')");
    };
    legacy("store_adoption");
    legacy("store_adoption_other");
    Config here = event_outbox_config("event_outbox_ids"), there = here;
    there.values["url"] = other;
    std::string id_here, id_there;
    {
        StoreInstance a(postgres_plugin(), here);
        StoreInstance b(postgres_plugin(), there);
        id_here = event_ids(claim(a, "orders", 10, 1)).at(0);
        id_there = event_ids(claim(b, "orders", 10, 1)).at(0);
    }
    EXPECT_NE(id_here, id_there);
    EXPECT_EQ(id_here, "event_outbox_ids-" +
                           pg.scalar("store_adoption", "SELECT value FROM event_outbox_ids_meta WHERE name = 'adoption_token'") +
                           "-1");
    StoreInstance again(postgres_plugin(), here);
    EXPECT_EQ(migrate_report(again), "");
    std::vector<Row> rows;
    ASSERT_TRUE(eventually([&] { rows = claim(again, "orders", 10); return !rows.empty(); }, std::chrono::seconds(5)));
    EXPECT_EQ(rows.at(0).event_id, id_here);
    // A dead letter is replayed by that id.
    ASSERT_EQ(complete(again, rows, SW_REJECT, "poison"), SW_OK);
    const sw_bytes one = span(id_here);
    int64_t replayed = 0;
    ASSERT_EQ(again.vt().replay_dead(again.get(), "orders", &one, 1, &replayed), SW_OK) << again.host().last_error();
    EXPECT_EQ(replayed, 1);
}

// The pipeline column's default follows adopt_pipeline both ways, as SQLite's trigger does.
TEST(PostgresAdoption, RemovingAdoptPipelineResetsTheColumnDefault) {
    auto& pg = database.server();
    create_event_outbox(pg, "event_outbox_default");
    { StoreInstance s(postgres_plugin(), event_outbox_config("event_outbox_default")); }
    Config config = event_outbox_config("event_outbox_default");
    config.values.erase("adopt_pipeline");
    StoreInstance s(postgres_plugin(), config);
    const std::string report = migrate_report(s);
    EXPECT_NE(report.find("column default 'orders' removed"), std::string::npos) << report;
    pg.psql("store_adoption",
            "INSERT INTO event_outbox_default (aggregate_id, aggregate_type, event_type, event_data, event_key, topic) "
            "VALUES ('b-9', 'batch', 'x', '{\"event_id\": \"late\"}', 'b-9', 't')");
    EXPECT_EQ(pg.scalar("store_adoption", "SELECT pipeline FROM event_outbox_default WHERE event_key = 'b-9'"), "");
    EXPECT_EQ(stats(s, "orders").pending, 3) << "rows adopted before keep their pipeline";
    // Set again, it applies again.
    StoreInstance adopting(postgres_plugin(), event_outbox_config("event_outbox_default"));
    EXPECT_EQ(stats(adopting, "orders").pending, 4);
}

// auto_migrate = false on a table whose migration has not created what the options read the
// payload with: one clear error at start, naming the remedy.
TEST(PostgresAdoption, AMissingJsonFunctionIsReportedAtStartWithoutAutoMigrate) {
    auto& pg = database.server();
    create_event_outbox(pg, "event_outbox_nofn");
    { StoreInstance s(postgres_plugin(), event_outbox_config("event_outbox_nofn")); }
    pg.psql("store_adoption", "DROP FUNCTION event_outbox_nofn_json(text)");
    Config config = event_outbox_config("event_outbox_nofn");
    config.values["auto_migrate"] = "false";
    StoreInstance s(postgres_plugin(), config);
    EXPECT_EQ(s.host().count_logs(SW_LOG_ERROR, "function \"event_outbox_nofn_json\"(text)"), 1u);
    EXPECT_EQ(s.host().count_logs(SW_LOG_ERROR, "run `spillway outbox migrate`"), 1u);
    EXPECT_NE(migrate_report(s).find("created function"), std::string::npos);
    EXPECT_EQ(claim(s, "orders", 10).size(), 3u) << s.host().last_error();
}

// --- columns.headers.<name>: columns of an adopted table as Kafka headers.

using Headers = std::vector<std::pair<std::string, std::string>>;

// Debezium's outbox layout, with one of the additional fields its event router can place
// (tenant_id, nullable), as configs/examples/adopt-debezium-outbox.toml adopts it.
void create_outboxevent(Postgres& pg, const std::string& table) {
    pg.psql("store_adoption", "CREATE TABLE " + table +
                                  " (id UUID PRIMARY KEY, aggregatetype VARCHAR(255) NOT NULL, aggregateid "
                                  "VARCHAR(255) NOT NULL, type VARCHAR(255) NOT NULL, payload JSONB, tenant_id TEXT)");
}

// The application's INSERTs, on its own session, knowing nothing of Spillway's columns.
void insert_orders(Postgres& pg, const std::string& table) {
    pg.psql("store_adoption",
            "INSERT INTO " + table + " (id, aggregatetype, aggregateid, type, payload, tenant_id) VALUES "
            "('0b5e3c1e-0000-4000-8000-000000000001', 'Order', '1', 'OrderCreated', '{\"id\": 1}', 'acme');"
            "INSERT INTO " + table + " (id, aggregatetype, aggregateid, type, payload) VALUES "
            "('0b5e3c1e-0000-4000-8000-000000000002', 'Order', '1', 'OrderShipped', '{\"id\": 1, \"shipped\": true}');"
            "INSERT INTO " + table + " (id, aggregatetype, aggregateid, type, payload, tenant_id) VALUES "
            "('0b5e3c1e-0000-4000-8000-000000000003', 'Customer', '7', 'CustomerCreated', '{\"id\": 7}', 'acme')");
}

Config outboxevent_config(const std::string& table, const std::string& pipeline) {
    return Config{{"url", database.conninfo()},
                  {"table", table},
                  {"adopt_pipeline", pipeline},
                  {"columns.id", "spillway_id"},
                  {"columns.event_id", "id"},
                  {"columns.topic", "aggregatetype"},
                  {"columns.key", "aggregateid"},
                  {"columns.event_type", "type"},
                  {"columns.headers.aggregatetype", "aggregatetype"},
                  {"columns.headers.tenant", "tenant_id"}};
}

// What every read of insert_orders' rows carries: the mapped columns after the row's own headers,
// none for a NULL column.
void expect_orders(const std::vector<Row>& rows, const std::string& how) {
    ASSERT_EQ(rows.size(), 3u) << how;
    EXPECT_EQ(event_ids(rows), (std::vector<std::string>{"0b5e3c1e-0000-4000-8000-000000000001",
                                                         "0b5e3c1e-0000-4000-8000-000000000002",
                                                         "0b5e3c1e-0000-4000-8000-000000000003"}))
        << how;
    EXPECT_EQ(rows[0].key, "1") << how;
    EXPECT_EQ(rows[0].event_type, "OrderCreated") << how;
    EXPECT_EQ(rows[0].topic, "Order") << how;
    EXPECT_EQ(rows[0].headers, (Headers{{"aggregatetype", "Order"}, {"tenant", "acme"}})) << how;
    EXPECT_EQ(rows[1].key, "1") << how;
    EXPECT_EQ(rows[1].event_type, "OrderShipped") << how;
    EXPECT_EQ(rows[1].headers, (Headers{{"own", "1"}, {"aggregatetype", "Order"}}))
        << how << ": its own header first; tenant_id is NULL, so no tenant header";
    EXPECT_EQ(rows[2].key, "7") << how;
    EXPECT_EQ(rows[2].event_type, "CustomerCreated") << how;
    EXPECT_EQ(rows[2].headers, (Headers{{"aggregatetype", "Customer"}, {"tenant", "acme"}})) << how;
}

void release(StoreInstance& s, const std::vector<Row>& rows) {
    std::vector<int64_t> ids;
    for (const auto& r : rows) ids.push_back(r.row_id);
    ASSERT_EQ(s.vt().release_leases(s.get(), ids.data(), ids.size()), SW_OK) << s.host().last_error();
}

TEST(PostgresAdoption, MappedColumnsBecomeHeadersOnEveryReadPath) {
    auto& pg = database.server();
    create_outboxevent(pg, "outboxevent_headers");
    const std::string p = "dbz_orders";
    StoreInstance s(postgres_plugin(), outboxevent_config("outboxevent_headers", p));
    insert_orders(pg, "outboxevent_headers");
    // A header of the row's own, in the column the migration added.
    pg.psql("store_adoption", "UPDATE outboxevent_headers SET headers = '[[\"own\", \"1\"]]' WHERE type = 'OrderShipped'");

    // More than a one-trip claim takes: the statements.
    auto rows = claim(s, p, 100);
    expect_orders(rows, "claim of 100 (statements)");
    release(s, rows);

    // The one-trip claim: the session's claim function.
    rows = claim(s, p, 10);
    expect_orders(rows, "claim of 10 (one trip)");
    EXPECT_EQ(pg.scalar("store_adoption", "SELECT count(*) FROM pg_stat_activity WHERE datname = 'store_adoption' AND "
                                          "pid <> pg_backend_pid() AND query LIKE 'SELECT * FROM pg_temp.spillway_claim($1%'"),
              "1")
        << "the claim ran as the session's claim function";
    release(s, rows);

    // claim_next goes on from a held batch.
    HeldBatch first(s, p, 1);
    ASSERT_EQ(first.status(), SW_OK) << first.error();
    HeldBatch next(s, p, 10, &first);
    ASSERT_EQ(next.status(), SW_OK) << next.error();
    rows = first.rows();
    rows.insert(rows.end(), next.rows().begin(), next.rows().end());
    expect_orders(rows, "claim + claim_next");

    // Dead letters are listed with them.
    ASSERT_EQ(complete(s, rows, SW_REJECT, "poison"), SW_OK) << s.host().last_error();
    expect_orders(list_dead(s, p), "list_dead");
}

// With headers_field the two merge: the envelope's headers (or the row's own), then the columns'.
TEST(PostgresAdoption, MappedColumnsFollowTheEnvelopeHeaders) {
    auto& pg = database.server();
    create_event_outbox(pg, "event_outbox_mapped");
    Config config = event_outbox_config("event_outbox_mapped");
    config.values["columns.headers.aggregate"] = "aggregate_type";
    config.values["columns.headers.aggregate_id"] = "aggregate_id";
    StoreInstance s(postgres_plugin(), config);
    const auto rows = claim(s, "orders", 10);
    ASSERT_EQ(rows.size(), 3u) << s.host().last_error();
    EXPECT_EQ(rows[0].headers, (Headers{{"aggregate", "batch"}, {"aggregate_id", "b-1"}}));
    EXPECT_EQ(rows[1].headers, (Headers{{"trace_id", "abc"},
                                        {"content_type", "application/json"},
                                        {"aggregate", "batch"},
                                        {"aggregate_id", "b-1"}}));
    EXPECT_EQ(rows[1].payload.find("headers"), std::string::npos) << "headers leave the payload: " << rows[1].payload;
    EXPECT_EQ(rows[2].headers, (Headers{{"aggregate", "essay"}, {"aggregate_id", "e-7"}}));
}

// A row whose own headers cannot be decoded is parked as before: the mapped columns do not make
// the statement fail for every row (they are never parsed in SQL).
TEST(PostgresAdoption, UndecodableOwnHeadersParkOnlyTheirRowWhenColumnsAreMapped) {
    auto& pg = database.server();
    create_outboxevent(pg, "outboxevent_bad_headers");
    const std::string p = "dbz_bad";
    StoreInstance s(postgres_plugin(), outboxevent_config("outboxevent_bad_headers", p));
    insert_orders(pg, "outboxevent_bad_headers");
    pg.psql("store_adoption", "UPDATE outboxevent_bad_headers SET headers = E'[[\"own\"\\n' WHERE type = 'OrderShipped'");
    const auto rows = claim(s, p, 10);
    EXPECT_EQ(event_ids(rows), (std::vector<std::string>{"0b5e3c1e-0000-4000-8000-000000000001",
                                                         "0b5e3c1e-0000-4000-8000-000000000003"}))
        << s.host().last_error();
    const auto dead = list_dead(s, p);
    ASSERT_EQ(dead.size(), 1u);
    EXPECT_NE(dead[0].last_error.find("malformed row"), std::string::npos) << dead[0].last_error;
}

TEST(PostgresAdoption, AHeaderColumnThatIsNoColumnNameOrNotInTheTableIsAConfigErrorNamingItsKey) {
    auto& pg = database.server();
    create_outboxevent(pg, "outboxevent_missing");
    for (const auto& [key, column] : std::vector<std::pair<std::string, std::string>>{
             {"columns.headers.aggregatetype", "aggregatetype\"; DROP TABLE x; --"},
             {"columns.headers.x", "1abc"},
             {"columns.headers.x", ""}}) {
        Config config = outboxevent_config("outboxevent_missing", "dbz_missing");
        config.values[key] = column;
        HostContext host(postgres_plugin(), config);
        EXPECT_EQ(validate(postgres_plugin(), host), SW_INVALID_CONFIG) << column;
        const auto errs = host.config_errors();
        ASSERT_FALSE(errs.empty()) << column;
        EXPECT_EQ(errs[0].first, key);
        EXPECT_NE(errs[0].second.find("not a valid column name"), std::string::npos) << errs[0].second;
    }
    // A header name with a control character; a key the store does not know.
    for (const std::string& key : {std::string("columns.headers.a\nb"), std::string("columns.headrs.x")}) {
        Config config = outboxevent_config("outboxevent_missing", "dbz_missing");
        config.values[key] = "aggregatetype";
        HostContext host(postgres_plugin(), config);
        EXPECT_EQ(validate(postgres_plugin(), host), SW_INVALID_CONFIG) << key;
        const auto errs = host.config_errors();
        ASSERT_FALSE(errs.empty()) << key;
        EXPECT_EQ(errs[0].first, key);
    }

    // A column the table does not have: the migration stops with a config error naming the key,
    // and leaves the table as it was.
    Config config = outboxevent_config("outboxevent_missing", "dbz_missing");
    config.values["columns.headers.tenant"] = "tenant";
    StoreInstance s(postgres_plugin(), config, false);
    EXPECT_EQ(s.vt().start(s.get()), SW_INVALID_CONFIG);
    auto errs = s.host().config_errors();
    ASSERT_EQ(errs.size(), 1u) << s.host().last_error();
    EXPECT_EQ(errs[0].first, "columns.headers.tenant");
    EXPECT_NE(errs[0].second.find("outboxevent_missing has no column 'tenant'"), std::string::npos) << errs[0].second;
    EXPECT_EQ(pg.scalar("store_adoption", "SELECT count(*) FROM information_schema.columns WHERE table_name = "
                                          "'outboxevent_missing' AND column_name = 'spillway_id'"),
              "0")
        << "the migration was rolled back";
    s.vt().stop(s.get(), 1000);

    // Migrated without the mapping, then started with it and auto_migrate = false: the start says so.
    { StoreInstance ok(postgres_plugin(), outboxevent_config("outboxevent_missing", "dbz_missing")); }
    config.values["auto_migrate"] = "false";
    StoreInstance later(postgres_plugin(), config, false);
    EXPECT_EQ(later.vt().start(later.get()), SW_INVALID_CONFIG);
    errs = later.host().config_errors();
    ASSERT_EQ(errs.size(), 1u) << later.host().last_error();
    EXPECT_EQ(errs[0].first, "columns.headers.tenant");
    later.vt().stop(later.get(), 1000);
}

TEST(PostgresAdoption, AUuidIdColumnMustBeMappedAway) {
    auto& pg = database.server();
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
