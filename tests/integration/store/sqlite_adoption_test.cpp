// Adopting an outbox table an application already writes, on SQLite: a table without an event-id
// column, rows with no pipeline, envelope headers inside a JSON payload, what the migration
// reports having done, and `spillway outbox` status/migrate on such a table.
#include "store_test_support.hpp"

#include <spillway/test_support/pipeline_toml.hpp>
#include <spillway/test_support/run_command.hpp>
#include <spillway/test_support/temp_dir.hpp>

#include <sqlite3.h>

#include <stdexcept>

namespace {

using namespace spillway::testkit;
using namespace spillway::testkit::store_suite;
using spillway::store_test::sqlite_plugin;
using spillway::test_support::TempDir;
using namespace std::chrono_literals;

// Runs SQL as the application would, on its own connection.
void exec(const std::string& path, const std::string& sql) {
    sqlite3* db = nullptr;
    if (sqlite3_open(path.c_str(), &db) != SQLITE_OK) throw std::runtime_error("cannot open " + path);
    sqlite3_busy_timeout(db, 5000);
    char* err = nullptr;
    const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
    const std::string msg = err ? err : "";
    sqlite3_free(err);
    sqlite3_close(db);
    if (rc != SQLITE_OK) throw std::runtime_error("SQL failed: " + msg + " in: " + sql);
}

// One value of a query, as text ("" for none).
std::string scalar(const std::string& path, const std::string& sql) {
    sqlite3* db = nullptr;
    if (sqlite3_open(path.c_str(), &db) != SQLITE_OK) throw std::runtime_error("cannot open " + path);
    sqlite3_stmt* st = nullptr;
    std::string out;
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW &&
        sqlite3_column_text(st, 0))
        out = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    sqlite3_close(db);
    return out;
}

std::string adoption_token(const std::string& db) {
    return scalar(db, "SELECT value FROM legacy_outbox_meta WHERE name = 'adoption_token'");
}

// What the last migrate() call reported, and clears it: the store hands its report through the
// host's message channel on OK.
std::string migrate_report(StoreInstance& s) {
    {
        std::lock_guard lock(s.host().mutex);
        s.host().error.clear();
    }
    EXPECT_EQ(s.vt().migrate(s.get()), SW_OK) << s.host().last_error();
    return s.host().last_error();
}

// The legacy layout: no event id, no pipeline, no bookkeeping; the payload is a JSON envelope
// with its own event_id and headers (one row's payload is not JSON at all).
void create_legacy_table(const std::string& db) {
    exec(db,
         "CREATE TABLE legacy_outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, key TEXT, "
         "payload TEXT NOT NULL);"
         "INSERT INTO legacy_outbox (topic, key, payload) VALUES "
         "('orders.v1', 'o-1', '{\"event_id\":\"e-1\",\"data\":{\"n\":1},\"headers\":{\"trace\":\"t-1\",\"n\":7}}'),"
         "('orders.v1', 'o-1', '{\"event_id\":\"e-2\",\"data\":{\"n\":2}}'),"
         "('orders.v1', 'o-2', 'not json, but still an event');");
}

Config adopting(const std::string& db) {
    return Config{{"path", db},
                  {"table", "legacy_outbox"},
                  {"adopt_pipeline", "orders"},
                  {"event_id_field", "event_id"},
                  {"headers_field", "headers"},
                  {"backoff_base", "1ms"},
                  {"backoff_max", "2ms"}};
}

