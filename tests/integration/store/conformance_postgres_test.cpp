// The store conformance suite on the PostgreSQL plugin: one throwaway server and database, a
// fresh table per test. Twice: as the store runs by default (a trickle's claim is the session's
// claim function), and for a role that may not make temporary objects (the same claim as two
// statements in one query).
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

spillway::testkit::Config fresh_postgres_table_without_temp() {
    static const std::string conninfo = [] {
        auto& pg = spillway::test_support::Postgres::shared();
        pg.create_database("store_conformance_notemp");
        pg.psql("store_conformance_notemp",
                "DO $$ BEGIN CREATE ROLE conformance_notemp LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$;"
                "REVOKE TEMPORARY ON DATABASE store_conformance_notemp FROM PUBLIC;"
                "GRANT CREATE, USAGE ON SCHEMA public TO conformance_notemp");
        return "host=127.0.0.1 port=" + std::to_string(pg.port()) +
               " dbname=store_conformance_notemp user=conformance_notemp";
    }();
    static std::atomic<int> n{0};
    return spillway::testkit::Config{{"url", conninfo}, {"table", "outbox_" + std::to_string(++n)}};
}

}  // namespace

SPILLWAY_STORE_CONFORMANCE(Postgres, (spillway::testkit::StoreFactory{"postgres", fresh_postgres_table}));
SPILLWAY_STORE_CONFORMANCE(PostgresWithoutTemp,
                           (spillway::testkit::StoreFactory{"postgres", fresh_postgres_table_without_temp}));
