// What the host and `spillway outbox status` read of the backlog: counts, and pending rows per key.
#include "outbox_store.hpp"
#include "store_internal.hpp"

#include <algorithm>
#include <string>

namespace spillway::plugins::outbox {

sdk::Stats OutboxStore::stats(std::string_view pipeline_name) {
    // "*" (never a pipeline name): the whole table, whatever pipeline its rows name, so that
    // `spillway outbox status` can tell rows no configured pipeline relays.
    const bool whole_table = pipeline_name == "*";
    return with_session("stats", [&](soci::session& s) {
        std::string p(pipeline_name);
        long long now = clock_us();
        long long pending = 0, leased = 0, dead = 0, oldest = 0;
        soci::indicator oldest_ind = soci::i_null;
        std::string counts = statements_.stats, lease_rows = statements_.leased_count;
        if (whole_table) {
            counts = counts.substr(0, counts.rfind(" WHERE "));
            lease_rows = lease_rows.substr(0, lease_rows.rfind(" AND pipeline = :p"));
        }
        // A pipeline's count is the backlog bound's base too (the engine asks once a second while
        // Kafka is down): rows other writers inserted count from here.
        const bool bounded = !whole_table && opts_.max_pending > 0;
        const unsigned long long finished_before = bounded ? count_begins(p) : 0;
        if (whole_table)
            s << counts, soci::use(now, "now"), soci::into(pending), soci::into(leased), soci::into(dead),
                soci::into(oldest, oldest_ind);
        else
            s << counts, soci::use(now, "now"), soci::use(p, "p"), soci::into(pending), soci::into(leased),
                soci::into(dead), soci::into(oldest, oldest_ind);
        if (bounded) count_ended(p, pending, finished_before, 0, 0);
        // Leased rows: the per-row leases of engines on schema version 2, and the lease table's.
        std::vector<std::string> lid(kFetchChunk), rows(kFetchChunk);
        soci::statement q(s);
        q.exchange(soci::use(now, "now"));
        if (!whole_table) q.exchange(soci::use(p, "p"));
        q.exchange(soci::into(lid));
        q.exchange(soci::into(rows));
        prepare_once(q, lease_rows);
        q.execute();
        while (q.fetch()) {
            for (const auto& r : rows) leased += static_cast<long long>(decode_ids(r).size());
            lid.resize(kFetchChunk), rows.resize(kFetchChunk);
        }
        sdk::Stats st;
        st.pending = pending;
        st.leased = leased;
        st.dead = dead;
        st.oldest_pending_age_ms = (pending > 0 && oldest_ind == soci::i_ok && oldest > 0)
                                       ? std::max<long long>(0, (now - oldest) / 1000)
                                       : 0;
        return st;
    });
}

void OutboxStore::pending_keys(std::string_view pipeline_name, sw_key_visit_fn visit, void* user) {
    // Collected first, visited after the session is returned: the visitor may call back into us.
    using Counted = std::vector<std::pair<std::string, long long>>;
    Counted all = with_session("pending_keys", [&](soci::session& s) {
        std::string p(pipeline_name);
        std::vector<std::string> keys(kFetchChunk);
        std::vector<long long> counts(kFetchChunk);
        Counted out;
        soci::statement st(s);
        st.exchange(soci::use(p, "p")), st.exchange(soci::into(keys)), st.exchange(soci::into(counts));
        prepare_once(st, statements_.keys);
        st.execute();
        while (st.fetch()) {
            for (size_t i = 0; i < keys.size(); ++i) out.emplace_back(std::move(keys[i]), counts[i]);
            keys.resize(kFetchChunk);
            counts.resize(kFetchChunk);
        }
        return out;
    });
    // Once per pending row: the host counts the visits.
    for (const auto& [k, n] : all)
        for (long long i = 0; i < n; ++i) visit(user, sdk::bytes(k));
}

}  // namespace spillway::plugins::outbox
