#include "single_guard.hpp"

#include <pg-common/query.hpp>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>
#include <utility>
#include <vector>

namespace spillway::plugins::postgres {

namespace {

// The advisory locks' first key: one namespace for every guard ("SWG1"); the second is the
// (table, pipeline) pair's hash, kept positive so pg_locks.objid shows it as written.
constexpr int kGuardSpace = 0x53574731;
constexpr int kOutboxFirstSpace = kGuardSpace + 1;  // see SingleGuard::take
constexpr int kShardsSpace = kGuardSpace + 2;
constexpr int kSerialSpace = kGuardSpace + 3;
constexpr auto kCallTimeout = std::chrono::seconds(5);
constexpr auto kWatchEvery = std::chrono::seconds(2);

int guard_key(const std::string& table, const std::string& pipeline) {
    uint32_t h = 2166136261u;
    for (unsigned char c : table + '\n' + pipeline) h = (h ^ c) * 16777619u;
    return static_cast<int>(h & 0x7fffffffu);
}

using pg::Result;

// One guard query, bounded by kCallTimeout.
Result run(PGconn* c, const char* sql, const std::vector<std::string>& params, std::string& error) {
    return pg::query(c, sql, params, kCallTimeout, error);
}

const char* mode_name(sw_hold_mode m) {
    return m == SW_HOLD_EXCLUSIVE ? "direct-first" : m == SW_HOLD_SHARDS ? "with coordination = \"shards\"" : "outbox-first";
}

}  // namespace

SingleGuard::SingleGuard(const pg::Conninfo& conninfo, std::string table, sdk::Host host)
    : conninfo_(conninfo), table_(std::move(table)), host_(host) {}

SingleGuard::~SingleGuard() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    wake_.notify_all();
    if (watcher_.joinable()) watcher_.join();
    if (session_) PQfinish(session_);
}

void SingleGuard::open_session(const std::string& holder) {
    if (session_ && PQstatus(session_) == CONNECTION_OK) return;
    if (session_) PQfinish(std::exchange(session_, nullptr));
    // The name operators see in pg_stat_activity, and the refused engine in its message.
    std::string error;
    PGconn* c = pg::open_dedicated_session(conninfo_, "spillway " + holder, kCallTimeout, error);
    if (!c) throw sdk::Error(SW_RETRY, "postgres: cannot hold the pipeline: " + error);
    session_ = c;
}

// The locks, all on the guard session (session locks outlive the transaction they are taken in):
//   direct-first (single):  exclusive on (kGuardSpace, key)
//   outbox-first (single):  shared on (kGuardSpace, key) and on (kOutboxFirstSpace, key)
//   shards:                 shared on (kGuardSpace, key) and on (kShardsSpace, key)
// so a direct-first engine excludes every other, and outbox-first engines exclude shards engines
// and the reverse (a claim in shards mode takes no table lock, so it must not meet a claimer that
// ignores shards). The check of the other kind's lock and the taking of one's own run under a
// transaction lock, so two engines of different kinds starting at once cannot both pass.
std::string SingleGuard::take(const std::string& pipeline, sw_hold_mode mode) {
    const int key = guard_key(table_, pipeline);
    const std::vector<std::string> guard = {std::to_string(kGuardSpace), std::to_string(key)};
    std::string error;
    auto must = [&](Result r) {
        if (!r) throw sdk::Error(SW_RETRY, "postgres: taking the pipeline's hold: " + error);
        return r;
    };
    auto yes = [](const Result& r) { return std::strcmp(PQgetvalue(r.get(), 0, 0), "t") == 0; };
    if (mode == SW_HOLD_EXCLUSIVE) {
        if (yes(must(run(session_, "SELECT pg_try_advisory_lock($1::int, $2::int)", guard, error)))) return {};
        const std::string who = holders_of(kGuardSpace, key);
        return who.empty() ? "another engine (it let go just now: try again)" : who;
    }
    const int mine = mode == SW_HOLD_SHARDS ? kShardsSpace : kOutboxFirstSpace;
    const int theirs = mode == SW_HOLD_SHARDS ? kOutboxFirstSpace : kShardsSpace;
    must(run(session_, "BEGIN", {}, error));
    std::string refused;
    try {
        must(run(session_, "SELECT pg_advisory_xact_lock($1::int, $2::int)", {std::to_string(kSerialSpace), guard[1]},
                 error));
        if (!yes(must(run(session_, "SELECT pg_try_advisory_lock_shared($1::int, $2::int)", guard, error)))) {
            refused = holders_of(kGuardSpace, key);
            if (refused.empty()) refused = "another engine (it let go just now: try again)";
        } else if (const std::string other = holders_of(theirs, key); !other.empty()) {
            must(run(session_, "SELECT pg_advisory_unlock_shared($1::int, $2::int)", guard, error));
            refused = other;
        } else {
            must(run(session_, "SELECT pg_advisory_lock_shared($1::int, $2::int)", {std::to_string(mine), guard[1]},
                     error));
        }
        must(run(session_, "COMMIT", {}, error));
    } catch (...) {
        std::string ignored;
        run(session_, "ROLLBACK", {}, ignored);
        throw;
    }
    return refused;
}

