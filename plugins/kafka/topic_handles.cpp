#include "topic_handles.hpp"

namespace spillway::plugins::kafka {

rd_kafka_topic_t* TopicHandles::get(rd_kafka_t* producer, std::string_view name) {
    std::string key(name);
    std::lock_guard lock(mutex_);
    if (auto it = by_name_.find(key); it != by_name_.end()) return it->second;
    // The producer's default topic configuration, as producing by name would use.
    rd_kafka_topic_t* rkt = rd_kafka_topic_new(producer, key.c_str(), nullptr);
    if (rkt) by_name_.emplace(std::move(key), rkt);
    return rkt;
}

void TopicHandles::release() {
    std::lock_guard lock(mutex_);
    for (auto& [name, rkt] : by_name_) rd_kafka_topic_destroy(rkt);
    by_name_.clear();
}

}  // namespace spillway::plugins::kafka
