// Keys with events in the outbox. While a key is here its new events go to the outbox too, so
// they cannot overtake the ones waiting (rule 1 of per-key order). Counts are this engine's view:
// the relay settles a key when it delivers or parks its rows, and the whole set is cleared when the
// store reports the pipeline's backlog empty (rows another engine relayed).
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>

namespace spillway::pipeline {

class StickyKeys {
public:
    // Asked for every keyed event on the direct path, where the set is almost always empty: that
    // case is one atomic load, not a lock and a hash.
    bool contains(const std::string& key) const {
        if (size_.load(std::memory_order_acquire) == 0) return false;
        std::lock_guard lock(mutex_);
        return counts_.count(key) != 0;
    }
    void add(const std::string& key, int64_t n = 1) {
        std::lock_guard lock(mutex_);
        counts_[key] += n;
        ++generation_;
        size_.store(counts_.size(), std::memory_order_release);
    }
    // Records an append that added no key, so a concurrent clear_if_unchanged sees it.
    void touch() {
        std::lock_guard lock(mutex_);
        ++generation_;
    }
    // Bumped by every add: the relay reads it before asking the store for the backlog, and
    // clears only if no append slipped in between (else a fresh key would be forgotten).
    uint64_t generation() const {
        std::lock_guard lock(mutex_);
        return generation_;
    }
    bool clear_if_unchanged(uint64_t generation) {
        std::lock_guard lock(mutex_);
        if (generation != generation_) return false;
        counts_.clear();
        size_.store(0, std::memory_order_release);
        return true;
    }
    void settle(const std::string& key) {
        std::lock_guard lock(mutex_);
        auto it = counts_.find(key);
        if (it != counts_.end() && --it->second <= 0) counts_.erase(it);
        size_.store(counts_.size(), std::memory_order_release);
    }
    void clear() {
        std::lock_guard lock(mutex_);
        counts_.clear();
        size_.store(0, std::memory_order_release);
    }
    size_t size() const { return size_.load(std::memory_order_acquire); }

private:
    mutable std::mutex mutex_;
    std::unordered_map<std::string, int64_t> counts_;
    uint64_t generation_ = 0;
    std::atomic<size_t> size_{0};  // counts_.size(), written under the mutex
};

}  // namespace spillway::pipeline