// Who holds (space, key): the sessions pg_locks names, with their application_name (which says
// "spillway <member> (host ..., pid ...)") and client address; "" when none.
std::string SingleGuard::holders_of(int space, int key) const {
    std::string error;
    Result r = run(session_,
                   "SELECT l.pid, l.mode, COALESCE(a.application_name, ''), COALESCE(host(a.client_addr), 'local'), "
                   "EXISTS (SELECT 1 FROM pg_locks x WHERE x.pid = l.pid AND x.locktype = 'advisory' AND x.classid = "
                   "$3::bigint AND x.objid = l.objid AND x.objsubid = 2) "
                   "FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' AND "
                   "l.classid = $1::bigint AND l.objid = $2::bigint AND l.objsubid = 2 AND l.granted AND "
                   "l.pid <> pg_backend_pid() ORDER BY l.pid",
                   {std::to_string(space), std::to_string(key), std::to_string(kShardsSpace)}, error);
    if (!r) return {};
    std::string out;
    const int n = PQntuples(r.get());
    for (int i = 0; i < n && i < 4; ++i) {
        const std::string app = PQgetvalue(r.get(), i, 2);
        const bool exclusive = std::strcmp(PQgetvalue(r.get(), i, 1), "ExclusiveLock") == 0;
        const bool shards = std::strcmp(PQgetvalue(r.get(), i, 4), "t") == 0;
        const char* how = shards ? "with coordination = \"shards\""
                          : exclusive           ? "direct-first"
                                                : "outbox-first";
        out += (out.empty() ? "" : "; ") + (app.empty() ? std::string("a session") : "'" + app + "'") + " from " +
               PQgetvalue(r.get(), i, 3) + ", server pid " + PQgetvalue(r.get(), i, 0) + ", running it " + how;
    }
    if (n > 4) out += "; and " + std::to_string(n - 4) + " more";
    return out;
}

void SingleGuard::hold(const std::string& pipeline, sw_hold_mode mode, const std::string& holder) {
    std::unique_lock lock(mutex_);
    if (auto it = holds_.find(pipeline); it != holds_.end()) {
        if (it->second.mode == mode) return;
        throw sdk::Error(SW_REJECT, "pipeline '" + pipeline + "' is held already in another mode by this store");
    }
    open_session(holder);
    if (const std::string other = take(pipeline, mode); !other.empty()) {
        const bool shards_meet_outbox_first =
            mode != SW_HOLD_EXCLUSIVE && other.find("direct-first") == std::string::npos;
        throw sdk::Error(
            SW_REJECT,
            "pipeline '" + pipeline + "' of outbox " + table_ + " is run by another engine: " + other +
                "; this one wanted to run it " + mode_name(mode) + ". " +
                (shards_meet_outbox_first
                     ? "Engines with coordination = \"shards\" and outbox-first engines with coordination = \"single\" "
                       "cannot share a pipeline (the latter claim rows whatever their shard): give every engine of "
                       "the pipeline the same coordination"
                     : "With coordination = \"single\" a direct-first pipeline runs in one engine only (two would "
                       "reorder a key: one's direct sends overtake the other's spilled rows). Stop the other engine, "
                       "run them all outbox-first, or use coordination = \"shards\"") +
                ". If that engine is gone, the database drops its session within about 15 s of its host going "
                "silent");
    }
    holds_[pipeline] = Hold{mode, holder, true};
    if (!watcher_.joinable()) watcher_ = std::thread([this] { watch(); });
}

std::string SingleGuard::trouble() const {
    std::lock_guard lock(mutex_);
    return trouble_;
}

void SingleGuard::watch() {
    std::unique_lock lock(mutex_);
    while (!wake_.wait_for(lock, kWatchEvery, [this] { return stopping_; })) {
        if (pg::session_lost(session_)) {
            // The session is gone, and its holds with it.
            if (session_) PQfinish(std::exchange(session_, nullptr));
            for (auto& [pipeline, h] : holds_) h.taken = false;
        }
        if (std::all_of(holds_.begin(), holds_.end(), [](const auto& p) { return p.second.taken; })) {
            if (!trouble_.empty()) host_.info("postgres: the guard of " + table_ + " holds every pipeline again");
            trouble_.clear();
            continue;
        }
        // Open another session and take them again. This runs under the lock, as hold() does: a
        // start waits at most one round of it.
        std::string lost;
        try {
            open_session(holds_.begin()->second.holder);
            for (auto& [pipeline, h] : holds_) {
                if (h.taken) continue;
                const std::string other = take(pipeline, h.mode);
                h.taken = other.empty();
                if (!h.taken) lost += (lost.empty() ? "" : "; ") + ("pipeline '" + pipeline + "' is held by " + other);
            }
        } catch (const sdk::Error& e) {
            lost = std::string("cannot take the holds again: ") + e.what();
        }
        if (lost.empty()) {
            host_.info("postgres: the guard session of " + table_ + " was lost and is back, every hold taken again");
        } else if (lost != trouble_) {
            host_.error("postgres: the guard session of " + table_ + " was lost; " + lost +
                        ": another engine may be running a pipeline this one runs direct-first");
        }
        trouble_ = lost;
    }
}

}  // namespace spillway::plugins::postgres
