// Claiming: which pending rows may be handed out (per-key order behind held-back and leased rows),
// the lease that holds them, and the whole rows read for the batch.
#include "outbox_store.hpp"
#include "store_internal.hpp"

#include <algorithm>
#include <limits>
#include <optional>
#include <string>

namespace spillway::plugins::outbox {

namespace {

constexpr int64_t kLeaseSweepUs = 10'000'000;  // how often a claim deletes expired leases

// The values of a sharded read's shard condition (:sp, :sm, :ss, :sg), alive while it runs.
struct ShardBinds {
    template <class Filter>  // OutboxStore::ShardFilter
    ShardBinds(const std::string& pipeline, const Filter& f) : p(pipeline), m(f.member), ss(f.shards), g(f.guard_ms) {}
    void to(soci::statement& st) {
        st.exchange(soci::use(p, "sp")), st.exchange(soci::use(m, "sm")), st.exchange(soci::use(ss, "ss"));
        st.exchange(soci::use(g, "sg"));
    }
    // The same values for a prepared statement's EXECUTE (OutboxStore::statement).
    template <class Args>  // OutboxStore::HotArgs
    Args with(Args args) const {
        args.insert(args.end(), {{"sp", p}, {"sm", m}, {"ss", ss}, {"sg", g}});
        return args;
    }
    std::string p, m, ss;
    long long g;
};

}  // namespace

// Picks the rows in C++ from the pending head in id order instead of asking the database to prove,
// per candidate, that no earlier row of its key blocks it: that NOT EXISTS probe walked every
// earlier index entry of the key, deleted ones included, and made a long drain quadratic. All rows
// that can block a candidate are pending and have smaller ids, so one pass in id order sees each
// blocker before the rows it holds back.
bool OutboxStore::Picker::take(long long id, const std::string* key, bool blocks) {
    seen = std::max(seen, id);
    if (!assumed.empty() && assumed.count(id)) return false;
    if (key && blocked.count(*key)) return ++held, false;
    if (blocks || (!leased.empty() && leased.count(id))) {
        if (key) blocked.insert(*key);
        return ++held, false;
    }
    picked.push_back(id);
    return true;
}

// The narrow columns (id, key, blocks) of one read, fed to the picker in id order.
struct OutboxStore::NarrowRows {
    explicit NarrowRows(size_t n) : ids(std::max<size_t>(n, 2)), keys(ids.size()), key_ind(ids.size()), blocks(ids.size()) {}
    void bind(soci::statement& st) {  // n >= 2: see RowSet
        st.exchange(soci::into(ids)), st.exchange(soci::into(keys, key_ind)), st.exchange(soci::into(blocks));
    }
    // Feeds what `st` read; the number of rows it read.
    size_t feed(soci::statement& st, size_t limit, Picker& picker) {
        if (!st.execute(true)) return 0;
        for (size_t i = 0; i < ids.size() && picker.picked.size() < limit; ++i)
            picker.take(std::stoll(ids[i]), key_ind[i] == soci::i_ok ? &keys[i] : nullptr, blocks[i] != 0);
        return ids.size();
    }
    std::vector<std::string> ids, keys;
    std::vector<soci::indicator> key_ind;
    std::vector<int> blocks;
};

// Narrow chunks of the pending rows in (after, upto]: past the whole-row head while rows are held
// back (upto: no end), and in claim_next before the rows it takes as settled.
void OutboxStore::pick_range(soci::session& s, const std::string& pipeline, size_t limit, long long now,
                             long long after, long long upto, Range where, Picker& picker) {
    const size_t chunk = std::clamp<size_t>(limit, 64, 5000);
    std::string p = pipeline;
    long long now1 = now, now2 = now, lim = static_cast<long long>(chunk), lim2 = lim;
    // In shards mode the range below the batches in flight goes shard by shard: it holds the other
    // engines' pending rows (and the index entries of deleted ones), which a read in id order would
    // walk at every claim. The rest is read in id order, the other engines' rows filtered out:
    // past the head the rows are mostly this engine's own; among the batches in flight this
    // engine's rows are a third of the range with three engines, and a read shard by shard fetched
    // each from another heap page (2x the time of the read in id order over 6,000 ids, 5x over 30,000).
    const bool by_shard = where == Range::below && picker.shards && picker.shards->ranges_by_shard &&
                          !sharded_.scan_by_shard.empty();
    std::optional<ShardBinds> shards;
    if (picker.shards) shards.emplace(pipeline, *picker.shards);
    while (picker.picked.size() < limit && after < upto) {
        NarrowRows rows(chunk);
        soci::statement st(s);
        rows.bind(st);
        // Shards mode's reads are prepared (the PostgreSQL store): planning the per-shard read
        // cost the server about as much as running it.
        std::string text;
        if (shards) {
            HotArgs args = shards->with(
                HotArgs{{"now1", now1}, {"now2", now2}, {"p", p}, {"after", after}, {"upto", upto}, {"lim", lim}});
            if (by_shard) args.emplace_back("lim2", lim2);
            text = statement(s, by_shard ? Hot::kShardedScanByShard : Hot::kShardedScan, args);
        }
        if (text.empty()) {
            st.exchange(soci::use(now1, "now1")), st.exchange(soci::use(now2, "now2")), st.exchange(soci::use(p, "p"));
            st.exchange(soci::use(after, "after")), st.exchange(soci::use(upto, "upto")), st.exchange(soci::use(lim, "lim"));
            if (by_shard) st.exchange(soci::use(lim2, "lim2"));
            if (shards) shards->to(st);
        }
        prepare_once(st, !text.empty() ? text
                         : by_shard   ? sharded_.scan_by_shard
                         : shards     ? sharded_.scan
                                      : statements_.scan);
        if (rows.feed(st, limit, picker) < chunk) break;
        after = std::stoll(rows.ids.back());
    }
}

// The same narrow read of the pending rows among `ids` (ascending), in chunks.
void OutboxStore::pick_ids(soci::session& s, const std::string& pipeline, size_t limit, long long now,
                           std::span<const long long> ids, Picker& picker) {
    const size_t chunk = std::clamp<size_t>(limit, 64, 5000);
    std::string p = pipeline;
    long long now1 = now, now2 = now;
    for (size_t at = 0; at < ids.size() && picker.picked.size() < limit; at += chunk) {
        const auto part = ids.subspan(at, std::min(chunk, ids.size() - at));
        std::string list = encode_ids(part);
        NarrowRows rows(part.size());
        soci::statement st(s);
        st.exchange(soci::use(now1, "now1")), st.exchange(soci::use(now2, "now2")), st.exchange(soci::use(p, "p"));
        st.exchange(soci::use(list, "ids"));
        std::optional<ShardBinds> shards;
        if (picker.shards) shards.emplace(pipeline, *picker.shards).to(st);
        rows.bind(st);
        prepare_once(st, picker.shards ? sharded_.scan_ids : statements_.scan_ids);
        rows.feed(st, limit, picker);
    }
}

// claim_next's look back over (0, where prev's claim stopped]. The rows it takes as settled are
// still there (the relay is sending and settling them) and reading them again was most of what a
// claim_next cost; so only what lies before the first of them is read as a range, and the ids in
// between that are not theirs one by one. What is found is exactly what a read of the whole range
// would find besides them: rows held back then, and rows committed since under a smaller id.
bool OutboxStore::look_back(soci::session& s, const std::string& pipeline, size_t limit, long long now,
                            const Continuation& prev, Picker& picker) {
    std::vector<long long> settled;
    for (long long r : prev.rows)
        if (r <= prev.cursor) settled.push_back(r);
    std::sort(settled.begin(), settled.end());
    settled.erase(std::unique(settled.begin(), settled.end()), settled.end());
    if (settled.empty()) return pick_range(s, pipeline, limit, now, 0, prev.cursor, Range::below, picker), true;
    const bool between = saw_between(prev, picker);
    const auto skipped = [&](const char* part) {
        host().count("relay_claim_skips_total", 1, ("pipeline=" + pipeline + ",part=" + part).c_str());
    };
    if (between && saw_below(prev)) {
        skipped("below");
        skipped("between");
        return false;
    }
    pick_range(s, pipeline, limit, now, 0, settled.front() - 1, Range::below, picker);
    if (between) {
        skipped("between");
        return true;
    }
    // Ids are dense when one pipeline has the table; when they are not (other pipelines' rows,
    // other members' rows, rows held back), one range read costs less than many lookups: where the
    // gaps were as many as the rows settled (two shards-mode engines), 2.2 ms read in id order
    // against 4.0 ms looked up one by one, for 1,000 gaps; about even at a third.
    const long long span = prev.cursor - settled.front() + 1;
    const long long gaps = span - static_cast<long long>(settled.size());
    if (gaps > std::max<long long>(64, static_cast<long long>(settled.size()) / 2))
        return pick_range(s, pipeline, limit, now, settled.front(), prev.cursor, Range::between, picker), true;
    std::vector<long long> between_ids;
    between_ids.reserve(static_cast<size_t>(gaps));
    auto next = settled.begin();
    for (long long id = settled.front(); id <= prev.cursor; ++id) {
        if (next != settled.end() && *next == id) ++next;
        else between_ids.push_back(id);
    }
    pick_ids(s, pipeline, limit, now, between_ids, picker);
    return true;
}

// Whether the claims of the batches out saw, between their rows, every row that can ever be there
// (ClaimSeen), and nothing since can have put one there: then claim_next need not read those ids
// again. In shards mode those ids are mostly the other members' rows, and reading the own shards'
// rows among them read the two batches out again: most of a claim's time with three engines.
// What can put a row there after it was looked at, and is ruled out here:
// - a transaction that committed later under an id handed out before: the id horizon was past
//   both claims' cursors when they read;
// - a row held back then (backing off, leased, behind its key): both claims held back none;
// - a settlement or release of this store that left rows pending: returned_ has not moved since
//   the earlier of the two claims began;
// - a shard this member did not own when they read: both read the shards claimable now.
// Anything else that makes an old row pending again (an operator requeueing a dead letter) is
// found by the read below the batches out, which every claim_next makes.
bool OutboxStore::saw_between(const Continuation& prev, const Picker& picker) const {
    // The batch prev follows, when it had rows: its claim read the lower part of the ids between.
    const ClaimSeen& first = prev.rows.size() > prev.own.size() ? prev.after_seen : prev.seen;
    if (!prev.seen.whole || !first.whole || returned_.load() != first.returned) return false;
    const std::string now = picker.shards ? picker.shards->shards : std::string();
    return prev.seen.shards == now && first.shards == now;
}

// Whether nothing below the batches out can be pending: every claim since the last that read it
// all (the chain) was whole and read the shards claimable now, and no settlement or release of
// this store left a row pending since it began. What else can make an old row pending again (an
// operator replaying dead letters from another process, an UPDATE by hand) is found by the read
// below, which comes back at least once a second (kChainUs), as it did in every claim before.
bool OutboxStore::saw_below(const Continuation& prev) const {
    constexpr int64_t kChainUs = 1'000'000;
    return prev.seen.chain_whole && returned_.load() == prev.seen.chain_returned &&
           host().monotonic_us() - prev.seen.chain_from_us < kChainUs;
}

bool OutboxStore::last_claim_found_rows(std::string_view pipeline) {
    std::lock_guard lock(found_mutex_);
    auto it = last_found_.find(std::string(pipeline));
    return it != last_found_.end() && it->second > 0;
}

void OutboxStore::remember_found(const std::string& pipeline, size_t found) {
    std::lock_guard lock(found_mutex_);
    last_found_[pipeline] = found;
}

namespace {
// A claim that found nothing still says where it looked, for a claim_next after it.
std::unique_ptr<sdk::Batch> nothing_claimed(std::string_view pipeline, long long cursor,
                                            const std::vector<long long>* after_rows) {
    auto b = std::make_unique<RowBatch>();
    b->claimed_for = pipeline;
    b->cursor = cursor;
    if (after_rows) b->after_rows = *after_rows;
    return b;
}
}  // namespace

std::unique_ptr<sdk::Batch> OutboxStore::claim(std::string_view pipeline, size_t limit, int64_t lease_ms) {
    return claim_rows(pipeline, limit, lease_ms, nullptr);
}

std::unique_ptr<sdk::Batch> OutboxStore::claim_next(const sdk::Batch& prev, size_t limit, int64_t lease_ms) {
    const auto* b = dynamic_cast<const RowBatch*>(&prev);
    if (!b || b->claimed_for.empty())
        throw sdk::Error(SW_REJECT, std::string(db_name_) + ": claim_next: prev is not a batch this store claimed");
    // prev's rows, and the rows of the batch prev follows: the relay may still be settling that one.
    Continuation after{b->claimed_for, b->cursor, b->after_rows, {}, b->seen, b->after_seen};
    for (const sw_event& e : b->events) after.own.push_back(e.row_id);
    after.rows.insert(after.rows.end(), after.own.begin(), after.own.end());
    return claim_rows(after.pipeline, limit, lease_ms, &after);
}

// One claim: read the pending rows in id order and pick (Picker) whole rows of the head, then
// narrowly further on while rows are held back. After `prev` (claim_next) prev's rows count as
// settled: the rows up to where its claim stopped are looked at again narrowly, because a row
// there other than prev's (held back then, or committed since with a smaller id) still comes
// before anything later of its key.
std::unique_ptr<sdk::Batch> OutboxStore::claim_rows(std::string_view pipeline_name, size_t limit, int64_t lease_ms,
                                                    const Continuation* prev) {
    if (limit == 0) return nothing_claimed(pipeline_name, prev ? prev->cursor : 0, prev ? &prev->own : nullptr);
    RowSet::Malformed malformed;
    auto batch = with_session("claim", [&](soci::session& s) {
        malformed.clear();  // a retried session starts the claim over
        return claim_in(s, std::string(pipeline_name), limit, lease_ms, prev, malformed);
    });
    // Parked once the claim's session is given back: parking is a completion (complete), in a session
    // and transaction of its own.
    if (!malformed.empty()) park_malformed(malformed);
    purge_published_when_due();
    return batch;
}

// What the picking read whole: the head's rows it picked, which are picker.picked[head_begin,
// head_end). The rows picked before them (claim_next's look back) and after them (past a head
// whose rows were held back) were read narrowly and are read whole once leased (load_picked).
struct OutboxStore::Picked {
    explicit Picked(size_t want) : head(want) {}
    RowSet head;
    size_t head_begin = 0, head_end = 0;
};

// The claim's transaction. Everything that decides which rows go out (the live leases, the
// pending rows, the new lease row) is read and written under the lease change lock, so two claims
// never hand out the same row or overtake each other's rows of a key.
std::unique_ptr<sdk::Batch> OutboxStore::claim_in(soci::session& s, const std::string& p, size_t limit,
                                                  int64_t lease_ms, const Continuation* prev,
                                                  std::vector<std::pair<long long, std::string>>& malformed) {
    const long long now = clock_us();
    const long long from = prev ? prev->cursor : 0;
    // coordination = "shards": only the rows of shards this engine owns, and owns for long enough
    // (checked again by the reads' SQL on the database's clock). Owners touch disjoint rows, and
    // no key spans two shards, so the claim takes no table lock.
    const std::optional<ShardFilter> shards = shard_filter(p);
    if (shards && shards->fenced > 0) host().count("relay_fenced_total", 1, ("pipeline=" + p + ",op=claim").c_str());
    if (shards && shards->shards.empty()) return nothing_claimed(p, from, prev ? &prev->own : nullptr);
    if (shards) lease_ms = std::min<int64_t>(lease_ms, shards->lease_cap_ms);
    // A trickle's claim in one round trip where the database can: a small claim, or one after a
    // claim that found few rows (the relay asks for batch_size rows, 100 by default, when one
    // waits). Not in shards mode (its filter and per-shard reads stay in the statements), nor when
    // the leases are due to be swept (the statements do that, every kLeaseSweepUs and at the first
    // claim). After a claim that found nothing it is asked first whether anything is due, unless
    // the one-trip claim asks that itself: either way an idle poll stays one statement.
    bool due = false;
    if (!shards && now < next_lease_sweep_us_.load() && (!prev || prev->rows.size() <= 2 * kOneTripRows)) {
        bool look_past = false;
        size_t found_last_time = 0;
        {
            std::lock_guard lock(found_mutex_);  // once per claim: both facts at one look
            look_past = look_past_head_.erase(p) > 0;
            const auto it = last_found_.find(p);
            found_last_time = it != last_found_.end() ? it->second : 0;
        }
        // A backlog's claims (the last one found more than a trickle's) go through the statements.
        const bool trickle = limit <= kOneTripRows || found_last_time < kOneTripRows;
        if (trickle && !look_past) {
            if (!prev && found_last_time == 0 && !one_trip_claim_gated()) {
                if (!anything_due(s, p, now, nullptr)) return nothing_claimed(p, from, nullptr);
                due = true;  // a store without the one-trip claim goes on to the statements unasked
            }
            if (auto out = claim_in_one_trip(s, p, limit, lease_ms, now, prev, malformed)) return std::move(*out);
        }
    }
    // After a claim that found rows more are likely (a stream of events, a backlog): the claim
    // goes straight to its transaction, one round trip sooner than asking first.
    if (!prev && !due && !last_claim_found_rows(p) && !anything_due(s, p, now, shards ? &*shards : nullptr))
        return nothing_claimed(p, from, nullptr);
    // A backlog's claim asks first how far the id horizon is (ClaimSeen): the claim_next after
    // two claims that saw everything reads less. Asked before the reads, so that what the
    // horizon says holds for them; a trickle's claims neither pay nor need it.
    ClaimSeen seen;
    seen.returned = returned_.load();
    const int64_t began_us = host().monotonic_us();
    if (shards) seen.shards = shards->shards;
    const long long horizon =
        limit > 2 * kOneTripRows ? id_horizon(s, from + 8 * static_cast<long long>(limit)) : 0;
    // BEGIN, the lock and the live leases in one round trip where the database allows it.
    const std::string begin = shards ? begin_sharded_claim_sql(p) : begin_lease_change_sql();
    const bool folded = begin_takes_a_statement();
    Tx tx(s, folded ? std::string() : begin);
    std::vector<Lease> leases = live_leases(s, now, folded ? &begin : nullptr);
    sweep_leases_when_due(s, now, leases);
    Picker picker = picker_for(leases, prev);
    picker.shards = shards ? &*shards : nullptr;
    bool read_below = true;
    Picked picked = pick(s, p, limit, now, prev, picker, read_below);
    remember_found(p, picker.picked.size());
    if (picker.picked.size() >= limit && limit > 2 * kOneTripRows) draining(p);
    const long long cursor = std::max(picker.seen, from);
    if (picker.picked.empty()) {
        tx.commit();
        return nothing_claimed(p, cursor, prev ? &prev->own : nullptr);
    }
    // A look back that filled the batch may have stopped short of prev's cursor: not whole.
    seen.whole = horizon >= cursor && picker.held == 0 && !(prev && picked.head_begin >= limit);
    if (read_below) {
        seen.chain_whole = seen.whole, seen.chain_returned = seen.returned, seen.chain_from_us = began_us;
    } else {
        seen.chain_whole = prev->seen.chain_whole && seen.whole && seen.shards == prev->seen.shards;
        seen.chain_returned = prev->seen.chain_returned, seen.chain_from_us = prev->seen.chain_from_us;
    }
    const long long until = now + std::max<int64_t>(lease_ms, 1) * 1000;
    const std::string lease_id = insert_lease(s, p, picker.picked, until);
    RowSet rows = load_picked(s, picker.picked, std::move(picked));
    tx.commit();
    // Known in memory only once committed: a rolled back claim leased nothing.
    remember_lease(std::stoll(lease_id), until, picker.picked, p);
    auto out = batch_of(rows, p, cursor, prev, malformed);
    static_cast<RowBatch*>(out.get())->seen = std::move(seen);
    return out;
}

// The batch a claim hands out: its rows, and where it stopped for a claim_next after it.
std::unique_ptr<sdk::Batch> OutboxStore::batch_of(RowSet& rows, const std::string& pipeline, long long cursor,
                                                  const Continuation* prev,
                                                  std::vector<std::pair<long long, std::string>>& malformed) {
    auto out = rows.to_batch(db_name_, sql_.header_names, &malformed);
    auto* b = static_cast<RowBatch*>(out.get());
    b->claimed_for = pipeline;
    b->cursor = cursor;
    if (prev) b->after_rows = prev->own, b->after_seen = prev->seen;
    return out;
}

// The same choice as the statements' (the Picker's rule, run by the database over a head of the
// pending rows: the PostgreSQL store's session function, or Statements::one_trip_claim), the same
// lease row, the same rows whole, in one round trip. The head starts at the first pending row,
// also after `prev` (claim_next): what the statements' look back finds below prev's cursor, rows
// held back then or committed since under a smaller id, is in it; prev's rows, and those of the
// batch before it, are skipped. The head is
// `limit` rows or 32, whichever is more; when all of it was held back the claim goes on statement
// by statement (they read past the head), and when part of it was the next claim does.
std::optional<std::unique_ptr<sdk::Batch>> OutboxStore::claim_in_one_trip(
    soci::session& s, const std::string& p, size_t limit, int64_t lease_ms, long long now, const Continuation* prev,
    std::vector<std::pair<long long, std::string>>& malformed) {
    const long long window = std::max<long long>(static_cast<long long>(limit), 32);
    const long long until = now + std::max<int64_t>(lease_ms, 1) * 1000;
    TextRows rows;
    std::vector<long long> skipped = prev ? prev->rows : std::vector<long long>{};
    std::sort(skipped.begin(), skipped.end());
    const HotArgs args = {{"p", p},         {"now1", now},
                          {"now2", now},    {"lim", window},
                          {"want", static_cast<long long>(limit)}, {"me", owner_},
                          {"until", until}, {"skip", encode_ids(skipped)}};
    if (!run_one_trip_claim(s, args, rows)) return std::nullopt;
    constexpr size_t kLeaseCol = 13, kReadCol = 14, kSeenCol = 15;
    // One row of the answer has no id: it says how many rows the head read, and the largest id.
    // The statement gives it last, but SQL promises no order without ORDER BY: it is looked for.
    const auto summary = std::find_if(rows.begin(), rows.end(), [](const auto& row) { return !row.empty() && !row[0]; });
    if (summary == rows.end() || summary->size() <= kSeenCol)
        throw sdk::Error(SW_RETRY, std::string(db_name_) + ": claim: the one-trip claim answered without its summary row");
    const long long read = (*summary)[kReadCol] ? std::stoll(*(*summary)[kReadCol]) : 0;
    // The lease is on every picked row, or (the PostgreSQL store's claim function) on the summary.
    const std::optional<std::string> summary_lease = (*summary)[kLeaseCol];
    const long long seen = (*summary)[kSeenCol] ? std::stoll(*(*summary)[kSeenCol]) : 0;
    rows.erase(summary);
    remember_found(p, rows.size());
    const long long cursor = std::max(seen, prev ? prev->cursor : 0);
    if (rows.empty()) {
        if (read == window) return std::nullopt;
        return nothing_claimed(p, cursor, prev ? &prev->own : nullptr);
    }
    if (read == window && rows.size() < limit) {
        std::lock_guard lock(found_mutex_);
        look_past_head_.insert(p);
    }
    std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return std::stoll(*a[0]) < std::stoll(*b[0]); });
    RowSet set(rows.size(), rows.size());
    std::vector<long long> ids;
    for (size_t i = 0; i < rows.size(); ++i) {
        auto& row = rows[i];
        const auto text = [&](size_t col, std::string& into, soci::indicator& ind) {
            ind = row[col] ? soci::i_ok : soci::i_null;
            if (row[col]) into = std::move(*row[col]);
        };
        const auto number = [&](size_t col, int& into, soci::indicator& ind) {
            ind = row[col] ? soci::i_ok : soci::i_null;
            into = row[col] ? std::stoi(*row[col]) : 0;
        };
        set.id[i] = *row[0];
        ids.push_back(std::stoll(set.id[i]));
        size_t col = 1;
        for (int k : {RowSet::kEv, RowSet::kPl, RowSet::kTp, RowSet::kKy, RowSet::kPa, RowSet::kHd, RowSet::kEt, RowSet::kCi})
            text(col++, set.str[k][i], set.ind[k][i]);
        number(9, set.flags[i], set.flags_ind[i]);
        text(10, set.created_at[i], set.created_ind[i]);
        number(11, set.attempts[i], set.attempts_ind[i]);
        text(12, set.str[RowSet::kLe][i], set.ind[RowSet::kLe][i]);
    }
    const std::optional<std::string>& lease = rows.front()[kLeaseCol] ? rows.front()[kLeaseCol] : summary_lease;
    if (!lease) throw sdk::Error(SW_RETRY, std::string(db_name_) + ": claim: the one-trip claim answered rows without a lease");
    // Known in memory once committed, which the query did.
    remember_lease(std::stoll(*lease), until, ids, p);
    return batch_of(set, p, cursor, prev, malformed);
}

