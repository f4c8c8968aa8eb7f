#include "engine/plugin/store_admin.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>

namespace spillway::plugin {

namespace {
std::string text(const sw_bytes& b) { return b.ptr ? std::string(b.ptr, b.len) : std::string(); }

std::vector<sw_bytes> spans(const std::vector<std::string>& ids) {
    std::vector<sw_bytes> out;
    for (const auto& id : ids) out.push_back({id.data(), id.size()});
    return out;
}
}  // namespace

StoreAdmin::StoreAdmin(plugin::Instance& store) : store_(store) {}

void StoreAdmin::fail(const char* what, sw_status status) {
    throw plugin::PluginError(status, store_.id() + ": " + what + ": " + store_.describe(status));
}

StoreCounts StoreAdmin::counts(const std::string& pipeline) {
    sw_store_stats stats{};
    if (const sw_status st = store_.stats(pipeline, stats); st != SW_OK) fail("stats", st);
    return {stats.pending, stats.leased, stats.dead, stats.oldest_pending_age_ms};
}

std::vector<DeadLetter> StoreAdmin::list_dead(const std::string& pipeline, int64_t after_row_id, size_t limit) {
    sw_batch batch{};
    batch.struct_size = sizeof batch;
    if (const sw_status st = store_.list_dead(pipeline, after_row_id, limit, batch); st != SW_OK) fail("list_dead", st);
    std::vector<DeadLetter> out;
    for (size_t i = 0; i < batch.n; ++i) {
        const sw_event& e = batch.events[i];
        DeadLetter d;
        d.row_id = e.row_id;
        d.event_id = text(e.event_id);
        d.topic = text(e.topic);
        if (e.key.ptr) d.key = text(e.key);
        d.payload = text(e.payload);
        d.binary = (e.flags & SW_EVENT_PAYLOAD_BINARY) != 0;
        d.event_type = text(e.event_type);
        d.correlation_id = text(e.correlation_id);
        d.last_error = text(e.last_error);
        for (size_t h = 0; h < e.n_headers; ++h) d.headers.emplace_back(text(e.headers[h].name), text(e.headers[h].value));
        d.created_at_us = e.created_at_us;
        d.attempts = e.attempts;
        out.push_back(std::move(d));
    }
    store_.release_batch(batch);
    return out;
}

int64_t StoreAdmin::replay(const std::string& pipeline, const std::vector<std::string>& event_ids) {
    int64_t n = 0;
    if (const sw_status st = store_.replay_dead(pipeline, spans(event_ids), n); st != SW_OK) fail("replay_dead", st);
    return n;
}

int64_t StoreAdmin::purge(const std::string& pipeline, const std::vector<std::string>& event_ids) {
    int64_t n = 0;
    if (const sw_status st = store_.purge_dead(pipeline, spans(event_ids), n); st != SW_OK) fail("purge_dead", st);
    return n;
}

std::vector<std::string> StoreAdmin::migrate() {
    const sw_status st = store_.migrate();
    if (st != SW_OK) fail("migrate", st);
    // describe() takes the call's message: "OK" alone, or "OK: <report>".
    const std::string said = store_.describe(st);
    const std::string prefix = std::string(plugin::status_name(SW_OK)) + ": ";
    std::vector<std::string> steps;
    if (said.rfind(prefix, 0) != 0) return steps;
    std::string report = said.substr(prefix.size());
    for (size_t from = 0; from <= report.size();) {
        const size_t nl = std::min(report.find('\n', from), report.size());
        if (nl > from) steps.push_back(report.substr(from, nl - from));
        from = nl + 1;
    }
    return steps;
}

StoreCounts StoreAdmin::counts_whole_table() { return counts("*"); }

Unrelayed unrelayed(StoreAdmin& admin, const std::vector<std::string>& pipelines) {
    Unrelayed u;
    int64_t relayed = 0;
    for (const auto& p : pipelines) relayed += admin.counts(p).pending;
    u.pending = std::max<int64_t>(0, admin.counts_whole_table().pending - relayed);
    if (u.pending > 0) u.without_pipeline = admin.counts("").pending;
    return u;
}

std::string unrelayed_warning(const std::string& store_id, const Unrelayed& u) {
    if (u.pending <= 0) return {};
    std::string w = "warning: " + store_id + " holds " + std::to_string(u.pending) +
                    " pending row(s) that no configured pipeline relays (their pipeline names none of the "
                    "pipelines using this store)";
    if (u.without_pipeline > 0)
        w += "; " + std::to_string(u.without_pipeline) +
             " of them have no pipeline at all (rows an application wrote): set the store's adopt_pipeline to "
             "the pipeline that takes them and run `spillway outbox migrate`";
    return w;
}

}  // namespace spillway::plugin
