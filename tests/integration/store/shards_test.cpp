// coordination = "shards" on the PostgreSQL store, through the plugin's C ABI and no engine: store
// instances on one database of the shared throwaway server, each holding the same pipeline as a
// member, as N engines would (../shared/design/SCALE-OUT.md §3.3-3.5). What is checked:
//   - two members starting at once split the 256 shards, one live owner each; a third one joins
//     while all three claim, and no row is out with two of them at once nor a key reordered;
//   - the acquire CAS, raced by two sessions on one expired shard, makes exactly one owner;
//   - a renewal with a stale epoch changes nothing, and its member stops claiming that shard;
//   - a settlement after the row lease and the shards expired settles nothing; the new owner does;
//   - a shard is not handed over while a claim of its rows is still in flight;
//   - a crashed member's shards move at once (its member lock is free), well before shard_ttl, and
//     a member id in use by a live engine is refused;
//   - SQLite refuses the mode, and PostgreSQL timings under which a claim could outlive its shard.
// The timings are scaled down (heartbeat 100 ms, shard lease 1 s, claim guard 300 ms); waits are
// on conditions with deadlines.
#include "store_test_support.hpp"

#include <pg-common/query.hpp>

#include <spillway/test_support/temp_dir.hpp>
#include <spillway/test_support/wait.hpp>

#include <libpq-fe.h>
#include <nlohmann/json.hpp>

#include <iostream>
#include <latch>
#include <map>
#include <set>
#include <stdexcept>
#include <thread>
#include <utility>

namespace {

using namespace spillway::testkit;
using namespace spillway::testkit::store_suite;
using spillway::store_test::postgres_plugin;
using spillway::store_test::sqlite_plugin;
namespace pg = spillway::plugins::pg;
using spillway::test_support::Postgres;
using spillway::test_support::wait_until;
using namespace std::chrono_literals;

constexpr int kShards = 256;
// The first key of the coordinator's member locks ("SWM1"; plugins/postgres/shard_coordinator.cpp);
// the second is hashtext('<pipeline>/<member>').
constexpr int kMemberLockSpace = 0x53574d31;

// A libpq session of the test's own, kept open: the CAS race needs two statements in flight at
// once, and the crash test watches the database while it takes no new connections.
class Session {
public:
    using Rows = std::vector<std::vector<std::string>>;  // SQL NULL as "(null)"

    explicit Session(const std::string& conninfo) : c_(PQconnectdb(conninfo.c_str())) {
        if (PQstatus(c_) != CONNECTION_OK) {
            const std::string why = PQerrorMessage(c_);
            PQfinish(c_);
            throw std::runtime_error("test session: " + why);
        }
    }
    ~Session() { PQfinish(c_); }
    Session(const Session&) = delete;
    Session& operator=(const Session&) = delete;

    int pid() const { return PQbackendPID(c_); }

    // One statement with text parameters.
    Rows query(const std::string& sql, const std::vector<std::string>& params = {}) {
        std::vector<const char*> values;
        for (const auto& p : params) values.push_back(p.c_str());
        PGresult* r = PQexecParams(c_, sql.c_str(), static_cast<int>(values.size()), nullptr, values.data(), nullptr,
                                   nullptr, 0);
        return take(r, sql);
    }
    std::string scalar(const std::string& sql, const std::vector<std::string>& params = {}) {
        const Rows rows = query(sql, params);
        if (rows.empty() || rows[0].empty()) throw std::runtime_error("no value from: " + sql);
        return rows[0][0];
    }
    // Several statements, one implicit transaction.
    void exec(const std::string& sql) { take(PQexec(c_, sql.c_str()), sql); }
    // Sends a statement without waiting for its answer (result() collects it).
    void send(const std::string& sql, const std::vector<std::string>& params) {
        std::vector<const char*> values;
        for (const auto& p : params) values.push_back(p.c_str());
        if (!PQsendQueryParams(c_, sql.c_str(), static_cast<int>(values.size()), nullptr, values.data(), nullptr,
                               nullptr, 0))
            throw std::runtime_error(std::string("send: ") + PQerrorMessage(c_));
    }
    Rows result() {
        Rows out;
        while (PGresult* r = PQgetResult(c_)) out = take(r, "(sent statement)");
        return out;
    }

private:
    Rows take(PGresult* r, const std::string& sql) {
        const auto st = PQresultStatus(r);
        if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
            const std::string why = PQresultErrorMessage(r);
            PQclear(r);
            throw std::runtime_error(why + " in: " + sql);
        }
        Rows out;
        for (int i = 0; i < PQntuples(r); ++i) {
            std::vector<std::string> row;
            for (int j = 0; j < PQnfields(r); ++j) row.push_back(PQgetisnull(r, i, j) ? "(null)" : PQgetvalue(r, i, j));
            out.push_back(std::move(row));
        }
        PQclear(r);
        return out;
    }

    PGconn* c_;
};

// The store's options for a member: table "outbox" (so outbox_shards, outbox_members and
// outbox_leases), claim_guard + 2 heartbeats below shard_ttl as the store requires.
Config shards_config(const std::string& conninfo, const std::string& ttl = "1s") {
    return Config{{"url", conninfo},
                  {"table", "outbox"},
                  {"shard_heartbeat", "100ms"},
                  {"shard_ttl", ttl},
                  {"claim_guard", "300ms"}};
}

sw_status hold_shards(StoreInstance& s, const std::string& member, const std::string& pipeline = "orders") {
    return s.vt().hold(s.get(), pipeline.c_str(), SW_HOLD_SHARDS, member.c_str());
}

bool has_shard_slots(StoreInstance& s) {
    return s.vt().struct_size >= offsetof(sw_store_vtable, coordination) + sizeof(void*) && s.vt().hold &&
           s.vt().coordination;
}

// The store's coordination() JSON; null when the call failed.
nlohmann::json coordination(StoreInstance& s, const std::string& pipeline = "orders") {
    std::string text;
    const sw_status st = s.vt().coordination(
        s.get(), pipeline.c_str(), [](void* user, sw_bytes b) { static_cast<std::string*>(user)->assign(b.ptr, b.len); },
        &text);
    if (st != SW_OK || text.empty()) return nullptr;
    return nlohmann::json::parse(text, nullptr, false);
}

// How many shards the member believes it owns (its memory, not the table); -1 when unknown.
int owned(StoreInstance& s) {
    const nlohmann::json j = coordination(s);
    return j.is_object() && j.contains("owned") ? j["owned"].get<int>() : -1;
}

// Completed heartbeats of the member (each observes coord_heartbeat_seconds once, at its end).
double heartbeats(StoreInstance& s, const std::string& pipeline = "orders") {
    std::lock_guard lock(s.host().mutex);
    const auto it = s.host().metrics.find("coord_heartbeat_seconds{pipeline=" + pipeline + "}_count");
    return it == s.host().metrics.end() ? 0 : it->second;
}

bool heartbeats_pass(StoreInstance& s, int n, std::chrono::milliseconds deadline = 5s) {
    const double until = heartbeats(s) + n;
    return wait_until([&] { return heartbeats(s) >= until; }, deadline);
}

// The live owner of every shard of the pipeline, by the database ("" where none); the table must
// have one row per shard.
std::vector<std::string> live_owners(Session& db, const std::string& pipeline = "orders") {
    const auto rows = db.query(
        "SELECT shard, CASE WHEN owner IS NOT NULL AND expires_at > clock_timestamp() THEN owner ELSE '' END "
        "FROM outbox_shards WHERE pipeline = $1 ORDER BY shard",
        {pipeline});
    std::vector<std::string> out(kShards);
    if (rows.size() != kShards) throw std::runtime_error(std::to_string(rows.size()) + " shard rows, not 256");
    for (const auto& r : rows) out.at(static_cast<size_t>(std::stoi(r[0]))) = r[1];
    return out;
}

std::map<std::string, int> tally(const std::vector<std::string>& owners) {
    std::map<std::string, int> out;
    for (const auto& o : owners) ++out[o];
    return out;
}

std::string describe(const std::map<std::string, int>& t) {
    std::string out;
    for (const auto& [m, n] : t) out += (out.empty() ? "" : ", ") + (m.empty() ? std::string("<none>") : m) + ": " + std::to_string(n);
    return out;
}

using Members = std::vector<std::pair<std::string, StoreInstance*>>;

// Every shard has a live owner among `members`, each of them owns some, and each one's own count
// (coordination()'s "owned", from its memory) is the database's. `why` says what was seen.
bool converged(Session& db, const Members& members, std::string* why) {
    const auto t = tally(live_owners(db));
    std::string seen = "table: " + describe(t) + "; own counts:";
    bool ok = !t.count("") && t.size() == members.size();
    for (const auto& [name, s] : members) {
        const int mine = owned(*s);
        seen += " " + name + "=" + std::to_string(mine);
        const auto it = t.find(name);
        ok = ok && it != t.end() && it->second == mine;
    }
    if (why) *why = seen;
    return ok;
}