TEST(SqliteAdoption, TableWithoutAnEventIdColumnIsAdoptedWithItsRows) {
    TempDir dir("adopt");
    const std::string db = dir.path() + "/app.db";
    create_legacy_table(db);
    StoreInstance s(sqlite_plugin(), adopting(db));

    // Start migrated (auto_migrate); the explicit migrate reports what that did.
    const std::string report = migrate_report(s);
    EXPECT_NE(report.find("schema version 1 applied"), std::string::npos) << report;
    EXPECT_NE(report.find("adopted existing table legacy_outbox, added columns: event_id, pipeline"),
              std::string::npos)
        << report;
    EXPECT_NE(report.find("3 row(s) without a pipeline adopted by pipeline 'orders'"), std::string::npos) << report;
    EXPECT_EQ(migrate_report(s), "") << "a second migration has nothing to do";

    // The application keeps writing rows its way after the migration.
    exec(db, "INSERT INTO legacy_outbox (topic, key, payload) VALUES ('orders.v1', 'o-3', '{\"event_id\":\"e-4\"}')");
    // Spillway's own rows are read as they were appended, a payload field named like
    // headers_field included.
    ASSERT_EQ(append(s, {[] {
                  Event e = ev("spillway-1", "o-9");
                  e.payload = R"({"headers":{"stay":"here"}})";
                  e.headers = {{"h", "v"}};
                  return e;
              }()}),
              SW_OK)
        << s.host().last_error();

    const auto rows = claim(s, "orders", 10);
    ASSERT_EQ(rows.size(), 5u) << s.host().last_error();
    const std::string derived = "legacy_outbox-" + adoption_token(db) + "-3";
    EXPECT_EQ(rows[0].event_id, "e-1");
    EXPECT_EQ(rows[0].topic, "orders.v1");
    EXPECT_EQ(rows[0].key, "o-1");
    EXPECT_EQ(rows[0].payload, R"({"event_id":"e-1","data":{"n":1}})") << "the headers field leaves the payload";
    EXPECT_EQ(rows[0].headers, (std::vector<std::pair<std::string, std::string>>{{"trace", "t-1"}, {"n", "7"}}));
    EXPECT_EQ(rows[1].event_id, "e-2");
    EXPECT_EQ(rows[1].payload, R"({"event_id":"e-2","data":{"n":2}})") << "no headers field: the payload as stored";
    EXPECT_TRUE(rows[1].headers.empty());
    EXPECT_EQ(rows[2].event_id, derived) << "no JSON: an id made from the row id and the table's token";
    EXPECT_EQ(rows[2].payload, "not json, but still an event");
    EXPECT_EQ(rows[3].event_id, "e-4") << "a row inserted after the migration is adopted too";
    EXPECT_EQ(rows[3].pipeline, "orders");
    EXPECT_EQ(rows[4].event_id, "spillway-1");
    EXPECT_EQ(rows[4].payload, R"({"headers":{"stay":"here"}})");
    EXPECT_EQ(rows[4].headers, (std::vector<std::pair<std::string, std::string>>{{"h", "v"}}));

    // A retried delivery carries the same event id (consumers dedupe on it).
    ASSERT_EQ(complete(s, rows, SW_RETRY, "broker down"), SW_OK) << s.host().last_error();
    std::vector<Row> again;
    ASSERT_TRUE(eventually(
        [&] {
            again = claim(s, "orders", 10);
            if (again.size() < 5) {
                if (!again.empty()) complete(s, again, SW_RETRY, "not all due yet");
                return false;
            }
            return true;
        },
        5s));
    EXPECT_EQ(event_ids(again), event_ids(rows));

    // A dead letter of an adopted row is replayed by the id it is listed with.
    ASSERT_EQ(complete(s, again, SW_REJECT, "poison"), SW_OK);
    const auto dead = list_dead(s, "orders");
    ASSERT_EQ(dead.size(), 5u);
    EXPECT_EQ(dead[2].event_id, derived);
    const sw_bytes one = span(dead[2].event_id);
    int64_t replayed = 0;
    ASSERT_EQ(s.vt().replay_dead(s.get(), "orders", &one, 1, &replayed), SW_OK) << s.host().last_error();
    EXPECT_EQ(replayed, 1);
    EXPECT_EQ(event_ids(claim(s, "orders", 10)), (std::vector<std::string>{derived}));
}

