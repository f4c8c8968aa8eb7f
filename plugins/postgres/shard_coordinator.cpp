#include "shard_coordinator.hpp"

#include <pg-common/query.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <random>
#include <utility>

namespace spillway::plugins::postgres {

namespace {

// The member locks' first key ("SWM1"); the second is hashtext('<pipeline>/<member>'), computed by
// the server for the holder and for whoever probes it alike.
constexpr int kMemberSpace = 0x53574d31;
constexpr auto kCallTimeout = std::chrono::seconds(5);
// The database's clock in unix microseconds: row leases' until_us are on it in this mode.
constexpr const char* kDbNowUs = "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000000 AS BIGINT)";

std::string ms(int64_t v) { return std::to_string(v); }

std::string int_array(const std::vector<int64_t>& v) {
    std::string out = "{";
    for (size_t i = 0; i < v.size(); ++i) {
        if (i) out += ',';
        out += std::to_string(v[i]);
    }
    return out + "}";
}

// Rendezvous hashing's weight of (member, shard): splitmix64 over FNV-1a, so that members whose
// names differ in one character still spread evenly.
uint64_t weight(const std::string& member, int shard) {
    uint64_t h = 1469598103934665603ull;
    for (unsigned char c : member) h = (h ^ c) * 1099511628211ull;
    h ^= static_cast<uint64_t>(shard) + 0x9e3779b97f4a7c15ull;
    h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ull;
    h = (h ^ (h >> 27)) * 0x94d049bb133111ebull;
    return h ^ (h >> 31);
}

std::string new_incarnation() {
    std::random_device rd;
    char buf[40];
    std::snprintf(buf, sizeof(buf), "%08x%08x%08x%08x", static_cast<unsigned>(rd()), static_cast<unsigned>(rd()),
                  static_cast<unsigned>(rd()), static_cast<unsigned>(rd()));
    return buf;
}

}  // namespace

ShardCoordinator::ShardCoordinator(const pg::Conninfo& conninfo, ShardTables tables, std::string pipeline,
                                   std::string member, std::string lease_owner, ShardTimings timings, sdk::Host host,
                                   std::atomic<int64_t>& db_clock_offset_us)
    : conninfo_(conninfo),
      t_(std::move(tables)),
      pipeline_(std::move(pipeline)),
      member_(std::move(member)),
      lease_owner_(std::move(lease_owner)),
      timings_(timings),
      host_(host),
      db_clock_offset_us_(db_clock_offset_us) {}

ShardCoordinator::~ShardCoordinator() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    wake_.notify_all();
    if (thread_.joinable()) thread_.join();
    peers_.reset();  // before the members it calls back go
    if (session_) PQfinish(session_);
}

void ShardCoordinator::metric(const char* name, double v, const char* extra) {
    std::string labels = "pipeline=" + pipeline_;
    if (extra) labels += std::string(",") + extra;
    if (std::strstr(name, "_total")) host_.count(name, v, labels.c_str());
    else host_.gauge(name, v, labels.c_str());
}