// `member` holds the pipeline, and owns every shard of it, alone.
::testing::AssertionResult holds_alone(StoreInstance& s, const std::string& member, Session& db) {
    if (hold_shards(s, member) != SW_OK) return ::testing::AssertionFailure() << "hold: " << s.host().last_error();
    std::string state;
    if (!wait_until([&] { return converged(db, Members{{member, &s}}, &state); }, 10s))
        return ::testing::AssertionFailure() << "never owned every shard: " << state;
    return ::testing::AssertionSuccess();
}

// A key whose rows fall in each shard (index: shard), by the store's own spillway_shard().
std::vector<std::string> key_of_each_shard(Session& db) {
    const auto rows = db.query("SELECT DISTINCT ON (s) s, k FROM (SELECT spillway_shard(k, 0) AS s, k FROM (SELECT "
                               "'key-' || g AS k FROM generate_series(1, 10000) AS g) AS c) AS d ORDER BY s, length(k), k");
    if (rows.size() != kShards) throw std::runtime_error("keys for " + std::to_string(rows.size()) + " shards only");
    std::vector<std::string> out(kShards);
    for (const auto& r : rows) out.at(static_cast<size_t>(std::stoi(r[0]))) = r[1];
    return out;
}

int shard_of(Session& db, const std::string& key) { return std::stoi(db.scalar("SELECT spillway_shard($1, 0)", {key})); }

// Two rows of one key in each of 32 shards (0, 8, ..., 248).
struct Spread {
    std::vector<int> shards;
    std::vector<Event> events;
    std::map<std::string, int> shard_of_event;
};
Spread spread_over_shards(Session& db) {
    Spread out;
    const auto keys = key_of_each_shard(db);
    for (int s = 0; s < kShards; s += 8) {
        out.shards.push_back(s);
        const std::string& key = keys[static_cast<size_t>(s)];
        for (int i = 0; i < 2; ++i) {
            out.events.push_back(ev(key + "-" + std::to_string(i), key));
            out.shard_of_event[out.events.back().event_id] = s;
        }
    }
    return out;
}

// Checks across members that no row is out with two of them at once, none goes out again after
// its delivery, and each key's rows go out in id order (every delivery here succeeds, so a key's
// next row must always be a later one).
class Handouts {
public:
    void claimed(const std::string& member, const std::vector<Row>& rows) {
        std::lock_guard lock(m_);
        for (const Row& r : rows) {
            if (const auto it = out_.find(r.row_id); it != out_.end())
                problems_.push_back(r.event_id + " handed to " + member + " while " + it->second + " holds it");
            if (delivered_.count(r.row_id)) problems_.push_back(r.event_id + " handed to " + member + " after its delivery");
            out_[r.row_id] = member;
            ++rows_of_[member];
            if (!r.has_key) continue;
            auto [last, fresh] = last_of_key_.try_emplace(r.key, r.row_id, member);
            if (!fresh) {
                if (r.row_id <= last->second.first)
                    problems_.push_back(r.event_id + " (row " + std::to_string(r.row_id) + ") handed to " + member +
                                        " after row " + std::to_string(last->second.first) + " of its key went to " +
                                        last->second.second);
                if (last->second.second != member) ++moves_;
                last->second = {r.row_id, member};
            }
        }
    }
    // Called before complete() is sent: from then on the rows may be seen again.
    void settling(const std::vector<Row>& rows) {
        std::lock_guard lock(m_);
        for (const Row& r : rows) {
            out_.erase(r.row_id);
            delivered_.insert(r.row_id);
        }
    }
    size_t delivered() {
        std::lock_guard lock(m_);
        return delivered_.size();
    }
    int rows_of(const std::string& member) {
        std::lock_guard lock(m_);
        return rows_of_[member];
    }
    // How often a key's next row went to another member than its previous one.
    int moves() {
        std::lock_guard lock(m_);
        return moves_;
    }
    std::vector<std::string> problems() {
        std::lock_guard lock(m_);
        return problems_;
    }

private:
    std::mutex m_;
    std::map<int64_t, std::string> out_;                                // row -> member holding it
    std::set<int64_t> delivered_;
    std::map<std::string, std::pair<int64_t, std::string>> last_of_key_;  // key -> last row handed out, to whom
    std::map<std::string, int> rows_of_;
    int moves_ = 0;
    std::vector<std::string> problems_;
};

std::string joined(const std::vector<std::string>& v, size_t at_most = 10) {
    std::string out;
    for (size_t i = 0; i < v.size() && i < at_most; ++i) out += "\n  " + v[i];
    if (v.size() > at_most) out += "\n  ... " + std::to_string(v.size() - at_most) + " more";
    return out;
}

// Threads that must be joined before the instances they use go, even when an ASSERT returns early.
struct Threads {
    std::atomic<bool> stop{false};
    std::vector<std::thread> all;
    ~Threads() { join(); }
    void join() {
        stop = true;
        for (auto& t : all)
            if (t.joinable()) t.join();
    }
};