// An idle poll costs this one statement: no transaction, no lock, when nothing is due.
bool OutboxStore::anything_due(soci::session& s, const std::string& pipeline, long long now,
                               const ShardFilter* shards) {
    std::string p = pipeline;
    long long now1 = now, now2 = now;
    int due = 0;
    if (shards) {
        ShardBinds b(pipeline, *shards);
        s << sharded_.due, soci::use(p, "p"), soci::use(now1, "now1"), soci::use(now2, "now2"), soci::use(b.p, "sp"),
            soci::use(b.m, "sm"), soci::use(b.ss, "ss"), soci::use(b.g, "sg"), soci::into(due);
        return s.got_data();
    }
    const std::string text = statement(s, Hot::kDue, {{"p", p}, {"now1", now1}, {"now2", now2}});
    if (text.empty())
        s << statements_.due, soci::use(p, "p"), soci::use(now1, "now1"), soci::use(now2, "now2"), soci::into(due);
    else
        s << text, soci::into(due);
    return s.got_data();
}

// Leases of crashed or stopped instances: harmless once expired, swept now and then. The first
// claim sweeps too (the time starts at 0): a restarted engine takes back at once what its killed
// predecessor on this host still held, instead of waiting out the lease. Swept in the claim's
// transaction, before the picking, so the rows come free in this very claim.
void OutboxStore::sweep_leases_when_due(soci::session& s, long long now, std::vector<Lease>& leases) {
    if (now < next_lease_sweep_us_.load()) return;
    next_lease_sweep_us_ = now + kLeaseSweepUs;
    long long cut = now;
    s << statements_.lease_sweep, soci::use(cut, "now");
    release_dead_owners(s, now, leases);
}