// Session, member lock, member row, the pipeline's shard rows; and what a predecessor with this
// member id left (its leases, its shards: it is gone, or its lock would not be ours).
void ShardCoordinator::connect() {
    if (session_ && PQstatus(session_) == CONNECTION_OK) return;
    if (session_) PQfinish(std::exchange(session_, nullptr));
    for (size_t s = 0; s < owned_.size(); ++s)
        if (owned_[s].epoch > 0) {
            held_when_broken_[s] = true;
            owned_[s] = Owned{};
        }
    publish_claimable();
    std::string error;
    PGconn* c = pg::open_dedicated_session(conninfo_, "spillway " + member_ + " shards", kCallTimeout, error);
    if (!c) throw sdk::Error(SW_RETRY, "postgres: shards of '" + pipeline_ + "': " + error);
    auto must = [&](pg::Result r) {
        if (!r) {
            PQfinish(c);
            throw sdk::Error(SW_RETRY, "postgres: shards of '" + pipeline_ + "': " + error);
        }
        return r;
    };
    const std::string lock_name = pipeline_ + "/" + member_;
    auto locked = must(pg::query(c, "SELECT pg_try_advisory_lock($1::int, hashtext($2))", {ms(kMemberSpace), lock_name},
                                 kCallTimeout, error));
    if (pg::value(locked, 0, 0) != "t") {
        PQfinish(c);
        throw sdk::Error(SW_REJECT, "postgres: member id '" + member_ + "' of pipeline '" + pipeline_ +
                                        "' is in use by another running engine: give each engine its own "
                                        "SPILLWAY_MEMBER_ID (a pod name, or %H-%i under systemd)");
    }
    // An engine paused inside one of this session's transactions (SIGSTOP, a frozen VM, a long
    // stall) keeps its row locks on the shard rows for as long as it is paused, and a member
    // taking those shards would wait on them, past the lease, for the whole pause (its statement
    // would time out, and its session be dropped and reopened, while the old one still waits and
    // holds the member lock). So the server ends a session idle in a transaction for half a lease,
    // and sooner than a statement here times out: the paused engine's locks go with its session,
    // and it finds the session broken when it runs again, as after a network cut.
    const int64_t idle_ms = std::clamp<int64_t>(timings_.ttl_ms / 2, 500,
                                                std::chrono::milliseconds(kCallTimeout).count() - 1000);
    must(pg::query(c, "SELECT set_config('idle_in_transaction_session_timeout', $1, false)", {ms(idle_ms)},
                   kCallTimeout, error));
    incarnation_ = new_incarnation();
    const std::string ttl = ms(timings_.ttl_ms);
    must(pg::query(c, "BEGIN", {}, kCallTimeout, error));
    must(pg::query(c, ("DELETE FROM " + t_.leases + " WHERE pipeline = $1 AND lease_owner IN (SELECT lease_owner FROM " +
                       t_.members + " WHERE pipeline = $1 AND member = $2 AND lease_owner <> $3)")
                          .c_str(),
                   {pipeline_, member_, lease_owner_}, kCallTimeout, error));
    must(pg::query(c, ("INSERT INTO " + t_.members + " (pipeline, member, incarnation, lease_owner, sink_ok, expires_at) "
                       "VALUES ($1, $2, $3, $4, $5, clock_timestamp() + $6 * interval '1 millisecond') ON CONFLICT "
                       "(pipeline, member) DO UPDATE SET incarnation = excluded.incarnation, lease_owner = "
                       "excluded.lease_owner, sink_ok = excluded.sink_ok, expires_at = excluded.expires_at")
                          .c_str(),
                   {pipeline_, member_, incarnation_, lease_owner_, sink_ok_ ? "true" : "false", ttl}, kCallTimeout,
                   error));
    must(pg::query(c, ("INSERT INTO " + t_.shards + " (pipeline, shard) SELECT $1, g FROM generate_series(0, " +
                       std::to_string(kShards - 1) + ") AS g ON CONFLICT DO NOTHING")
                          .c_str(),
                   {pipeline_}, kCallTimeout, error));
    // A predecessor's shards become this incarnation's, under a new epoch.
    const int64_t sent = host_.monotonic_us();
    auto mine = must(pg::query(c, ("UPDATE " + t_.shards + " SET epoch = epoch + 1, expires_at = clock_timestamp() + $3 * "
                                   "interval '1 millisecond' WHERE pipeline = $1 AND owner = $2 RETURNING shard, epoch")
                                      .c_str(),
                               {pipeline_, member_, ttl}, kCallTimeout, error));
    must(pg::query(c, "COMMIT", {}, kCallTimeout, error));
    for (int i = 0; i < PQntuples(mine.get()); ++i) {
        const int s = std::stoi(pg::value(mine, i, 0));
        if (s >= 0 && s < kShards)
            owned_[static_cast<size_t>(s)] = {std::stoll(pg::value(mine, i, 1)),
                                              sent + (timings_.ttl_ms - timings_.epsilon_ms) * 1000, false};
    }
    // Of the shards held when the session broke, those another member took meanwhile are lost
    // (a blip shorter than the lease takes them all back).
    int lost = 0;
    for (size_t s = 0; s < owned_.size(); ++s) {
        if (held_when_broken_[s] && owned_[s].epoch == 0) ++lost;
        held_when_broken_[s] = false;
    }
    if (lost) metric("coord_shard_lost_total", lost);
    session_ = c;
    publish_claimable();
    metric("coord_member_up", 1);
}

void ShardCoordinator::start() {
    std::unique_lock lock(mutex_);
    // Listening before joining: any member that stops after this one joined wakes it. The channel
    // is the pipeline's (the handoff lock's key names table and pipeline).
    peers_ = std::make_unique<PeerWake>(conninfo_, "spillway " + member_ + " wake", "spillway_coord_" + t_.handoff_lock,
                                        [this] {
                                            {
                                                std::lock_guard poke(mutex_);
                                                poked_ = true;
                                            }
                                            wake_.notify_all();
                                        });
    peers_->start();
    connect();
    tick();
    thread_ = std::thread([this] { heartbeat_loop(); });
}

