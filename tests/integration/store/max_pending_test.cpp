// max_pending on the outbox stores (both plugins share the logic, outbox-common): the backlog bound
// is kept per pipeline from a count plus what this instance appended and settled since, so
// appends do not count the pending rows each time. What must hold: past the bound appends answer
// FULL naming it; rows the relay settles make room again, here at once and from another instance
// after a recount; the bound does not drift into refusing when the real backlog is low; concurrent
// appends of one instance never pass it; rows other writers add count from the next count
// (stats()). Built into store_sqlite_test and store_postgres_test (SPILLWAY_MAX_PENDING_POSTGRES).
#include <spillway/test_support/temp_dir.hpp>
#ifdef SPILLWAY_MAX_PENDING_POSTGRES
#include <spillway/test_support/postgres.hpp>
#endif
#define SPILLWAY_STORE_SUITE_HELPERS_ONLY
#include <spillway/testkit/store_suite.hpp>

#include <atomic>
#include <chrono>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace spillway::testkit;
using namespace spillway::testkit::store_suite;
using namespace std::chrono_literals;

class MaxPending : public StoreConformance {
protected:
    // `n` keyless events "<prefix>-<from>" .. "<prefix>-<from + n - 1>" of `pipeline`.
    static std::vector<Event> events(const std::string& prefix, int from, int n,
                                     const std::string& pipeline = "orders") {
        std::vector<Event> out;
        for (int i = from; i < from + n; ++i) {
            Event e = ev(prefix + "-" + std::to_string(i), "", false);
            e.pipeline = pipeline;
            out.push_back(std::move(e));
        }
        return out;
    }
};

TEST_P(MaxPending, DefaultIsFiniteAndStated) {
    const sw_option* opt = plugin_->option("max_pending");
    ASSERT_NE(opt, nullptr);
    ASSERT_NE(opt->default_value, nullptr);
    EXPECT_STREQ(opt->default_value, "1000000");
    EXPECT_NE(std::strstr(opt->description, "dead Kafka"), nullptr) << opt->description;
    auto s = open();  // the default bound
    ASSERT_EQ(append(*s, events("d", 0, 3)), SW_OK) << s->host().last_error();
    EXPECT_EQ(stats(*s, "orders").pending, 3);
}

TEST_P(MaxPending, AppendsPastTheBoundAnswerFullNamingIt) {
    auto s = open({{"max_pending", "40"}});
    for (int b = 0; b < 8; ++b)
        ASSERT_EQ(append(*s, events("f", b * 5, 5)), SW_OK) << "batch " << b << ": " << s->host().last_error();
    EXPECT_EQ(append(*s, events("f", 40, 1)), SW_FULL);
    const std::string err = s->host().last_error();
    EXPECT_NE(err.find("max_pending=40"), std::string::npos) << err;
    EXPECT_NE(err.find("pipeline orders"), std::string::npos) << err;
    EXPECT_EQ(append(*s, events("f", 41, 3)), SW_FULL) << "and again";
    EXPECT_EQ(stats(*s, "orders").pending, 40) << "nothing of a refused batch is stored";
    EXPECT_EQ(append(*s, events("big", 0, 41, "other")), SW_FULL) << "a batch larger than the bound";
    EXPECT_NE(s->host().last_error().find("pipeline other"), std::string::npos) << s->host().last_error();
    EXPECT_EQ(append(*s, events("o", 0, 40, "other")), SW_OK) << "the bound is per pipeline";
    // A batch of two pipelines with room in one only stores nothing, and gives its room back.
    ASSERT_EQ(append(*s, events("t", 0, 1, "third")), SW_OK) << s->host().last_error();
    std::vector<Event> mixed = events("m", 0, 1, "third");
    mixed.push_back(events("m", 1, 1)[0]);
    EXPECT_EQ(append(*s, mixed), SW_FULL);
    EXPECT_EQ(append(*s, events("t", 1, 39, "third")), SW_OK) << s->host().last_error();
    EXPECT_EQ(stats(*s, "third").pending, 40);
}

