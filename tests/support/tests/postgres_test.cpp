#include <gtest/gtest.h>

#include <libpq-fe.h>
#include <stdexcept>

#include "spillway/test_support/postgres.hpp"

namespace spillway::test_support {
namespace {

TEST(Postgres, StartsAndAnswersAQuery) {
  auto& pg = Postgres::shared();
  EXPECT_TRUE(pg.running());
  EXPECT_GT(pg.port(), 0);
  EXPECT_EQ(pg.scalar("postgres", "SELECT 40 + 2"), "42");
  EXPECT_EQ(pg.conninfo("x"), "host=127.0.0.1 port=" + std::to_string(pg.port()) + " dbname=x user=postgres");
}

TEST(Postgres, CreateDatabaseGivesAFreshDatabase) {
  auto& pg = Postgres::shared();
  const std::string conn = pg.create_database("support_fresh");
  pg.psql("support_fresh", "CREATE TABLE t (id int); INSERT INTO t VALUES (1)");
  // Plain libpq through the returned conninfo sees the table.
  PGconn* c = PQconnectdb(conn.c_str());
  ASSERT_EQ(PQstatus(c), CONNECTION_OK) << PQerrorMessage(c);
  PGresult* r = PQexec(c, "SELECT count(*) FROM t");
  ASSERT_EQ(PQresultStatus(r), PGRES_TUPLES_OK);
  EXPECT_STREQ(PQgetvalue(r, 0, 0), "1");
  PQclear(r);
  // Recreating drops it, even with a session still open.
  pg.create_database("support_fresh");
  PQfinish(c);
  EXPECT_EQ(pg.scalar("support_fresh", "SELECT count(*) FROM pg_tables WHERE tablename = 't'"), "0");
}

TEST(Postgres, ErrorsCarryTheServerMessage) {
  auto& pg = Postgres::shared();
  try {
    pg.psql("postgres", "SELECT * FROM no_such_table");
    FAIL() << "expected an error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("no_such_table"), std::string::npos) << e.what();
  }
  EXPECT_THROW(pg.create_database("Bad-Name"), std::invalid_argument);
}

TEST(Postgres, TerminateBackendsEndsOtherSessions) {
  auto& pg = Postgres::shared();
  pg.create_database("support_term");
  PGconn* c = PQconnectdb(pg.conninfo("support_term").c_str());
  ASSERT_EQ(PQstatus(c), CONNECTION_OK);
  pg.terminate_backends("support_term");
  PGresult* r = PQexec(c, "SELECT 1");
  EXPECT_NE(PQresultStatus(r), PGRES_TUPLES_OK);  // the session was terminated
  PQclear(r);
  PQfinish(c);
}

TEST(Postgres, StopAndStartKeepPortAndData) {
  auto& pg = Postgres::shared();
  pg.create_database("support_restart");
  pg.psql("support_restart", "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('before')");
  const int port = pg.port();

  pg.stop();
  EXPECT_FALSE(pg.running());
  EXPECT_THROW(pg.psql("support_restart", "SELECT 1"), std::runtime_error);

  pg.start();
  EXPECT_TRUE(pg.running());
  EXPECT_EQ(pg.port(), port);
  EXPECT_EQ(pg.scalar("support_restart", "SELECT v FROM kept"), "before");
}

TEST(Postgres, KillThenStartRecovers) {
  auto& pg = Postgres::shared();
  pg.create_database("support_crash");
  pg.psql("support_crash", "CREATE TABLE kept (v int); INSERT INTO kept VALUES (7)");
  pg.kill();
  EXPECT_FALSE(pg.running());
  pg.start();
  EXPECT_EQ(pg.scalar("support_crash", "SELECT v FROM kept"), "7");
}

TEST(Postgres, OwnInstanceWithDefaultDurability) {
  Postgres durable(PostgresOptions{.fast = false, .settings = {"max_connections=50"}});
  EXPECT_NE(durable.port(), Postgres::shared().port());
  EXPECT_EQ(durable.scalar("postgres", "SHOW fsync"), "on");
  EXPECT_EQ(durable.scalar("postgres", "SHOW max_connections"), "50");
  EXPECT_EQ(Postgres::shared().scalar("postgres", "SHOW fsync"), "off");
}

}  // namespace
}  // namespace spillway::test_support