void ShardCoordinator::heartbeat_loop() {
    std::unique_lock lock(mutex_);
    for (;;) {
        wake_.wait_for(lock, std::chrono::milliseconds(timings_.heartbeat_ms), [this] { return stopping_ || poked_; });
        if (stopping_) break;
        poked_ = false;
        try {
            connect();
            tick();
        } catch (const std::exception& e) {
            metric("coord_heartbeat_failures_total", 1);
            host_.warn(std::string("postgres: shards of '") + pipeline_ + "': heartbeat failed: " + e.what() +
                       "; claims stop as each shard's lease nears its end");
            if (session_ && PQstatus(session_) != CONNECTION_OK) {
                PQfinish(std::exchange(session_, nullptr));
                metric("coord_member_up", 0);
            }
        }
    }
}

void ShardCoordinator::draining() { drained_at_us_.store(host_.monotonic_us(), std::memory_order_relaxed); }

void ShardCoordinator::sink_state(bool down) {
    if (!down) sink_down_since_us_ = 0;
    else if (sink_down_since_us_ == 0) sink_down_since_us_ = host_.monotonic_us();
}

bool ShardCoordinator::sink_ok_now() {
    const int64_t since = sink_down_since_us_;
    const bool ok = since == 0 || host_.monotonic_us() - since < 2 * timings_.ttl_ms * 1000;
    if (ok != sink_ok_.exchange(ok))
        host_.warn("postgres: shards of '" + pipeline_ + "': " +
                   (ok ? std::string("the sink works again: this engine takes shards again")
                       : "the sink has been down for two shard leases: this engine gives its shards to members whose "
                         "sink works"));
    return ok;
}

void ShardCoordinator::tick() {
    const int64_t began = host_.monotonic_us();
    sink_ok_now();
    renew(began);
    std::vector<Member> live = live_members();
    take_over_dead(live);
    const auto target = targets(live);
    give_away(target, live, false);
    acquire(target, live);
    int owned = 0;
    int64_t soonest = -1;
    for (const auto& o : owned_)
        if (o.epoch > 0) {
            ++owned;
            soonest = soonest < 0 ? o.deadline_us : std::min(soonest, o.deadline_us);
        }
    count_owned_backlog();
    metric("coord_members", static_cast<double>(live.size()));
    metric("coord_shards_owned", owned);
    metric("coord_lease_remaining_seconds", soonest < 0 ? 0 : static_cast<double>(soonest - host_.monotonic_us()) / 1e6);
    host_.observe("coord_heartbeat_seconds", static_cast<double>(host_.monotonic_us() - began) / 1e6,
                  ("pipeline=" + pipeline_).c_str());
}

