// spillway/testkit/sink_suite.hpp — the conformance suite every sink plugin must pass.
//
// Header-only GoogleTest, value-parameterised by a factory: the plugin (a name for plugin_file(),
// or a path to the .so), a function returning a working configuration, and optionally a function
// that reads back what reached the destination. Include it in one test file and instantiate:
//
//   #include <spillway/testkit/sink_suite.hpp>
//   SPILLWAY_SINK_CONFORMANCE(FileSink, spillway::testkit::SinkFactory{
//       .name = "file", .plugin = "/path/to/spillway-file.so",
//       .config = [] { return spillway::testkit::Config{{"path", fresh_temp_file()}}; }});
//
// Link spillway::testkit and GTest::gtest_main. Every test goes through the C ABI only
// (testkit::SinkInstance), as the engine uses a sink: the descriptor, the lifecycle, that send
// fills every result and reports OK for a healthy destination, that what was reported OK arrived
// (with `delivered`), health, flush, concurrent sends (serialised by the suite unless the plugin
// declares SW_PLUGIN_THREAD_SAFE, as the engine does), and that validate refuses a configuration
// without a required option.
#ifndef SPILLWAY_TESTKIT_SINK_SUITE_HPP
#define SPILLWAY_TESTKIT_SINK_SUITE_HPP

#include <spillway/testkit/descriptor_checks.hpp>
#include <spillway/testkit/host.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cctype>
#include <cstddef>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace spillway::testkit {

struct SinkFactory {
    std::string name;                // names the instantiation; plugin_file(name) when `plugin` is empty
    std::string plugin;              // path of the plugin .so (optional)
    std::function<Config()> config;  // a working configuration of a fresh destination
    // Optional: the event_ids that reached `topic` of the destination configured by `config`,
    // waiting up to a generous deadline for `expected` of them. Without it, delivery is not checked.
    std::function<std::vector<std::string>(const Config& config, const std::string& topic, size_t expected)> delivered;
    // Optional: a configuration whose destination cannot be reached (a closed port, a broker
    // address nobody listens on). With it the failure path is checked: every result RETRY within
    // the send's timeout, partition and offset -1, and the health no longer UP.
    std::function<Config()> unreachable;
    // Optional, with `unreachable`: makes that configuration's destination reachable (starts the
    // server, brings the brokers up). Then the suite checks the recovery the engine relies on: a
    // send after the destination returned (the engine's trial send) delivers, and the health no
    // longer says DOWN.
    std::function<void(const Config&)> restore;
};

inline void PrintTo(const SinkFactory& f, std::ostream* os) { *os << f.name; }

namespace sink_suite {

// Events whose spans point into storage this object owns (sw_event borrows everything).
class Batch {
public:
    // `key` empty means absent; every event gets the headers {"suite","sink"} and {"seq", i}.
    void add(std::string event_id, std::string topic, std::string key, std::string payload, uint32_t flags = 0) {
        sw_event e{};
        e.struct_size = sizeof(sw_event);
        e.flags = flags;
        e.event_id = keep(std::move(event_id));
        e.pipeline = keep("conformance");
        e.topic = keep(std::move(topic));
        e.key = key.empty() ? sw_bytes{nullptr, 0} : keep(std::move(key));
        e.payload = keep(std::move(payload));
        e.event_type = keep("conformance.tested");
        auto& hs = headers_.emplace_back();
        hs.push_back({keep("suite"), keep("sink")});
        hs.push_back({keep("seq"), keep(std::to_string(events_.size()))});
        e.headers = hs.data();
        e.n_headers = hs.size();
        e.created_at_us = 1'700'000'000'000'000;
        events_.push_back(e);
    }
    const sw_event* data() const { return events_.data(); }
    size_t size() const { return events_.size(); }

private:
    sw_bytes keep(std::string s) {
        const std::string& k = strings_.emplace_back(std::move(s));
        return sw_bytes{k.data(), k.size()};
    }
    std::deque<std::string> strings_;
    std::deque<std::vector<sw_header>> headers_;
    std::vector<sw_event> events_;
};

// `n` events "<prefix>-<i>" to `topic`, keyed on a few keys (every fifth without a key).
inline Batch events(const std::string& prefix, const std::string& topic, size_t n) {
    Batch b;
    for (size_t i = 0; i < n; ++i)
        b.add(prefix + "-" + std::to_string(i), topic, i % 5 == 4 ? "" : "key-" + std::to_string(i % 3),
              "{\"n\":" + std::to_string(i) + "}");
    return b;
}

// Sends through the C ABI with every result pre-filled with a status no plugin returns, so a
// result the plugin forgot stays visible.
inline sw_status send(SinkInstance& sink, const Batch& batch, std::vector<sw_result>& results,
                      int64_t timeout_ms = 30'000) {
    results.assign(batch.size(), sw_result{});
    for (auto& r : results) {
        r.status = -1;
        r.partition = -2;
        r.offset = -2;
    }
    return sink.vt().send(sink.get(), batch.data(), batch.size(), results.data(), timeout_ms);
}

inline bool valid_status(int32_t s) { return s >= SW_OK && s <= SW_FULL; }

}  // namespace sink_suite

