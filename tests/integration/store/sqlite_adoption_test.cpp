// Adopting an outbox table an application already writes, on SQLite: a table without an event-id
// column, rows with no pipeline, envelope headers inside a JSON payload, what the migration
// reports having done, and `spillway outbox` status/migrate on such a table.
#include <spillway/test_support/run_command.hpp>
#include <spillway/test_support/temp_dir.hpp>
#define SPILLWAY_STORE_SUITE_HELPERS_ONLY
#include <spillway/testkit/store_suite.hpp>

#include <sqlite3.h>

#include <fstream>
#include <stdexcept>

namespace {

using namespace spillway::testkit;
using namespace spillway::testkit::store_suite;
using spillway::test_support::TempDir;
using namespace std::chrono_literals;

Plugin& sqlite_plugin() {
    static Plugin plugin(plugin_file("sqlite"));
    return plugin;
}

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
    EXPECT_EQ(rows[0].event_id, "e-1");
    EXPECT_EQ(rows[0].topic, "orders.v1");
    EXPECT_EQ(rows[0].key, "o-1");
    EXPECT_EQ(rows[0].payload, R"({"event_id":"e-1","data":{"n":1}})") << "the headers field leaves the payload";
    EXPECT_EQ(rows[0].headers, (std::vector<std::pair<std::string, std::string>>{{"trace", "t-1"}, {"n", "7"}}));
    EXPECT_EQ(rows[1].event_id, "e-2");
    EXPECT_EQ(rows[1].payload, R"({"event_id":"e-2","data":{"n":2}})") << "no headers field: the payload as stored";
    EXPECT_TRUE(rows[1].headers.empty());
    EXPECT_EQ(rows[2].event_id, "legacy_outbox-3") << "no JSON: an id made from the row id";
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
    EXPECT_EQ(dead[2].event_id, "legacy_outbox-3");
    const sw_bytes one = span(dead[2].event_id);
    int64_t replayed = 0;
    ASSERT_EQ(s.vt().replay_dead(s.get(), "orders", &one, 1, &replayed), SW_OK) << s.host().last_error();
    EXPECT_EQ(replayed, 1);
    EXPECT_EQ(event_ids(claim(s, "orders", 10)), (std::vector<std::string>{"legacy_outbox-3"}));
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

std::string write_config(const std::string& dir, const std::string& db, const std::string& store_extra) {
    const std::string path = dir + "/spillway.toml";
    std::ofstream(path) << "[engine]\nplugin_path = [\"" SPILLWAY_PLUGIN_DIR "\"]\n"
                        << "[sink.kafka]\nplugin = \"kafka\"\n\"bootstrap.servers\" = \"embedded\"\n"
                        << "[store.outbox]\nplugin = \"sqlite\"\npath = \"" << db << "\"\ntable = \"legacy_outbox\"\n"
                        << store_extra
                        << "[notifier.bell]\nplugin = \"inproc\"\n[scheduler.poll]\nplugin = \"adaptive\"\n"
                        << "[pipeline.orders]\nsink = \"kafka\"\nstore = \"outbox\"\nnotifier = \"bell\"\n"
                        << "scheduler = \"poll\"\ntopic = \"orders.v1\"\n";
    return path;
}

TEST(SqliteAdoptionCli, StatusWarnsOfRowsNoPipelineRelaysAndMigrateSaysWhatItDid) {
    TempDir dir("adopt-cli");
    const std::string db = dir.path() + "/app.db";
    create_legacy_table(db);
    using spillway::test_support::run_command;

    std::string config = write_config(dir.path(), db, "");
    auto r = run_command({SPILLWAY_BIN, "outbox", config, "status"});
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_NE(r.err.find("warning: store.outbox holds 3 pending row(s) that no configured pipeline relays"),
              std::string::npos)
        << r.err;
    EXPECT_NE(r.err.find("3 of them have no pipeline at all"), std::string::npos) << r.err;

    // The store's start (auto_migrate) adopts them; migrate reports that rather than "up to date".
    config = write_config(dir.path(), db, "adopt_pipeline = \"orders\"\n");
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