// One transaction: the member row, the owned shards (each by its epoch: a shard someone else took
// meanwhile is not renewed, and is lost here), and this engine's row leases of the pipeline, which
// ride on the shards (a claim leases rows for at most ttl; the heartbeat keeps them while alive).
void ShardCoordinator::renew(int64_t sent_us) {
    std::string error;
    auto must = [&](pg::Result r) {
        if (!r) throw sdk::Error(SW_RETRY, error);
        return r;
    };
    std::vector<int64_t> shards, epochs;
    for (int s = 0; s < kShards; ++s)
        if (owned_[static_cast<size_t>(s)].epoch > 0) {
            shards.push_back(s);
            epochs.push_back(owned_[static_cast<size_t>(s)].epoch);
        }
    const std::string ttl = ms(timings_.ttl_ms);
    must(pg::query(session_, "BEGIN", {}, kCallTimeout, error));
    try {
        const int64_t asked_us = host_.now_unix_us();
        auto me = must(pg::query(session_, ("UPDATE " + t_.members + " SET expires_at = clock_timestamp() + $4 * interval "
                                            "'1 millisecond', sink_ok = $5 WHERE pipeline = $1 AND member = $2 AND "
                                            "incarnation = $3 RETURNING " + kDbNowUs)
                                               .c_str(),
                                 {pipeline_, member_, incarnation_, ttl, sink_ok_ ? "true" : "false"}, kCallTimeout,
                                 error));
        if (PQntuples(me.get()) == 1) {
            // The server read its clock between our send and its answer: the midpoint is off by
            // at most half the round trip.
            const int64_t answered_us = host_.now_unix_us();
            db_clock_offset_us_ = std::stoll(pg::value(me, 0, 0)) - (asked_us + answered_us) / 2;
        }
        if (PQntuples(me.get()) == 0) {
            // Declared dead by another member (our session blinked): nothing we held is ours.
            must(pg::query(session_, "ROLLBACK", {}, kCallTimeout, error));
            lose_everything("another member found this engine's session gone and took its shards");
            must(pg::query(session_, ("INSERT INTO " + t_.members + " (pipeline, member, incarnation, lease_owner, sink_ok, "
                                      "expires_at) VALUES ($1, $2, $3, $4, $5, clock_timestamp() + $6 * interval '1 "
                                      "millisecond') ON CONFLICT (pipeline, member) DO UPDATE SET incarnation = "
                                      "excluded.incarnation, expires_at = excluded.expires_at")
                                         .c_str(),
                           {pipeline_, member_, incarnation_, lease_owner_, sink_ok_ ? "true" : "false", ttl},
                           kCallTimeout, error));
            return;
        }
        auto kept = must(pg::query(
            session_,
            ("UPDATE " + t_.shards + " SET expires_at = clock_timestamp() + $3 * interval '1 millisecond' WHERE pipeline = "
             "$1 AND owner = $2 AND (shard, epoch) IN (SELECT * FROM unnest(CAST($4 AS smallint[]), CAST($5 AS "
             "bigint[]))) AND expires_at > clock_timestamp() RETURNING shard")
                .c_str(),
            {pipeline_, member_, ttl, int_array(shards), int_array(epochs)}, kCallTimeout, error));
        // A lease row locked by a completion is being deleted: waiting for that commit (a WAL
        // flush for a backlog's batch) held the heartbeat, and the shards' renewal in it, for up
        // to 0.3 s. Were the completion to roll back, the next heartbeat renews the lease, long
        // before it ends (leases last shard_ttl, heartbeats come every shard_heartbeat).
        must(pg::query(session_, ("UPDATE " + t_.leases + " SET until_us = " + kDbNowUs + " + $3 WHERE id IN (SELECT id "
                                  "FROM " + t_.leases + " WHERE pipeline = $1 AND lease_owner = $2 AND until_us > " +
                                  kDbNowUs + " AND until_us < " + kDbNowUs + " + $3 FOR UPDATE SKIP LOCKED)")
                                     .c_str(),
                       {pipeline_, lease_owner_, ms(timings_.ttl_ms * 1000)}, kCallTimeout, error));
        must(pg::query(session_, "COMMIT", {}, kCallTimeout, error));
        std::array<bool, kShards> renewed{};
        for (int i = 0; i < PQntuples(kept.get()); ++i) {
            const int s = std::stoi(pg::value(kept, i, 0));
            if (s >= 0 && s < kShards) renewed[static_cast<size_t>(s)] = true;
        }
        for (int s = 0; s < kShards; ++s) {
            Owned& o = owned_[static_cast<size_t>(s)];
            if (o.epoch == 0) continue;
            if (renewed[static_cast<size_t>(s)]) {
                o.deadline_us = sent_us + (timings_.ttl_ms - timings_.epsilon_ms) * 1000;
            } else {
                o = Owned{};
                metric("coord_shard_lost_total", 1);
            }
        }
        publish_claimable();
    } catch (...) {
        std::string ignored;
        pg::query(session_, "ROLLBACK", {}, kCallTimeout, ignored);
        throw;
    }
}

// The pending rows of the shards this engine owns: its share of the pipeline's backlog (the
// engine's own outbox_pending counts the whole pipeline, the same on every engine). A scan of the
// pending rows, so every fifth heartbeat (5 s by default), as often as the engine counts its backlog;
// less often while the count is slow (a deep backlog: 0.6 s at 300,000 rows), so that it costs the
// database and this heartbeat thread at most 1/20 of their time.
void ShardCoordinator::count_owned_backlog() {
    const int64_t now = host_.monotonic_us();
    if (now < next_backlog_count_us_) return;
    // While this member drains a backlog (a claim filled its batch in the last two heartbeats), the
    // count waits for the drain to end, up to 30 s after the last: the drain's claims and the
    // count would read the same rows, and the count of a backlog that moves is stale at once.
    constexpr int64_t kDrainingCountUs = 30'000'000;
    if (now - drained_at_us_.load(std::memory_order_relaxed) < 2 * timings_.heartbeat_ms * 1000 &&
        now - last_backlog_count_us_ < kDrainingCountUs)
        return;
    last_backlog_count_us_ = now;
    next_backlog_count_us_ = now + 5 * timings_.heartbeat_ms * 1000;
    std::vector<int64_t> mine;
    for (int s = 0; s < kShards; ++s)
        if (owned_[static_cast<size_t>(s)].epoch > 0) mine.push_back(s);
    double pending = 0;
    if (!mine.empty()) {
        std::string error;
        auto r = pg::query(session_,
                           // Shard by shard, so that each count is a range of the per-shard index
                           // of pending rows, not a filter over every pending row, the other
                           // members' rows too (384 ms at 100,000 when the shard was an md5).
                           ("SELECT COALESCE(SUM(n), 0) FROM unnest(CAST($2 AS smallint[])) AS o(shard) CROSS JOIN "
                            "LATERAL (SELECT COUNT(*) AS n FROM " + t_.outbox + " r WHERE " + t_.pending_rows + " AND " +
                            t_.shard_of_row + " = o.shard) AS c")
                               .c_str(),
                           {pipeline_, int_array(mine)}, kCallTimeout, error);
        next_backlog_count_us_ = std::max(next_backlog_count_us_, now + 20 * (host_.monotonic_us() - now));
        if (!r) throw sdk::Error(SW_RETRY, "counting the owned shards' backlog: " + error);
        pending = std::stod(pg::value(r, 0, 0));
    }
    metric("outbox_pending", pending, "scope=owned");
}

