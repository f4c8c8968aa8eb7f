// The SQLite store when another process holds the file's lock: writes answer RETRY with SQLite's
// message after busy_timeout, nothing is corrupted, and everything works once the lock is gone.
#include "store_test_support.hpp"

#include <spillway/test_support/child_process.hpp>
#include <spillway/test_support/temp_dir.hpp>
#include <spillway/test_support/wait.hpp>

#include <sqlite3.h>

#include <fstream>
#include <sstream>

namespace {

using namespace spillway::testkit;
using namespace spillway::testkit::store_suite;
using spillway::store_test::sqlite_plugin;
using spillway::test_support::ChildProcess;
using spillway::test_support::ChildSpec;
using spillway::test_support::TempDir;
using spillway::test_support::wait_until;
using namespace std::chrono_literals;

std::string read_file(const std::string& path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

std::string integrity_check(const std::string& path) {
    sqlite3* db = nullptr;
    std::string result = "open failed";
    if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
        sqlite3_stmt* st = nullptr;
        if (sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, nullptr) == SQLITE_OK &&
            sqlite3_step(st) == SQLITE_ROW)
            result = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
        sqlite3_finalize(st);
    }
    sqlite3_close(db);
    return result;
}

TEST(SqliteStore, FileLockedByAnotherProcessGivesRetryAndNoCorruption) {
    TempDir dir("store-sqlite-lock");
    const std::string db = dir.path() + "/outbox.db";
    Plugin& plugin = sqlite_plugin();
    StoreInstance store(plugin, Config{{"path", db}, {"busy_timeout", "200ms"}});
    ASSERT_EQ(append(store, {ev("before-1", "A")}), SW_OK) << store.host().last_error();

    const std::string log = dir.path() + "/locker.log";
    ChildSpec spec;
    spec.argv = {SPILLWAY_SQLITE_LOCKER, db};
    spec.log_path = log;
    ChildProcess locker(spec);
    ASSERT_TRUE(wait_until([&] { return read_file(log).find("locked") != std::string::npos; }, 10s)) << read_file(log);

    // Writes wait busy_timeout, then answer RETRY naming the cause; nothing is half-written.
    EXPECT_EQ(append(store, {ev("during-1", "A")}), SW_RETRY);
    EXPECT_NE(store.host().last_error().find("locked"), std::string::npos) << store.host().last_error();
    sw_status st = SW_OK;
    claim(store, "orders", 10, 30'000, &st);
    EXPECT_EQ(st, SW_RETRY);
    EXPECT_NE(store.host().last_error().find("sqlite: claim"), std::string::npos) << store.host().last_error();

    // The lock holder dies mid-transaction; the store carries on.
    locker.stop(SIGKILL, 5s);
    ASSERT_EQ(append(store, {ev("after-1", "A")}), SW_OK) << store.host().last_error();
    const auto rows = claim(store, "orders", 10);
    EXPECT_EQ(event_ids(rows), (std::vector<std::string>{"before-1", "after-1"}));
    ASSERT_EQ(complete(store, rows, SW_OK), SW_OK);
    EXPECT_EQ(integrity_check(db), "ok");
}

TEST(SqliteStore, SchemaPrefixInTableIsRejected) {
    Plugin& plugin = sqlite_plugin();
    HostContext host(plugin, Config{{"path", "/tmp/never-opened.db"}, {"table", "main.outbox"}});
    EXPECT_EQ(validate(plugin, host), SW_INVALID_CONFIG);
    ASSERT_FALSE(host.config_errors().empty());
    EXPECT_EQ(host.config_errors()[0].first, "table");
}

}  // namespace
