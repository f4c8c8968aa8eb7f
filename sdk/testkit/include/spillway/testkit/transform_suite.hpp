// spillway/testkit/transform_suite.hpp — the conformance suite every transform plugin must pass.
//
// Header-only GoogleTest, value-parameterised by a factory: the plugin (a name for plugin_file(),
// or a path to the .so), a working configuration, and optionally the events that configuration
// accepts (a route that reads a header needs events that carry it). Include it in one test file
// and instantiate:
//
//   #include <spillway/testkit/transform_suite.hpp>
//   SPILLWAY_TRANSFORM_CONFORMANCE(Route, (spillway::testkit::TransformFactory{
//       .name = "route",
//       .config = [] { return spillway::testkit::Config{{"topic", "\"t.${event_type}\""}}; }}));
//
// Every test goes through the C ABI only (testkit::TransformInstance), as the engine uses a
// transform: the descriptor (a transform of ABI minor 2 or later with every slot), the lifecycle,
// validate, that apply fills every result (OK or REJECT with a reason; DROPPED only with OK) and
// hands back one event per input, the empty batch, events without key, headers or payload and
// with binary payloads, purity (the same batch through two instances, and twice through one,
// gives byte-identical records), that a batch handed out stays intact until it is released while
// other batches come and go, and concurrent applies (serialised by the suite unless the plugin
// declares SW_PLUGIN_THREAD_SAFE, as the engine does).
//
// Other test files of the same binary may include it with SPILLWAY_TRANSFORM_SUITE_HELPERS_ONLY
// defined for the helpers (transform_suite::Batch, apply, Record) without the tests.
#ifndef SPILLWAY_TESTKIT_TRANSFORM_SUITE_HPP
#define SPILLWAY_TESTKIT_TRANSFORM_SUITE_HPP

