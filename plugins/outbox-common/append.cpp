// Appending events to the outbox table, within the max_pending bound (backlog.cpp).
#include "outbox_store.hpp"
#include "store_internal.hpp"

#include "codec.hpp"

#include <algorithm>
#include <string>

namespace spillway::plugins::outbox {

namespace {

// max_pending: an append that finds no room by the backlog bound counts the pending rows again at
// most this often (and at most a twentieth of the time), answering FULL in between.
constexpr int64_t kMinRecountUs = 100'000;

}  // namespace

void OutboxStore::append(std::span<const sw_event> events, std::span<sw_result> out) {
    if (events.empty()) return;
    // max_pending: each pipeline's rows are reserved under its backlog bound first, with no
    // database call while there is room; only a pipeline without room is counted, in the
    // transaction that would add its rows.
    struct Adding {
        std::string pipeline;
        long long rows = 0, duplicates = 0;
        bool reserved = false, counting = false;
    };
    std::vector<Adding> adding;  // one per pipeline of the batch; none when unbounded
    const auto of = [&](std::string_view pipeline) -> Adding& {
        for (auto& a : adding)
            if (a.pipeline == pipeline) return a;
        return adding.emplace_back(Adding{std::string(pipeline)});
    };
    const auto full = [&](const std::string& pipeline) {
        return sdk::Error(SW_FULL, "outbox backlog for pipeline " + pipeline + " is at max_pending=" +
                                       std::to_string(opts_.max_pending));
    };
    if (opts_.max_pending > 0)
        for (const auto& ev : events) ++of(sdk::view(ev.pipeline)).rows;
    bool committing = false;
    try {
        std::vector<size_t> to_count;
        for (size_t i = 0; i < adding.size(); ++i) {
            // Waiting for another append's count only while this one holds no count itself: two
            // appends of several pipelines never wait for each other.
            const Room room = reserve_backlog(adding[i].pipeline, adding[i].rows, to_count.empty());
            if (room == Room::kFull) throw full(adding[i].pipeline);
            adding[i].reserved = room == Room::kReserved;
            adding[i].counting = room == Room::kCount;
            if (adding[i].counting) to_count.push_back(i);
        }
        with_session("append", [&](soci::session& s) {
            Tx tx(s, begin_write_sql());
            for (size_t i : to_count) {
                Adding& a = adding[i];
                long long pending = 0, lim = opts_.max_pending;
                std::string p = a.pipeline;
                const unsigned long long finished_before = count_begins(p);
                const int64_t started = host().monotonic_us();
                s << statements_.count_pending, soci::use(p, "p"), soci::use(lim, "lim"), soci::into(pending);
                // The next count costs as much: at most a twentieth of the time goes to counting.
                const int64_t ended = host().monotonic_us();
                const int64_t recount_at = ended + std::max<int64_t>(kMinRecountUs, (ended - started) * 20);
                a.reserved = count_ended(p, pending, finished_before, a.rows, recount_at);
                a.counting = false;
                if (!a.reserved) throw full(p);
            }
            insert(s, events, out, [&](std::string_view pipeline) {
                if (!adding.empty()) ++of(pipeline).duplicates;
            });
            committing = true;
            tx.commit();
        });
    } catch (...) {
        // Nothing stored, unless the commit itself failed: then perhaps stored, and counted so.
        for (const auto& a : adding) {
            if (a.reserved) append_ended(a.pipeline, a.rows, committing ? 0 : a.rows);
            if (a.counting) count_abandoned(a.pipeline);
        }
        throw;
    }
    for (const auto& a : adding)
        if (a.reserved) append_ended(a.pipeline, a.rows, a.duplicates);
}

template <class OnDuplicate>
void OutboxStore::insert(soci::session& s, std::span<const sw_event> events, std::span<sw_result> out,
                         OnDuplicate&& on_duplicate) {
    std::string ev_id, pipeline, topic, key, payload, headers, event_type, correlation_id;
    soci::indicator key_ind, headers_ind, type_ind, corr_ind;
    int flags = 0;
    long long created = 0;
    soci::statement st(s);
    st.exchange(soci::use(ev_id, "ev")), st.exchange(soci::use(pipeline, "pl")), st.exchange(soci::use(topic, "tp"));
    st.exchange(soci::use(key, key_ind, "ky")), st.exchange(soci::use(payload, "pa"));
    if (!sql_.shard_value.empty()) st.exchange(soci::use(key, key_ind, "ky2"));
    st.exchange(soci::use(headers, headers_ind, "hd")), st.exchange(soci::use(event_type, type_ind, "et"));
    st.exchange(soci::use(correlation_id, corr_ind, "ci")), st.exchange(soci::use(flags, "fl"));
    st.exchange(soci::use(created, "ca"));
    // Prepared on the server only when it runs more than once.
    prepare_once(st, statements_.insert, events.size() == 1 ? soci::details::st_one_time_query
                                                      : soci::details::st_repeatable_query);
    const int64_t now = clock_us();
    for (size_t i = 0; i < events.size(); ++i) {
        const sw_event& ev = events[i];
        if (!sdk::present(ev.event_id) || ev.event_id.len == 0)
            throw sdk::Error(SW_REJECT, std::string(db_name_) + ": append: event " + std::to_string(i) +
                                            " has no event_id");
        ev_id.assign(sdk::view(ev.event_id));
        pipeline.assign(sdk::view(ev.pipeline));
        topic.assign(sdk::view(ev.topic));
        key.assign(sdk::view(ev.key));
        key_ind = sdk::present(ev.key) ? soci::i_ok : soci::i_null;
        flags = static_cast<int>(ev.flags & SW_EVENT_PAYLOAD_BINARY);
        if (flags & SW_EVENT_PAYLOAD_BINARY) payload = base64_encode(sdk::view(ev.payload));
        else payload.assign(sdk::view(ev.payload));
        headers_ind = ev.n_headers ? soci::i_ok : soci::i_null;
        headers = ev.n_headers ? encode_headers(ev.headers, ev.n_headers) : std::string();
        event_type.assign(sdk::view(ev.event_type));
        type_ind = sdk::present(ev.event_type) ? soci::i_ok : soci::i_null;
        correlation_id.assign(sdk::view(ev.correlation_id));
        corr_ind = sdk::present(ev.correlation_id) ? soci::i_ok : soci::i_null;
        created = ev.created_at_us > 0 ? ev.created_at_us : now;
        st.execute(true);
        const bool duplicate = st.get_affected_rows() == 0;
        if (duplicate) on_duplicate(std::string_view(pipeline));
        sdk::set_result(out[i], SW_OK, "", duplicate ? SW_RESULT_DUPLICATE : 0);
    }
}

}  // namespace spillway::plugins::outbox
