#include "topic_handles.hpp"

#include <algorithm>
#include <array>
#include <optional>

namespace spillway::plugins::kafka {

namespace {

// What is left of `deadline`, at most TopicHandles::kCheckTimeout; 0 when it has passed.
int check_timeout_ms(TopicHandles::Clock::time_point deadline) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - TopicHandles::Clock::now());
    return static_cast<int>(std::clamp<int64_t>(left.count(), 0, TopicHandles::kCheckTimeout.count()));
}

// Only this answer means "the cluster does not have it". Anything else (a leader being elected
// for a topic just auto-created, an authorization error) is left to the delivery report.
bool missing(rd_kafka_resp_err_t topic_err) { return topic_err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART; }

}  // namespace

void TopicHandles::attach(rd_kafka_t* producer, const rd_kafka_metadata_t* cluster, ClientFactory checker) {
    // The effective value: librdkafka turns the property's default into true for a producer.
    std::array<char, 16> value{};
    size_t size = value.size();
    bool auto_create = true;
    if (rd_kafka_conf_get(rd_kafka_conf(producer), "allow.auto.create.topics", value.data(), &size) == RD_KAFKA_CONF_OK)
        auto_create = std::string_view(value.data()) == "true";
    {
        std::lock_guard lock(checker_mutex_);
        make_checker_ = std::move(checker);
    }
    std::lock_guard lock(mutex_);
    producer_ = producer;
    auto_create_ = auto_create;
    if (cluster) {
        listed_ = listing(*cluster);
        listed_at_ = Clock::now();
    }
}

TopicHandles::Lookup TopicHandles::get(std::string_view name, Clock::time_point deadline) {
    std::string key(name);
    rd_kafka_t* producer = nullptr;
    bool auto_create = true;
    {
        std::lock_guard lock(mutex_);
        producer = producer_;
        auto_create = auto_create_;
        if (!producer) return {nullptr, RD_KAFKA_RESP_ERR__STATE};
        if (const Handle* h = handles_.find(key)) return {*h, RD_KAFKA_RESP_ERR_NO_ERROR};
        if (const Clock::time_point* since = unknown_.find(key); since && Clock::now() - *since < kRecheckInterval)
            return {nullptr, RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART};
    }

    Existence found = Existence::CannotTell;
    if (auto_create) {
        {
            std::lock_guard lock(mutex_);
            if (listed_ && listed_->count(key)) found = Existence::Exists;
        }
        if (found != Existence::Exists) found = check_one(key, deadline);
    } else {
        found = check_listed(producer, key, deadline);
    }
    if (found == Existence::Missing) {
        std::lock_guard lock(mutex_);
        unknown_.put(std::move(key), Clock::now());
        return {nullptr, RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART};
    }
    Handle handle = make_handle(producer, key);
    if (!handle) return {nullptr, RD_KAFKA_RESP_ERR__INVALID_ARG};
    // Not known to exist: used for this send only, so it is checked again next time.
    if (found == Existence::CannotTell) return {std::move(handle), RD_KAFKA_RESP_ERR_NO_ERROR};

    std::list<std::pair<std::string, Handle>> evicted;  // destroyed after unlocking
    {
        std::lock_guard lock(mutex_);
        if (producer_ != producer) return {std::move(handle), RD_KAFKA_RESP_ERR_NO_ERROR};  // released meanwhile
        unknown_.erase(key);
        evicted = handles_.put(std::move(key), handle);
    }
    return {std::move(handle), RD_KAFKA_RESP_ERR_NO_ERROR};
}

TopicHandles::Handle TopicHandles::make_handle(rd_kafka_t* producer, const std::string& name) {
    // The producer's default topic configuration, as producing by name would use.
    rd_kafka_topic_t* rkt = rd_kafka_topic_new(producer, name.c_str(), nullptr);
    if (!rkt) return nullptr;
    return Handle(rkt, [](rd_kafka_topic_t* t) { rd_kafka_topic_destroy(t); });
}