#include <spillway/testkit/descriptor_checks.hpp>
#include <spillway/testkit/host.hpp>

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <ostream>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace spillway::testkit {

namespace transform_suite {

// One event to build, field by field; nullopt is absent (distinct from present-but-empty).
struct EventSpec {
    std::string event_id;
    std::optional<std::string> topic = "conformance.in";
    std::optional<std::string> key;
    std::optional<std::string> payload;
    uint32_t flags = 0;  // SW_EVENT_*
    std::optional<std::string> event_type;
    std::optional<std::string> correlation_id;
    std::vector<std::pair<std::string, std::string>> headers;
    int64_t created_at_us = 1'700'000'000'123'456;
    std::string pipeline = "conformance";
};

// Events whose spans point into storage this object owns (sw_event borrows everything). Moving
// a Batch keeps every span valid; copying is not offered.
class Batch {
public:
    Batch() = default;
    Batch(std::initializer_list<EventSpec> specs) {
        for (const EventSpec& s : specs) add(s);
    }
    explicit Batch(const std::vector<EventSpec>& specs) {
        for (const EventSpec& s : specs) add(s);
    }
    Batch(Batch&&) = default;
    Batch& operator=(Batch&&) = default;
    Batch(const Batch&) = delete;
    Batch& operator=(const Batch&) = delete;

    void add(const EventSpec& s) {
        sw_event e{};
        e.struct_size = sizeof(sw_event);
        e.flags = s.flags;
        e.row_id = static_cast<int64_t>(events_.size()) + 1;
        e.event_id = keep(s.event_id);
        e.pipeline = keep(s.pipeline);
        e.topic = keep(s.topic);
        e.key = keep(s.key);
        e.payload = keep(s.payload);
        e.event_type = keep(s.event_type);
        e.correlation_id = keep(s.correlation_id);
        auto& hs = headers_.emplace_back();
        for (const auto& [name, value] : s.headers) hs.push_back({keep(name), keep(value)});
        e.headers = hs.empty() ? nullptr : hs.data();
        e.n_headers = hs.size();
        e.created_at_us = s.created_at_us;
        events_.push_back(e);
    }
    const sw_event* data() const { return events_.empty() ? nullptr : events_.data(); }
    size_t size() const { return events_.size(); }
    const sw_event& operator[](size_t i) const { return events_[i]; }

private:
    sw_bytes keep(const std::optional<std::string>& s) {
        if (!s) return sw_bytes{nullptr, 0};
        const std::string& k = strings_.emplace_back(*s);  // a deque: earlier strings never move
        return sw_bytes{k.data(), k.size()};
    }
    std::deque<std::string> strings_;
    std::deque<std::vector<sw_header>> headers_;
    std::vector<sw_event> events_;
};

// A deep copy of what the host takes from one output event, and its result.
struct Record {
    std::optional<std::string> topic, key, payload, event_type, correlation_id;
    uint32_t flags = 0;
    std::vector<std::pair<std::optional<std::string>, std::optional<std::string>>> headers;
    int32_t status = -1;
    uint32_t result_flags = 0;
    std::string message;

    bool ok() const { return status == SW_OK && !(result_flags & SW_RESULT_DROPPED); }
    bool dropped() const { return status == SW_OK && (result_flags & SW_RESULT_DROPPED); }
    bool rejected() const { return status == SW_REJECT; }
    // The value of the first header named `name`, or nullopt.
    std::optional<std::string> header(std::string_view name) const {
        for (const auto& [n, v] : headers)
            if (n && *n == name) return v;
        return std::nullopt;
    }
    size_t count_headers(std::string_view name) const {
        size_t n = 0;
        for (const auto& h : headers) n += h.first && *h.first == name;
        return n;
    }
    bool operator==(const Record&) const = default;
};

inline std::optional<std::string> copy(sw_bytes b) {
    if (!b.ptr) return std::nullopt;
    return std::string(b.ptr, b.len);
}

inline Record record_of(const sw_event& e, const sw_result& r) {
    Record rec;
    rec.topic = copy(e.topic);
    rec.key = copy(e.key);
    rec.payload = copy(e.payload);
    rec.event_type = copy(e.event_type);
    rec.correlation_id = copy(e.correlation_id);
    rec.flags = e.flags;
    for (size_t i = 0; i < e.n_headers; ++i) rec.headers.emplace_back(copy(e.headers[i].name), copy(e.headers[i].value));
    rec.status = r.status;
    rec.result_flags = r.flags;
    const void* end = std::memchr(r.message, '\0', sizeof r.message);
    rec.message = end ? std::string(r.message) : std::string(r.message, sizeof r.message);
    return rec;
}

inline void PrintTo(const Record& r, std::ostream* os) {
    const auto s = [](const std::optional<std::string>& v) { return v ? "\"" + *v + "\"" : std::string("(absent)"); };
    *os << "{status " << r.status << " flags " << r.result_flags << " '" << r.message << "' topic " << s(r.topic)
        << " key " << s(r.key) << " payload " << s(r.payload) << " headers [";
    for (const auto& [n, v] : r.headers) *os << s(n) << "=" << s(v) << " ";
    *os << "]}";
}

// One apply through the C ABI, its batch released when this object goes. Every result is
// pre-filled with a status no plugin returns, so a result the plugin forgot stays visible.
class Applied {
public:
    Applied(TransformInstance& t, const Batch& in) : t_(&t) {
        results_.assign(in.size(), sw_result{});
        for (auto& r : results_) {
            r.status = -1;
            r.flags = 0xffffffffu;
        }
        out_.struct_size = sizeof(sw_batch);
        status_ = t.vt().apply(t.get(), in.data(), in.size(), results_.empty() ? nullptr : results_.data(), &out_);
    }
    ~Applied() { release(); }
    Applied(const Applied&) = delete;
    Applied& operator=(const Applied&) = delete;

    void release() {
        if (t_ && status_ == SW_OK) t_->vt().release_batch(t_->get(), &out_);
        t_ = nullptr;
    }
    sw_status status() const { return status_; }
    const sw_batch& out() const { return out_; }
    const std::vector<sw_result>& results() const { return results_; }
    size_t size() const { return results_.size(); }
    // Event i as it goes on, with its result (the batch must be held: status OK, not released).
    Record record(size_t i) const { return record_of(out_.events[i], results_[i]); }
    std::vector<Record> records() const {
        std::vector<Record> out;
        if (status_ != SW_OK || out_.n != results_.size()) return out;
        for (size_t i = 0; i < out_.n; ++i) out.push_back(record(i));
        return out;
    }

private:
    TransformInstance* t_;
    std::vector<sw_result> results_;
    sw_batch out_{};
    sw_status status_ = SW_FATAL;
};

// The records of `in` through `t`; fails the test when apply does not say OK.
inline std::vector<Record> apply(TransformInstance& t, const Batch& in) {
    Applied applied(t, in);
    EXPECT_EQ(applied.status(), SW_OK) << t.host().last_error();
    return applied.records();
}
inline Record apply_one(TransformInstance& t, const EventSpec& spec) {
    Batch b;
    b.add(spec);
    auto records = apply(t, b);
    return records.empty() ? Record{} : records.front();
}

// The suite's own events when the factory gives none: keyed and unkeyed, with headers, types and
// correlation ids, JSON payloads.
inline std::vector<EventSpec> default_events(size_t n = 20) {
    std::vector<EventSpec> out;
    for (size_t i = 0; i < n; ++i) {
        EventSpec e;
        e.event_id = "evt-" + std::to_string(i);
        if (i % 5 != 4) e.key = "key-" + std::to_string(i % 3);
        e.payload = "{\"n\":" + std::to_string(i) + ",\"name\":\"item " + std::to_string(i) + "\"}";
        e.event_type = "conformance.tested";
        e.correlation_id = "corr-" + std::to_string(i);
        e.headers = {{"suite", "transform"}, {"seq", std::to_string(i)}};
        e.created_at_us += static_cast<int64_t>(i) * 1'000'001;
        out.push_back(std::move(e));
    }
    return out;
}

// Events at the edges: no key, no headers, no payload, an empty payload, binary bytes, no type.
inline std::vector<EventSpec> edge_events() {
    std::vector<EventSpec> out(6);
    for (size_t i = 0; i < out.size(); ++i) out[i].event_id = "edge-" + std::to_string(i);
    out[0].payload = "{}";
    out[1].payload = std::nullopt;
    out[1].key = "k";
    out[2].payload = "";
    out[2].event_type = "edge";
    out[3].payload = std::string("\x00\xff\x01\n\"", 5);
    out[3].flags = SW_EVENT_PAYLOAD_BINARY;
    out[3].headers = {{"h", ""}};
    out[4].payload = "not json {";
    out[4].key = "";
    out[5].payload = "[1,2,3]";
    out[5].correlation_id = "c";
    return out;
}

inline bool valid_status(int32_t s) { return s == SW_OK || s == SW_REJECT; }

}  // namespace transform_suite

struct TransformFactory {
    std::string name;                // names the instantiation; plugin_file(name) when `plugin` is empty
    std::string plugin;              // path of the plugin .so (optional)
    std::function<Config()> config;  // a working configuration
    // Optional: events this configuration accepts (each OK or dropped, none rejected). Without it
    // the suite's default_events() are used and must be accepted.
    std::function<std::vector<transform_suite::EventSpec>()> events;
};

inline void PrintTo(const TransformFactory& f, std::ostream* os) { *os << f.name; }

class TransformConformance : public ::testing::TestWithParam<TransformFactory> {
protected:
    void SetUp() override {
        plugin_ = &load(GetParam().plugin.empty() ? plugin_file(GetParam().name) : GetParam().plugin);
        config_ = GetParam().config();
    }

    const Plugin& plugin() const { return *plugin_; }
    const Config& config() const { return config_; }
    std::unique_ptr<TransformInstance> make(bool start = true) {
        return std::make_unique<TransformInstance>(*plugin_, config_, start);
    }
    bool thread_safe() const { return (plugin_->descriptor().flags & SW_PLUGIN_THREAD_SAFE) != 0; }
    std::vector<transform_suite::EventSpec> accepted_events() const {
        return GetParam().events ? GetParam().events() : transform_suite::default_events();
    }

    // Every result filled, one event out per event in; returns the records.
    static std::vector<transform_suite::Record> expect_well_formed(TransformInstance& t, const transform_suite::Batch& in) {
        transform_suite::Applied applied(t, in);
        EXPECT_EQ(applied.status(), SW_OK) << t.host().last_error();
        if (applied.status() != SW_OK) return {};
        EXPECT_EQ(applied.out().n, in.size()) << "out->n must equal n";
        if (applied.out().n != in.size()) return {};
        if (in.size() > 0) {
            EXPECT_NE(applied.out().events, nullptr);
        }
        for (size_t i = 0; i < in.size(); ++i) {
            const sw_result& r = applied.results()[i];
            EXPECT_TRUE(transform_suite::valid_status(r.status)) << "result " << i << " says " << r.status << " (OK or REJECT only)";
            EXPECT_NE(std::memchr(r.message, '\0', sizeof r.message), nullptr) << "result " << i << ": message not terminated";
            EXPECT_EQ(r.flags & ~uint32_t{SW_RESULT_DROPPED}, 0u) << "result " << i << ": flags " << r.flags;
            if (r.flags & SW_RESULT_DROPPED) {
                EXPECT_EQ(r.status, SW_OK) << "result " << i << ": DROPPED goes with OK only";
            }
            if (r.status == SW_REJECT) {
                EXPECT_NE(r.message[0], '\0') << "result " << i << ": a reject must say why";
            }
            const sw_event& e = applied.out().events[i];
            if (r.status == SW_OK && !(r.flags & SW_RESULT_DROPPED)) {
                EXPECT_NE(e.topic.ptr, nullptr) << "event " << i << " goes on without a topic";
                if (e.n_headers > 0) {
                    EXPECT_NE(e.headers, nullptr) << "event " << i << ": n_headers without headers";
                }
            }
        }
        return applied.records();
    }

    static const Plugin& load(const std::string& path) { return checks::loaded_plugin(path); }

private:
    const Plugin* plugin_ = nullptr;
    Config config_;
};

// The TEST_Ps may be defined only once per binary.
#ifndef SPILLWAY_TRANSFORM_SUITE_HELPERS_ONLY

TEST_P(TransformConformance, DescriptorIsATransformWithEverySlot) {
    const sw_plugin_descriptor& d = plugin().descriptor();
    checks::expect_identity(d, SW_KIND_TRANSFORM, 2,
                            "transforms came with ABI 1.2: an older minor would let a 1.1 engine load it");
    if (HasFatalFailure()) return;
    EXPECT_TRUE(d.description && *d.description) << "the plugin has no description";
    const sw_transform_vtable* vt = nullptr;
    checks::expect_lifecycle_slots(d, vt);
    if (HasFatalFailure()) return;
    EXPECT_NE(vt->apply, nullptr);
    EXPECT_NE(vt->release_batch, nullptr);
    checks::expect_options_well_formed(d);
}

TEST_P(TransformConformance, CreateStartStopDestroy) {
    checks::expect_create_start_stop_destroy<sw_transform_vtable>(plugin(), config());
}

TEST_P(TransformConformance, ValidateAcceptsTheWorkingConfiguration) { checks::expect_validate_accepts(plugin(), config()); }

TEST_P(TransformConformance, ValidateRefusesAConfigurationWithoutARequiredOption) {
    if (checks::expect_validate_refuses_without_each_required_option(plugin(), config()) == 0)
        GTEST_SKIP() << "the plugin declares no required option";
}

TEST_P(TransformConformance, ApplyFillsEveryResultAndAcceptsTheWorkingEvents) {
    auto t = make();
    const transform_suite::Batch in(accepted_events());
    ASSERT_GT(in.size(), 0u);
    const auto records = expect_well_formed(*t, in);
    ASSERT_EQ(records.size(), in.size());
    for (size_t i = 0; i < records.size(); ++i)
        EXPECT_FALSE(records[i].rejected()) << "event " << i << " of the working events was rejected: " << records[i].message;
}

TEST_P(TransformConformance, AnEmptyBatchIsOk) {
    auto t = make();
    sw_batch out{};
    out.struct_size = sizeof out;
    ASSERT_EQ(t->vt().apply(t->get(), nullptr, 0, nullptr, &out), SW_OK) << t->host().last_error();
    EXPECT_EQ(out.n, 0u);
    t->vt().release_batch(t->get(), &out);
}

TEST_P(TransformConformance, EventsWithoutKeyHeadersOrPayloadAndBinaryPayloadsGetAResult) {
    auto t = make();
    const transform_suite::Batch in(transform_suite::edge_events());
    const auto records = expect_well_formed(*t, in);
    EXPECT_EQ(records.size(), in.size());
    EXPECT_EQ(t->host().count_logs(SW_LOG_ERROR), 0u) << "a per-event verdict is a result, not an error log";
}

TEST_P(TransformConformance, TheSameBatchGivesByteIdenticalRecordsTwiceAndOnTwoInstances) {
    auto first = make();
    auto second = make();
    std::vector<transform_suite::EventSpec> specs = accepted_events();
    for (auto& e : transform_suite::edge_events()) specs.push_back(e);
    const transform_suite::Batch in(specs);
    const auto once = transform_suite::apply(*first, in);
    const auto again = transform_suite::apply(*first, in);
    const auto elsewhere = transform_suite::apply(*second, in);
    ASSERT_EQ(once.size(), in.size());
    for (size_t i = 0; i < once.size(); ++i) {
        EXPECT_EQ(once[i], again[i]) << "event " << i << " became another record the second time";
        EXPECT_EQ(once[i], elsewhere[i]) << "event " << i << " became another record on another instance";
    }
}

TEST_P(TransformConformance, ABatchStaysIntactUntilReleasedWhileOthersComeAndGo) {
    auto t = make();
    const transform_suite::Batch in(accepted_events());
    transform_suite::Applied held(*t, in);
    ASSERT_EQ(held.status(), SW_OK) << t->host().last_error();
    const auto before = held.records();
    for (int round = 0; round < 5; ++round) {
        const transform_suite::Batch other(transform_suite::edge_events());
        transform_suite::Applied passing(*t, other);
        EXPECT_EQ(passing.status(), SW_OK) << t->host().last_error();
    }  // each released, its input gone
    EXPECT_EQ(held.records(), before) << "a batch changed before its release_batch";
}

TEST_P(TransformConformance, ConcurrentAppliesFromSeveralThreadsGiveTheSameRecords) {
    auto t = make();
    std::vector<transform_suite::EventSpec> specs = accepted_events();
    for (auto& e : transform_suite::edge_events()) specs.push_back(e);
    const transform_suite::Batch in(specs);
    const auto expected = transform_suite::apply(*t, in);
    constexpr size_t kThreads = 4, kRounds = 25;
    std::mutex serialise;  // the engine serialises calls unless the plugin is thread-safe
    std::mutex m;
    std::vector<std::string> failures;
    std::vector<std::thread> threads;
    for (size_t th = 0; th < kThreads; ++th)
        threads.emplace_back([&, th] {
            for (size_t round = 0; round < kRounds; ++round) {
                std::vector<transform_suite::Record> got;
                sw_status st;
                {
                    std::unique_lock lock(serialise, std::defer_lock);
                    if (!thread_safe()) lock.lock();
                    transform_suite::Applied applied(*t, in);
                    st = applied.status();
                    got = applied.records();
                }
                std::lock_guard lock(m);
                if (st != SW_OK) failures.push_back("thread " + std::to_string(th) + ": apply returned " + std::to_string(st));
                else if (got != expected) failures.push_back("thread " + std::to_string(th) + " round " + std::to_string(round) + ": other records");
            }
        });
    for (auto& th : threads) th.join();
    EXPECT_TRUE(failures.empty()) << failures.size() << " failures, first: " << failures.front();
}

TEST_P(TransformConformance, HealthAnswersWithAKnownState) {
    auto t = make();
    checks::expect_health_known(*t);
}

#endif  // SPILLWAY_TRANSFORM_SUITE_HELPERS_ONLY

}  // namespace spillway::testkit

// Instantiates the suite for one transform; NAME is a plain identifier. Use it at namespace scope.
#define SPILLWAY_TRANSFORM_CONFORMANCE(NAME, FACTORY)                                                         \
    using ::spillway::testkit::TransformConformance;                                                          \
    INSTANTIATE_TEST_SUITE_P(NAME, TransformConformance, ::testing::Values(FACTORY),                          \
                             [](const ::testing::TestParamInfo<::spillway::testkit::TransformFactory>& info) { \
                                 return info.param.name;                                                      \
                             })

#endif  // SPILLWAY_TESTKIT_TRANSFORM_SUITE_HPP
