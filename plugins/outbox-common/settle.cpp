// Settling claimed rows: delivered (deleted or marked published), retried with backoff, or dead;
// and the retention of published rows.
#include "outbox_store.hpp"
#include "store_internal.hpp"

#include <algorithm>
#include <cstring>
#include <functional>
#include <map>
#include <random>
#include <string>

namespace spillway::plugins::outbox {

namespace {

constexpr long long kPurgePage = 1000;

std::mt19937_64& rng() {
    thread_local std::mt19937_64 gen{std::random_device{}()};
    return gen;
}

// A completion's rows by outcome; the retried and rejected ones with the sink's message, or a word
// for their outcome when it gave none.
struct Outcomes {
    std::vector<long long> ok, retry, reject;
    std::vector<std::string> retry_err, reject_err;
};

Outcomes by_outcome(std::span<const int64_t> row_ids, std::span<const sw_result> results) {
    Outcomes o;
    for (size_t i = 0; i < row_ids.size(); ++i) {
        const sw_result& r = results[i];
        const std::string msg(r.message, strnlen(r.message, sizeof(r.message)));
        if (r.status == SW_OK) o.ok.push_back(row_ids[i]);
        else if (r.status == SW_REJECT) {
            o.reject.push_back(row_ids[i]);
            o.reject_err.push_back(msg.empty() ? "rejected" : msg);
        } else {
            o.retry.push_back(row_ids[i]);
            o.retry_err.push_back(msg.empty() ? "retry" : msg);
        }
    }
    return o;
}

// Keeps the ids in `held` (and their messages, when `errs` is given), in order.
void keep_held(std::vector<long long>& ids, std::vector<std::string>* errs, const std::unordered_set<long long>& held) {
    size_t w = 0;
    for (size_t i = 0; i < ids.size(); ++i) {
        if (!held.count(ids[i])) continue;
        if (w != i) {
            ids[w] = ids[i];
            if (errs) (*errs)[w] = std::move((*errs)[i]);
        }
        ++w;
    }
    ids.resize(w);
    if (errs) errs->resize(w);
}

// Only the rows whose lease this completion ended are settled (end_leases: `held`); a lease that
// ran out may have been claimed by someone else since, whose settlement counts.
void keep_held(Outcomes& rows, const std::unordered_set<long long>& held) {
    keep_held(rows.ok, nullptr, held);
    keep_held(rows.retry, &rows.retry_err, held);
    keep_held(rows.reject, &rows.reject_err, held);
}

// Rows no longer pending once a completion commits (published, dead), by pipeline, with what
// settle_begins answered for it: the backlog bound (max_pending) is lowered by them after the commit.
struct Left {
    long long rows = 0;
    unsigned long long epoch = 0;
};
using LeftByPipeline = std::unordered_map<std::string, Left>;
using RowPipelines = std::unordered_map<long long, const std::string*>;

// The pipeline of each held row of the ended leases (Unlease::ended): a row's pipeline is its lease's.
template <class EndedLeases>
RowPipelines pipelines_of(const EndedLeases& ended, const std::unordered_set<long long>& held) {
    RowPipelines pipeline_of;
    for (const auto& [lid, lease] : ended)
        for (long long r : lease.rows)
            if (held.count(r)) pipeline_of.emplace(r, &lease.pipeline);
    return pipeline_of;
}

// Counts a row leaving the pending state under its pipeline; rows of no known pipeline (none are
// looked up when max_pending is off) are not counted.
struct Leaving {
    LeftByPipeline& left;
    RowPipelines pipeline_of;
    void operator()(long long row) const {
        if (auto it = pipeline_of.find(row); it != pipeline_of.end()) ++left[*it->second].rows;
    }
};

// What the steps of a completion use: its transaction's session and time, the store's statements
// and options, how its database spells an id list and a published_at value, the retry backoff, and
// where rows leaving the pending state are counted. The steps are this file's functions, not the
// store's members, so OutboxStore::complete hands them these parts of it.
struct Settling {
    soci::session& s;
    long long now;
    const Statements& statements;
    const Options& opts;
    std::string in_id_list;    // OutboxStore::in_ids(":ids")
    std::string published_at;  // OutboxStore::published_time(now)
    std::function<std::string(std::span<const long long>)> encode_ids;
    std::function<int64_t(int attempts_after)> backoff_ms;
    Leaving leaving;
};

// Delivered rows are deleted, or marked published when published rows are kept.
void settle_delivered(const Settling& c, std::vector<long long>& ok) {
    if (ok.empty()) return;
    // A drained batch is usually a run of consecutive ids, and the table holds each id once:
    // a range names the same rows, read in one index descent rather than one per id.
    std::sort(ok.begin(), ok.end());
    long long lo = ok.front(), hi = ok.back();
    const bool run = hi - lo + 1 == static_cast<long long>(ok.size()) &&
                     std::adjacent_find(ok.begin(), ok.end()) == ok.end();
    std::string ids = run ? std::string() : c.encode_ids(ok);
    const std::string which = run ? " BETWEEN :lo AND :hi" : c.in_id_list;
    const bool mark = c.opts.retention_ms > 0 || c.opts.keep_published;
    std::string at = c.published_at;
    soci::statement st(c.s);
    if (mark) st.exchange(soci::use(at, "now"));
    if (run) st.exchange(soci::use(lo, "lo")), st.exchange(soci::use(hi, "hi"));
    else st.exchange(soci::use(ids, "ids"));
    prepare_once(st, (mark ? c.statements.mark_ok : c.statements.delete_ok) + which);
    st.execute(true);
}

// The attempts so far of the rows `ids` still in the table.
std::map<long long, int> attempts_of(const Settling& c, const std::vector<long long>& ids) {
    std::map<long long, int> attempts;
    std::string list = c.encode_ids(ids);
    std::vector<std::string> got_id(std::max<size_t>(ids.size(), 2));  // see RowSet
    std::vector<int> got_attempts(got_id.size());
    c.s << c.statements.attempts + c.in_id_list, soci::use(list, "ids"), soci::into(got_id), soci::into(got_attempts);
    if (!c.s.got_data()) got_id.clear();
    for (size_t i = 0; i < got_id.size(); ++i) attempts[std::stoll(got_id[i])] = got_attempts[i];
    return attempts;
}

// Retried rows wait a backoff that grows with their attempts, or die at max_attempts.
void settle_retried(const Settling& c, const std::vector<long long>& retry, const std::vector<std::string>& retry_err) {
    if (retry.empty()) return;
    const std::map<long long, int> attempts = attempts_of(c, retry);
    std::vector<long long> id, next;
    std::vector<std::string> err;
    std::vector<long long> max1, max2;
    for (size_t i = 0; i < retry.size(); ++i) {
        auto it = attempts.find(retry[i]);
        if (it == attempts.end()) continue;  // gone meanwhile (purged)
        id.push_back(retry[i]);
        if (c.opts.max_attempts > 0 && it->second + 1 >= c.opts.max_attempts) c.leaving(retry[i]);  // dead
        next.push_back(c.now + c.backoff_ms(it->second + 1) * 1000);
        err.push_back(retry_err[i]);
        max1.push_back(c.opts.max_attempts);
        max2.push_back(c.opts.max_attempts);
    }
    if (!id.empty())
        c.s << c.statements.retry, soci::use(next, "next"), soci::use(err, "err"), soci::use(max1, "max1"),
            soci::use(max2, "max2"), soci::use(id, "id");
}

// Rejected rows die at once, with the sink's message.
void settle_rejected(const Settling& c, std::vector<long long>& reject, std::vector<std::string>& reject_err) {
    if (!reject.empty()) c.s << c.statements.reject, soci::use(reject_err, "err"), soci::use(reject, "id");
}

}  // namespace

// Deletes published rows older than `retention`, a page per transaction, so a large purge never
// holds long locks.
void OutboxStore::purge_published(soci::session& s, int64_t now_us) {
    std::string cut = published_time(now_us - opts_.retention_ms * 1000);
    long long lim = kPurgePage;
    for (int page = 0; page < 20; ++page) {
        Tx tx(s, begin_write_sql());
        soci::statement st(s);
        st.exchange(soci::use(cut, "cut")), st.exchange(soci::use(lim, "lim"));
        prepare_once(st, statements_.purge_published);
        st.execute(true);
        const long long n = st.get_affected_rows();
        tx.commit();
        if (n < kPurgePage) break;
    }
}

// Run by claims, the relay's steady beat, rather than by a timer of its own; after the claim's
// transaction, so the claim's locks are not held while pages of old rows are deleted.
void OutboxStore::purge_published_when_due() {
    if ((opts_.retention_ms > 0 && !opts_.keep_published) && host().monotonic_us() >= next_purge_us_.load()) {
        next_purge_us_ = host().monotonic_us() + std::clamp<int64_t>(opts_.retention_ms / 2, 1000, 60'000) * 1000;
        with_session("purge published", [&](soci::session& s) { purge_published(s, clock_us()); });
    }
}

int64_t OutboxStore::backoff_ms(int attempts_after) {
    // Exponential from backoff_base, capped at backoff_max, then "equal jitter": half fixed, half
    // random, so retries of many rows spread out but never come sooner than half the step.
    const int shift = std::clamp(attempts_after - 1, 0, 40);
    const double step = std::min<double>(static_cast<double>(opts_.backoff_base_ms) * static_cast<double>(1ull << shift),
                                         static_cast<double>(opts_.backoff_max_ms));
    std::uniform_real_distribution<double> jitter(0.5, 1.0);
    return std::max<int64_t>(1, static_cast<int64_t>(step * jitter(rng())));
}

// A completion, one transaction, in the order of its statements: the leases end (end_leases), the
// delivered rows go, the retried ones back off (or die at max_attempts), the rejected ones die.
// max_pending's bound is lowered by the rows that left the pending state once it has committed.
// A relay's usual completion: its batch delivered, in one statement (no BEGIN, no COMMIT, no
// lock). The fence is the same as end_leases': the rows go only while their lease is live.
bool OutboxStore::complete_in_one_trip(std::span<const int64_t> row_ids, std::span<const sw_result> results) {
    // A drain's big batches keep the statements: their completion runs beside the next claim and
    // send (the relay overlaps them), and deletes a run of ids as one range (settle_delivered).
    if (opts_.retention_ms > 0 || opts_.keep_published || row_ids.size() > kOneTripRows) return false;
    for (const sw_result& r : results)
        if (r.status != SW_OK) return false;
    long long lid = 0;
    MyLease lease;
    {
        std::lock_guard lock(leases_mutex_);
        auto row = lease_of_row_.find(row_ids[0]);
        if (row == lease_of_row_.end()) return false;
        auto it = my_leases_.find(row->second);
        if (it == my_leases_.end() || it->second.rows.size() != row_ids.size()) return false;
        std::vector<long long> sorted(row_ids.begin(), row_ids.end());
        std::sort(sorted.begin(), sorted.end());
        if (!std::equal(sorted.begin(), sorted.end(), it->second.rows.begin(), it->second.rows.end())) return false;
        lid = it->first;
        lease = it->second;
    }
    const std::vector<long long> rows(row_ids.begin(), row_ids.end());
    long long ended = 0, deleted = 0;
    unsigned long long epoch = 0;
    const bool ran = with_session("complete", [&](soci::session& s) {
        std::string ids = encode_ids(rows);
        const std::string text = statement(s, Hot::kSettle, {{"lid", lid}, {"now", clock_us()}, {"ids", ids}});
        if (text.empty()) return false;
        epoch = settle_begins(lease.pipeline);
        s << text, soci::into(ended), soci::into(deleted);
        return true;
    });
    if (!ran) return false;
    Unlease u;
    u.ended[lid] = lease;
    u.forget = rows;
    commit_unlease(u);
    if (opts_.max_pending > 0) settled(lease.pipeline, deleted, epoch);
    if (ended == 0)
        host().count("relay_fenced_total", static_cast<double>(rows.size()),
                     ("pipeline=" + lease.pipeline + ",op=settle").c_str());
    return true;
}

void OutboxStore::complete(std::span<const int64_t> row_ids, std::span<const sw_result> results) {
    if (row_ids.empty()) return;
    if (complete_in_one_trip(row_ids, results)) return;
    // Rows a completion leaves pending (retried, or all of them when it fails) are behind where a
    // claim_next may be already (ClaimSeen): counted before, so that no claim misses them.
    const bool all_ok = std::all_of(results.begin(), results.end(), [](const sw_result& r) { return r.status == SW_OK; });
    if (!all_ok) ++returned_;
    struct CountIfThrown {
        std::atomic<long long>& n;
        int uncaught = std::uncaught_exceptions();
        ~CountIfThrown() {
            if (std::uncaught_exceptions() > uncaught) ++n;
        }
    } count_if_thrown{returned_};
    Outcomes rows = by_outcome(row_ids, results);
    LeftByPipeline left;
    std::unordered_map<std::string, long long> fenced;  // by pipeline: rows whose lease had ended
    with_session("complete", [&](soci::session& s) {
        left.clear();
        fenced.clear();
        // Rows that leave the pending index (delivered, rejected) leave dead entries behind;
        // retried ones stay, and a sink outage's all-retry batches need no flush.
        const bool flushed = rows.ok.size() + rows.reject.size() > kOneTripRows;
        Tx tx(s, flushed ? begin_flushed_settle_sql() : begin_settle_sql());
        const long long now = clock_us();
        std::vector<long long> all(row_ids.begin(), row_ids.end());
        std::unordered_set<long long> ours;
        const Unlease ended = end_leases(s, now, all, ours);
        for (const auto& [lid, lease] : ended.ended)
            for (long long r : lease.rows)
                if (!ours.count(r) && std::find(all.begin(), all.end(), r) != all.end()) ++fenced[lease.pipeline];
        keep_held(rows, ours);
        const Settling settling{s, now, statements_, opts_, in_ids(":ids"), published_time(now),
                                [&](std::span<const long long> ids) { return encode_ids(ids); },
                                [&](int attempts_after) { return backoff_ms(attempts_after); },
                                Leaving{left, opts_.max_pending > 0 ? pipelines_of(ended.ended, ours) : RowPipelines{}}};
        for (long long r : rows.ok) settling.leaving(r);
        for (long long r : rows.reject) settling.leaving(r);  // retried ones that die: settle_retried
        settle_delivered(settling, rows.ok);
        settle_retried(settling, rows.retry, rows.retry_err);
        settle_rejected(settling, rows.reject, rows.reject_err);
        for (auto& [pipeline, l] : left) l.epoch = settle_begins(pipeline);
        tx.commit();
        commit_unlease(ended);
    });
    for (const auto& [pipeline, l] : left) settled(pipeline, l.rows, l.epoch);
    // Settlements the lease fence turned away: the lease ran out (a pause, a lost shard) and the
    // rows may be someone else's now, whose settlement counts.
    for (const auto& [pipeline, n] : fenced)
        host().count("relay_fenced_total", static_cast<double>(n), ("pipeline=" + pipeline + ",op=settle").c_str());
}

}  // namespace spillway::plugins::outbox
