// The store conformance suite on the PostgreSQL plugin: one throwaway server and database, a
// fresh table per test.
#include <spillway/test_support/postgres.hpp>
#include <spillway/testkit/store_suite.hpp>

#include <atomic>

namespace {

spillway::testkit::Config fresh_postgres_table() {
    static const std::string conninfo =
        spillway::test_support::Postgres::shared().create_database("store_conformance");
    static std::atomic<int> n{0};
    return spillway::testkit::Config{{"url", conninfo}, {"table", "outbox_" + std::to_string(++n)}};
}

}  // namespace

SPILLWAY_STORE_CONFORMANCE(Postgres, (spillway::testkit::StoreFactory{"postgres", fresh_postgres_table}));
