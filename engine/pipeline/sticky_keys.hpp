// Keys with events in the outbox. While a key is here its new events go to the outbox too, so
// they cannot overtake the ones waiting (rule 3 of engine/README.md, "who enforces per-key order").
// Per key, the number of its rows the store holds that the relay has not settled: seeded from the
// store at start (one per pending row), one more per appended row, one less per row the relay
// delivers or parks. The relay also settles rows this engine never counted (rows an application
// inserted, another engine's), so a count that reaches zero is not believed: the key stays here,
// unsure, until the store confirms it has no pending row of it (confirm), or the pipeline's whole
// backlog is empty.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

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
        unsure_.clear();
        size_.store(0, std::memory_order_release);
        return true;
    }
    void settle(const std::string& key) {
        std::lock_guard lock(mutex_);
        auto it = counts_.find(key);
        if (it != counts_.end() && --it->second <= 0) {
            it->second = 0;
            unsure_.insert(key);
        }
    }
    // Keys whose count reached zero and that the store has not confirmed yet.
    size_t unsure_size() const {
        std::lock_guard lock(mutex_);
        return unsure_.size();
    }
    std::vector<std::string> unsure() const {
        std::lock_guard lock(mutex_);
        return {unsure_.begin(), unsure_.end()};
    }
    // The store's pending rows per key, read after `asked` was taken from unsure(): a key the store
    // still has rows of counts them again (on top of appends counted meanwhile: too many is safe,
    // too few is not); a key it has none of, and that nothing was appended to since, goes.
    void confirm(const std::vector<std::string>& asked, const std::unordered_map<std::string, int64_t>& pending) {
        std::lock_guard lock(mutex_);
        for (const std::string& key : asked) {
            if (!unsure_.erase(key)) continue;  // cleared meanwhile
            auto it = counts_.find(key);
            if (it == counts_.end()) continue;
            if (auto p = pending.find(key); p != pending.end() && p->second > 0) it->second += p->second;
            else if (it->second <= 0) counts_.erase(it);
        }
        size_.store(counts_.size(), std::memory_order_release);
    }
    void clear() {
        std::lock_guard lock(mutex_);
        counts_.clear();
        unsure_.clear();
        size_.store(0, std::memory_order_release);
    }
    size_t size() const { return size_.load(std::memory_order_acquire); }

private:
    mutable std::mutex mutex_;
    std::unordered_map<std::string, int64_t> counts_;
    std::unordered_set<std::string> unsure_;  // keys of counts_ at zero, not yet confirmed
    uint64_t generation_ = 0;
    std::atomic<size_t> size_{0};  // counts_.size(), written under the mutex
};

}  // namespace spillway::pipeline
