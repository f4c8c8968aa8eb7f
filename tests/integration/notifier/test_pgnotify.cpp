// pgnotify doorbell against a real PostgreSQL 15 (tests/support): the conformance suite, the
// shipped outbox trigger (a commit by another session rings, a rollback does not), and the
// server stopped mid-wait and started again.
#include "doorbell_test_support.hpp"

#include <spillway/test_support/ports.hpp>
#include <spillway/test_support/postgres.hpp>
#include <spillway/test_support/wait.hpp>
#include <spillway/testkit/host.hpp>
#include <spillway/testkit/notifier_suite.hpp>

#include <gtest/gtest.h>
#include <libpq-fe.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

namespace spillway::testkit {
namespace {

using namespace std::chrono_literals;
using spillway::doorbell_test::health;
using spillway::doorbell_test::wait;
using spillway::doorbell_test::Waited;
using spillway::test_support::Postgres;
using spillway::test_support::wait_until;
using Clock = std::chrono::steady_clock;

Plugin& pgnotify_plugin() {
    static Plugin plugin(plugin_file("pgnotify"));
    return plugin;
}

// One database for this test process, with a minimal outbox table and the shipped trigger.
const std::string& outbox_db() {
    static const std::string conninfo = [] {
        Postgres& pg = Postgres::shared();
        std::string c = pg.create_database("pgnotify_test");
        std::ifstream in(SPILLWAY_PGNOTIFY_TRIGGER_SQL);
        std::stringstream sql;
        sql << in.rdbuf();
        pg.psql("pgnotify_test", "CREATE TABLE spillway_outbox (id bigserial PRIMARY KEY, pipeline text NOT NULL, "
                                 "payload text)");
        pg.psql("pgnotify_test", sql.str());
        pg.psql("pgnotify_test", sql.str());  // installing twice is harmless
        return c;
    }();
    return conninfo;
}

INSTANTIATE_TEST_SUITE_P(Pgnotify, NotifierConformance,
                         ::testing::Values(NotifierCase{"pgnotify", [] { return Config{{"url", outbox_db()}}; }, 1000}));

// Another application session, as in outbox-first mode.
class AppSession {
public:
    explicit AppSession(const std::string& conninfo) : conn_(PQconnectdb(conninfo.c_str())) {
        if (PQstatus(conn_) != CONNECTION_OK) throw std::runtime_error(PQerrorMessage(conn_));
    }
    ~AppSession() { PQfinish(conn_); }
    void run(const std::string& sql) {
        PGresult* r = PQexec(conn_, sql.c_str());
        const ExecStatusType st = PQresultStatus(r);
        const std::string error = PQresultErrorMessage(r);
        PQclear(r);
        if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) throw std::runtime_error(sql + ": " + error);
    }

private:
    PGconn* conn_;
};

// The first wait of a channel LISTENs; a zero wait does just that.
void listen(NotifierInstance& n, const std::string& pipeline) { EXPECT_EQ(wait(n, pipeline, 0).status, SW_OK); }

TEST(PgnotifyNotifier, CommittedInsertByAnotherSessionWakesTheWaiter) {
    NotifierInstance n(pgnotify_plugin(), Config{{"url", outbox_db()}});
    listen(n, "orders");
    AppSession app(outbox_db());
    app.run("BEGIN");
    app.run("INSERT INTO spillway_outbox (pipeline, payload) VALUES ('orders', 'a')");
    EXPECT_FALSE(wait(n, "orders", 300).woken) << "rang before the commit";

    Waited w{};
    std::thread waiter([&] { w = wait(n, "orders", 20'000); });
    app.run("COMMIT");
    waiter.join();
    EXPECT_EQ(w.status, SW_OK) << n.host().last_error();
    EXPECT_TRUE(w.woken);
    EXPECT_LT(w.elapsed, 10s);
}

TEST(PgnotifyNotifier, RolledBackInsertDoesNotWake) {
    NotifierInstance n(pgnotify_plugin(), Config{{"url", outbox_db()}});
    listen(n, "refunds");
    AppSession app(outbox_db());
    app.run("BEGIN; INSERT INTO spillway_outbox (pipeline, payload) VALUES ('refunds', 'x'); ROLLBACK");
    const Waited w = wait(n, "refunds", 1000);
    EXPECT_EQ(w.status, SW_OK);
    EXPECT_FALSE(w.woken);
    EXPECT_GE(w.elapsed, 900ms);
    // The listener works: the same insert committed rings.
    app.run("INSERT INTO spillway_outbox (pipeline, payload) VALUES ('refunds', 'y')");
    EXPECT_TRUE(wait(n, "refunds", 10'000).woken);
}

TEST(PgnotifyNotifier, ManyRowsInOneTransactionRingOnceAndOnlyTheirPipeline) {
    NotifierInstance n(pgnotify_plugin(), Config{{"url", outbox_db()}});
    listen(n, "bulk");
    listen(n, "other");
    AppSession app(outbox_db());
    app.run("BEGIN");
    for (int i = 0; i < 20; ++i) app.run("INSERT INTO spillway_outbox (pipeline) VALUES ('bulk')");
    app.run("INSERT INTO spillway_outbox (pipeline) SELECT 'bulk' FROM generate_series(1, 500)");
    app.run("COMMIT");
    EXPECT_TRUE(wait(n, "bulk", 10'000).woken);
    EXPECT_FALSE(wait(n, "bulk", 300).woken);
    EXPECT_FALSE(wait(n, "other", 300).woken);
}

TEST(PgnotifyNotifier, TriggerPrefixFollowsTheNotifiersChannelPrefix) {
    const std::string url = outbox_db();
    Postgres& pg = Postgres::shared();
    pg.psql("pgnotify_test",
            "CREATE TABLE IF NOT EXISTS custom_outbox (id bigserial PRIMARY KEY, pipeline text NOT NULL);"
            "CREATE OR REPLACE TRIGGER custom_ring AFTER INSERT ON custom_outbox REFERENCING NEW TABLE AS "
            "spillway_new_rows FOR EACH STATEMENT EXECUTE FUNCTION spillway_outbox_ring('App.Bell:')");
    NotifierInstance n(pgnotify_plugin(), Config{{"url", url}, {"channel_prefix", "App.Bell:"}});
    listen(n, "Orders");
    pg.psql("pgnotify_test", "INSERT INTO custom_outbox (pipeline) VALUES ('orders')");  // another case: not ours
    pg.psql("pgnotify_test", "INSERT INTO custom_outbox (pipeline) VALUES ('Orders')");
    EXPECT_TRUE(wait(n, "Orders", 10'000).woken);
    EXPECT_FALSE(wait(n, "Orders", 300).woken);
}

TEST(PgnotifyNotifier, ChannelTooLongIsAClearError) {
    NotifierInstance n(pgnotify_plugin(), Config{{"url", outbox_db()}});
    const std::string pipeline(60, 'p');
    EXPECT_EQ(n.vt().notify(n.get(), pipeline.c_str()), SW_INVALID_CONFIG);
    EXPECT_NE(n.host().last_error().find("PostgreSQL allows 63"), std::string::npos) << n.host().last_error();
}

constexpr const char* kPassword = "Hunter2-s3cret";  // trust auth ignores it; it must never be printed

// Strings libpq's parser refuses, and values it would refuse on connecting, are refused by
// validate (as by `spillway validate`), naming url and never quoting the password.
TEST(PgnotifyNotifier, MalformedUrlIsAConfigError) {
    const std::string pw = kPassword;
    const std::vector<std::string> bad = {
        "host=127.0.0.1 port",
        "postgresql://postgres:" + pw + "@127.0.0.1:5432/db?sslmod=require",
        "postgresql://postgres:" + pw + "%zz@127.0.0.1:5432/db",
        "postgresql://postgres:" + pw + "@[::1:5432/db",
        "host=127.0.0.1 dbnmae=db password=" + pw,
        "host=127.0.0.1 port=54x32 dbname=db password='" + pw + "'",
    };
    for (const auto& url : bad) {
        HostContext host(pgnotify_plugin(), Config{{"url", url}});
        EXPECT_EQ(validate(pgnotify_plugin(), host), SW_INVALID_CONFIG) << url;
        const auto errors = host.config_errors();
        ASSERT_EQ(errors.size(), 1u) << url;
        EXPECT_EQ(errors.front().first, "url");
        EXPECT_EQ(errors.front().second.find("s3cret"), std::string::npos) << errors.front().second;
    }
}

// Both forms of url work: a URI (either scheme, user and password, percent-encoding, query
// parameters) and key=value pairs (a quoted value with spaces); the parameters reach the server.
TEST(PgnotifyNotifier, UrlAsUriOrKeyValueConnects) {
    outbox_db();
    Postgres& pg = Postgres::shared();
    const std::string port = std::to_string(pg.port());
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"postgresql://postgres@127.0.0.1:" + port + "/pgnotify_test", "spillway-pgnotify"},
        {"postgres://%70ostgres:" + std::string(kPassword) + "@127.0.0.1:" + port +
             "/pgnotify%5Ftest?sslmode=disable&application_name=bell%201&connect_timeout=5",
         "bell 1"},
        {"postgresql:///pgnotify_test?host=127.0.0.1&port=" + port + "&user=postgres&application_name=bell%202",
         "bell 2"},
        {"host=127.0.0.1 port=" + port + " dbname=pgnotify_test user=postgres application_name='bell 3' "
         "password='" + std::string(kPassword) + " with spaces'",
         "bell 3"},
    };
    for (const auto& [url, application_name] : cases) {
        SCOPED_TRACE(url);
        NotifierInstance n(pgnotify_plugin(), Config{{"url", url}});
        EXPECT_EQ(health(n).state, SW_HEALTH_UP) << n.host().last_error();
        listen(n, "forms");
        EXPECT_EQ(n.vt().notify(n.get(), "forms"), SW_OK) << n.host().last_error();
        EXPECT_TRUE(wait(n, "forms", 10'000).woken);
        EXPECT_EQ(pg.scalar("pgnotify_test", "SELECT count(*) >= 2 FROM pg_stat_activity WHERE datname = "
                                             "'pgnotify_test' AND application_name = '" + application_name + "'"),
                  "t");
    }
}

// The server answers and no wait will change its answer (no such database, no such role): start
// blames url (the engine prints its file:line:col), with the SQLSTATE and without the password.
TEST(PgnotifyNotifier, UrlTheServerRefusesForGoodIsAConfigErrorAtStart) {
    outbox_db();
    const std::string port = std::to_string(Postgres::shared().port());
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"postgresql://postgres:" + std::string(kPassword) + "@127.0.0.1:" + port + "/no_such_db", "3D000"},
        {"host=127.0.0.1 port=" + port + " dbname=pgnotify_test user=no_such_role password=" + kPassword, "28000"},
    };
    for (const auto& [url, sqlstate] : cases) {
        NotifierInstance n(pgnotify_plugin(), Config{{"url", url}}, /*start_it=*/false);
        EXPECT_EQ(n.vt().start(n.get()), SW_INVALID_CONFIG) << n.host().last_error();
        const auto errors = n.host().config_errors();
        ASSERT_EQ(errors.size(), 1u) << n.host().last_error();
        EXPECT_EQ(errors[0].first, "url");
        EXPECT_NE(errors[0].second.find(sqlstate), std::string::npos) << errors[0].second;
        EXPECT_EQ(errors[0].second.find("s3cret"), std::string::npos) << errors[0].second;
    }
}

// Nothing listens on the port: the server may come later, so start succeeds (the pipeline works
// without its doorbell, only slower) and health says DOWN.
TEST(PgnotifyNotifier, UnreachableServerAtStartIsNotAConfigError) {
    const int closed_port = spillway::test_support::free_port();
    NotifierInstance n(pgnotify_plugin(),
                       Config{{"url", "postgresql://postgres:" + std::string(kPassword) + "@127.0.0.1:" +
                                          std::to_string(closed_port) + "/pgnotify_test"}},
                       /*start_it=*/false);
    EXPECT_EQ(n.vt().start(n.get()), SW_OK) << n.host().last_error();
    EXPECT_TRUE(n.host().config_errors().empty());
    EXPECT_EQ(health(n).state, SW_HEALTH_DOWN);
    for (const auto& line : n.host().logs()) EXPECT_EQ(line.message.find("s3cret"), std::string::npos) << line.message;
    EXPECT_EQ(n.vt().stop(n.get(), 1000), SW_OK);
}

// Stop PostgreSQL under a waiting relay: the wait ends at its timeout, one warning for the whole
// outage, notify fails fast; after a restart the next commit wakes the waiter again.
TEST(PgnotifyNotifier, SurvivesServerStoppedMidWaitAndRestarted) {
    Postgres pg;
    const std::string url = pg.create_database("restart_test");
    NotifierInstance n(pgnotify_plugin(), Config{{"url", url}});
    listen(n, "p");

    Waited w{};
    std::thread waiter([&] { w = wait(n, "p", 2000); });
    pg.stop();
    waiter.join();
    EXPECT_EQ(w.status, SW_OK) << n.host().last_error();
    EXPECT_GE(w.elapsed, 1500ms);
    EXPECT_LT(w.elapsed, 8s);
    for (int i = 0; i < 3; ++i) {
        const Waited down = wait(n, "p", 300);
        EXPECT_EQ(down.status, SW_OK);
        EXPECT_FALSE(down.woken);
        EXPECT_GE(down.elapsed, 250ms);
    }
    const auto t0 = Clock::now();
    for (int i = 0; i < 50; ++i) EXPECT_EQ(n.vt().notify(n.get(), "p"), SW_RETRY);
    EXPECT_LT(Clock::now() - t0, 3s) << "notify is on the publisher's path: it must fail fast";
    EXPECT_EQ(health(n).state, SW_HEALTH_DOWN);
    EXPECT_EQ(n.host().count_logs(SW_LOG_WARN), 1u);

    pg.start();
    // After reconnecting, the waiter reports one ring (any sent meanwhile were lost), then waits.
    EXPECT_TRUE(wait_until([&] { return wait(n, "p", 200).woken; }, 15s));
    EXPECT_EQ(health(n).state, SW_HEALTH_UP);
    Waited woken{};
    std::thread again([&] { woken = wait(n, "p", 30'000); });
    EXPECT_TRUE(wait_until([&] { return n.vt().notify(n.get(), "p") == SW_OK; }, 15s, 20ms)) << n.host().last_error();
    again.join();
    EXPECT_TRUE(woken.woken);
    EXPECT_LT(woken.elapsed, 20s);
    EXPECT_EQ(n.host().count_logs(SW_LOG_WARN), 1u);
    EXPECT_EQ(n.host().count_logs(SW_LOG_INFO, "reachable again"), 1u);
    EXPECT_EQ(n.host().metric("notifier_outages_total"), 1) << "one outage, counted once";
}

}  // namespace
}  // namespace spillway::testkit
