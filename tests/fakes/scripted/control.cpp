#include "scripted/control.hpp"

#include <algorithm>

namespace spillway::fakes::scripted {

Control& Control::get() {
    // Never destroyed: a relay thread of an engine a failed test leaked may still record at exit.
    static Control* block = new Control();
    return *block;
}

void Control::reset() {
    set_mode(Mode::Ok);
    set_health(SW_HEALTH_UP);
    fatal_armed_.store(false, std::memory_order_relaxed);
    kills_.store(0, std::memory_order_relaxed);
    created_.store(0, std::memory_order_relaxed);
    destroyed_.store(0, std::memory_order_relaxed);
    fatal_reports_.store(0, std::memory_order_relaxed);
    seq_.store(0, std::memory_order_relaxed);
    recorded_.store(0, std::memory_order_relaxed);
    overlaps_.store(0, std::memory_order_relaxed);
    largest_send_.store(0, std::memory_order_relaxed);
    for (auto& s : shards_) {
        std::lock_guard lock(s.mutex);
        s.deliveries.clear();
    }
}

Control::Shard& Control::my_shard() {
    // A relaxed ticket, not a registry under a lock: a first send orders nothing between threads.
    thread_local const size_t index = next_shard_.fetch_add(1, std::memory_order_relaxed) % kShards;
    return shards_[index];
}

void Control::record(const sw_event& e, uint64_t instance, bool acknowledged) {
    Delivery d;
    d.event_id.assign(e.event_id.ptr ? e.event_id.ptr : "", e.event_id.len);
    d.has_key = e.key.ptr != nullptr;
    if (d.has_key) d.key.assign(e.key.ptr, e.key.len);
    d.instance = instance;
    d.acknowledged = acknowledged;
    d.topic.assign(e.topic.ptr ? e.topic.ptr : "", e.topic.len);
    for (size_t i = 0; i < e.n_headers; ++i)
        d.headers.emplace_back(std::string(e.headers[i].name.ptr ? e.headers[i].name.ptr : "", e.headers[i].name.len),
                               std::string(e.headers[i].value.ptr ? e.headers[i].value.ptr : "", e.headers[i].value.len));
    d.created_at_us = e.created_at_us;
    Shard& shard = my_shard();
    std::lock_guard lock(shard.mutex);
    // Taken under the shard's lock so that one thread's records are in seq order in its shard.
    // Across threads the order is the atomic's modification order, which follows every
    // happens-before the engine establishes (a key's next event is sent only after the last one
    // was settled), so per key it is the order the sink took them in.
    d.seq = seq_.fetch_add(1, std::memory_order_relaxed);
    shard.deliveries.push_back(std::move(d));
    recorded_.fetch_add(1, std::memory_order_relaxed);
}

std::vector<Delivery> Control::deliveries() const {
    std::vector<Delivery> all;
    for (const auto& s : shards_) {
        std::lock_guard lock(s.mutex);
        all.insert(all.end(), s.deliveries.begin(), s.deliveries.end());
    }
    std::sort(all.begin(), all.end(), [](const Delivery& a, const Delivery& b) { return a.seq < b.seq; });
    return all;
}

}  // namespace spillway::fakes::scripted