TEST_P(MaxPending, RowsTheRelaySettlesMakeRoomAtOnce) {
    auto s = open({{"max_pending", "40"}, {"max_attempts", "2"}, {"backoff_base", "1ms"}, {"backoff_max", "1ms"}});
    ASSERT_EQ(append(*s, events("r", 0, 40)), SW_OK) << s->host().last_error();
    ASSERT_EQ(append(*s, events("r", 40, 1)), SW_FULL);
    // Published (deleted): room for exactly as many, with no wait for a recount.
    auto rows = claim(*s, "orders", 10);
    ASSERT_EQ(rows.size(), 10u);
    ASSERT_EQ(complete(*s, rows, SW_OK), SW_OK) << s->host().last_error();
    EXPECT_EQ(append(*s, events("r", 40, 10)), SW_OK) << s->host().last_error();
    EXPECT_EQ(append(*s, events("r", 50, 1)), SW_FULL);
    // Rejected (dead): they leave the backlog too.
    rows = claim(*s, "orders", 5);
    ASSERT_EQ(rows.size(), 5u);
    ASSERT_EQ(complete(*s, rows, SW_REJECT, "poison"), SW_OK);
    EXPECT_EQ(append(*s, events("r", 50, 5)), SW_OK) << s->host().last_error();
    EXPECT_EQ(append(*s, events("r", 55, 1)), SW_FULL);
    // A retry keeps its row pending; the retry that reaches max_attempts (2) makes it dead.
    ASSERT_EQ(append(*s, events("q", 0, 40, "retry")), SW_OK) << s->host().last_error();
    rows = claim(*s, "retry", 5);
    ASSERT_EQ(rows.size(), 5u);
    ASSERT_EQ(complete(*s, rows, SW_RETRY, "later"), SW_OK);
    EXPECT_EQ(append(*s, events("q", 40, 1, "retry")), SW_FULL) << "retried rows are still pending";
    // Due again after the backoff (1 ms), each in its own time.
    std::vector<Row> again;
    ASSERT_TRUE(eventually(
        [&] {
            for (auto& r : claim(*s, "retry", 40)) again.push_back(r);
            return again.size() >= 40;
        },
        10s));
    ASSERT_EQ(again.size(), 40u);
    std::vector<Row> retried;
    for (const auto& r : again)
        if (r.attempts == 1) retried.push_back(r);
    ASSERT_EQ(retried.size(), 5u);
    ASSERT_EQ(complete(*s, retried, SW_RETRY, "still not"), SW_OK);
    EXPECT_EQ(stats(*s, "retry").dead, 5);
    EXPECT_EQ(append(*s, events("q", 40, 5, "retry")), SW_OK) << s->host().last_error();
    EXPECT_EQ(append(*s, events("q", 45, 1, "retry")), SW_FULL);
}

TEST_P(MaxPending, RoomAgainWhenAnotherInstanceSettles) {
    auto appender = open({{"max_pending", "30"}});
    auto relay = open({{"max_pending", "30"}});  // the same table: another engine's relay
    ASSERT_EQ(append(*appender, events("x", 0, 30)), SW_OK) << appender->host().last_error();
    ASSERT_EQ(append(*appender, events("x", 30, 1)), SW_FULL);
    auto rows = claim(*relay, "orders", 30);
    ASSERT_EQ(rows.size(), 30u);
    ASSERT_EQ(complete(*relay, rows, SW_OK), SW_OK);
    // The appender's own bookkeeping still says 30; a recount (at most every 100 ms) finds 0.
    int next = 30;
    ASSERT_TRUE(eventually([&] { return append(*appender, events("x", next, 1)) == SW_OK || (++next, false); }, 5s))
        << appender->host().last_error();
    EXPECT_EQ(append(*appender, events("x", 1000, 29)), SW_OK) << appender->host().last_error();
    EXPECT_EQ(append(*appender, events("x", 2000, 1)), SW_FULL);
}

// Many times the bound goes through the outbox and out again (published or dead), with duplicates
// among the appends: the bookkeeping neither drifts upwards (FULL with an empty outbox) nor
// downwards (more than the bound taken).
TEST_P(MaxPending, TheBoundDoesNotDriftIntoRefusing) {
    auto s = open({{"max_pending", "100"}, {"max_attempts", "1"}});
    for (int round = 0; round < 150; ++round) {
        const auto batch = events("d" + std::to_string(round), 0, 30);
        ASSERT_EQ(append(*s, batch), SW_OK) << "round " << round << ": " << s->host().last_error();
        std::vector<sw_result> res;
        ASSERT_EQ(append(*s, batch, &res), SW_OK) << "round " << round << ": " << s->host().last_error();
        ASSERT_TRUE(res[0].flags & SW_RESULT_DUPLICATE);
        ASSERT_EQ(append(*s, events("e" + std::to_string(round), 0, 30)), SW_OK)
            << "round " << round << ": " << s->host().last_error();
        auto rows = claim(*s, "orders", 100);
        ASSERT_EQ(rows.size(), 60u) << "round " << round;
        ASSERT_EQ(complete(*s, rows, SW_OK), SW_OK) << s->host().last_error();
    }
    // Rows that end dead leave the backlog as well: rejected, or failed for the last time.
    for (int round = 0; round < 30; ++round) {
        ASSERT_EQ(append(*s, events("x" + std::to_string(round), 0, 80)), SW_OK)
            << "round " << round << ": " << s->host().last_error();
        auto rows = claim(*s, "orders", 100);
        ASSERT_EQ(rows.size(), 80u) << "round " << round;
        const std::vector<Row> first(rows.begin(), rows.begin() + 40), second(rows.begin() + 40, rows.end());
        ASSERT_EQ(complete(*s, first, SW_REJECT, "poison"), SW_OK) << s->host().last_error();
        ASSERT_EQ(complete(*s, second, SW_RETRY, "down"), SW_OK) << s->host().last_error();
    }
    EXPECT_EQ(append(*s, events("end", 0, 100)), SW_OK) << "the whole bound is free: " << s->host().last_error();
    EXPECT_EQ(append(*s, events("end", 100, 1)), SW_FULL) << "and no more than it";
    EXPECT_EQ(stats(*s, "orders").pending, 100);
}