// 1. Two members hold at the same moment: the conditional UPDATE alone makes owners, so whichever
// way their first heartbeats interleave, every shard ends with one live owner and the rendezvous
// split is about even. A third member then joins while all three claim and rows keep arriving:
// shards move by drain-then-release, so no row is ever out with two members and no key's rows go
// out of id order, though keys do change hands.
TEST(PostgresShards, TwoMembersStartingAtOnceSplitTheShardsAndAThirdJoinsWithoutSharingARowOrReorderingAKey) {
    const std::string conninfo = Postgres::shared().create_database("shards_race");
    StoreInstance a(postgres_plugin(), shards_config(conninfo));
    StoreInstance b(postgres_plugin(), shards_config(conninfo));
    StoreInstance c(postgres_plugin(), shards_config(conninfo));
    StoreInstance app(postgres_plugin(), shards_config(conninfo));  // the application: appends, holds nothing
    ASSERT_TRUE(has_shard_slots(a));
    Session db(conninfo);

    std::latch together(2);
    sw_status held_a = SW_RETRY, held_b = SW_RETRY;
    std::thread ta([&] {
        together.arrive_and_wait();
        held_a = hold_shards(a, "a");
    });
    std::thread tb([&] {
        together.arrive_and_wait();
        held_b = hold_shards(b, "b");
    });
    ta.join();
    tb.join();
    ASSERT_EQ(held_a, SW_OK) << a.host().last_error();
    ASSERT_EQ(held_b, SW_OK) << b.host().last_error();

    const Members ab = {{"a", &a}, {"b", &b}};
    std::string state;
    ASSERT_TRUE(wait_until([&] { return converged(db, ab, &state); }, 10s)) << state;
    // ...and it stays so over a few more heartbeats of each.
    ASSERT_TRUE(heartbeats_pass(a, 3));
    ASSERT_TRUE(heartbeats_pass(b, 3));
    EXPECT_TRUE(converged(db, ab, &state)) << state;
    EXPECT_EQ(db.scalar("SELECT count(*) FROM outbox_shards WHERE pipeline = 'orders'"), "256");
    auto split = tally(live_owners(db));
    EXPECT_EQ(owned(a) + owned(b), kShards);
    EXPECT_GT(split["a"], 80) << describe(split);
    EXPECT_GT(split["b"], 80) << describe(split);
    // coordination() lists both members with what the table gives them.
    const nlohmann::json view = coordination(a);
    ASSERT_TRUE(view.is_object() && view.contains("members")) << view.dump();
    std::map<std::string, int> listed;
    for (const auto& m : view["members"]) listed[m["member"].get<std::string>()] = m["shards"].get<int>();
    EXPECT_EQ(listed, (std::map<std::string, int>{{"a", split["a"]}, {"b", split["b"]}})) << view.dump();

    // Rows of many keys (and some keyless ones) keep arriving, a round of one row per key at a
    // time, while a and b claim; then c joins and claims too.
    constexpr int kKeys = 200;
    std::vector<int> seq(kKeys, 0);
    int keyless = 0;
    std::atomic<int> appended{0};
    std::atomic<int> append_errors{0};
    Handouts handouts;
    auto append_round = [&] {
        std::vector<Event> round;
        for (int k = 0; k < kKeys; ++k) {
            round.push_back(ev("k" + std::to_string(k) + "-" + std::to_string(seq[k]++), "k" + std::to_string(k)));
            if (k % 20 == 0) round.push_back(ev("n-" + std::to_string(keyless++), "", false));
        }
        if (append(app, round) == SW_OK) appended += static_cast<int>(round.size());
        else ++append_errors;
    };
    for (int i = 0; i < 3; ++i) append_round();

    Threads threads;
    std::atomic<bool> producing{true}, produced{false};
    std::atomic<int> claim_errors{0};
    std::string first_claim_error;
    std::mutex error_mutex;
    auto relay = [&](StoreInstance& s, const std::string& member) {
        while (!threads.stop) {
            sw_status st = SW_OK;
            const auto rows = claim(s, "orders", 40, 30'000, &st);
            if (st != SW_OK) {
                std::lock_guard lock(error_mutex);
                if (claim_errors++ == 0) first_claim_error = member + ": " + s.host().last_error();
                continue;
            }
            if (rows.empty()) {
                // Idle: poll again when rows arrive, or after 20 ms (shards may have come).
                const int seen = appended.load();
                wait_until([&] { return threads.stop.load() || appended.load() != seen; }, 20ms);
                continue;
            }
            handouts.claimed(member, rows);
            handouts.settling(rows);
            if (complete(s, rows, SW_OK) != SW_OK) {
                std::lock_guard lock(error_mutex);
                if (claim_errors++ == 0) first_claim_error = member + " complete: " + s.host().last_error();
            }
        }
    };
    threads.all.emplace_back([&] {
        // A backlog of at most ~2,000 rows: the relays keep up, and every key keeps having rows.
        while (producing && !threads.stop) {
            wait_until([&] { return !producing || appended.load() - static_cast<int>(handouts.delivered()) < 2000; }, 5s);
            if (producing) append_round();
        }
        produced = true;
    });
    threads.all.emplace_back(relay, std::ref(a), "a");
    threads.all.emplace_back(relay, std::ref(b), "b");
    ASSERT_TRUE(wait_until([&] { return handouts.rows_of("a") > 200 && handouts.rows_of("b") > 200; }, 30s))
        << "a: " << handouts.rows_of("a") << ", b: " << handouts.rows_of("b");

    ASSERT_EQ(hold_shards(c, "c"), SW_OK) << c.host().last_error();
    threads.all.emplace_back(relay, std::ref(c), "c");
    const Members abc = {{"a", &a}, {"b", &b}, {"c", &c}};
    // Every shard owned is not enough: a and b hand theirs over only once their rows in flight are
    // settled, so a split where c has fewer than its share is a consistent state on the way.
    EXPECT_TRUE(wait_until(
        [&] {
            if (!converged(db, abc, &state)) return false;
            split = tally(live_owners(db));
            return split["c"] > 50;
        },
        15s))
        << state << "; " << describe(split);
    // Keys that went out through a or b before now go out through c.
    EXPECT_TRUE(wait_until([&] { return handouts.rows_of("c") > 300 && handouts.moves() > 0; }, 30s))
        << "c: " << handouts.rows_of("c") << " rows, " << handouts.moves() << " key moves";

    producing = false;
    // The producer may be inside its last round: what it appends is owed too.
    EXPECT_TRUE(wait_until([&] { return produced.load(); }, 10s));
    EXPECT_TRUE(wait_until([&] { return handouts.delivered() >= static_cast<size_t>(appended.load()); }, 60s))
        << handouts.delivered() << " of " << appended.load() << " delivered";
    threads.join();

    EXPECT_EQ(append_errors.load(), 0) << app.host().last_error();
    EXPECT_EQ(claim_errors.load(), 0) << first_claim_error;
    EXPECT_EQ(handouts.delivered(), static_cast<size_t>(appended.load()));
    EXPECT_EQ(db.scalar("SELECT count(*) FROM outbox"), "0");
    const auto problems = handouts.problems();
    EXPECT_TRUE(problems.empty()) << problems.size() << " problem(s):" << joined(problems);
    EXPECT_TRUE(converged(db, abc, &state)) << state;
}

// ShardCoordinator::acquire's statement (plugins/postgres/shard_coordinator.cpp), the table name
// filled in, copied here by hand: the one statement that makes an owner, and the statement
// under test. $1 pipeline, $2 member, $3 the wanted shards, $4 the lease in milliseconds.
const std::string kAcquireSql =
    "UPDATE \"outbox_shards\" s SET owner = $2, epoch = s.epoch + 1, expires_at = clock_timestamp() + $4 * "
    "interval '1 millisecond' FROM (SELECT shard, owner, expires_at FROM \"outbox_shards\" WHERE pipeline = $1 AND "
    "shard = ANY(CAST($3 AS smallint[]))) AS was WHERE s.pipeline = $1 AND s.shard = was.shard AND (s.owner IS NULL "
    "OR s.expires_at <= clock_timestamp()) RETURNING s.shard, s.epoch, was.owner IS NULL, CASE WHEN was.expires_at = "
    "'-infinity' THEN NULL ELSE EXTRACT(EPOCH FROM clock_timestamp() - was.expires_at) END";

// 2. Two members CAS the same expired (or released) shard at once: the shard row is held locked
// by a third session while both statements are sent, so both wait on it, then run back to back
// (the second re-reads the row the first wrote). Exactly one
// gets the row back; the epoch rose by exactly one; a live shard is nobody's to take.
TEST(PostgresShards, TwoAcquiresRacingForOneShardMakeExactlyOneOwner) {
    const std::string conninfo = Postgres::shared().create_database("shards_cas");
    StoreInstance store(postgres_plugin(), shards_config(conninfo));  // migrates: the shards table
    Session db(conninfo), p(conninfo), q(conninfo);
    // Shards of a pipeline no coordinator runs, all owned, leases an hour long.
    db.exec("INSERT INTO outbox_shards (pipeline, shard, owner, epoch, expires_at) SELECT 'cas', g, "
            "CASE WHEN g % 2 = 0 THEN 'm0' ELSE 'm1' END, 3, clock_timestamp() + interval '1 hour' "
            "FROM generate_series(0, 255) AS g");
    EXPECT_TRUE(p.query(kAcquireSql, {"cas", "p", "{7}", "60000"}).empty()) << "a live shard was taken";

    const std::vector<std::string> how = {"SET expires_at = clock_timestamp()",            // expired
                                          "SET owner = NULL, expires_at = '-infinity'",    // released
                                          "SET expires_at = clock_timestamp()"};
    for (size_t round = 0; round < how.size(); ++round) {
        SCOPED_TRACE("round " + std::to_string(round) + ": " + how[round]);
        const int epoch = std::stoi(db.scalar("SELECT epoch FROM outbox_shards WHERE pipeline = 'cas' AND shard = 7"));
        db.exec("UPDATE outbox_shards " + how[round] + " WHERE pipeline = 'cas' AND shard = 7");
        // An UPDATE skips a row whose committed version fails its condition without waiting for
        // its lock: the shard is free or expired first, then held locked while both are sent.
        db.exec("BEGIN");
        db.exec("SELECT 1 FROM outbox_shards WHERE pipeline = 'cas' AND shard = 7 FOR UPDATE");
        p.send(kAcquireSql, {"cas", "p", "{7}", "60000"});
        q.send(kAcquireSql, {"cas", "q", "{7}", "60000"});
        // Both are in flight, waiting on the row this transaction holds.
        Session watcher(conninfo);
        const auto both_waiting = [&] {
            return watcher.scalar("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND pid IN (" +
                                  std::to_string(p.pid()) + ", " + std::to_string(q.pid()) + ")") == "2";
        };
        const bool staged = wait_until(both_waiting, 10s);
        db.exec("COMMIT");
        const auto won_p = p.result(), won_q = q.result();
        ASSERT_TRUE(staged) << "the two acquires were not both waiting on the shard";
        ASSERT_EQ(won_p.size() + won_q.size(), 1u) << "p got " << won_p.size() << " row(s), q " << won_q.size();
        const std::string winner = won_p.empty() ? "q" : "p";
        const auto& row = won_p.empty() ? won_q[0] : won_p[0];
        EXPECT_EQ(row[0], "7");
        EXPECT_EQ(row[1], std::to_string(epoch + 1));
        const auto now = db.query("SELECT owner, epoch, expires_at > clock_timestamp() + interval '30 seconds' "
                                  "FROM outbox_shards WHERE pipeline = 'cas' AND shard = 7");
        EXPECT_EQ(now.at(0), (std::vector<std::string>{winner, std::to_string(epoch + 1), "t"}));
    }
    // Nothing else moved.
    EXPECT_EQ(db.scalar("SELECT count(*) FROM outbox_shards WHERE pipeline = 'cas' AND shard <> 7 AND epoch = 3 AND "
                        "owner IN ('m0', 'm1') AND expires_at > clock_timestamp()"),
              "255");
}

// Every row stores its shard (schema version 6), and it is spillway_shard(key, id) whoever wrote
// the row: the engine (keyed: its INSERT writes it; keyless: the trigger), an application's INSERT
// without the column (under any search_path), an UPDATE of the key, and the rows already there
// when an engine upgrades the table from version 5.
TEST(PostgresShards, EveryRowStoresItsShardWhoeverInsertedItAndAnUpgradeGivesTheRowsAlreadyThereTheirs) {
    const std::string conninfo = Postgres::shared().create_database("shards_column");
    const std::string computed = "spillway_shard(CAST(key AS TEXT), id)";
    const auto wrong = [&](Session& db) {
        return db.scalar("SELECT count(*) FROM outbox WHERE spillway_shard IS DISTINCT FROM " + computed);
    };
    const std::string app_rows =
        "INSERT INTO outbox (event_id, pipeline, topic, key, payload) SELECT 'app-' || g, 'orders', 't', CASE WHEN "
        "g % 3 = 0 THEN NULL ELSE 'app-key-' || g END, '{}' FROM generate_series(1, 60) AS g";
    {
        StoreInstance store(postgres_plugin(), shards_config(conninfo));
        Session db(conninfo);
        std::vector<Event> evs;
        for (int i = 0; i < 40; ++i) evs.push_back(ev("e-" + std::to_string(i), i % 4 ? "key-" + std::to_string(i) : "", i % 4 != 0));
        ASSERT_EQ(append(store, evs), SW_OK) << store.host().last_error();
        ASSERT_EQ(append(store, {ev("one", "alone")}), SW_OK) << store.host().last_error();  // unprepared
        db.exec(app_rows);
        EXPECT_EQ(db.scalar("SELECT count(*) FROM outbox"), "101");
        EXPECT_EQ(db.scalar("SELECT count(DISTINCT spillway_shard) FROM outbox"), db.scalar(
                      "SELECT count(DISTINCT " + computed + ") FROM outbox"));
        EXPECT_EQ(wrong(db), "0");
        // The triggers run in the application's session, whatever its search_path, and follow
        // a row whose key is rewritten.
        db.exec("SET search_path TO pg_catalog; INSERT INTO public.outbox (event_id, pipeline, topic, key, payload) "
                "VALUES ('elsewhere', 'orders', 't', 'elsewhere-key', '{}'), ('elsewhere-2', 'orders', 't', NULL, "
                "'{}'); RESET search_path");
        db.exec("UPDATE outbox SET key = 'rewritten-' || id WHERE event_id IN ('app-1', 'app-2', 'e-1')");
        EXPECT_EQ(wrong(db), "0");
        db.exec("DELETE FROM outbox WHERE event_id LIKE 'elsewhere%'");

        // Back to version 5 as an older engine left it: no column, no trigger, its rows pending
        // (a dead one too) and the version-5 index of the computed shard.
        db.exec("DROP TRIGGER zz_spillway_fill_shard ON outbox; DROP TRIGGER zz_spillway_refill_shard ON outbox; "
                "ALTER TABLE outbox DROP COLUMN spillway_shard; "
                "DELETE FROM outbox_migrations WHERE version = 6; UPDATE outbox SET state = 'dead' WHERE event_id = "
                "'app-1'; CREATE INDEX outbox_pending_shard_idx ON outbox (pipeline, " + computed + ", id) WHERE "
                "state = 'pending'");
    }
    StoreInstance store(postgres_plugin(), shards_config(conninfo));  // migrates to version 6 again
    Session db(conninfo);
    EXPECT_EQ(wrong(db), "0");
    EXPECT_EQ(db.scalar("SELECT count(*) FROM outbox WHERE spillway_shard IS NULL"), "0");
    EXPECT_EQ(db.scalar("SELECT count(*) FROM pg_class WHERE relname = 'outbox_pending_shard_idx'"), "0");
    db.exec(app_rows.substr(0, app_rows.find("SELECT 'app-")) + "SELECT 'later-' || g, 'orders', 't', 'later-' || g, "
            "'{}' FROM generate_series(1, 20) AS g");
    EXPECT_EQ(wrong(db), "0");

    // And the claims read the column: one member owns every shard and gets every row.
    ASSERT_TRUE(holds_alone(store, "m1", db));
    ASSERT_TRUE(has_shard_slots(store));
    std::set<std::string> got;
    wait_until([&] {
        auto batch = claim(store, "orders", 500);
        for (const auto& row : batch) got.insert(row.event_id);
        if (!batch.empty()) {
            EXPECT_EQ(complete(store, batch, SW_OK), SW_OK) << store.host().last_error();
        }
        return got.size() >= 120;
    }, 10s);
    EXPECT_EQ(got.size(), 120u);  // 101 + 20 later - the dead one
}

// 3. Shard 5 gets a new owner 'x' under a higher epoch behind a's back (x's member lock is held by
// a session of the test, as a running engine's coordination session holds it; without it, a
// would take x for crashed and free the shard at once). a's renewals carry its old epoch: they
// change nothing, a drops the shard, and a's claims never return its rows. Once x's session
// ends, a frees the shard, takes it under a new epoch and claims the row.
TEST(PostgresShards, ARenewalWithAStaleEpochChangesNothingAndItsMemberStopsClaimingTheShard) {
    const std::string conninfo = Postgres::shared().create_database("shards_stale");
    StoreInstance a(postgres_plugin(), shards_config(conninfo));
    Session db(conninfo);
    ASSERT_TRUE(holds_alone(a, "a", db));
    std::string state;
    ASSERT_EQ(owned(a), kShards);

    auto x = std::make_unique<Session>(conninfo);
    x->query("SELECT pg_advisory_lock($1::int, hashtext($2))", {std::to_string(kMemberLockSpace), "orders/x"});
    const auto given = db.query("UPDATE outbox_shards SET owner = 'x', epoch = epoch + 1, expires_at = "
                                "clock_timestamp() + interval '1 hour' WHERE pipeline = 'orders' AND shard = 5 "
                                "RETURNING epoch, CAST(expires_at AS TEXT)");
    ASSERT_EQ(given.size(), 1u);
    EXPECT_TRUE(wait_until([&] { return owned(a) == kShards - 1; }, 5s)) << "a still counts " << owned(a) << " shards";
    EXPECT_EQ(a.host().metric("coord_shard_lost_total", "pipeline=orders"), 1) << "shard 5 went without a handover";
    ASSERT_TRUE(heartbeats_pass(a, 5));
    EXPECT_EQ(db.query("SELECT owner, CAST(epoch AS TEXT), CAST(expires_at AS TEXT) FROM outbox_shards WHERE "
                       "pipeline = 'orders' AND shard = 5")
                  .at(0),
              (std::vector<std::string>{"x", given[0][0], given[0][1]}));

    const auto keys = key_of_each_shard(db);
    const std::string in_5 = keys[5], in_6 = keys[6];
    ASSERT_EQ(shard_of(db, in_5), 5);
    ASSERT_EQ(append(a, {ev("in-5", in_5), ev("in-6", in_6)}), SW_OK) << a.host().last_error();
    // a claims for a few heartbeats: the row of shard 6 once, the row of shard 5 never.
    std::vector<std::string> claimed;
    const double until = heartbeats(a) + 5;
    EXPECT_TRUE(wait_until(
        [&] {
            const auto rows = claim(a, "orders", 10);
            for (const auto& r : rows) claimed.push_back(r.event_id);
            if (!rows.empty()) {
                EXPECT_EQ(complete(a, rows, SW_OK), SW_OK) << a.host().last_error();
            }
            return heartbeats(a) >= until;
        },
        5s, 20ms));
    EXPECT_EQ(claimed, (std::vector<std::string>{"in-6"}));
    EXPECT_EQ(db.scalar("SELECT owner FROM outbox_shards WHERE pipeline = 'orders' AND shard = 5"), "x");

    x.reset();  // x's session ends: its member lock is free, so a takes x for gone
    std::vector<std::string> later;
    EXPECT_TRUE(wait_until(
        [&] {
            const auto rows = claim(a, "orders", 10);
            for (const auto& r : rows) later.push_back(r.event_id);
            if (!rows.empty()) {
                EXPECT_EQ(complete(a, rows, SW_OK), SW_OK) << a.host().last_error();
            }
            return !later.empty();
        },
        5s, 20ms));
    EXPECT_EQ(later, (std::vector<std::string>{"in-5"}));
    const auto now = db.query("SELECT owner, epoch FROM outbox_shards WHERE pipeline = 'orders' AND shard = 5").at(0);
    EXPECT_EQ(now[0], "a");
    EXPECT_EQ(std::stoll(now[1]), std::stoll(given[0][0]) + 1);
    EXPECT_EQ(owned(a), kShards);
}

// 4. a claims rows of 32 shards; b joins, and those of the 32 that are now b's stay a's while a's
// rows are out (drain before release). Then a's row lease and a's shards expire (as when a pauses
// past shard_ttl), by SQL. b takes its shards and claims their rows; a, the zombie, completes
// its whole batch as delivered: nothing is settled (the rows stay pending, b's lease stays).
// b's completion settles b's rows; a, back with its own shards, claims and settles the rest.
TEST(PostgresShards, ASettlementAfterTheLeaseExpiredSettlesNothingAndTheShardsNewOwnerSettlesTheRows) {
    const std::string conninfo = Postgres::shared().create_database("shards_expiry");
    StoreInstance a(postgres_plugin(), shards_config(conninfo));
    StoreInstance b(postgres_plugin(), shards_config(conninfo));
    Session db(conninfo);
    ASSERT_TRUE(holds_alone(a, "a", db));
    std::string state;

    const auto [shards, events, shard_of_event] = spread_over_shards(db);
    ASSERT_EQ(append(a, events), SW_OK) << a.host().last_error();
    const auto batch = claim(a, "orders", 100);
    ASSERT_EQ(batch.size(), events.size());

    ASSERT_EQ(hold_shards(b, "b"), SW_OK) << b.host().last_error();
    ASSERT_TRUE(wait_until([&] { return converged(db, Members{{"a", &a}, {"b", &b}}, &state) && owned(b) > 60; }, 10s))
        << state;
    ASSERT_TRUE(heartbeats_pass(b, 3));
    ASSERT_TRUE(heartbeats_pass(a, 3));
    auto owners = live_owners(db);
    for (int s : shards) EXPECT_EQ(owners[static_cast<size_t>(s)], "a") << "shard " << s << " left a with rows out";

    db.exec("UPDATE outbox_leases SET until_us = 0 WHERE pipeline = 'orders' AND lease_owner = (SELECT lease_owner "
            "FROM outbox_members WHERE pipeline = 'orders' AND member = 'a'); "
            "UPDATE outbox_shards SET expires_at = clock_timestamp() WHERE pipeline = 'orders' AND owner = 'a'");
    // Both take their shards again: b those of the 32 that are its.
    ASSERT_TRUE(wait_until(
        [&] {
            if (!converged(db, Members{{"a", &a}, {"b", &b}}, &state)) return false;
            owners = live_owners(db);
            return std::all_of(shards.begin(), shards.end(),
                               [&](int s) { return !owners[static_cast<size_t>(s)].empty(); });
        },
        10s))
        << state;
    std::set<std::string> b_events;
    for (const auto& [id, s] : shard_of_event)
        if (owners[static_cast<size_t>(s)] == "b") b_events.insert(id);
    ASSERT_FALSE(b_events.empty()) << "none of the 32 shards went to b";
    ASSERT_LT(b_events.size(), events.size()) << "all of the 32 shards went to b";

    const auto b_batch = claim(b, "orders", 100);
    const auto b_ids = event_ids(b_batch);
    EXPECT_EQ(std::set<std::string>(b_ids.begin(), b_ids.end()), b_events);
    EXPECT_EQ(b_ids.size(), b_events.size());

    // The zombie's completion.
    EXPECT_EQ(complete(a, batch, SW_OK), SW_OK) << a.host().last_error();
    EXPECT_EQ(db.scalar("SELECT count(*) FROM outbox WHERE state = 'pending' AND attempts = 0"),
              std::to_string(events.size()));
    EXPECT_EQ(db.scalar("SELECT count(*) FROM outbox_leases WHERE until_us > 0 AND lease_owner = (SELECT lease_owner "
                        "FROM outbox_members WHERE pipeline = 'orders' AND member = 'b')"),
              "1");

    EXPECT_EQ(complete(b, b_batch, SW_OK), SW_OK) << b.host().last_error();
    EXPECT_EQ(db.scalar("SELECT count(*) FROM outbox"), std::to_string(events.size() - b_batch.size()));

    std::set<std::string> a_events;
    EXPECT_TRUE(wait_until(
        [&] {
            const auto rows = claim(a, "orders", 100);
            for (const auto& r : rows) a_events.insert(r.event_id);
            if (!rows.empty()) {
                EXPECT_EQ(complete(a, rows, SW_OK), SW_OK) << a.host().last_error();
            }
            return a_events.size() + b_events.size() >= events.size();
        },
        5s, 20ms));
    for (const auto& id : a_events) EXPECT_FALSE(b_events.count(id)) << id << " settled by both";
    EXPECT_EQ(a_events.size() + b_events.size(), events.size());
    EXPECT_EQ(db.scalar("SELECT count(*) FROM outbox"), "0");
}

// 4b. Row leases are on the database's clock: b's wall clock runs two minutes ahead of a's (and
// of the database's), as two hosts' clocks may. A claim sweeps the table's expired row leases;
// on its own clock b would find a's live lease expired and delete it, and a's settlement of the
// rows it sent would then settle nothing (every row sent again). On the database's clock a's
// lease is live for b too, and b's own lease ends when the shard lease says, not two minutes on.
TEST(PostgresShards, RowLeasesRunOnTheDatabasesClockSoAnEngineWhoseClockIsAheadEndsNoOtherEnginesLease) {
    const std::string conninfo = Postgres::shared().create_database("shards_clock");
    StoreInstance a(postgres_plugin(), shards_config(conninfo, "2s"));
    StoreInstance b(postgres_plugin(), shards_config(conninfo, "2s"));
    b.host().wall_clock_skew_us = 120'000'000;
    Session db(conninfo);
    ASSERT_EQ(hold_shards(a, "a", "orders"), SW_OK) << a.host().last_error();
    ASSERT_EQ(hold_shards(b, "b", "other"), SW_OK) << b.host().last_error();
    std::string state;
    ASSERT_TRUE(wait_until([&] { return converged(db, Members{{"a", &a}}, &state); }, 10s)) << state;
    ASSERT_TRUE(wait_until(
        [&] {
            const nlohmann::json j = coordination(b, "other");
            return j.is_object() && j.value("owned", 0) == kShards;
        },
        10s));

    const auto [shards, events, shard_of_event] = spread_over_shards(db);
    ASSERT_EQ(append(a, events), SW_OK) << a.host().last_error();
    const auto batch = claim(a, "orders", 100);
    ASSERT_EQ(batch.size(), events.size());

    Event other = ev("other-1", "k-other");
    other.pipeline = "other";
    ASSERT_EQ(append(b, {other}), SW_OK) << b.host().last_error();
    const auto b_batch = claim(b, "other", 10);  // its first claim sweeps expired row leases
    ASSERT_EQ(b_batch.size(), 1u) << b.host().last_error();
    const auto lease_left_ms = [&](const std::string& member, const std::string& pipeline) {
        return std::stoll(db.scalar(
            "SELECT (MAX(until_us) - CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000000 AS BIGINT)) / 1000 FROM "
            "outbox_leases WHERE pipeline = $1 AND lease_owner = (SELECT lease_owner FROM outbox_members WHERE "
            "pipeline = $1 AND member = $2)",
            {pipeline, member}));
    };
    EXPECT_GT(lease_left_ms("a", "orders"), 0) << "b's claim swept a's live lease";
    EXPECT_LE(lease_left_ms("b", "other"), 2'000 + 500) << "b's lease runs on b's clock, not the database's";

    EXPECT_EQ(complete(a, batch, SW_OK), SW_OK) << a.host().last_error();
    EXPECT_EQ(complete(b, b_batch, SW_OK), SW_OK) << b.host().last_error();
    EXPECT_EQ(db.scalar("SELECT count(*) FROM outbox"), "0") << "a settlement found its lease gone";
}

// 4c. What the coordinator tells operators: its share of the backlog (outbox_pending{scope=owned}),
// settlements the lease fence turned away, claims that left out shards whose lease ends too soon
// because the heartbeat is stuck (and that such a claim does not wait for the stuck heartbeat),
// and shards taken with the reason and the handoff's length.
TEST(PostgresShards, MetricsTellTheOwnedBacklogFencedSettlementsAndClaimsAndHandoffs) {
    const std::string conninfo = Postgres::shared().create_database("shards_metrics");
    StoreInstance a(postgres_plugin(), shards_config(conninfo));
    StoreInstance b(postgres_plugin(), shards_config(conninfo));
    Session db(conninfo);
    ASSERT_TRUE(holds_alone(a, "a", db));
    std::string state;
    const auto [shards, events, shard_of_event] = spread_over_shards(db);
    ASSERT_EQ(append(a, events), SW_OK) << a.host().last_error();
    EXPECT_TRUE(wait_until(
        [&] { return a.host().metric("outbox_pending", "pipeline=orders,scope=owned") == static_cast<double>(events.size()); },
        5s))
        << a.host().metric("outbox_pending", "pipeline=orders,scope=owned");

    // A settlement after its row lease ended settles nothing, and says so.
    const auto batch = claim(a, "orders", 100);
    ASSERT_EQ(batch.size(), events.size());
    db.exec("UPDATE outbox_leases SET until_us = 0");
    EXPECT_EQ(complete(a, batch, SW_OK), SW_OK) << a.host().last_error();
    EXPECT_EQ(a.host().metric("relay_fenced_total", "pipeline=orders,op=settle"), static_cast<double>(events.size()));
    EXPECT_EQ(db.scalar("SELECT count(*) FROM outbox"), std::to_string(events.size()));

    // The heartbeat stuck behind a lock on a's member row: a claim neither waits for it nor takes
    // rows of shards whose lease would end within claim_guard.
    Session blocker(conninfo);
    blocker.exec("BEGIN; SELECT * FROM outbox_members WHERE member = 'a' FOR UPDATE");
    const auto stuck = [&] {
        return db.scalar("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'spillway a shards' AND "
                         "wait_event_type = 'Lock'") == "1";
    };
    ASSERT_TRUE(wait_until(stuck, 5s)) << "a's heartbeat never waited on the lock";
    EXPECT_TRUE(wait_until(
        [&] {
            claim(a, "orders", 100);  // takes the rows while the shards' leases are long enough
            return a.host().metric("relay_fenced_total", "pipeline=orders,op=claim") > 0;
        },
        3s, 20ms));
    EXPECT_TRUE(claim(a, "orders", 100).empty()) << "a claim took rows of shards whose lease ends within claim_guard";
    EXPECT_TRUE(stuck()) << "the claims above waited for the heartbeat to come unstuck";
    blocker.exec("ROLLBACK");

    // b joins: the shards a gives it were free, after a handoff measured from their release.
    ASSERT_EQ(hold_shards(b, "b"), SW_OK) << b.host().last_error();
    ASSERT_TRUE(wait_until([&] { return converged(db, Members{{"a", &a}, {"b", &b}}, &state); }, 10s)) << state;
    EXPECT_GT(b.host().metric("coord_shard_acquired_total", "pipeline=orders,reason=free"), 0);
    // Each member's gauges, as its next heartbeat sets them: both live, every shard owned once,
    // leases running; and a counted the shards it gave b.
    const auto gauge = [](StoreInstance& m, const char* name) { return m.host().metric(name, "pipeline=orders"); };
    EXPECT_TRUE(wait_until(
        [&] {
            return gauge(a, "coord_members") == 2 && gauge(b, "coord_members") == 2 &&
                   gauge(a, "coord_shards_owned") + gauge(b, "coord_shards_owned") == kShards;
        },
        5s))
        << "members " << gauge(a, "coord_members") << "/" << gauge(b, "coord_members") << ", owned "
        << gauge(a, "coord_shards_owned") << " + " << gauge(b, "coord_shards_owned");
    EXPECT_EQ(gauge(a, "coord_member_up"), 1);
    EXPECT_EQ(gauge(b, "coord_member_up"), 1);
    EXPECT_GT(gauge(a, "coord_lease_remaining_seconds"), 0);
    EXPECT_GT(a.host().metric("coord_shard_released_total", "pipeline=orders,reason=rebalance"), 0);
    std::lock_guard lock(b.host().mutex);
    EXPECT_GT(b.host().metrics["coord_handoff_seconds{pipeline=orders}_count"], 0) << "no handoff observed";
}

// 5. Drain before release, with a claim in flight: a's claim has read its rows (of 32 shards) but
// not yet committed its lease when b joins, as a claim slowed down by the database would be (a
// trigger makes the lease insert wait for a lock the test holds). The shards of those rows must
// stay a's until that claim is settled: given away meanwhile, b takes them, claims the same rows
// (it cannot see a's uncommitted lease) and both have them out at once.
TEST(PostgresShards, AShardIsNotHandedOverWhileAClaimOfItsRowsIsInFlight) {
    const std::string conninfo = Postgres::shared().create_database("shards_inflight");
    StoreInstance a(postgres_plugin(), shards_config(conninfo));
    StoreInstance b(postgres_plugin(), shards_config(conninfo));
    Session db(conninfo);
    ASSERT_TRUE(holds_alone(a, "a", db));
    std::string state;
    const auto [shards, events, shard_of_event] = spread_over_shards(db);
    ASSERT_EQ(append(a, events), SW_OK) << a.host().last_error();

    db.exec("CREATE FUNCTION stall_lease() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "PERFORM pg_advisory_xact_lock_shared(4242); RETURN NEW; END $$; "
            "CREATE TRIGGER stall_lease BEFORE INSERT ON outbox_leases FOR EACH ROW EXECUTE FUNCTION stall_lease()");
    const auto stalled_claims = [&] {
        return std::stoi(db.scalar("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND "
                                   "wait_event_type = 'Lock' AND wait_event = 'advisory'"));
    };
    Threads threads;
    std::vector<Row> a_rows, b_rows;
    std::atomic<bool> b_returned{false};
    auto gate = std::make_unique<Session>(conninfo);  // after threads: gone first, so a stalled claim ends
    gate->query("SELECT pg_advisory_lock(4242)");
    threads.all.emplace_back([&] { a_rows = claim(a, "orders", 100); });
    ASSERT_TRUE(wait_until([&] { return stalled_claims() == 1; }, 5s)) << "a's claim did not reach its lease insert";

    ASSERT_EQ(hold_shards(b, "b"), SW_OK) << b.host().last_error();
    ASSERT_TRUE(heartbeats_pass(a, 5));
    ASSERT_TRUE(heartbeats_pass(b, 5));
    const auto owners_meanwhile = live_owners(db);
    threads.all.emplace_back([&] {
        b_rows = claim(b, "orders", 100);
        b_returned = true;
    });
    // b's claim either finds nothing of its own or picks rows and waits at its lease insert too.
    EXPECT_TRUE(wait_until([&] { return b_returned || stalled_claims() == 2; }, 5s));
    gate.reset();
    threads.join();

    std::vector<std::string> moved;
    for (int s : shards)
        if (owners_meanwhile[static_cast<size_t>(s)] != "a")
            moved.push_back("shard " + std::to_string(s) + " went to '" + owners_meanwhile[static_cast<size_t>(s)] +
                            "' while a's claim of its rows was in flight");
    EXPECT_TRUE(moved.empty()) << moved.size() << " of 32:" << joined(moved, 5);
    EXPECT_EQ(a_rows.size(), events.size());
    std::set<int64_t> a_ids;
    for (const auto& r : a_rows) a_ids.insert(r.row_id);
    std::vector<std::string> both;
    for (const auto& r : b_rows)
        if (a_ids.count(r.row_id)) both.push_back(r.event_id + " (shard " + std::to_string(shard_of_event.at(r.event_id)) + ")");
    EXPECT_TRUE(both.empty()) << both.size() << " row(s) out with a and b at once:" << joined(both, 5);
    // Settled, so that stopping does not wait for them.
    EXPECT_EQ(complete(a, a_rows, SW_OK), SW_OK) << a.host().last_error();
    EXPECT_EQ(complete(b, b_rows, SW_OK), SW_OK) << b.host().last_error();
}

// While alive, restores the database's ALLOW_CONNECTIONS.
struct NoNewConnections {
    explicit NoNewConnections(std::string db) : name(std::move(db)) {
        Postgres::shared().psql("ALTER DATABASE " + name + " ALLOW_CONNECTIONS false");
    }
    ~NoNewConnections() { lift(); }
    void lift() {
        if (std::exchange(on, false)) Postgres::shared().psql("ALTER DATABASE " + name + " ALLOW_CONNECTIONS true");
    }
    std::string name;
    bool on = true;
};

// 6. a crashes: its coordination session ends (pg_terminate_backend) and does not come back (the
// database takes no new connections meanwhile, as a dead process would not reconnect). Its
// member lock is free, so b frees a's shards on its next heartbeat and takes them on the one
// after: all 256 are b's well before shard_ttl (4 s here), and a's rows are b's to claim. Once a
// can reconnect, it joins again and the two split the shards. A second engine with a's member
// id is refused, naming it, and disturbs nothing.
TEST(PostgresShards, ACrashedMembersShardsMoveAtOnceAndAMemberIdInUseIsRefused) {
    const std::string name = "shards_crash";
    const std::string conninfo = Postgres::shared().create_database(name);
    StoreInstance a(postgres_plugin(), shards_config(conninfo, "4s"));
    StoreInstance b(postgres_plugin(), shards_config(conninfo, "4s"));
    Session db(conninfo);
    ASSERT_EQ(hold_shards(a, "a"), SW_OK) << a.host().last_error();
    ASSERT_EQ(hold_shards(b, "b"), SW_OK) << b.host().last_error();
    const Members ab = {{"a", &a}, {"b", &b}};
    std::string state;
    ASSERT_TRUE(wait_until([&] { return converged(db, ab, &state); }, 10s)) << state;

    // A second engine with a member id in use: refused, naming the id; nothing moves.
    const auto epochs = db.query("SELECT shard, owner, epoch FROM outbox_shards WHERE pipeline = 'orders' ORDER BY shard");
    {
        StoreInstance again(postgres_plugin(), shards_config(conninfo, "4s"));
        EXPECT_EQ(hold_shards(again, "a"), SW_REJECT);
        EXPECT_NE(again.host().last_error().find("member id 'a'"), std::string::npos) << again.host().last_error();
    }
    EXPECT_EQ(db.query("SELECT shard, owner, epoch FROM outbox_shards WHERE pipeline = 'orders' ORDER BY shard"), epochs);
    EXPECT_TRUE(converged(db, ab, &state)) << state;

    // A row in one of a's shards.
    auto owners = live_owners(db);
    const int a_shard = static_cast<int>(std::find(owners.begin(), owners.end(), "a") - owners.begin());
    ASSERT_LT(a_shard, kShards);
    ASSERT_EQ(append(b, {ev("of-a", key_of_each_shard(db)[static_cast<size_t>(a_shard)])}), SW_OK) << b.host().last_error();
    const int a_had = tally(owners)["a"];

    NoNewConnections closed(name);
    const auto crashed = std::chrono::steady_clock::now();
    ASSERT_EQ(db.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() "
                       "AND application_name LIKE '%a shards%'"),
              (Session::Rows{std::vector<std::string>{"t"}}));
    EXPECT_TRUE(wait_until([&] { return tally(live_owners(db))["b"] == kShards; }, 10s))
        << describe(tally(live_owners(db)));
    const auto moved_after = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - crashed);
    std::cout << "[ figures  ] all 256 shards b's " << moved_after.count() << " ms after a's session ended (shard_ttl 4000 ms)\n";
    EXPECT_LT(moved_after, 2000ms) << "a's shards waited for their leases to run out";
    EXPECT_EQ(b.host().count_logs(SW_LOG_INFO, "member a has no session any more (crashed or cut off): its " +
                                                   std::to_string(a_had) + " shard(s) are free now"),
              1u);
    EXPECT_TRUE(wait_until([&] { return owned(b) == kShards && owned(a) == 0; }, 5s))
        << "own counts: a " << owned(a) << ", b " << owned(b);
    // What each side's metrics said: b found one dead member; a, cut off, counted failed
    // heartbeats and said it is no member.
    const auto metric = [](StoreInstance& m, const char* name) { return m.host().metric(name, "pipeline=orders"); };
    EXPECT_EQ(metric(b, "coord_dead_members_total"), 1);
    EXPECT_TRUE(wait_until(
        [&] { return metric(a, "coord_heartbeat_failures_total") >= 1 && metric(a, "coord_member_up") == 0; }, 5s))
        << "heartbeat failures " << metric(a, "coord_heartbeat_failures_total") << ", member_up "
        << metric(a, "coord_member_up");
    EXPECT_EQ(db.scalar("SELECT count(*) FROM outbox_members WHERE pipeline = 'orders'"), "1");
    // a's row: not a's to claim any more, b's at once.
    EXPECT_TRUE(claim(a, "orders", 10).empty());
    const auto got = claim(b, "orders", 10);
    EXPECT_EQ(event_ids(got), (std::vector<std::string>{"of-a"}));
    EXPECT_EQ(complete(b, got, SW_OK), SW_OK) << b.host().last_error();

    // a reconnects and joins again.
    closed.lift();
    EXPECT_TRUE(wait_until([&] { return converged(db, ab, &state); }, 10s)) << state;
    // Back, a counts the shards it lost without handing them over (it learns it on its return).
    EXPECT_EQ(metric(a, "coord_shard_lost_total"), a_had);
    EXPECT_EQ(metric(a, "coord_member_up"), 1);
    const auto split = tally(live_owners(db));
    EXPECT_GT(split.count("a") ? split.at("a") : 0, 80) << describe(split);
}