void ShardCoordinator::lose_everything(const std::string& why) {
    int lost = 0;
    for (auto& o : owned_)
        if (o.epoch > 0) {
            o = Owned{};
            ++lost;
        }
    publish_claimable();
    if (lost) metric("coord_shard_lost_total", lost);
    host_.warn("postgres: shards of '" + pipeline_ + "': " + why + "; " + std::to_string(lost) +
               " shard(s) lost, joining again");
    incarnation_ = new_incarnation();
}

std::vector<ShardCoordinator::Member> ShardCoordinator::live_members() {
    std::string error;
    auto r = pg::query(session_, ("SELECT member, sink_ok FROM " + t_.members +
                                  " WHERE pipeline = $1 AND expires_at > clock_timestamp() ORDER BY member")
                                     .c_str(),
                       {pipeline_}, kCallTimeout, error);
    if (!r) throw sdk::Error(SW_RETRY, error);
    std::vector<Member> out;
    for (int i = 0; i < PQntuples(r.get()); ++i) out.push_back({pg::value(r, i, 0), pg::value(r, i, 1) == "t"});
    return out;
}

// A member whose lock this session can take has no session: it crashed (or its connection was
// cut). Its shards expire now, its row leases go (their rows are claimable at once) and its member
// row goes, so it drops out of every member's target assignment. If it is in fact alive, its
// next heartbeat finds its row gone and it joins again; meanwhile its claims and settlements find
// no shard and no lease of its own: duplicates at most.
void ShardCoordinator::take_over_dead(const std::vector<Member>& live) {
    (void)live;
    std::string error;
    auto must = [&](pg::Result r) {
        if (!r) throw sdk::Error(SW_RETRY, error);
        return r;
    };
    auto dead = must(pg::query(
        session_,
        ("SELECT m FROM (SELECT DISTINCT owner AS m FROM " + t_.shards +
         " WHERE pipeline = $1 AND owner IS NOT NULL AND owner <> $2 UNION SELECT member FROM " + t_.members +
         " WHERE pipeline = $1 AND member <> $2) AS candidates WHERE pg_try_advisory_lock($3::int, hashtext($1 || '/' || m))")
            .c_str(),
        {pipeline_, member_, ms(kMemberSpace)}, kCallTimeout, error));
    // The query took the lock of every member it returned: each is let go of, whatever happens.
    std::vector<std::string> held;
    for (int i = 0; i < PQntuples(dead.get()); ++i) held.push_back(pg::value(dead, i, 0));
    auto let_go = [&](size_t from, size_t to) {
        for (size_t k = from; k < to; ++k) {
            std::string ignored;
            pg::query(session_, "SELECT pg_advisory_unlock($1::int, hashtext($2))",
                      {ms(kMemberSpace), pipeline_ + "/" + held[k]}, kCallTimeout, ignored);
        }
    };
    for (size_t i = 0; i < held.size(); ++i) {
        const std::string& m = held[i];
        try {
            free_dead_member(m);
        } catch (...) {
            std::string ignored;
            pg::query(session_, "ROLLBACK", {}, kCallTimeout, ignored);
            let_go(i, held.size());
            throw;
        }
        let_go(i, i + 1);
    }
}

void ShardCoordinator::free_dead_member(const std::string& m) {
    std::string error;
    auto must = [&](pg::Result r) {
        if (!r) throw sdk::Error(SW_RETRY, error);
        return r;
    };
    {
        must(pg::query(session_, "BEGIN", {}, kCallTimeout, error));
        auto freed = must(pg::query(session_, ("UPDATE " + t_.shards + " SET expires_at = clock_timestamp() WHERE pipeline = "
                                               "$1 AND owner = $2 AND expires_at > clock_timestamp()")
                                                  .c_str(),
                                    {pipeline_, m}, kCallTimeout, error));
        must(pg::query(session_, ("DELETE FROM " + t_.leases + " WHERE pipeline = $1 AND lease_owner IN (SELECT lease_owner "
                                  "FROM " + t_.members + " WHERE pipeline = $1 AND member = $2)")
                                     .c_str(),
                       {pipeline_, m}, kCallTimeout, error));
        must(pg::query(session_, ("DELETE FROM " + t_.members + " WHERE pipeline = $1 AND member = $2").c_str(),
                       {pipeline_, m}, kCallTimeout, error));
        must(pg::query(session_, "COMMIT", {}, kCallTimeout, error));
        const std::string n = PQcmdTuples(freed.get());
        if (n != "0") {
            host_.info("postgres: shards of '" + pipeline_ + "': member " + m + " has no session any more (crashed or cut "
                       "off): its " + n + " shard(s) are free now");
            metric("coord_dead_members_total", 1);
        }
    }
}