// A live lease holds back its rows' keys, whoever holds it: an earlier row of a key may still be
// sent (or retried) while it is out, and nothing later of the key may overtake it. The rows
// claim_next's caller takes as settled (prev's, and those of the batch prev followed) are the
// exception: the relay sends the new batch only once their results are in, and gives back its
// rows of any key they failed to deliver, so they neither hold keys back nor go out again.
OutboxStore::Picker OutboxStore::picker_for(const std::vector<Lease>& leases, const Continuation* prev) {
    Picker picker;
    if (prev) picker.assumed.insert(prev->rows.begin(), prev->rows.end());
    for (const Lease& l : leases)
        for (long long r : l.rows)
            if (!picker.assumed.count(r)) picker.leased.insert(r);
    return picker;
}

// Picks in id order, the order a key's rows must go out in: after prev, first what lies before
// where prev's claim stopped (look_back); then the head, whole rows, which in a drain (nothing held
// back) is the whole claim; then, only when the head came back full yet short of `limit` because
// rows were held back, narrowly further on, so a held-back key does not stall the other keys.
OutboxStore::Picked OutboxStore::pick(soci::session& s, const std::string& p, size_t limit, long long now,
                                      const Continuation* prev, Picker& picker, bool& read_below) {
    long long after = 0;
    if (prev) {
        read_below = look_back(s, p, limit, now, *prev, picker);
        after = prev->cursor;
    }
    const size_t want = limit - picker.picked.size();
    Picked picked(want);
    picked.head_begin = picker.picked.size();
    size_t read = 0;
    if (want > 0) read = read_head(s, p, limit, now, after, picker, picked.head);
    else picked.head.keep({});
    picked.head_end = picker.picked.size();
    if (picked.head_end < limit && want > 0 && read == want)
        pick_range(s, p, limit, now, picker.seen, std::numeric_limits<long long>::max(), Range::ahead, picker);
    return picked;
}