// A member that stops gracefully hands its shards back and says so on the pipeline's channel: the
// others take them at once, not at their next heartbeat (here a minute away, past the deadline).
TEST(PostgresShards, AGracefulStopsShardsAreTakenAtOnceNotAtTheOthersNextHeartbeat) {
    const std::string name = "shards_handoff";
    const std::string conninfo = Postgres::shared().create_database(name);
    StoreInstance a(postgres_plugin(), shards_config(conninfo, "4s"));
    StoreInstance b(postgres_plugin(), Config{{"url", conninfo},
                                              {"table", "outbox"},
                                              {"shard_heartbeat", "60s"},
                                              {"shard_ttl", "130s"},
                                              {"claim_guard", "300ms"}});
    Session db(conninfo);
    ASSERT_EQ(hold_shards(a, "a"), SW_OK) << a.host().last_error();
    ASSERT_TRUE(wait_until([&] { return tally(live_owners(db))["a"] == kShards; }, 10s))
        << describe(tally(live_owners(db)));
    ASSERT_EQ(hold_shards(b, "b"), SW_OK) << b.host().last_error();  // its next heartbeat: in a minute
    const auto stopped = std::chrono::steady_clock::now();
    ASSERT_EQ(a.stop(), SW_OK) << a.host().last_error();
    EXPECT_TRUE(wait_until([&] { return tally(live_owners(db))["b"] == kShards; }, 20s))
        << describe(tally(live_owners(db)));
    const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - stopped);
    std::cout << "[ figures  ] all 256 shards b's " << took.count() << " ms after a began to stop (b's heartbeat 60 s)\n";
    EXPECT_TRUE(wait_until([&] { return owned(b) == kShards; }, 5s)) << "b owns " << owned(b);
    EXPECT_EQ(b.host().metric("coord_shard_acquired_total", "pipeline=orders,reason=free"), kShards);
}

