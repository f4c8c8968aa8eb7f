// librdkafka topic handles by topic name: a bounded cache that only hands out topics the cluster has.
//
// Why handles: producing by name (RD_KAFKA_V_TOPIC) makes librdkafka look the topic up under the
// client's write lock and take and drop a reference, for every message; its broker threads take
// the same lock. A held handle (RD_KAFKA_V_RKT) skips both. send() asks for a handle once per run
// of events with the same topic.
//
// Why bounded: clients name topics per event, so the names seen are whatever clients send. The
// cache keeps at most `capacity` handles (least recently used goes first). An evicted handle is
// only the cache's reference: rd_kafka_topic_destroy() drops the application's reference, messages
// in flight hold their own (rd_kafka_msg_new keeps the topic), and a sender that got the handle
// before the eviction still holds it through its shared_ptr. Asking again for an evicted name
// gives librdkafka's same topic object back.
//
// Why the existence check: librdkafka keeps a message for a topic the cluster does not have
// until topic.metadata.propagation.max.ms (30 s) has passed, so with message.timeout.ms at 2 s it
// times out: a transient failure, which the pipeline counts toward its circuit. A burst of unknown
// names thus opened the circuit for the pipeline's real traffic. So a name is checked on first
// sight (and again when it left the cache), and one the cluster says it does not have is refused
// at once with UNKNOWN_TOPIC_OR_PART: a permanent, per-event answer that says nothing about the
// brokers. A name in the cluster's topic list (fetched at start) exists. Otherwise it depends on
// whether the client asks the broker to auto-create (allow.auto.create.topics, true by default for
// a producer):
//   - auto-create asked: a metadata request for that one topic, which is the request that lets the
//     broker create it; UNKNOWN_TOPIC_OR_PART in the answer means the broker will not.
//   - auto-create not asked: the cluster's topic list again, fetched at most once per recheck
//     interval (a burst of unknown names costs one listing a second).
// Why the one-topic requests go through a client of their own: librdkafka 2.0.2 frees a topic
// object only when its client is destroyed (the topic's partitions reference it), and a one-topic
// metadata request needs one. On the producer every name a client sent would stay for the
// engine's life (measured: 2,000 unknown names, +50 MB). So the producer is only ever given names
// that exist, and the checking client, which never produces, is replaced after kNamesPerChecker
// names, freeing what it kept.
// A name that cannot be checked (no broker answered in time) is produced to as before, uncached,
// and checked again next time.
#ifndef SPILLWAY_PLUGINS_KAFKA_TOPIC_HANDLES_HPP
#define SPILLWAY_PLUGINS_KAFKA_TOPIC_HANDLES_HPP

#include <librdkafka/rdkafka.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>

namespace spillway::plugins::kafka {

// A small least-recently-used map from names to values; not thread-safe (TopicHandles locks).
template <class Value>
class NameLru {
public:
    explicit NameLru(size_t capacity) : capacity_(capacity) {}

    // The value for `name`, now the most recent; nullptr when absent.
    Value* find(std::string_view name) {
        auto it = index_.find(name);
        if (it == index_.end()) return nullptr;
        order_.splice(order_.begin(), order_, it->second);
        return &it->second->second;
    }
    // Inserts or replaces; returns what was pushed out (an old value or the least recent entry)
    // so that the caller can let it go after unlocking.
    std::list<std::pair<std::string, Value>> put(std::string name, Value value) {
        std::list<std::pair<std::string, Value>> out;
        if (auto it = index_.find(name); it != index_.end()) {
            std::swap(it->second->second, value);
            order_.splice(order_.begin(), order_, it->second);
            out.emplace_back(std::move(name), std::move(value));
            return out;
        }
        order_.emplace_front(std::move(name), std::move(value));
        index_.emplace(order_.front().first, order_.begin());  // the key views the node's own string
        while (order_.size() > capacity_) {
            index_.erase(order_.back().first);
            out.splice(out.end(), order_, std::prev(order_.end()));
        }
        return out;
    }
    void erase(std::string_view name) {
        if (auto it = index_.find(name); it != index_.end()) {
            const auto node = it->second;
            index_.erase(it);  // first: its key views the node's string
            order_.erase(node);
        }
    }
    size_t size() const { return order_.size(); }
    // Empties the map, handing its entries to the caller.
    std::list<std::pair<std::string, Value>> take_all() {
        index_.clear();
        std::list<std::pair<std::string, Value>> out;
        out.swap(order_);
        return out;
    }

private:
    const size_t capacity_;
    std::list<std::pair<std::string, Value>> order_;  // most recent first; nodes never move
    std::unordered_map<std::string_view, typename std::list<std::pair<std::string, Value>>::iterator> index_;
};

class TopicHandles {
public:
    using Clock = std::chrono::steady_clock;
    using Handle = std::shared_ptr<rd_kafka_topic_t>;  // the deleter is rd_kafka_topic_destroy
    // Makes the client for one-topic checks (nullptr if it cannot): a producer that never produces.
    using ClientFactory = std::function<rd_kafka_t*()>;

