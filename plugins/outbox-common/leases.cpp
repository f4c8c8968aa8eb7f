// Leases: who holds which claimed rows until when, in <table>_leases and in memory; ending and
// releasing them, and taking back those of a crashed engine on this host.
#include "outbox_store.hpp"
#include "store_internal.hpp"

#include <csignal>
#include <cerrno>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <random>
#include <string>

namespace spillway::plugins::outbox {

// A lease owner is "<host>-<pid>-<random>" (make_owner), the random part drawn once per process.
// Whether `owner` names a process of this host that no longer exists: only then may its leases be
// taken away before they run out. Another host's engine is taken to be alive, and so is this
// process (a second store instance on the same table shares its owner). The same host and pid
// with another random part is a predecessor that had this pid: a restarted container's engine
// often gets the pid its predecessor had (1, say).
namespace {

bool owner_is_dead_here(const std::string& owner, const std::string& me) {
    const size_t rand_at = owner.rfind('-');
    if (rand_at == std::string::npos || rand_at == 0) return false;
    const size_t pid_at = owner.rfind('-', rand_at - 1);
    if (pid_at == std::string::npos) return false;
    const size_t my_rand = me.rfind('-');
    const size_t my_pid = my_rand == std::string::npos || my_rand == 0 ? std::string::npos : me.rfind('-', my_rand - 1);
    if (my_pid == std::string::npos || owner.compare(0, pid_at, me, 0, my_pid) != 0 || pid_at != my_pid) return false;
    long pid = 0;
    try {
        size_t used = 0;
        pid = std::stol(owner.substr(pid_at + 1, rand_at - pid_at - 1), &used);
        if (used != rand_at - pid_at - 1) return false;
    } catch (const std::exception&) {
        return false;
    }
    if (pid <= 0) return false;
    if (pid == static_cast<long>(getpid())) return owner != me;
    return kill(static_cast<pid_t>(pid), 0) == -1 && errno == ESRCH;
}

}  // namespace

std::string make_owner() {
    char host[256] = {};
    if (gethostname(host, sizeof(host) - 1) != 0) std::snprintf(host, sizeof(host), "unknown");
    // One per process: every store instance of this process is one lease owner (see
    // owner_is_dead_here). Drawn after a fork anew, as the pid changed.
    static std::mutex mutex;
    static pid_t drawn_for = -1;
    static unsigned suffix = 0;
    {
        std::lock_guard lock(mutex);
        if (drawn_for != getpid()) {
            std::random_device rd;
            suffix = static_cast<unsigned>(rd());
            drawn_for = getpid();
        }
    }
    char buf[400];
    std::snprintf(buf, sizeof(buf), "%s-%d-%08x", host, static_cast<int>(getpid()), suffix);
    return buf;
}

std::vector<long long> decode_ids(const std::string& text) {
    std::vector<long long> out;
    const char* p = text.c_str();
    while (*p) {
        if ((*p >= '0' && *p <= '9') || *p == '-') {
            char* end = nullptr;
            out.push_back(std::strtoll(p, &end, 10));
            p = end;
        } else {
            ++p;
        }
    }
    return out;
}

std::vector<OutboxStore::Lease> OutboxStore::live_leases(soci::session& s, long long now, const std::string* begin) {
    std::vector<Lease> out;
    std::vector<std::string> lid(kFetchChunk), rows(kFetchChunk);
    soci::statement st(s);
    if (!begin) st.exchange(soci::use(now, "now"));
    st.exchange(soci::into(lid)), st.exchange(soci::into(rows));
    // With the BEGIN in front the query goes without parameters (one simple query); `now` is a
    // number of ours.
    std::string folded;
    if (begin) {
        folded = statement(s, Hot::kLeases, {{"now", now}});
        folded = *begin + "; " + (folded.empty() ? statements_.live_leases_at + std::to_string(now) : folded);
    }
    prepare_once(st, begin ? folded : statements_.live_leases);
    st.execute();
    while (st.fetch()) {
        for (size_t i = 0; i < lid.size(); ++i) out.push_back({std::stoll(lid[i]), decode_ids(rows[i])});
        lid.resize(kFetchChunk), rows.resize(kFetchChunk);
    }
    return out;
}

void OutboxStore::remember_lease(long long lease_id, long long until, const std::vector<long long>& rows,
                                 const std::string& pipeline) {
    std::lock_guard lock(leases_mutex_);
    for (long long r : rows) lease_of_row_[r] = lease_id;
    my_leases_[lease_id] = {until, rows, pipeline};
}

// Ends this instance's leases on `rows` in one statement: deletes the lease rows that are still
// live (an expired one may already have been claimed by someone else, whose settlement counts)
// and leases again, in a new row, whatever of them was not in `rows`. Fills `held` with the rows
// that were still leased here: only those may be settled. The bookkeeping in memory changes only
// once the transaction commits (commit_unlease).
OutboxStore::Unlease OutboxStore::end_leases(soci::session& s, long long now, std::span<const long long> rows,
                                             std::unordered_set<long long>& held) {
    Unlease u;
    std::unordered_map<long long, std::vector<long long>> named;  // lease id -> its rows in `rows`
    {
        std::lock_guard lock(leases_mutex_);
        for (long long r : rows)
            if (auto it = lease_of_row_.find(r); it != lease_of_row_.end()) named[it->second].push_back(r);
        for (auto& [lid, _] : named)
            if (auto it = my_leases_.find(lid); it != my_leases_.end()) u.ended[lid] = it->second;
    }
    for (long long r : rows) u.forget.push_back(r);
    if (named.empty()) return u;
    std::vector<long long> lids;
    for (const auto& [lid, _] : named) lids.push_back(lid);
    std::string lid_list = encode_ids(lids);
    std::vector<std::string> live(std::max<size_t>(lids.size(), 2));  // see RowSet
    long long at = now;
    s << statements_.lease_end + in_ids(":lids") + " RETURNING CAST(id AS TEXT)", soci::use(at, "now"),
        soci::use(lid_list, "lids"), soci::into(live);
    if (!s.got_data()) live.clear();
    std::string me = owner_;
    for (const std::string& text : live) {
        const long long lid = std::stoll(text);
        const auto& mine = named[lid];
        held.insert(mine.begin(), mine.end());
        auto it = u.ended.find(lid);
        if (it == u.ended.end()) continue;
        std::vector<long long> rest;
        for (long long r : it->second.rows)
            if (!held.count(r)) rest.push_back(r);
        if (rest.empty()) continue;
        // Part of a batch settled: the rest stays leased, under a new lease row.
        std::string rest_ids = encode_ids(rest), new_id, p = it->second.pipeline;
        long long until = it->second.until;
        s << statements_.lease_insert, soci::use(me, "me"), soci::use(p, "p"), soci::use(until, "until"),
            soci::use(rest_ids, "ids"), soci::into(new_id);
        u.again.push_back({std::stoll(new_id), lid, until, std::move(rest)});
    }
    return u;
}

size_t OutboxStore::release_dead_owners(soci::session& s, long long now, std::vector<Lease>& leases) {
    if (leases.empty()) return 0;
    std::vector<std::string> owners(kFetchChunk);
    long long at = now;
    s << statements_.lease_owners, soci::use(at, "now"), soci::into(owners);
    if (!s.got_data()) owners.clear();
    std::unordered_set<long long> dropped;
    for (std::string& owner : owners) {
        if (owner == owner_ || !owner_is_dead_here(owner, owner_)) continue;
        std::vector<std::string> ids(std::max<size_t>(leases.size(), 2));  // see RowSet
        s << statements_.lease_drop_owner, soci::use(owner, "o"), soci::into(ids);
        if (!s.got_data()) ids.clear();
        for (const std::string& id : ids) dropped.insert(std::stoll(id));
        host().info(std::string(db_name_) + ": took back " + std::to_string(ids.size()) + " lease(s) of " + owner +
                    ", an engine on this host that is no longer running");
    }
    if (!dropped.empty())
        std::erase_if(leases, [&](const Lease& l) { return dropped.count(l.id) != 0; });
    return dropped.size();
}

void OutboxStore::commit_unlease(const Unlease& u) {
    std::lock_guard lock(leases_mutex_);
    for (const auto& [lid, lease] : u.ended) {
        for (long long r : lease.rows) lease_of_row_.erase(r);
        my_leases_.erase(lid);
    }
    for (long long r : u.forget) lease_of_row_.erase(r);
    for (const auto& again : u.again) {
        for (long long r : again.rows) lease_of_row_[r] = again.id;
        my_leases_[again.id] = {again.until, again.rows, u.ended.at(again.from).pipeline};
    }
}

void OutboxStore::release_leases(std::span<const int64_t> row_ids) {
    if (row_ids.empty()) return;
    ++returned_;  // the rows are pending again, below where a claim_next may be (ClaimSeen)
    std::vector<long long> v(row_ids.begin(), row_ids.end());
    with_session("release_leases", [&](soci::session& s) {
        Tx tx(s, begin_lease_change_sql());
        std::unordered_set<long long> held;
        const Unlease ended = end_leases(s, clock_us(), v, held);
        tx.commit();
        commit_unlease(ended);
    });
}

}  // namespace spillway::plugins::outbox