// claim_next reads the ids among the batches in flight again (here every time: batches this small
// never ask the id horizon), in id order with the other members' rows filtered out; a row of this
// member's shards committed there late, under an id drawn before the batches were claimed, is found.
TEST(PostgresShards, AClaimNextFindsARowCommittedLateAmongItsBatchesInFlightAndTheOtherMembersRows) {
    const std::string conninfo = Postgres::shared().create_database("shards_between");
    StoreInstance a(postgres_plugin(), shards_config(conninfo, "4s"));
    StoreInstance b(postgres_plugin(), shards_config(conninfo, "4s"));
    StoreInstance c(postgres_plugin(), shards_config(conninfo, "4s"));
    ASSERT_TRUE(has_claim_next(a));
    Session db(conninfo);
    for (auto [name, m] : Members{{"a", &a}, {"b", &b}, {"c", &c}}) ASSERT_EQ(hold_shards(*m, name), SW_OK) << m->host().last_error();
    std::string state;
    ASSERT_TRUE(wait_until([&] { return converged(db, Members{{"a", &a}, {"b", &b}, {"c", &c}}, &state); }, 10s)) << state;
    ASSERT_LE(owned(a), kShards / 2) << "a owns most shards: its ranges are not read shard by shard";
    const auto keys = key_of_each_shard(db);
    const auto rows = [&](const std::string& prefix, int n) {
        std::vector<Event> out;
        for (int i = 0; i < n; ++i) out.push_back(ev(prefix + std::to_string(i), keys[static_cast<size_t>(i % kShards)]));
        return out;
    };
    ASSERT_EQ(append(a, rows("p-", 100)), SW_OK) << a.host().last_error();
    const long long gap = std::stoll(db.scalar("SELECT nextval(pg_get_serial_sequence('outbox', 'id'))"));
    ASSERT_EQ(append(a, rows("q-", 500)), SW_OK) << a.host().last_error();
    HeldBatch b1(a, "orders", 40);
    ASSERT_EQ(b1.status(), SW_OK) << b1.error();
    HeldBatch b2(a, "orders", 40, &b1);
    ASSERT_EQ(b2.status(), SW_OK) << b2.error();
    ASSERT_EQ(b2.rows().size(), 40u);
    ASSERT_GT(gap, b1.rows().front().row_id);
    ASSERT_LT(gap, b2.rows().back().row_id) << "the id drawn is not among the batches in flight";
    // A key of one of a's shards that no other row has.
    const std::string lone = db.scalar(
        "SELECT k FROM (SELECT 'lone-' || g AS k FROM generate_series(1, 5000) AS g) AS c, outbox_shards s WHERE "
        "s.pipeline = 'orders' AND s.owner = 'a' AND s.shard = spillway_shard(k, 0) LIMIT 1");
    db.query("INSERT INTO outbox (id, event_id, pipeline, key, payload) VALUES (" + std::to_string(gap) +
             ", 'late', 'orders', '" + lone + "', 'drawn early, committed late')");
    HeldBatch b3(a, "orders", 40, &b2);
    ASSERT_EQ(b3.status(), SW_OK) << b3.error();
    ASSERT_FALSE(b3.rows().empty());
    EXPECT_EQ(b3.rows().front().event_id, "late") << "the row committed among the batches in flight was passed over";
    for (const Row& r : b3.rows()) {
        if (r.event_id == "late") continue;
        EXPECT_GT(r.row_id, b2.rows().back().row_id) << r.event_id;
    }
}