// headers_field takes only an object out of the payload, and only when the headers come from it:
// anything else under that name stays in the payload (it was lost from both before), and a row
// with headers of its own keeps its payload whole.
TEST(SqliteAdoption, AHeadersFieldThatIsNotAnObjectOrNotUsedStaysInThePayload) {
    TempDir dir("adopt");
    const std::string db = dir.path() + "/app.db";
    exec(db,
         "CREATE TABLE legacy_outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, key TEXT, "
         "payload TEXT NOT NULL);"
         "INSERT INTO legacy_outbox (topic, key, payload) VALUES "
         "('t', 'k1', '{\"event_id\":\"e-1\",\"headers\":[\"a\",\"b\"]}'),"
         "('t', 'k2', '{\"event_id\":\"e-2\",\"headers\":\"trace=1\"}'),"
         "('t', 'k3', '{\"event_id\":\"e-3\",\"headers\":{\"from\":\"payload\"}}'),"
         "('t', 'k4', '{\"event_id\":\"e-4\",\"headers\":{\"x\":\"y\"}}');");
    StoreInstance s(sqlite_plugin(), adopting(db));
    // The application wrote headers of its own into the column the migration added.
    exec(db, "UPDATE legacy_outbox SET headers = '[[\"own\",\"1\"]]' WHERE key = 'k3'");

    const auto rows = claim(s, "orders", 10);
    ASSERT_EQ(rows.size(), 4u) << s.host().last_error();
    EXPECT_EQ(rows[0].payload, R"({"event_id":"e-1","headers":["a","b"]})") << "an array stays";
    EXPECT_TRUE(rows[0].headers.empty());
    EXPECT_EQ(rows[1].payload, R"({"event_id":"e-2","headers":"trace=1"})") << "a string stays";
    EXPECT_TRUE(rows[1].headers.empty());
    EXPECT_EQ(rows[2].payload, R"({"event_id":"e-3","headers":{"from":"payload"}})")
        << "the row's own headers are its headers; the envelope's stay in the payload";
    EXPECT_EQ(rows[2].headers, (std::vector<std::pair<std::string, std::string>>{{"own", "1"}}));
    EXPECT_EQ(rows[3].payload, R"({"event_id":"e-4"})") << "an object becomes the headers";
    EXPECT_EQ(rows[3].headers, (std::vector<std::pair<std::string, std::string>>{{"x", "y"}}));
}

// A row the application wrote with headers the store cannot decode is parked with the reason,
// not retried for ever: its claim used to fail whole (SW_FATAL) at every lease, holding its key.
TEST(SqliteAdoption, ARowWithUndecodableHeadersGoesToTheDeadLettersAndItsKeyMovesOn) {
    TempDir dir("adopt");
    const std::string db = dir.path() + "/app.db";
    exec(db,
         "CREATE TABLE legacy_outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, key TEXT, "
         "payload TEXT NOT NULL);"
         "INSERT INTO legacy_outbox (topic, key, payload) VALUES ('t', 'k1', '{\"event_id\":\"e-1\"}');");
    StoreInstance s(sqlite_plugin(), adopting(db));
    exec(db, "INSERT INTO legacy_outbox (topic, key, payload, headers) VALUES ('t', 'k2', '{\"event_id\":\"e-2\"}', "
             "'[[\"own\"');"
             "INSERT INTO legacy_outbox (topic, key, payload) VALUES ('t', 'k2', '{\"event_id\":\"e-3\"}');");

    const auto rows = claim(s, "orders", 10);
    EXPECT_EQ(event_ids(rows), (std::vector<std::string>{"e-1", "e-3"})) << s.host().last_error();
    const auto dead = list_dead(s, "orders");
    ASSERT_EQ(dead.size(), 1u);
    EXPECT_EQ(dead[0].event_id, "e-2");
    EXPECT_NE(dead[0].last_error.find("malformed row"), std::string::npos) << dead[0].last_error;
    EXPECT_TRUE(dead[0].headers.empty());
    ASSERT_EQ(complete(s, rows, SW_OK, ""), SW_OK) << s.host().last_error();
    EXPECT_TRUE(claim(s, "orders", 10).empty());
}

