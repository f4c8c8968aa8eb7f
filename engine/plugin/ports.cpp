#include "engine/plugin/ports.hpp"

#include <algorithm>
#include <cstddef>

namespace spillway::plugin {

SinkPort::Sent SinkPort::send(std::span<const sw_event> events, std::span<sw_result> results,
                              int64_t timeout_ms) const {
    auto use = i_->use();
    auto scope = i_->call("send");
    const sw_status st =
        i_->vt<sw_sink_vtable>().send(use.get(), events.data(), events.size(), results.data(), timeout_ms);
    return {st, use.generation()};
}

sw_status SinkPort::flush(int64_t timeout_ms) const {
    auto use = i_->use();
    auto scope = i_->call("flush");
    return i_->vt<sw_sink_vtable>().flush(use.get(), timeout_ms);
}

sw_status StorePort::migrate() const {
    auto scope = i_->call("migrate");
    return i_->vt<sw_store_vtable>().migrate(i_->get());
}

sw_status StorePort::append(std::span<const sw_event> events, std::span<sw_result> results) const {
    auto scope = i_->call("append");
    return i_->vt<sw_store_vtable>().append(i_->get(), events.data(), events.size(), results.data());
}

sw_status StorePort::claim(const std::string& pipeline, size_t limit, int64_t lease_ms, sw_batch& out) const {
    auto scope = i_->call("claim");
    return i_->vt<sw_store_vtable>().claim(i_->get(), pipeline.c_str(), limit, lease_ms, &out);
}

bool StorePort::has_claim_next() const { return i_->has_slot(offsetof(sw_store_vtable, claim_next)); }

sw_status StorePort::claim_next(const sw_batch& prev, size_t limit, int64_t lease_ms, sw_batch& out) const {
    auto scope = i_->call("claim_next");
    return i_->vt<sw_store_vtable>().claim_next(i_->get(), &prev, limit, lease_ms, &out);
}

bool StorePort::has_pending_among() const { return i_->has_slot(offsetof(sw_store_vtable, pending_among)); }

sw_status StorePort::pending_among(const std::string& pipeline, std::span<const sw_bytes> keys,
                                   std::span<uint8_t> found) const {
    auto scope = i_->call("pending_among");
    return i_->vt<sw_store_vtable>().pending_among(i_->get(), pipeline.c_str(), keys.data(),
                                                   std::min(keys.size(), found.size()), found.data());
}

bool StorePort::has_coordination() const { return i_->has_slot(offsetof(sw_store_vtable, coordination)); }

sw_status StorePort::coordination(const std::string& pipeline, std::string& out) const {
    auto scope = i_->call("coordination");
    auto visit = [](void* user, sw_bytes text) { static_cast<std::string*>(user)->assign(text.ptr, text.len); };
    return i_->vt<sw_store_vtable>().coordination(i_->get(), pipeline.c_str(), visit, &out);
}

bool StorePort::has_sink_health() const { return i_->has_slot(offsetof(sw_store_vtable, sink_health)); }

sw_status StorePort::sink_health(const std::string& pipeline, sw_health_state state) const {
    auto scope = i_->call("sink_health");
    return i_->vt<sw_store_vtable>().sink_health(i_->get(), pipeline.c_str(), static_cast<int32_t>(state));
}

bool StorePort::has_hold() const { return i_->has_slot(offsetof(sw_store_vtable, hold)); }

sw_status StorePort::hold(const std::string& pipeline, sw_hold_mode mode, const std::string& member) const {
    auto scope = i_->call("hold");
    return i_->vt<sw_store_vtable>().hold(i_->get(), pipeline.c_str(), static_cast<uint32_t>(mode), member.c_str());
}

void StorePort::release_batch(sw_batch& batch) const {
    auto scope = i_->call("release_batch");
    i_->vt<sw_store_vtable>().release_batch(i_->get(), &batch);
}

sw_status StorePort::complete(std::span<const int64_t> row_ids, std::span<const sw_result> results) const {
    auto scope = i_->call("complete");
    return i_->vt<sw_store_vtable>().complete(i_->get(), row_ids.data(), results.data(), row_ids.size());
}

sw_status StorePort::release_leases(std::span<const int64_t> row_ids) const {
    auto scope = i_->call("release_leases");
    return i_->vt<sw_store_vtable>().release_leases(i_->get(), row_ids.data(), row_ids.size());
}

sw_status StorePort::stats(const std::string& pipeline, sw_store_stats& out) const {
    out = sw_store_stats{};
    out.struct_size = sizeof out;
    auto scope = i_->call("stats");
    return i_->vt<sw_store_vtable>().stats(i_->get(), pipeline.c_str(), &out);
}

sw_status StorePort::pending_keys(const std::string& pipeline, sw_key_visit_fn visit, void* user) const {
    auto scope = i_->call("pending_keys");
    return i_->vt<sw_store_vtable>().pending_keys(i_->get(), pipeline.c_str(), visit, user);
}

sw_status StorePort::list_dead(const std::string& pipeline, int64_t after_row_id, size_t limit, sw_batch& out) const {
    auto scope = i_->call("list_dead");
    return i_->vt<sw_store_vtable>().list_dead(i_->get(), pipeline.c_str(), after_row_id, limit, &out);
}

sw_status StorePort::replay_dead(const std::string& pipeline, std::span<const sw_bytes> event_ids,
                                 int64_t& replayed) const {
    auto scope = i_->call("replay_dead");
    return i_->vt<sw_store_vtable>().replay_dead(i_->get(), pipeline.c_str(),
                                                 event_ids.empty() ? nullptr : event_ids.data(), event_ids.size(),
                                                 &replayed);
}

sw_status StorePort::purge_dead(const std::string& pipeline, std::span<const sw_bytes> event_ids,
                                int64_t& purged) const {
    auto scope = i_->call("purge_dead");
    return i_->vt<sw_store_vtable>().purge_dead(i_->get(), pipeline.c_str(),
                                                event_ids.empty() ? nullptr : event_ids.data(), event_ids.size(),
                                                &purged);
}

sw_status NotifierPort::notify(const std::string& channel) const {
    auto scope = i_->call("notify");
    return i_->vt<sw_notifier_vtable>().notify(i_->get(), channel.c_str());
}

bool NotifierPort::wait(const std::string& channel, int64_t timeout_ms) const {
    int woken = 0;
    auto scope = i_->call("wait");
    i_->vt<sw_notifier_vtable>().wait(i_->get(), channel.c_str(), timeout_ms, &woken);
    forget_error();
    return woken != 0;
}

void NotifierPort::interrupt() const {
    auto scope = i_->call("interrupt");
    i_->vt<sw_notifier_vtable>().interrupt(i_->get());
}

int64_t SchedulerPort::next_delay(const sw_round& round, int64_t fallback_ms) const {
    int64_t delay = fallback_ms;
    auto scope = i_->call("next_delay");
    if (i_->vt<sw_scheduler_vtable>().next_delay(i_->get(), &round, &delay) != SW_OK) delay = fallback_ms;
    return delay;
}

sw_status TransformPort::apply(std::span<const sw_event> events, std::span<sw_result> results, sw_batch& out) const {
    auto scope = i_->call("apply");
    return i_->vt<sw_transform_vtable>().apply(i_->get(), events.data(), events.size(), results.data(), &out);
}

void TransformPort::release_batch(sw_batch& batch) const {
    auto scope = i_->call("release_batch");
    i_->vt<sw_transform_vtable>().release_batch(i_->get(), &batch);
}

}  // namespace spillway::plugin