TopicHandles::Existence TopicHandles::check_one(const std::string& name, Clock::time_point deadline) {
    std::shared_ptr<rd_kafka_t> client, retired;
    {
        std::lock_guard lock(checker_mutex_);
        if ((!checker_ || checker_names_ >= kNamesPerChecker) && make_checker_) {
            retired = std::move(checker_);
            rd_kafka_t* made = make_checker_();
            if (made) {
                checker_.reset(made, [](rd_kafka_t* rk) { rd_kafka_destroy(rk); });
                checker_names_ = 0;
                ++checkers_made_;
            } else {
                make_checker_ = nullptr;  // it said why once; names go unchecked from now on
            }
        }
        if (!checker_) return Existence::CannotTell;
        ++checker_names_;
        client = checker_;
    }
    // `retired` is destroyed on leaving, outside the lock (unless a check in flight still holds it):
    // rd_kafka_destroy joins the client's threads.
    const int timeout_ms = check_timeout_ms(deadline);
    if (timeout_ms <= 0) return Existence::CannotTell;
    rd_kafka_topic_t* topic = rd_kafka_topic_new(client.get(), name.c_str(), nullptr);
    if (!topic) return Existence::CannotTell;  // the producer will refuse the name too
    const rd_kafka_metadata_t* md = nullptr;
    const rd_kafka_resp_err_t err = rd_kafka_metadata(client.get(), 0, topic, &md, timeout_ms);
    rd_kafka_topic_destroy(topic);
    Existence found = Existence::CannotTell;
    if (!err && md)
        for (int i = 0; i < md->topic_cnt; ++i)
            if (md->topics[i].topic && name == md->topics[i].topic)
                found = missing(md->topics[i].err) ? Existence::Missing : Existence::Exists;
    if (md) rd_kafka_metadata_destroy(md);
    return found;
}

TopicHandles::Existence TopicHandles::check_listed(rd_kafka_t* producer, const std::string& name,
                                                   Clock::time_point deadline) {
    // From the list in hand: listed, or missing from a list fetched within the recheck interval.
    const auto from_list = [&]() -> std::optional<Existence> {
        std::lock_guard lock(mutex_);
        if (listed_ && listed_->count(name)) return Existence::Exists;
        if (listed_ && Clock::now() - listed_at_ < kRecheckInterval) return Existence::Missing;
        return std::nullopt;
    };
    if (auto known = from_list()) return *known;
    std::unique_lock refresh(listing_refresh_, std::defer_lock);
    if (!refresh.try_lock_until(deadline)) return Existence::CannotTell;
    if (auto known = from_list()) return *known;  // another sender fetched it meanwhile

    const int timeout_ms = check_timeout_ms(deadline);
    if (timeout_ms <= 0) return Existence::CannotTell;
    const rd_kafka_metadata_t* md = nullptr;
    const rd_kafka_resp_err_t err = rd_kafka_metadata(producer, 1, nullptr, &md, timeout_ms);
    if (err || !md) {
        if (md) rd_kafka_metadata_destroy(md);
        return Existence::CannotTell;
    }
    auto topics = listing(*md);
    rd_kafka_metadata_destroy(md);
    const bool listed = topics->count(name) > 0;
    {
        std::lock_guard lock(mutex_);
        listed_ = std::move(topics);
        listed_at_ = Clock::now();
    }
    return listed ? Existence::Exists : Existence::Missing;
}

std::shared_ptr<const std::unordered_set<std::string>> TopicHandles::listing(const rd_kafka_metadata_t& md) {
    auto topics = std::make_shared<std::unordered_set<std::string>>();
    topics->reserve(static_cast<size_t>(std::max(md.topic_cnt, 0)));
    for (int i = 0; i < md.topic_cnt; ++i)
        if (md.topics[i].topic && !missing(md.topics[i].err)) topics->emplace(md.topics[i].topic);
    return topics;
}

void TopicHandles::release() {
    std::list<std::pair<std::string, Handle>> dropped;
    std::shared_ptr<rd_kafka_t> checker;
    {
        std::lock_guard lock(checker_mutex_);
        checker = std::move(checker_);
        make_checker_ = nullptr;
    }
    {
        std::lock_guard lock(mutex_);
        dropped = handles_.take_all();
        unknown_.take_all();
        listed_.reset();
        producer_ = nullptr;
    }
    // Released once no sender is left (before the producer is destroyed): the handles and the
    // checking client go here.
}

size_t TopicHandles::size() const {
    std::lock_guard lock(mutex_);
    return handles_.size();
}

bool TopicHandles::asks_auto_create() const {
    std::lock_guard lock(mutex_);
    return auto_create_;
}

uint64_t TopicHandles::checkers_made() const {
    std::lock_guard lock(checker_mutex_);
    return checkers_made_;
}

}  // namespace spillway::plugins::kafka