class SinkConformance : public ::testing::TestWithParam<SinkFactory> {
protected:
    void SetUp() override {
        plugin_ = &load(GetParam().plugin.empty() ? plugin_file(GetParam().name) : GetParam().plugin);
        config_ = GetParam().config();
    }

    const Plugin& plugin() const { return *plugin_; }
    const Config& config() const { return config_; }
    std::unique_ptr<SinkInstance> make(bool start = true) { return std::make_unique<SinkInstance>(*plugin_, config_, start); }
    bool thread_safe() const { return (plugin_->descriptor().flags & SW_PLUGIN_THREAD_SAFE) != 0; }

    // A topic of its own per test and instantiation, so read-backs see no other test's events.
    static std::string topic() {
        const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
        std::string t = std::string("conformance.") + info->test_suite_name() + "." + info->name();
        std::replace_if(t.begin(), t.end(), [](char c) { return !std::isalnum(static_cast<unsigned char>(c)) && c != '.'; }, '-');
        return t;
    }

    // Every event reported OK is at the destination (when the factory can read it back).
    void expect_delivered(const std::string& topic, const std::vector<std::string>& ok_ids) {
        if (!GetParam().delivered) return;
        const auto got = GetParam().delivered(config_, topic, ok_ids.size());
        const std::set<std::string> arrived(got.begin(), got.end());
        for (const auto& id : ok_ids) EXPECT_TRUE(arrived.count(id)) << id << " was reported OK but did not arrive";
    }

    static const Plugin& load(const std::string& path) { return checks::loaded_plugin(path); }

private:
    const Plugin* plugin_ = nullptr;
    Config config_;
};

// The TEST_Ps may be defined only once per binary.
#ifndef SPILLWAY_SINK_SUITE_HELPERS_ONLY

TEST_P(SinkConformance, DescriptorDescribesASinkWithEveryMandatorySlot) {
    const sw_plugin_descriptor& d = plugin().descriptor();
    checks::expect_identity(d, SW_KIND_SINK);
    if (HasFatalFailure()) return;
    const sw_sink_vtable* vt = nullptr;
    checks::expect_lifecycle_slots(d, vt);
    if (HasFatalFailure()) return;
    EXPECT_NE(vt->send, nullptr);
    EXPECT_NE(vt->flush, nullptr);
    checks::expect_options_well_formed(d);
}

TEST_P(SinkConformance, CreateStartStopDestroy) {
    checks::expect_create_start_stop_destroy<sw_sink_vtable>(plugin(), config());
}

TEST_P(SinkConformance, ValidateAcceptsTheWorkingConfiguration) { checks::expect_validate_accepts(plugin(), config()); }

TEST_P(SinkConformance, ValidateRefusesAConfigurationWithoutARequiredOption) {
    if (checks::expect_validate_refuses_without_each_required_option(plugin(), config()) == 0)
        GTEST_SKIP() << "the plugin declares no required option";
}

TEST_P(SinkConformance, SendFillsEveryResultAndReportsOkForAHealthyDestination) {
    auto sink = make();
    const std::string t = topic();
    const auto batch = sink_suite::events("fill", t, 50);
    std::vector<sw_result> results;
    ASSERT_EQ(sink_suite::send(*sink, batch, results), SW_OK) << sink->host().last_error();
    std::vector<std::string> ok;
    for (size_t i = 0; i < results.size(); ++i) {
        ASSERT_TRUE(sink_suite::valid_status(results[i].status)) << "result " << i << " was not filled";
        EXPECT_EQ(results[i].status, SW_OK) << "event " << i << ": " << results[i].message;
        EXPECT_NE(std::memchr(results[i].message, '\0', sizeof(results[i].message)), nullptr) << "message not terminated";
        if (results[i].status == SW_OK) ok.push_back("fill-" + std::to_string(i));
    }
    expect_delivered(t, ok);
}

