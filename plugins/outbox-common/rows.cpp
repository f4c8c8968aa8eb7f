// Rows read from the outbox table into a batch: decoded, and the undecodable ones told apart.
#include "outbox_store.hpp"
#include "store_internal.hpp"

#include "codec.hpp"

namespace spillway::plugins::outbox {

std::unique_ptr<sdk::Batch> OutboxStore::RowSet::to_batch([[maybe_unused]] const char* db,
                                                          const std::vector<std::string>& header_names,
                                                          Malformed* malformed) {
    auto batch = std::make_unique<RowBatch>();
    const size_t n = size();
    batch->rows.resize(n);
    batch->events.resize(n);
    size_t w = 0;  // rows kept so far
    for (size_t i = 0; i < n; ++i) {
        RowBatch::Row& r = batch->rows[w];
        r = RowBatch::Row{};
        if (!decode_row(i, r, header_names, malformed)) continue;
        batch->events[w++] = event_of(i, r);
    }
    batch->rows.resize(w);  // shrinking keeps the kept rows (and the spans into them) in place
    batch->events.resize(w);
    return batch;
}

bool OutboxStore::RowSet::decode_row(size_t i, RowBatch::Row& r, const std::vector<std::string>& header_names,
                                     Malformed* malformed) {
    auto text = [&](int k) -> std::string { return ind[k][i] == soci::i_ok ? std::move(str[k][i]) : std::string(); };
    auto present = [&](int k) { return ind[k][i] == soci::i_ok; };
    // A nullable column: whether it was set, and its text.
    auto optional = [&](int k, bool& has, std::string& value) {
        has = present(k);
        value = text(k);
    };
    // A claimed row that cannot be decoded is the caller's to park (`malformed`); a listed one
    // (a dead letter) is shown as stored, without what could not be decoded: its last_error says why.
    auto bad = [&](const std::string& why) {
        if (!malformed) return false;
        malformed->emplace_back(std::stoll(id[i]), why);
        return true;
    };
    const int fl = flags_ind[i] == soci::i_ok ? flags[i] : 0;
    r.event_id = text(kEv);
    r.pipeline = text(kPl);
    r.topic = text(kTp);
    optional(kKy, r.has_key, r.key);
    r.payload = text(kPa);
    if (fl & SW_EVENT_PAYLOAD_BINARY) {
        try {
            r.payload = base64_decode(r.payload);
        } catch (const std::exception& e) {
            if (bad(std::string("binary payload is not valid base64: ") + e.what())) return false;
        }
    }
    // With columns.headers.<name>, the column is the row's own headers and the mapped columns'
    // values (Sql::headers); those come after the row's own, and stay when its own do not decode.
    std::string_view own = present(kHd) ? std::string_view(str[kHd][i]) : std::string_view();
    std::vector<std::pair<std::string, std::string>> mapped;
    if (!header_names.empty() && present(kHd)) {
        try {
            own = split_column_headers(own, header_names, mapped);
        } catch (const std::exception& e) {
            if (bad(e.what())) return false;
            own = {};
        }
    }
    try {
        r.headers = decode_headers(own);
    } catch (const std::exception& e) {
        if (bad(e.what())) return false;
        r.headers.clear();
    }
    for (auto& h : mapped) r.headers.push_back(std::move(h));
    optional(kEt, r.has_event_type, r.event_type);
    optional(kCi, r.has_correlation_id, r.correlation_id);
    optional(kLe, r.has_last_error, r.last_error);
    for (const auto& [name, value] : r.headers) r.header_spans.push_back({sdk::bytes(name), sdk::bytes(value)});
    return true;
}

sw_event OutboxStore::RowSet::event_of(size_t i, const RowBatch::Row& r) const {
    // What an event's nullable field points at: the row's text, or nothing.
    auto view_or_null = [](bool has, const std::string& value) { return has ? sdk::bytes(value) : sw_bytes{nullptr, 0}; };
    sw_event ev{};
    ev.struct_size = sizeof(sw_event);
    ev.flags = static_cast<uint32_t>(flags_ind[i] == soci::i_ok ? flags[i] : 0);
    ev.row_id = std::stoll(id[i]);
    ev.event_id = sdk::bytes(r.event_id);
    ev.pipeline = sdk::bytes(r.pipeline);
    ev.topic = sdk::bytes(r.topic);
    ev.key = view_or_null(r.has_key, r.key);
    ev.payload = sdk::bytes(r.payload);
    ev.event_type = view_or_null(r.has_event_type, r.event_type);
    ev.correlation_id = view_or_null(r.has_correlation_id, r.correlation_id);
    ev.headers = r.header_spans.empty() ? nullptr : r.header_spans.data();
    ev.n_headers = r.header_spans.size();
    ev.created_at_us = created_ind[i] == soci::i_ok ? std::stoll(created_at[i]) : 0;
    ev.attempts = attempts_ind[i] == soci::i_ok ? attempts[i] : 0;
    ev.last_error = view_or_null(r.has_last_error, r.last_error);
    return ev;
}

}  // namespace spillway::plugins::outbox