// The owned-backlog count scans every pending row of the owned shards: while the member drains a
// backlog (its claims fill their batches) it waits for the drain's end instead of reading the rows
// the drain reads, then counts at the next heartbeat.
TEST(PostgresShards, TheOwnedBacklogIsCountedWhenADrainEndsNotWhileItsClaimsFillTheirBatches) {
    const std::string conninfo = Postgres::shared().create_database("shards_count_drain");
    StoreInstance a(postgres_plugin(), Config{{"url", conninfo},
                                              {"table", "outbox"},
                                              {"shard_heartbeat", "500ms"},  // a count every 2.5 s
                                              {"shard_ttl", "4s"},
                                              {"claim_guard", "300ms"}});
    Session db(conninfo);
    ASSERT_TRUE(holds_alone(a, "a", db));
    const auto owned_gauge = [&] { return a.host().metric("outbox_pending", "pipeline=orders,scope=owned"); };
    int appended = 0;
    const auto more = [&](int n) {
        std::vector<Event> evs;
        for (int i = 0; i < n; ++i, ++appended) evs.push_back(ev("e-" + std::to_string(appended), "k" + std::to_string(appended % 50)));
        return append(a, evs);
    };
    ASSERT_EQ(more(300), SW_OK) << a.host().last_error();
    ASSERT_TRUE(wait_until([&] { return owned_gauge() == 300; }, 10s)) << owned_gauge();
    // A drain: batches of 200 (a backlog's, past what a trickle asks), each full, while the
    // backlog grows by 50 a batch; for ten heartbeats, four counts' worth.
    const double until = heartbeats(a) + 10;
    long long pending = 300;
    while (heartbeats(a) < until) {
        const auto rows = claim(a, "orders", 200);
        ASSERT_EQ(rows.size(), 200u);
        ASSERT_EQ(complete(a, rows, SW_OK), SW_OK) << a.host().last_error();
        ASSERT_EQ(more(250), SW_OK) << a.host().last_error();
        pending += 50;
    }
    EXPECT_EQ(owned_gauge(), 300) << "the owned backlog was counted during the drain";
    // The drain ends: the count comes at the next heartbeat due.
    EXPECT_TRUE(wait_until([&] { return owned_gauge() == static_cast<double>(pending); }, 10s))
        << owned_gauge() << " counted, " << pending << " pending";
}