// Rendezvous hashing over the live members whose sink works (all live members when none does):
// each shard goes to the member with the largest weight(member, shard). Adding or removing one
// member moves about 1/N of the shards.
std::array<int, ShardCoordinator::kShards> ShardCoordinator::targets(const std::vector<Member>& live) const {
    std::array<int, kShards> out;
    out.fill(-1);
    const bool any_ok = std::any_of(live.begin(), live.end(), [](const Member& m) { return m.sink_ok; });
    for (int s = 0; s < kShards; ++s) {
        uint64_t best = 0;
        for (size_t i = 0; i < live.size(); ++i) {
            if (any_ok && !live[i].sink_ok) continue;
            const uint64_t w = weight(live[i].id, s);
            if (out[static_cast<size_t>(s)] < 0 || w > best) {
                best = w;
                out[static_cast<size_t>(s)] = static_cast<int>(i);
            }
        }
    }
    return out;
}

// The shards of this engine's row leases still live: their rows are in flight.
std::vector<int> ShardCoordinator::busy_shards() {
    std::string error;
    auto r = pg::query(session_,
                       ("SELECT DISTINCT " + t_.shard_of_row + " FROM " + t_.leases + " l JOIN " + t_.outbox + " r ON r." +
                        t_.row_id + " = ANY(CAST(l.row_ids AS BIGINT[])) WHERE l.pipeline = $1 AND l.lease_owner = $2 "
                        "AND l.until_us > " + kDbNowUs + " AND " + t_.shard_of_row + " IS NOT NULL")
                           .c_str(),
                       {pipeline_, lease_owner_}, kCallTimeout, error);
    if (!r) throw sdk::Error(SW_RETRY, error);
    std::vector<int> out;
    for (int i = 0; i < PQntuples(r.get()); ++i) out.push_back(std::stoi(pg::value(r, i, 0)));
    return out;
}

// Drain, then release: a shard to give stops taking claims at once, and goes back only once no
// row lease of this engine covers its rows, so its next owner starts after our last send of it
// was settled: a handoff without duplicates.
void ShardCoordinator::give_away(const std::array<int, kShards>& target, const std::vector<Member>& live, bool all) {
    bool any = false;
    for (int s = 0; s < kShards; ++s) {
        Owned& o = owned_[static_cast<size_t>(s)];
        if (o.epoch == 0) continue;
        const int t = target[static_cast<size_t>(s)];
        const bool ours = !all && t >= 0 && live[static_cast<size_t>(t)].id == member_;
        o.giving = !ours;
        any = any || o.giving;
    }
    publish_claimable();  // a shard being given takes no new claim from now on
    if (!any) return;
    // Under the handoff lock: a claim of these shards' rows still uncommitted holds it shared, and
    // its lease (which busy_shards reads) is visible once the lock is ours.
    std::string error;
    auto must = [&](pg::Result r) {
        if (!r) throw sdk::Error(SW_RETRY, error);
        return r;
    };
    must(pg::query(session_, "BEGIN", {}, kCallTimeout, error));
    std::vector<int64_t> give, epochs;
    try {
        // Waited for briefly: claims take milliseconds, and claims that start meanwhile queue
        // behind this request, so a steady stream of claims cannot starve the handoff. A claim
        // stuck longer keeps its shards until a later heartbeat, and this one goes on.
        must(pg::query(session_, "SELECT set_config('lock_timeout', $1, true)",
                       {ms(std::clamp<int64_t>(timings_.heartbeat_ms / 2, 10, 500)) + "ms"}, kCallTimeout, error));
        if (!pg::query(session_, "SELECT pg_advisory_xact_lock($1::bigint)", {t_.handoff_lock}, kCallTimeout, error)) {
            must(pg::query(session_, "ROLLBACK", {}, kCallTimeout, error));
            return;
        }
        std::array<bool, kShards> busy{};
        for (int s : busy_shards())
            if (s >= 0 && s < kShards) busy[static_cast<size_t>(s)] = true;
        for (int s = 0; s < kShards; ++s) {
            const Owned& o = owned_[static_cast<size_t>(s)];
            if (o.epoch > 0 && o.giving && !busy[static_cast<size_t>(s)]) {
                give.push_back(s);
                epochs.push_back(o.epoch);
            }
        }
        if (!give.empty())
            must(pg::query(session_,
                           ("UPDATE " + t_.shards + " SET owner = NULL, expires_at = clock_timestamp() WHERE pipeline = $1 AND "
                            "owner = $2 AND (shard, epoch) IN (SELECT * FROM unnest(CAST($3 AS smallint[]), CAST($4 AS "
                            "bigint[])))")
                               .c_str(),
                           {pipeline_, member_, int_array(give), int_array(epochs)}, kCallTimeout, error));
        must(pg::query(session_, "COMMIT", {}, kCallTimeout, error));
    } catch (...) {
        std::string ignored;
        pg::query(session_, "ROLLBACK", {}, kCallTimeout, ignored);
        throw;
    }
    if (give.empty()) return;
    for (int64_t s : give) owned_[static_cast<size_t>(s)] = Owned{};
    publish_claimable();
    metric("coord_shard_released_total", static_cast<double>(give.size()), all ? "reason=shutdown" : "reason=rebalance");
}

