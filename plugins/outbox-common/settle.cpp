// Settling claimed rows: delivered (deleted or marked published), retried with backoff, or dead;
// and the retention of published rows.
#include "outbox_store.hpp"
#include "store_internal.hpp"

#include <algorithm>
#include <cstring>
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
        with_session("purge published", [&](soci::session& s) { purge_published(s, host().now_unix_us()); });
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

void OutboxStore::complete(std::span<const int64_t> row_ids, std::span<const sw_result> results) {
    if (row_ids.empty()) return;
    std::vector<long long> ok, retry, reject;
    std::vector<std::string> retry_err, reject_err;
    for (size_t i = 0; i < row_ids.size(); ++i) {
        const sw_result& r = results[i];
        const std::string msg(r.message, strnlen(r.message, sizeof(r.message)));
        if (r.status == SW_OK) ok.push_back(row_ids[i]);
        else if (r.status == SW_REJECT) {
            reject.push_back(row_ids[i]);
            reject_err.push_back(msg.empty() ? "rejected" : msg);
        } else {
            retry.push_back(row_ids[i]);
            retry_err.push_back(msg.empty() ? "retry" : msg);
        }
    }
    struct Left {
        long long rows = 0;
        unsigned long long epoch = 0;
    };
    std::unordered_map<std::string, Left> left;  // by pipeline: rows no longer pending once committed
    with_session("complete", [&](soci::session& s) {
        left.clear();
        Tx tx(s, begin_settle_sql());
        const long long now = host().now_unix_us();
        std::vector<long long> all(row_ids.begin(), row_ids.end());
        std::unordered_set<long long> ours;
        const Unlease ended = end_leases(s, now, all, ours);
        auto keep_ours = [&](std::vector<long long>& ids, std::vector<std::string>* errs) {
            size_t w = 0;
            for (size_t i = 0; i < ids.size(); ++i) {
                if (!ours.count(ids[i])) continue;
                if (w != i) {
                    ids[w] = ids[i];
                    if (errs) (*errs)[w] = std::move((*errs)[i]);
                }
                ++w;
            }
            ids.resize(w);
            if (errs) errs->resize(w);
        };
        keep_ours(ok, nullptr);
        keep_ours(retry, &retry_err);
        keep_ours(reject, &reject_err);
        // max_pending: the rows leaving the pending state (published, dead), per pipeline, taken
        // off the backlog bound once committed. A row's pipeline is its lease's.
        std::unordered_map<long long, const std::string*> pipeline_of;
        if (opts_.max_pending > 0)
            for (const auto& [lid, lease] : ended.ended)
                for (long long r : lease.rows)
                    if (ours.count(r)) pipeline_of.emplace(r, &lease.pipeline);
        const auto leaving = [&](long long row) {
            if (auto it = pipeline_of.find(row); it != pipeline_of.end()) ++left[*it->second].rows;
        };
        for (long long r : ok) leaving(r);
        for (long long r : reject) leaving(r);
        if (!ok.empty()) {
            // A drained batch is usually a run of consecutive ids, and the table holds each id once:
            // a range names the same rows, read in one index descent rather than one per id.
            std::sort(ok.begin(), ok.end());
            long long lo = ok.front(), hi = ok.back();
            const bool run = hi - lo + 1 == static_cast<long long>(ok.size()) &&
                             std::adjacent_find(ok.begin(), ok.end()) == ok.end();
            std::string ids = run ? std::string() : encode_ids(ok);
            const std::string which = run ? " BETWEEN :lo AND :hi" : in_ids(":ids");
            const bool mark = opts_.retention_ms > 0 || opts_.keep_published;
            std::string at = published_time(now);
            soci::statement st(s);
            if (mark) st.exchange(soci::use(at, "now"));
            if (run) st.exchange(soci::use(lo, "lo")), st.exchange(soci::use(hi, "hi"));
            else st.exchange(soci::use(ids, "ids"));
            prepare_once(st, (mark ? statements_.mark_ok : statements_.delete_ok) + which);
            st.execute(true);
        }
        if (!retry.empty()) {
            // The delay grows with the row's attempts, so read them.
            std::map<long long, int> attempts_of;
            std::string ids = encode_ids(retry);
            std::vector<std::string> got_id(std::max<size_t>(retry.size(), 2));  // see RowSet
            std::vector<int> got_attempts(got_id.size());
            s << statements_.attempts + in_ids(":ids"), soci::use(ids, "ids"), soci::into(got_id), soci::into(got_attempts);
            if (!s.got_data()) got_id.clear();
            for (size_t i = 0; i < got_id.size(); ++i) attempts_of[std::stoll(got_id[i])] = got_attempts[i];
            std::vector<long long> id, next;
            std::vector<std::string> err;
            std::vector<long long> max1, max2;
            for (size_t i = 0; i < retry.size(); ++i) {
                auto it = attempts_of.find(retry[i]);
                if (it == attempts_of.end()) continue;  // gone meanwhile (purged)
                id.push_back(retry[i]);
                if (opts_.max_attempts > 0 && it->second + 1 >= opts_.max_attempts) leaving(retry[i]);  // dead
                next.push_back(now + backoff_ms(it->second + 1) * 1000);
                err.push_back(retry_err[i]);
                max1.push_back(opts_.max_attempts);
                max2.push_back(opts_.max_attempts);
            }
            if (!id.empty())
                s << statements_.retry, soci::use(next, "next"), soci::use(err, "err"), soci::use(max1, "max1"),
                    soci::use(max2, "max2"), soci::use(id, "id");
        }
        if (!reject.empty()) s << statements_.reject, soci::use(reject_err, "err"), soci::use(reject, "id");
        for (auto& [pipeline, l] : left) l.epoch = settle_begins(pipeline);
        tx.commit();
        commit_unlease(ended);
    });
    for (const auto& [pipeline, l] : left) settled(pipeline, l.rows, l.epoch);
}

}  // namespace spillway::plugins::outbox
