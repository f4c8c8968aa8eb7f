// Rows read from the outbox table into a batch: decoded, and the undecodable ones told apart.
#include "outbox_store.hpp"
#include "store_internal.hpp"

#include "codec.hpp"

namespace spillway::plugins::outbox {

std::unique_ptr<sdk::Batch> OutboxStore::RowSet::to_batch([[maybe_unused]] const char* db, Malformed* malformed) {
    auto batch = std::make_unique<RowBatch>();
    const size_t n = size();
    batch->rows.resize(n);
    batch->events.resize(n);
    auto text = [&](int k, size_t i) -> std::string {
        return ind[k][i] == soci::i_ok ? std::move(str[k][i]) : std::string();
    };
    auto present = [&](int k, size_t i) { return ind[k][i] == soci::i_ok; };
    // A claimed row that cannot be decoded is the caller's to park (`malformed`); a listed one
    // (a dead letter) is shown as stored, without what could not be decoded: its last_error says why.
    auto bad = [&](size_t i, const std::string& why) {
        if (!malformed) return false;
        malformed->emplace_back(std::stoll(id[i]), why);
        return true;
    };
    size_t w = 0;  // rows kept so far
    for (size_t i = 0; i < n; ++i) {
        RowBatch::Row& r = batch->rows[w];
        r = RowBatch::Row{};
        const int fl = flags_ind[i] == soci::i_ok ? flags[i] : 0;
        r.event_id = text(kEv, i);
        r.pipeline = text(kPl, i);
        r.topic = text(kTp, i);
        r.has_key = present(kKy, i);
        r.key = text(kKy, i);
        r.payload = text(kPa, i);
        if (fl & SW_EVENT_PAYLOAD_BINARY) {
            try {
                r.payload = base64_decode(r.payload);
            } catch (const std::exception& e) {
                if (bad(i, std::string("binary payload is not valid base64: ") + e.what())) continue;
            }
        }
        try {
            if (present(kHd, i)) r.headers = decode_headers(str[kHd][i]);
        } catch (const std::exception& e) {
            if (bad(i, e.what())) continue;
            r.headers.clear();
        }
        r.has_event_type = present(kEt, i);
        r.event_type = text(kEt, i);
        r.has_correlation_id = present(kCi, i);
        r.correlation_id = text(kCi, i);
        r.has_last_error = present(kLe, i);
        r.last_error = text(kLe, i);
        for (const auto& [name, value] : r.headers) r.header_spans.push_back({sdk::bytes(name), sdk::bytes(value)});

        sw_event& ev = batch->events[w++];
        ev = sw_event{};
        ev.struct_size = sizeof(sw_event);
        ev.flags = static_cast<uint32_t>(fl);
        ev.row_id = std::stoll(id[i]);
        ev.event_id = sdk::bytes(r.event_id);
        ev.pipeline = sdk::bytes(r.pipeline);
        ev.topic = sdk::bytes(r.topic);
        ev.key = r.has_key ? sdk::bytes(r.key) : sw_bytes{nullptr, 0};
        ev.payload = sdk::bytes(r.payload);
        ev.event_type = r.has_event_type ? sdk::bytes(r.event_type) : sw_bytes{nullptr, 0};
        ev.correlation_id = r.has_correlation_id ? sdk::bytes(r.correlation_id) : sw_bytes{nullptr, 0};
        ev.headers = r.header_spans.empty() ? nullptr : r.header_spans.data();
        ev.n_headers = r.header_spans.size();
        ev.created_at_us = created_ind[i] == soci::i_ok ? std::stoll(created_at[i]) : 0;
        ev.attempts = attempts_ind[i] == soci::i_ok ? attempts[i] : 0;
        ev.last_error = r.has_last_error ? sdk::bytes(r.last_error) : sw_bytes{nullptr, 0};
    }
    batch->rows.resize(w);  // shrinking keeps the kept rows (and the spans into them) in place
    batch->events.resize(w);
    return batch;
}

}  // namespace spillway::plugins::outbox