// The head, whole rows, with each row's blocks flag: the picker decides on them as they come, and
// `rows` keeps only the rows it took. Returns how many rows the read found.
size_t OutboxStore::read_head(soci::session& s, const std::string& pipeline, size_t limit, long long now,
                              long long after, Picker& picker, RowSet& rows) {
    std::string p = pipeline;
    size_t read = 0;
    std::vector<int> blocks(rows.id.size());
    long long now1 = now, now2 = now, lim = static_cast<long long>(limit - picker.picked.size());
    soci::statement st(s);
    rows.bind(st);
    st.exchange(soci::into(blocks));
    std::optional<ShardBinds> shards;
    if (picker.shards) shards.emplace(pipeline, *picker.shards);
    const std::string text =
        shards ? statement(s, Hot::kShardedHead,
                           shards->with(HotArgs{{"now1", now1}, {"now2", now2}, {"p", p}, {"after", after}, {"lim", lim}}))
               : statement(s, Hot::kHead, {{"now1", now1}, {"now2", now2}, {"p", p}, {"after", after}, {"lim", lim}});
    if (text.empty()) {
        st.exchange(soci::use(now1, "now1")), st.exchange(soci::use(now2, "now2")), st.exchange(soci::use(p, "p"));
        st.exchange(soci::use(after, "after")), st.exchange(soci::use(lim, "lim"));
        if (shards) shards->to(st);
    }
    prepare_once(st, !text.empty() ? text : shards ? sharded_.head : statements_.head);
    if (st.execute(true)) read = rows.size();
    std::vector<size_t> keep;
    for (size_t i = 0; i < read && picker.picked.size() < limit; ++i) {
        const bool keyed = rows.ind[RowSet::kKy][i] == soci::i_ok;
        if (picker.take(std::stoll(rows.id[i]), keyed ? &rows.str[RowSet::kKy][i] : nullptr, blocks[i] != 0))
            keep.push_back(i);
    }
    rows.keep(keep);
    return read;
}