// "<table>-<row id>" alone repeated across databases: every service has its own table of that
// name, and a consumer deduping on event ids dropped one service's event as another's duplicate.
TEST(SqliteAdoption, DerivedEventIdsAreStableAcrossRestartsAndDifferBetweenDatabases) {
    TempDir dir("adopt");
    const std::string db_a = dir.path() + "/a.db", db_b = dir.path() + "/b.db";
    auto legacy = [](const std::string& db) {
        exec(db,
             "CREATE TABLE legacy_outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, key TEXT, "
             "payload TEXT NOT NULL);"
             "INSERT INTO legacy_outbox (topic, key, payload) VALUES ('t', 'k', 'not json');");
    };
    legacy(db_a);
    legacy(db_b);
    std::string first_a, first_b;
    {
        StoreInstance a(sqlite_plugin(), adopting(db_a));
        StoreInstance b(sqlite_plugin(), adopting(db_b));
        first_a = event_ids(claim(a, "orders", 10, 1)).at(0);
        first_b = event_ids(claim(b, "orders", 10, 1)).at(0);
    }
    EXPECT_NE(first_a, first_b) << "row 1 of two databases' tables of one name";
    EXPECT_EQ(first_a.rfind("legacy_outbox-", 0), 0u) << first_a;
    EXPECT_EQ(first_a.substr(first_a.size() - 2), "-1") << first_a;

    // A restart (and its migration) keeps the token; so does a retried claim.
    StoreInstance again(sqlite_plugin(), adopting(db_a));
    EXPECT_EQ(migrate_report(again), "");
    std::vector<Row> rows;
    ASSERT_TRUE(eventually([&] { rows = claim(again, "orders", 10); return !rows.empty(); }, 5s));
    EXPECT_EQ(rows.at(0).event_id, first_a);
}

// The first adoption gives the rows still to be relayed to adopt_pipeline, and only those: the
// statement runs at every start, and with a state condition the partial indexes answer it.
TEST(SqliteAdoption, AdoptPipelineTakesPendingAndDeadRowsNotPublishedOnes) {
    TempDir dir("adopt");
    const std::string db = dir.path() + "/app.db";
    exec(db,
         "CREATE TABLE legacy_outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, key TEXT, "
         "payload TEXT NOT NULL, published_at INTEGER);"
         "INSERT INTO legacy_outbox (topic, key, payload, published_at) VALUES "
         "('t', 'k', 'old', 1), ('t', 'k', 'new', NULL), ('t', 'k2', 'newer', NULL);");
    StoreInstance s(sqlite_plugin(), adopting(db));
    const std::string report = migrate_report(s);
    EXPECT_NE(report.find("1 row(s) with published_at set marked published"), std::string::npos) << report;
    EXPECT_NE(report.find("2 row(s) without a pipeline adopted by pipeline 'orders'"), std::string::npos) << report;
    EXPECT_EQ(scalar(db, "SELECT pipeline FROM legacy_outbox WHERE payload = 'old'"), "");
    EXPECT_EQ(stats(s, "orders").pending, 2);
    EXPECT_EQ(claim(s, "orders", 10).size(), 2u);
}

// A plain rowid is no key for Spillway: VACUUM may renumber it, and with it derived event ids,
// leases and each key's order.
TEST(SqliteAdoption, AnIdThatIsNotAnIntegerPrimaryKeyIsAConfigErrorNamingColumnsId) {
    TempDir dir("adopt");
    const std::string db = dir.path() + "/app.db";
    exec(db,
         "CREATE TABLE legacy_outbox (uid TEXT PRIMARY KEY, seq INTEGER, topic TEXT NOT NULL, key TEXT, "
         "payload TEXT NOT NULL);"
         "INSERT INTO legacy_outbox VALUES ('u1', 1, 't', 'k', '{}');");
    for (const char* id : {"rowid", "seq", "uid"}) {
        Config config = adopting(db);
        config.values["columns.id"] = id;
        try {
            StoreInstance s(sqlite_plugin(), config);
            ADD_FAILURE() << "adopted by " << id;
        } catch (const std::runtime_error& e) {
            const std::string what = e.what();
            EXPECT_NE(what.find("columns.id: legacy_outbox." + std::string(id)), std::string::npos) << what;
            EXPECT_NE(what.find("INTEGER PRIMARY KEY"), std::string::npos) << what;
        }
    }
    EXPECT_EQ(scalar(db, "SELECT COUNT(*) FROM pragma_table_info('legacy_outbox') WHERE name = 'state'"), "0")
        << "nothing was added to the table";
    EXPECT_THROW(StoreInstance(sqlite_plugin(), Config{{"path", db}, {"adopt_order_by", "seq"}}), std::runtime_error)
        << "SQLite keeps the table's INTEGER PRIMARY KEY and its order";
}