// A session break shorter than the shard lease: the member reconnects and takes back every shard
// (under a new epoch); none of them counts as lost.
TEST(PostgresShards, ABriefSessionBreakLosesNoShard) {
    const std::string conninfo = Postgres::shared().create_database("shards_blip");
    StoreInstance a(postgres_plugin(), shards_config(conninfo, "4s"));
    Session db(conninfo);
    ASSERT_TRUE(holds_alone(a, "a", db));
    ASSERT_EQ(db.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() "
                       "AND application_name LIKE '%a shards%'"),
              (Session::Rows{std::vector<std::string>{"t"}}));
    const auto metric = [&](const char* name) { return a.host().metric(name, "pipeline=orders"); };
    EXPECT_TRUE(wait_until(
        [&] { return metric("coord_heartbeat_failures_total") >= 1 && metric("coord_member_up") == 1 && owned(a) == kShards; },
        10s))
        << "heartbeat failures " << metric("coord_heartbeat_failures_total") << ", up " << metric("coord_member_up")
        << ", owned " << owned(a);
    EXPECT_EQ(metric("coord_shard_lost_total"), 0) << "a brief break took every shard back";
}

// The coordinator's and the guard's sessions run their statements through pg::query with a
// deadline. A statement past it left the session in the middle of a command: every later one
// failed with "another command is already in progress", so a member paused past a heartbeat's
// deadline (SIGSTOP) never came back. Now the session ends at the deadline, and its holder,
// seeing it broken, opens a new one.
TEST(PgQuery, AStatementPastItsDeadlineEndsItsSessionInsteadOfLeavingItBusy) {
    const std::string conninfo = Postgres::shared().create_database("pg_query_deadline");
    PGconn* c = PQconnectdb(conninfo.c_str());
    ASSERT_EQ(PQstatus(c), CONNECTION_OK) << PQerrorMessage(c);
    std::string error;
    EXPECT_FALSE(pg::query(c, "SELECT pg_sleep(5)", {}, 200ms, error));
    EXPECT_EQ(error, "no answer within 200 ms");
    EXPECT_EQ(PQstatus(c), CONNECTION_BAD) << "the session was left in the middle of its command";
    EXPECT_EQ(PQisBusy(c), 0);
    PQfinish(c);
    // And a statement that answers in time is answered.
    c = PQconnectdb(conninfo.c_str());
    auto r = pg::query(c, "SELECT 41 + 1", {}, 5s, error);
    ASSERT_TRUE(r) << error;
    EXPECT_EQ(std::string(PQgetvalue(r.get(), 0, 0)), "42");
    PQfinish(c);
}

