// Dead letters: rows that will not be sent (rejected, out of attempts, malformed), listed, replayed
// as pending or purged.
#include "outbox_store.hpp"
#include "store_internal.hpp"

#include <cstdio>
#include <string>

namespace spillway::plugins::outbox {

// Rows a claim leased but could not decode (an application wrote headers that are not a JSON object
// of at most 64 levels, or a binary payload that is not base64) go to the dead letters with the
// reason, as a rejected event would: sending them is impossible, and retrying them would fail the
// claim of their key for ever.
void OutboxStore::park_malformed(const std::vector<std::pair<long long, std::string>>& malformed) {
    std::vector<int64_t> ids;
    std::vector<sw_result> results;
    for (const auto& [row, why] : malformed) {
        host().warn(std::string(db_name_) + ": row " + std::to_string(row) + " of " + opts_.table +
                    " cannot be decoded and goes to the dead letters: " + why);
        ids.push_back(row);
        sw_result r{};
        r.status = SW_REJECT;
        r.partition = -1;
        r.offset = -1;
        std::snprintf(r.message, sizeof r.message, "malformed row: %s", why.c_str());
        results.push_back(r);
    }
    complete(ids, results);
}

std::unique_ptr<sdk::Batch> OutboxStore::list_dead(std::string_view pipeline_name, int64_t after_row_id, size_t limit) {
    if (limit == 0) return std::make_unique<sdk::Batch>();
    return with_session("list_dead", [&](soci::session& s) -> std::unique_ptr<sdk::Batch> {
        std::string p(pipeline_name);
        long long after = after_row_id, lim = static_cast<long long>(limit);
        RowSet rows(limit);
        soci::statement st(s);
        rows.bind(st);
        st.exchange(soci::use(p, "p"));
        st.exchange(soci::use(after, "after"));
        st.exchange(soci::use(lim, "lim"));
        prepare_once(st, statements_.dead);
        if (!st.execute(true)) return std::make_unique<sdk::Batch>();
        return rows.to_batch(db_name_, sql_.header_names);
    });
}

namespace {
// Runs `all_sql` (no ids) or `one_sql` once per event id; returns the rows affected.
int64_t by_event_ids(soci::session& s, const std::string& all_sql, const std::string& one_sql, std::string p,
                     std::span<const sw_bytes> event_ids) {
    if (event_ids.empty()) {
        soci::statement st = (s.prepare << all_sql, soci::use(p, "p"));
        st.execute(true);
        return st.get_affected_rows();
    }
    std::string ev1, ev2;  // one value, bound where each of the two tests takes it
    soci::statement st = (s.prepare << one_sql, soci::use(p, "p"), soci::use(ev1, "ev1"), soci::use(ev2, "ev2"));
    int64_t n = 0;
    for (const sw_bytes& id : event_ids) {
        ev1.assign(sdk::view(id));
        ev2 = ev1;
        st.execute(true);
        n += st.get_affected_rows();
    }
    return n;
}
}  // namespace

int64_t OutboxStore::replay_dead(std::string_view pipeline_name, std::span<const sw_bytes> event_ids) {
    ++returned_;  // old rows pending again (ClaimSeen); another process's replay is found later
    const int64_t n = with_session("replay_dead", [&](soci::session& s) {
        Tx tx(s, begin_write_sql());
        const int64_t n = by_event_ids(s, statements_.replay_all, statements_.replay_one, std::string(pipeline_name), event_ids);
        tx.commit();
        return n;
    });
    // Not refused at max_pending (the rows are there already), but part of the backlog now.
    if (opts_.max_pending > 0 && n > 0) became_pending(std::string(pipeline_name), n);
    return n;
}

int64_t OutboxStore::purge_dead(std::string_view pipeline_name, std::span<const sw_bytes> event_ids) {
    return with_session("purge_dead", [&](soci::session& s) {
        Tx tx(s, begin_write_sql());
        const int64_t n = by_event_ids(s, statements_.purge_all, statements_.purge_one, std::string(pipeline_name), event_ids);
        tx.commit();
        return n;
    });
}

}  // namespace spillway::plugins::outbox