TEST_P(SinkConformance, AnEmptyBatchIsOk) {
    auto sink = make();
    std::vector<sw_result> none;
    EXPECT_EQ(sink->vt().send(sink->get(), nullptr, 0, none.data(), 1000), SW_OK) << sink->host().last_error();
}

TEST_P(SinkConformance, BinaryPayloadsAndAbsentKeysAreAccepted) {
    auto sink = make();
    const std::string t = topic();
    sink_suite::Batch batch;
    batch.add("bin-0", t, "", std::string("\x00\xff\x01\n\"", 5), SW_EVENT_PAYLOAD_BINARY);
    batch.add("bin-1", t, "k", "", 0);
    std::vector<sw_result> results;
    ASSERT_EQ(sink_suite::send(*sink, batch, results), SW_OK) << sink->host().last_error();
    for (const auto& r : results) EXPECT_EQ(r.status, SW_OK) << r.message;
    expect_delivered(t, {"bin-0", "bin-1"});
}

TEST_P(SinkConformance, AnUnreachableDestinationFailsEveryResultAsRetryWithinTheTimeout) {
    if (!GetParam().unreachable) GTEST_SKIP() << "the instantiation gives no unreachable configuration";
    SinkInstance sink(plugin(), GetParam().unreachable(), false);
    // start may say RETRY (the engine then backs off and starts it again) or succeed and fail sends.
    const sw_status started = sink.vt().start(sink.get());
    ASSERT_TRUE(started == SW_OK || started == SW_RETRY) << "start: " << started << " " << sink.host().last_error();
    if (started != SW_OK) return;
    const auto batch = sink_suite::events("unreachable", topic(), 5);
    std::vector<sw_result> results;
    constexpr int64_t kTimeoutMs = 2000;
    const auto began = std::chrono::steady_clock::now();
    const sw_status st = sink_suite::send(sink, batch, results, kTimeoutMs);
    const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - began);
    EXPECT_TRUE(st == SW_OK || st == SW_RETRY) << "send: " << st << " " << sink.host().last_error();
    // A whole second of slack over the timeout: the engine's callers wait on it.
    EXPECT_LE(took.count(), kTimeoutMs + 1000) << "send ignored its timeout";
    if (st == SW_OK) {
        for (size_t i = 0; i < results.size(); ++i) {
            EXPECT_EQ(results[i].status, SW_RETRY) << "result " << i << ": " << results[i].message;
            EXPECT_EQ(results[i].partition, -1) << "result " << i << ": unknown is -1";
            EXPECT_EQ(results[i].offset, -1) << "result " << i << ": unknown is -1";
            EXPECT_NE(results[i].message[0], '\0') << "result " << i << " says no reason";
        }
    }
    sw_health h{};
    h.struct_size = sizeof(h);
    ASSERT_EQ(sink.vt().health(sink.get(), &h), SW_OK) << sink.host().last_error();
    EXPECT_NE(h.state, SW_HEALTH_UP) << "a sink whose sends all failed still says UP";
    EXPECT_EQ(sink.stop(5000), SW_OK) << sink.host().last_error();
}