// --- columns.headers.<name>: columns of an adopted table as Kafka headers.

using Headers = std::vector<std::pair<std::string, std::string>>;

// Debezium's outbox layout as SQLite holds it: the uuid in a TEXT column, and the INTEGER PRIMARY
// KEY SQLite needs (seq); tenant_id is an additional, nullable field.
void create_outboxevent(const std::string& db) {
    exec(db, "CREATE TABLE outboxevent (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, "
             "aggregatetype TEXT NOT NULL, aggregateid TEXT NOT NULL, type TEXT NOT NULL, payload TEXT, tenant_id TEXT)");
}

// The application's INSERTs, on its own connection.
void insert_orders(const std::string& db) {
    exec(db, "INSERT INTO outboxevent (id, aggregatetype, aggregateid, type, payload, tenant_id) VALUES "
             "('0b5e3c1e-0000-4000-8000-000000000001', 'Order', '1', 'OrderCreated', '{\"id\":1}', 'acme');"
             "INSERT INTO outboxevent (id, aggregatetype, aggregateid, type, payload) VALUES "
             "('0b5e3c1e-0000-4000-8000-000000000002', 'Order', '1', 'OrderShipped', '{\"id\":1,\"shipped\":true}');"
             "INSERT INTO outboxevent (id, aggregatetype, aggregateid, type, payload, tenant_id) VALUES "
             "('0b5e3c1e-0000-4000-8000-000000000003', 'Customer', '7', 'CustomerCreated', '{\"id\":7}', 'acme');");
}

Config outboxevent_config(const std::string& db) {
    return Config{{"path", db},
                  {"table", "outboxevent"},
                  {"adopt_pipeline", "orders"},
                  {"columns.id", "seq"},
                  {"columns.event_id", "id"},
                  {"columns.topic", "aggregatetype"},
                  {"columns.key", "aggregateid"},
                  {"columns.event_type", "type"},
                  {"columns.headers.aggregatetype", "aggregatetype"},
                  {"columns.headers.tenant", "tenant_id"}};
}

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
    EXPECT_EQ(rows[1].headers, (Headers{{"own", "1"}, {"aggregatetype", "Order"}}))
        << how << ": its own header first; tenant_id is NULL, so no tenant header";
    EXPECT_EQ(rows[2].key, "7") << how;
    EXPECT_EQ(rows[2].event_type, "CustomerCreated") << how;
    EXPECT_EQ(rows[2].headers, (Headers{{"aggregatetype", "Customer"}, {"tenant", "acme"}})) << how;
}

TEST(SqliteAdoption, MappedColumnsBecomeHeadersOnEveryReadPath) {
    TempDir dir("adopt");
    const std::string db = dir.path() + "/app.db";
    create_outboxevent(db);
    StoreInstance s(sqlite_plugin(), outboxevent_config(db));
    insert_orders(db);
    exec(db, "UPDATE outboxevent SET headers = '[[\"own\",\"1\"]]' WHERE type = 'OrderShipped'");

    auto rows = claim(s, "orders", 100);
    expect_orders(rows, "claim");
    std::vector<int64_t> ids;
    for (const auto& r : rows) ids.push_back(r.row_id);
    ASSERT_EQ(s.vt().release_leases(s.get(), ids.data(), ids.size()), SW_OK) << s.host().last_error();

    HeldBatch first(s, "orders", 1);
    ASSERT_EQ(first.status(), SW_OK) << first.error();
    HeldBatch next(s, "orders", 10, &first);
    ASSERT_EQ(next.status(), SW_OK) << next.error();
    rows = first.rows();
    rows.insert(rows.end(), next.rows().begin(), next.rows().end());
    expect_orders(rows, "claim + claim_next");

    ASSERT_EQ(complete(s, rows, SW_REJECT, "poison"), SW_OK) << s.host().last_error();
    expect_orders(list_dead(s, "orders"), "list_dead");
}