// The single-mode guard watches its session without statements: an idle engine's guard sends
// nothing (TARGETS: an idle engine <= 0.2 statements/s, and a liveness query every 2 s was 0.5/s
// on its own), and a session the server ended is still found lost and its hold taken again.
TEST(PostgresGuard, AnIdleGuardSendsNothingAndASessionTheServerEndedIsTakenAgain) {
    const std::string conninfo = Postgres::shared().create_database("guard_watch");
    StoreInstance a(postgres_plugin(), Config{{"url", conninfo}, {"table", "outbox"}});
    Session db(conninfo);
    ASSERT_EQ(a.vt().hold(a.get(), "orders", SW_HOLD_EXCLUSIVE, "engine-a"), SW_OK) << a.host().last_error();
    const std::string guard_of_a = "FROM pg_stat_activity WHERE datname = current_database() AND "
                                   "application_name LIKE 'spillway engine-a %'";
    const std::string first_pid = db.scalar("SELECT pid " + guard_of_a);
    const std::string held = "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid WHERE "
                             "l.locktype = 'advisory' AND l.granted AND a.application_name LIKE 'spillway engine-a %'";
    ASSERT_NE(db.scalar(held), "0");

    // Three watch rounds (one every 2 s) without a statement: the session's last query stays the hold's.
    const std::string last_query = db.scalar("SELECT query " + guard_of_a);
    EXPECT_FALSE(wait_until([&] { return db.scalar("SELECT query " + guard_of_a) != last_query; }, 6500ms))
        << "the idle guard sent: " << db.scalar("SELECT query " + guard_of_a);

    // The server ends the session: the guard finds it lost and holds the pipeline again.
    ASSERT_EQ(db.query("SELECT pg_terminate_backend(pid) " + guard_of_a), (Session::Rows{std::vector<std::string>{"t"}}));
    EXPECT_TRUE(wait_until(
        [&] {
            const std::string pid = db.scalar("SELECT coalesce(max(pid), 0) " + guard_of_a);
            return pid != "0" && pid != first_pid && db.scalar(held) != "0";
        },
        10s))
        << "the guard did not take the pipeline again after its session ended";
}

// 7. SQLite cannot run coordination = "shards" (a file is one host's): hold refuses the mode as a
// configuration error and says what to use; the other modes still hold.
TEST(SqliteShards, HoldingWithCoordinationShardsIsAConfigurationError) {
    spillway::test_support::TempDir dir("sqlite-shards");
    for (const std::string& path : {dir.path() + "/outbox.db", std::string(":memory:")}) {
        SCOPED_TRACE(path);
        StoreInstance s(sqlite_plugin(), Config{{"path", path}});
        ASSERT_TRUE(s.vt().hold);
        EXPECT_EQ(hold_shards(s, "a"), SW_INVALID_CONFIG);
        const std::string error = s.host().last_error();
        EXPECT_NE(error.find("coordination = \"shards\""), std::string::npos) << error;
        EXPECT_NE(error.find("postgres"), std::string::npos) << error;
        EXPECT_EQ(s.vt().hold(s.get(), "orders", SW_HOLD_SHARED, "a"), SW_OK) << s.host().last_error();
    }
}

// And the PostgreSQL store refuses shard timings under which a claim could outlive its shard.
TEST(PostgresShards, AClaimGuardTooCloseToTheShardLeaseIsAConfigurationError) {
    const std::string conninfo = Postgres::shared().create_database("shards_timings");
    Config config = shards_config(conninfo);
    config.set("claim_guard", "900ms");  // + 2 x 100 ms >= 1 s
    StoreInstance s(postgres_plugin(), config);
    EXPECT_EQ(hold_shards(s, "a"), SW_INVALID_CONFIG);
    const auto errors = s.host().config_errors();
    ASSERT_EQ(errors.size(), 1u);
    EXPECT_EQ(errors[0].first, "claim_guard");
    EXPECT_NE(errors[0].second.find("shard_ttl"), std::string::npos) << errors[0].second;
}

}  // namespace