TEST_P(SinkConformance, AfterTheDestinationReturnsATrialSendDeliversAndHealthIsNoLongerDown) {
    if (!GetParam().unreachable || !GetParam().restore) GTEST_SKIP() << "the instantiation gives no unreachable/restore pair";
    const Config away = GetParam().unreachable();
    SinkInstance sink(plugin(), away, false);
    sw_status started = sink.vt().start(sink.get());
    ASSERT_TRUE(started == SW_OK || started == SW_RETRY) << "start: " << started << " " << sink.host().last_error();
    const std::string t = topic();
    std::vector<sw_result> results;
    if (started == SW_OK) {
        const auto before = sink_suite::events("away", t, 1);
        ASSERT_EQ(sink_suite::send(sink, before, results, 2000), SW_OK) << sink.host().last_error();
        EXPECT_EQ(results[0].status, SW_RETRY) << results[0].message;
    }
    GetParam().restore(away);
    // What the engine does while the sink says DOWN: a trial of one event now and then (here
    // every 250 ms rather than after 1 s, 2 s, 4 s, 5 s ...), until one delivers.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    bool delivered = false;
    std::string last;
    for (int trial = 0; !delivered && std::chrono::steady_clock::now() < deadline; ++trial) {
        if (started != SW_OK) {
            started = sink.vt().start(sink.get());  // the engine retries a start that said RETRY
            if (started != SW_OK) last = "start: " + sink.host().last_error();
        }
        if (started == SW_OK) {
            const auto one = sink_suite::events("trial" + std::to_string(trial), t, 1);
            ASSERT_EQ(sink_suite::send(sink, one, results, 2000), SW_OK) << sink.host().last_error();
            delivered = results[0].status == SW_OK;
            last = results[0].message;
        }
        if (!delivered) std::this_thread::sleep_for(std::chrono::milliseconds(250));
    }
    ASSERT_TRUE(delivered) << "no trial send delivered within 60 s of the destination's return; last: " << last;
    sw_health h{};
    h.struct_size = sizeof(h);
    ASSERT_EQ(sink.vt().health(sink.get(), &h), SW_OK) << sink.host().last_error();
    EXPECT_NE(h.state, SW_HEALTH_DOWN) << "a sink that just delivered should say UP (or UNKNOWN): " << h.message;
    EXPECT_EQ(sink.stop(5000), SW_OK) << sink.host().last_error();
}

TEST_P(SinkConformance, HealthAnswersWithAKnownState) {
    auto sink = make();
    checks::expect_health_known(*sink);
}

TEST_P(SinkConformance, FlushAfterSendIsOk) {
    auto sink = make();
    const auto batch = sink_suite::events("flush", topic(), 10);
    std::vector<sw_result> results;
    ASSERT_EQ(sink_suite::send(*sink, batch, results), SW_OK) << sink->host().last_error();
    EXPECT_EQ(sink->vt().flush(sink->get(), 10'000), SW_OK) << sink->host().last_error();
    EXPECT_EQ(sink->stop(10'000), SW_OK) << sink->host().last_error();
}

TEST_P(SinkConformance, ConcurrentSendsFromSeveralThreadsAllComplete) {
    auto sink = make();
    const std::string t = topic();
    constexpr size_t kThreads = 4, kBatches = 5, kPerBatch = 20;
    std::mutex serialise;  // the engine serialises calls unless the plugin is thread-safe
    std::mutex m;
    std::vector<std::string> ok, failures;
    std::vector<std::thread> threads;
    for (size_t th = 0; th < kThreads; ++th)
        threads.emplace_back([&, th] {
            for (size_t b = 0; b < kBatches; ++b) {
                const std::string prefix = "t" + std::to_string(th) + "b" + std::to_string(b);
                const auto batch = sink_suite::events(prefix, t, kPerBatch);
                std::vector<sw_result> results;
                sw_status st;
                if (thread_safe()) {
                    st = sink_suite::send(*sink, batch, results);
                } else {
                    std::lock_guard lock(serialise);
                    st = sink_suite::send(*sink, batch, results);
                }
                std::lock_guard lock(m);
                if (st != SW_OK) failures.push_back(prefix + ": send returned " + std::to_string(st));
                for (size_t i = 0; i < results.size(); ++i) {
                    if (results[i].status == SW_OK) ok.push_back(prefix + "-" + std::to_string(i));
                    else failures.push_back(prefix + "-" + std::to_string(i) + ": " + std::to_string(results[i].status) +
                                            " " + results[i].message);
                }
            }
        });
    for (auto& th : threads) th.join();
    EXPECT_TRUE(failures.empty()) << failures.size() << " failures, first: " << failures.front();
    EXPECT_EQ(ok.size(), kThreads * kBatches * kPerBatch);
    expect_delivered(t, ok);
}

#endif  // SPILLWAY_SINK_SUITE_HELPERS_ONLY

}  // namespace spillway::testkit

// Instantiates the suite for one sink; NAME is a plain identifier. Use it at namespace scope.
#define SPILLWAY_SINK_CONFORMANCE(NAME, FACTORY)                                                        \
    using ::spillway::testkit::SinkConformance;                                                         \
    INSTANTIATE_TEST_SUITE_P(NAME, SinkConformance, ::testing::Values(FACTORY),                         \
                             [](const ::testing::TestParamInfo<::spillway::testkit::SinkFactory>& info) { \
                                 return info.param.name;                                                \
                             })

#endif  // SPILLWAY_TESTKIT_SINK_SUITE_HPP