// With headers_field the two merge: the envelope's headers, then the columns'; a value that is not
// text in SQLite (an INTEGER) is sent as its text.
TEST(SqliteAdoption, MappedColumnsFollowTheEnvelopeHeaders) {
    TempDir dir("adopt");
    const std::string db = dir.path() + "/app.db";
    create_legacy_table(db);
    exec(db, "ALTER TABLE legacy_outbox ADD COLUMN tenant INTEGER; UPDATE legacy_outbox SET tenant = 42 WHERE key = 'o-1'");
    Config config = adopting(db);
    config.values["columns.headers.tenant"] = "tenant";
    config.values["columns.headers.topic"] = "topic";
    StoreInstance s(sqlite_plugin(), config);
    const auto rows = claim(s, "orders", 10);
    ASSERT_EQ(rows.size(), 3u) << s.host().last_error();
    EXPECT_EQ(rows[0].headers, (Headers{{"trace", "t-1"}, {"n", "7"}, {"tenant", "42"}, {"topic", "orders.v1"}}));
    EXPECT_EQ(rows[0].payload, R"({"event_id":"e-1","data":{"n":1}})") << "the headers field leaves the payload";
    EXPECT_EQ(rows[1].headers, (Headers{{"tenant", "42"}, {"topic", "orders.v1"}}));
    EXPECT_EQ(rows[2].headers, (Headers{{"topic", "orders.v1"}})) << "tenant is NULL";
}

TEST(SqliteAdoption, AHeaderColumnThatIsNoColumnNameOrNotInTheTableIsAConfigErrorNamingItsKey) {
    TempDir dir("adopt");
    const std::string db = dir.path() + "/app.db";
    create_outboxevent(db);
    for (const std::string column : {"aggregatetype'); DROP TABLE outboxevent; --", "a-b", ""}) {
        Config config = outboxevent_config(db);
        config.values["columns.headers.aggregatetype"] = column;
        HostContext host(sqlite_plugin(), config);
        EXPECT_EQ(validate(sqlite_plugin(), host), SW_INVALID_CONFIG) << column;
        const auto errs = host.config_errors();
        ASSERT_FALSE(errs.empty()) << column;
        EXPECT_EQ(errs[0].first, "columns.headers.aggregatetype");
        EXPECT_NE(errs[0].second.find("not a valid column name"), std::string::npos) << errs[0].second;
    }
    {
        // Keys the store does not know are still refused, now by the store itself.
        Config config = outboxevent_config(db);
        config.values["colums.headers.tenant"] = "tenant_id";
        HostContext host(sqlite_plugin(), config);
        EXPECT_EQ(validate(sqlite_plugin(), host), SW_INVALID_CONFIG);
        const auto errs = host.config_errors();
        ASSERT_FALSE(errs.empty());
        EXPECT_EQ(errs[0].first, "colums.headers.tenant");
        EXPECT_NE(errs[0].second.find("unknown option for store plugin 'sqlite'"), std::string::npos) << errs[0].second;
    }

    Config config = outboxevent_config(db);
    config.values["columns.headers.tenant"] = "tenant";
    StoreInstance s(sqlite_plugin(), config, false);
    EXPECT_EQ(s.vt().start(s.get()), SW_INVALID_CONFIG);
    const auto errs = s.host().config_errors();
    ASSERT_EQ(errs.size(), 1u) << s.host().last_error();
    EXPECT_EQ(errs[0].first, "columns.headers.tenant");
    EXPECT_NE(errs[0].second.find("outboxevent has no column 'tenant'"), std::string::npos) << errs[0].second;
    EXPECT_EQ(scalar(db, "SELECT COUNT(*) FROM pragma_table_info('outboxevent') WHERE name = 'state'"), "0")
        << "the migration was rolled back";
    s.vt().stop(s.get(), 1000);
}