// The conditional UPDATE that alone makes an owner: only of a shard that is free or expired, and
// with a new epoch, which fences whatever the previous owner still tries.
void ShardCoordinator::acquire(const std::array<int, kShards>& target, const std::vector<Member>& live) {
    std::vector<int64_t> want;
    for (int s = 0; s < kShards; ++s) {
        const int t = target[static_cast<size_t>(s)];
        if (t >= 0 && live[static_cast<size_t>(t)].id == member_ && owned_[static_cast<size_t>(s)].epoch == 0)
            want.push_back(s);
    }
    if (want.empty()) return;
    const int64_t sent = host_.monotonic_us();
    std::string error;
    // With each shard taken: whether it was free (given back, or never owned) or its owner's
    // lease had run out, and how long ago that release or expiry was (the handoff's length).
    auto r = pg::query(session_,
                       ("UPDATE " + t_.shards + " s SET owner = $2, epoch = s.epoch + 1, expires_at = clock_timestamp() + "
                        "$4 * interval '1 millisecond' FROM (SELECT shard, owner, expires_at FROM " + t_.shards +
                        " WHERE pipeline = $1 AND shard = ANY(CAST($3 AS smallint[]))) AS was WHERE s.pipeline = $1 AND "
                        "s.shard = was.shard AND (s.owner IS NULL OR s.expires_at <= clock_timestamp()) RETURNING s.shard, "
                        "s.epoch, was.owner IS NULL, CASE WHEN was.expires_at = '-infinity' THEN NULL ELSE "
                        "EXTRACT(EPOCH FROM clock_timestamp() - was.expires_at) END")
                           .c_str(),
                       {pipeline_, member_, int_array(want), ms(timings_.ttl_ms)}, kCallTimeout, error);
    if (!r) throw sdk::Error(SW_RETRY, error);
    int free = 0, expired = 0;
    for (int i = 0; i < PQntuples(r.get()); ++i) {
        const int s = std::stoi(pg::value(r, i, 0));
        if (s < 0 || s >= kShards) continue;
        owned_[static_cast<size_t>(s)] = {std::stoll(pg::value(r, i, 1)),
                                          sent + (timings_.ttl_ms - timings_.epsilon_ms) * 1000, false};
        ++(pg::value(r, i, 2) == "t" ? free : expired);
        if (const std::string since = pg::value(r, i, 3); !since.empty())
            host_.observe("coord_handoff_seconds", std::max(0.0, std::stod(since)), ("pipeline=" + pipeline_).c_str());
    }
    publish_claimable();
    if (free) metric("coord_shard_acquired_total", free, "reason=free");
    if (expired) metric("coord_shard_acquired_total", expired, "reason=expired");
}

void ShardCoordinator::publish_claimable() {
    std::array<int64_t, kShards> until{};
    for (int s = 0; s < kShards; ++s) {
        const Owned& o = owned_[static_cast<size_t>(s)];
        until[static_cast<size_t>(s)] = o.epoch > 0 && !o.giving ? o.deadline_us : 0;
    }
    std::lock_guard lock(claimable_mutex_);
    claimable_until_ = until;
}

