// The store conformance suite on the SQLite plugin: a fresh database file per test.
#include <spillway/test_support/temp_dir.hpp>
#include <spillway/testkit/store_suite.hpp>

#include <atomic>

namespace {

std::string fresh_sqlite_file() {
    static spillway::test_support::TempDir dir("store-sqlite");
    static std::atomic<int> n{0};
    return dir.path() + "/outbox-" + std::to_string(++n) + ".db";
}

}  // namespace

SPILLWAY_STORE_CONFORMANCE(Sqlite, (spillway::testkit::StoreFactory{"sqlite", [] {
                               return spillway::testkit::Config{{"path", fresh_sqlite_file()}};
                           }}));