// Duplicates (an event appended again while its row is pending) add no row, and take no room.
TEST_P(MaxPending, DuplicatesTakeNoRoom) {
    auto s = open({{"max_pending", "20"}});
    const auto batch = events("dup", 0, 10);
    ASSERT_EQ(append(*s, batch), SW_OK) << s->host().last_error();
    for (int i = 0; i < 50; ++i) {
        std::vector<sw_result> res;
        ASSERT_EQ(append(*s, batch, &res), SW_OK) << "again " << i << ": " << s->host().last_error();
        ASSERT_TRUE(res[9].flags & SW_RESULT_DUPLICATE);
    }
    EXPECT_EQ(append(*s, events("new", 0, 10)), SW_OK) << s->host().last_error();
    EXPECT_EQ(stats(*s, "orders").pending, 20);
}

TEST_P(MaxPending, ConcurrentAppendsOfOneInstanceNeverPassTheBound) {
    auto s = open({{"max_pending", "100"}});
    std::atomic<int> accepted{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
        threads.emplace_back([&, t] {
            for (int i = 0; i < 20; ++i)
                if (append(*s, events("c" + std::to_string(t), i * 3, 3)) == SW_OK) accepted += 3;
        });
    for (auto& th : threads) th.join();
    const int64_t pending = stats(*s, "orders").pending;
    EXPECT_EQ(pending, accepted.load());
    EXPECT_LE(pending, 100);
    EXPECT_GE(pending, 99 - 3) << "refused only near the bound";
}

// Rows this instance did not append (another engine, an application writing outbox-first, a
// replay) are not held back by its bookkeeping, but count from the next count: stats(), which
// the engine asks once a second while Kafka is down, is one.
TEST_P(MaxPending, RowsOtherWritersAddCountFromTheNextCount) {
    auto mine = open({{"max_pending", "100"}});
    auto other = open({{"max_pending", "100"}});
    ASSERT_EQ(append(*mine, events("mine", 0, 60)), SW_OK) << mine->host().last_error();
    ASSERT_EQ(append(*other, events("other", 0, 30)), SW_OK) << other->host().last_error();
    ASSERT_EQ(stats(*mine, "orders").pending, 90);
    EXPECT_EQ(append(*mine, events("mine", 60, 11)), SW_FULL) << "90 + 11 > 100";
    EXPECT_EQ(append(*mine, events("mine", 60, 10)), SW_OK) << mine->host().last_error();
    EXPECT_EQ(stats(*mine, "orders").pending, 100);
}

TEST_P(MaxPending, ReplayedRowsCountTowardsTheBound) {
    auto s = open({{"max_pending", "20"}});
    ASSERT_EQ(append(*s, events("p", 0, 10)), SW_OK);
    auto rows = claim(*s, "orders", 10);
    ASSERT_EQ(complete(*s, rows, SW_REJECT, "poison"), SW_OK);
    ASSERT_EQ(append(*s, events("p", 10, 15)), SW_OK) << s->host().last_error();
    int64_t n = 0;
    ASSERT_EQ(s->vt().replay_dead(s->get(), "orders", nullptr, 0, &n), SW_OK);
    ASSERT_EQ(n, 10) << "a replay is not refused at the bound";
    EXPECT_EQ(append(*s, events("p", 25, 1)), SW_FULL) << "25 pending";
    rows = claim(*s, "orders", 100);
    ASSERT_EQ(rows.size(), 25u);
    ASSERT_EQ(complete(*s, rows, SW_OK), SW_OK);
    EXPECT_EQ(append(*s, events("p", 25, 20)), SW_OK) << s->host().last_error();
}

#ifdef SPILLWAY_MAX_PENDING_POSTGRES
Config fresh_store() {
    static const std::string conninfo = spillway::test_support::Postgres::shared().create_database("store_max_pending");
    static std::atomic<int> n{0};
    return Config{{"url", conninfo}, {"table", "bound_" + std::to_string(++n)}};
}
INSTANTIATE_TEST_SUITE_P(Postgres, MaxPending, ::testing::Values(StoreFactory{"postgres", fresh_store}),
                         [](const auto& info) { return info.param.plugin; });
#else
Config fresh_store() {
    static spillway::test_support::TempDir dir("store-max-pending");
    static std::atomic<int> n{0};
    return Config{{"path", dir.path() + "/bound-" + std::to_string(++n) + ".db"}};
}
INSTANTIATE_TEST_SUITE_P(Sqlite, MaxPending, ::testing::Values(StoreFactory{"sqlite", fresh_store}),
                         [](const auto& info) { return info.param.plugin; });
#endif

}  // namespace