// One lease row for the whole batch, written before the rows are read whole: from this insert on,
// in this transaction, the rows are ours, and any claim after the commit finds them leased.
std::string OutboxStore::insert_lease(soci::session& s, const std::string& pipeline,
                                      const std::vector<long long>& picked, long long until_us) {
    std::string me = owner_, p = pipeline, ids = encode_ids(picked), lease_id;
    long long until = until_us;
    const std::string text = statement(s, Hot::kLeaseInsert, {{"me", me}, {"p", p}, {"until", until}, {"ids", ids}});
    if (text.empty())
        s << statements_.lease_insert, soci::use(me, "me"), soci::use(p, "p"), soci::use(until, "until"),
            soci::use(ids, "ids"), soci::into(lease_id);
    else
        s << text, soci::into(lease_id);
    return lease_id;
}

// The batch's rows, whole, in id order (the order the relay sends a key's rows in): those the
// narrow reads picked before the head, the head's, and those picked after it.
OutboxStore::RowSet OutboxStore::load_picked(soci::session& s, const std::vector<long long>& picked,
                                             Picked&& got) {
    const auto at = [&](size_t i) { return picked.begin() + static_cast<std::ptrdiff_t>(i); };
    RowSet rows = std::move(got.head);
    if (got.head_begin > 0) {
        RowSet first = read_claimed(s, std::vector<long long>(at(0), at(got.head_begin)));
        first.append(std::move(rows));
        rows = std::move(first);
    }
    if (picked.size() > got.head_end) rows.append(read_claimed(s, std::vector<long long>(at(got.head_end), picked.end())));
    return rows;
}

OutboxStore::RowSet OutboxStore::read_claimed(soci::session& s, const std::vector<long long>& ids) {
    std::string picked_ids = encode_ids(ids);
    RowSet more(ids.size());
    soci::statement st(s);
    st.exchange(soci::use(picked_ids, "ids"));
    more.bind(st);
    prepare_once(st, statements_.claimed);
    if (!st.execute(true)) more.keep({});
    return more;
}

}  // namespace spillway::plugins::outbox