std::string ShardCoordinator::claimable(int* fenced) const {
    std::array<int64_t, kShards> until;
    {
        std::lock_guard lock(claimable_mutex_);
        until = claimable_until_;
    }
    const int64_t now = host_.monotonic_us();
    std::vector<int64_t> v;
    int left_out = 0;
    for (int s = 0; s < kShards; ++s) {
        const int64_t u = until[static_cast<size_t>(s)];
        if (u - now > timings_.claim_guard_ms * 1000) v.push_back(s);
        else if (u != 0) ++left_out;
    }
    if (fenced) *fenced = left_out;
    return v.empty() ? std::string() : int_array(v);
}

void ShardCoordinator::stop(int64_t timeout_ms) {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    wake_.notify_all();
    if (thread_.joinable()) thread_.join();
    if (peers_) peers_->stop();
    std::unique_lock lock(mutex_);
    if (!session_ || PQstatus(session_) != CONNECTION_OK) return;
    const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(std::max<int64_t>(timeout_ms, 0));
    std::array<int, kShards> none;
    none.fill(-1);
    try {
        // The relay has stopped and settled or given back its batch by now; a lease still out (a
        // send that would not end) is waited for until the timeout, then its shard stays ours
        // until it expires.
        for (;;) {
            give_away(none, {}, true);
            const bool left = std::any_of(owned_.begin(), owned_.end(), [](const Owned& o) { return o.epoch > 0; });
            if (!left || std::chrono::steady_clock::now() >= until) break;
            wake_.wait_for(lock, std::chrono::milliseconds(50));  // a bounded pause between looks
        }
        std::string error;
        pg::query(session_, ("DELETE FROM " + t_.members + " WHERE pipeline = $1 AND member = $2 AND incarnation = $3").c_str(),
                  {pipeline_, member_, incarnation_}, kCallTimeout, error);
        // The others take the shards at once, not at their next heartbeat.
        if (peers_) peers_->ring(session_);
    } catch (const std::exception& e) {
        host_.warn(std::string("postgres: shards of '") + pipeline_ + "': handing over at stop: " + e.what());
    }
    metric("coord_member_up", 0);
    PQfinish(std::exchange(session_, nullptr));
}

std::string ShardCoordinator::json() {
    std::lock_guard lock(mutex_);
    nlohmann::json out = {{"pipeline", pipeline_}, {"coordination", "shards"}, {"member", member_}};
    int owned = 0;
    for (const auto& o : owned_) owned += o.epoch > 0;
    out["owned"] = owned;
    out["ttl_ms"] = timings_.ttl_ms;
    out["heartbeat_ms"] = timings_.heartbeat_ms;
    std::string error;
    auto members = pg::query(session_, ("SELECT m.member, m.sink_ok, CAST(EXTRACT(EPOCH FROM (m.expires_at - "
                                        "clock_timestamp())) * 1000 AS BIGINT), (SELECT COUNT(*) FROM " + t_.shards +
                                        " s WHERE s.pipeline = m.pipeline AND s.owner = m.member AND s.expires_at > "
                                        "clock_timestamp()) FROM " + t_.members + " m WHERE m.pipeline = $1 ORDER BY 1")
                                           .c_str(),
                             {pipeline_}, kCallTimeout, error);
    auto shards = pg::query(session_, ("SELECT shard, owner, epoch, CASE WHEN owner IS NULL THEN NULL ELSE "
                                       "CAST(EXTRACT(EPOCH FROM (expires_at - clock_timestamp())) * 1000 AS BIGINT) END "
                                       "FROM " + t_.shards + " WHERE pipeline = $1 ORDER BY shard")
                                          .c_str(),
                            {pipeline_}, kCallTimeout, error);
    if (!members || !shards) {
        out["error"] = error.empty() ? "not connected" : error;
        return out.dump();
    }
    out["members"] = nlohmann::json::array();
    for (int i = 0; i < PQntuples(members.get()); ++i)
        out["members"].push_back({{"member", pg::value(members, i, 0)},
                                  {"sink_ok", pg::value(members, i, 1) == "t"},
                                  {"expires_in_ms", std::stoll(pg::value(members, i, 2))},
                                  {"shards", std::stoll(pg::value(members, i, 3))}});
    out["shards"] = nlohmann::json::array();
    for (int i = 0; i < PQntuples(shards.get()); ++i) {
        nlohmann::json s = {{"shard", std::stoi(pg::value(shards, i, 0))}, {"epoch", std::stoll(pg::value(shards, i, 2))}};
        const std::string owner = pg::value(shards, i, 1), left = pg::value(shards, i, 3);
        s["owner"] = owner.empty() ? nlohmann::json() : nlohmann::json(owner);
        s["expires_in_ms"] = left.empty() ? nlohmann::json() : nlohmann::json(std::stoll(left));
        out["shards"].push_back(std::move(s));
    }
    return out.dump();
}

}  // namespace spillway::plugins::postgres