TEST(SqliteAdoption, RowsWithoutAPipelineAreCountedInTheWholeTableAndWarnedAbout) {
    TempDir dir("adopt");
    const std::string db = dir.path() + "/app.db";
    create_legacy_table(db);
    Config config = adopting(db);
    config.values.erase("adopt_pipeline");
    StoreInstance s(sqlite_plugin(), config);
    EXPECT_EQ(s.host().count_logs(SW_LOG_WARN, "3 pending row(s) without a pipeline"), 1u);
    EXPECT_EQ(stats(s, "orders").pending, 0) << "no pipeline relays them";
    EXPECT_EQ(stats(s, "").pending, 3);
    ASSERT_EQ(append(s, {ev("spillway-1", "k")}), SW_OK);
    EXPECT_EQ(stats(s, "*").pending, 4) << "\"*\" counts the whole table, whatever pipeline rows name";
    EXPECT_EQ(stats(s, "*").dead, 0);
    EXPECT_EQ(claim(s, "orders", 10).size(), 1u);
}

TEST(SqliteAdoption, MigrateReportsAFreshTableAndThenNothing) {
    TempDir dir("adopt");
    StoreInstance s(sqlite_plugin(), Config{{"path", dir.path() + "/fresh.db"}, {"auto_migrate", "false"}});
    const std::string report = migrate_report(s);
    EXPECT_NE(report.find("created table spillway_outbox"), std::string::npos) << report;
    EXPECT_NE(report.find("schema version 3 applied (lease table spillway_outbox_leases)"), std::string::npos)
        << report;
    EXPECT_EQ(migrate_report(s), "");
}

TEST(SqliteAdoption, BadJsonFieldPathIsAConfigError) {
    TempDir dir("adopt");
    EXPECT_THROW(StoreInstance(sqlite_plugin(), Config{{"path", dir.path() + "/x.db"}, {"event_id_field", "a..b"}}),
                 std::runtime_error);
    EXPECT_THROW(StoreInstance(sqlite_plugin(), Config{{"path", dir.path() + "/x.db"}, {"adopt_pipeline", "a b"}}),
                 std::runtime_error);
}

}  // namespace

// The same through `spillway outbox`, as an operator runs it.
namespace {

// A pipeline file whose store is the application's table in `db`.
std::string write_config(const std::string& dir, const std::string& db, const std::string& adopt_pipeline = "") {
    spillway::test_support::PipelineToml toml(SPILLWAY_PLUGIN_DIR);
    toml.kafka_sink("embedded");
    auto& store = toml.sqlite_store(db).set("table", "legacy_outbox");
    if (!adopt_pipeline.empty()) store.set("adopt_pipeline", adopt_pipeline);
    toml.notifier("inproc");
    toml.adaptive_scheduler();
    toml.pipeline("orders").set("topic", "orders.v1");
    const std::string path = dir + "/spillway.toml";
    toml.write(path);
    return path;
}

TEST(SqliteAdoptionCli, StatusWarnsOfRowsNoPipelineRelaysAndMigrateSaysWhatItDid) {
    TempDir dir("adopt-cli");
    const std::string db = dir.path() + "/app.db";
    create_legacy_table(db);
    using spillway::test_support::run_command;

    std::string config = write_config(dir.path(), db);
    auto r = run_command({SPILLWAY_BIN, "outbox", config, "status"});
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_NE(r.err.find("warning: store.outbox holds 3 pending row(s) that no configured pipeline relays"),
              std::string::npos)
        << r.err;
    EXPECT_NE(r.err.find("3 of them have no pipeline at all"), std::string::npos) << r.err;

    // The store's start (auto_migrate) adopts them; migrate reports that rather than "up to date".
    config = write_config(dir.path(), db, "orders");
    r = run_command({SPILLWAY_BIN, "outbox", config, "migrate"});
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_NE(r.out.find("store.outbox: 3 row(s) without a pipeline adopted by pipeline 'orders'"), std::string::npos)
        << r.out;
    EXPECT_EQ(r.out.find("up to date"), std::string::npos) << r.out;
    r = run_command({SPILLWAY_BIN, "outbox", config, "migrate"});
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(r.out, "store.outbox: schema up to date\n");

    r = run_command({SPILLWAY_BIN, "outbox", config, "status", "--json"});
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(r.err.find("warning"), std::string::npos) << r.err;
    EXPECT_NE(r.out.find("\"pending\": 3"), std::string::npos) << r.out;
}

}  // namespace