    // A name found missing is refused without asking the cluster again for this long, and the
    // topic list is fetched at most this often: a topic created meanwhile is usable within it.
    static constexpr auto kRecheckInterval = std::chrono::seconds(1);
    // The longest one check may take (within the send's own deadline).
    static constexpr auto kCheckTimeout = std::chrono::milliseconds(1000);
    // One-topic checks per checking client: what it keeps of the names is bounded by this.
    static constexpr size_t kNamesPerChecker = 256;

    struct Lookup {
        Handle handle;  // set when the topic may be produced to
        // Otherwise why not: UNKNOWN_TOPIC_OR_PART (the cluster does not have it) or __INVALID_ARG
        // (librdkafka refuses the name).
        rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
    };

    explicit TopicHandles(size_t capacity) : handles_(capacity), unknown_(capacity), capacity_(capacity) {}
    TopicHandles(const TopicHandles&) = delete;
    TopicHandles& operator=(const TopicHandles&) = delete;
    ~TopicHandles() { release(); }

    // Binds the cache to its producer, reading its allow.auto.create.topics. `cluster`, when not
    // null, lists every topic (the start's warm-up metadata); `checker` makes the checking client.
    void attach(rd_kafka_t* producer, const rd_kafka_metadata_t* cluster, ClientFactory checker);
    // The handle for `name`, checking on first sight that the cluster has the topic; the checks
    // end by `deadline`.
    Lookup get(std::string_view name, Clock::time_point deadline);
    // Drops every handle and the checking client (before the producer is destroyed); the cache is
    // unbound afterwards.
    void release();

    size_t size() const;  // handles cached
    size_t capacity() const { return capacity_; }
    bool asks_auto_create() const;
    uint64_t checkers_made() const;  // checking clients made so far

private:
    enum class Existence { Exists, Missing, CannotTell };

    static Handle make_handle(rd_kafka_t* producer, const std::string& name);
    Existence check_one(const std::string& name, Clock::time_point deadline);
    Existence check_listed(rd_kafka_t* producer, const std::string& name, Clock::time_point deadline);
    static std::shared_ptr<const std::unordered_set<std::string>> listing(const rd_kafka_metadata_t& md);

    mutable std::mutex mutex_;  // the maps and the topic list; never held while asking the cluster
    rd_kafka_t* producer_ = nullptr;
    bool auto_create_ = true;
    NameLru<Handle> handles_;
    NameLru<Clock::time_point> unknown_;  // names found missing, and when
    std::shared_ptr<const std::unordered_set<std::string>> listed_;  // the cluster's topics
    Clock::time_point listed_at_{};
    std::timed_mutex listing_refresh_;  // one topic-list request at a time

    mutable std::mutex checker_mutex_;
    ClientFactory make_checker_;
    std::shared_ptr<rd_kafka_t> checker_;  // a check in flight holds it past a replacement
    size_t checker_names_ = 0;
    uint64_t checkers_made_ = 0;

    const size_t capacity_;
};

}  // namespace spillway::plugins::kafka

#endif
