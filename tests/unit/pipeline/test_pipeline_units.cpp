// The pipeline machinery — publisher, circuit breaker, sticky keys, relay, the sink rebuild after
// FATAL — in one process over the scripted fake sink and the real SQLite store, inproc doorbell and
// adaptive scheduler. Nothing here loads librdkafka (Debian's is not TSan-instrumented and crashes
// under it), so this suite is what runs the threaded pipeline code under ThreadSanitizer.
//
// The fake sink's record is the independent consumer. Each scenario asserts: every accepted event
// reached it, first deliveries per key follow the accept order, and an event is delivered again
// only after a delivery the sink did not acknowledge (a fault), never after an acknowledged one.
#include "engine/engine.hpp"
#include "engine/http/server.hpp"
#include "engine/observe/log.hpp"

#include "scripted/control.hpp"
#include "temp_dir.hpp"

#include <spillway/test_support/wait.hpp>

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <dlfcn.h>
#include <link.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace spillway {
namespace {

using namespace std::chrono_literals;
using fakes::scripted::Control;
using fakes::scripted::Delivery;
using fakes::scripted::Mode;
using test_support::wait_until;

// --- the process ---

// True when any librdkafka is mapped into this process.
bool rdkafka_loaded() {
    if (void* h = dlopen("librdkafka.so.1", RTLD_LAZY | RTLD_NOLOAD)) {
        dlclose(h);
        return true;
    }
    bool found = false;
    dl_iterate_phdr(
        [](dl_phdr_info* info, size_t, void* data) {
            if (info->dlpi_name && std::strstr(info->dlpi_name, "rdkafka")) *static_cast<bool*>(data) = true;
            return 0;
        },
        &found);
    return found;
}

using pipeline_unit::TempDir;

// --- the engine ---

// One direct-first pipeline "orders": the scripted sink, SQLite on `db`, inproc, adaptive. The
// plugin path names each file: a folder would load every plugin in it, the kafka one included.
// `serial`: the scripted sink that does not declare itself thread safe.
std::string pipeline_toml(const std::string& db, bool serial = false) {
    std::string t;
    t += "[engine]\nplugin_path = [\"" + std::string(serial ? SCRIPTED_SERIAL_SINK_PLUGIN : SCRIPTED_SINK_PLUGIN) +
         "\", \"" SQLITE_PLUGIN "\", \"" INPROC_PLUGIN "\", \"" ADAPTIVE_PLUGIN "\", \"" SCRIPTED_TRANSFORM_PLUGIN "\"]\n";
    t += "log_level = \"warn\"\n\n";
    t += std::string("[sink.kafka]\nplugin = \"") + (serial ? "scripted-serial" : "scripted") + "\"\n\n";
    // Retry forever (an outage here is dozens of failed rounds, not a poison event) and quickly.
    t += "[store.outbox]\nplugin = \"sqlite\"\npath = \"" + db + "\"\nmax_attempts = 0\n";
    t += "backoff_base = \"5ms\"\nbackoff_max = \"50ms\"\n\n";
    t += "[notifier.bell]\nplugin = \"inproc\"\n\n";
    t += "[scheduler.poll]\nplugin = \"adaptive\"\nerror_interval = \"50ms\"\n\n";
    t += "[pipeline.orders]\nsink = \"kafka\"\nstore = \"outbox\"\nnotifier = \"bell\"\nscheduler = \"poll\"\n";
    t += "topic = \"orders.events\"\ndirect_timeout = \"1s\"\nbatch_size = 50\nlease = \"10s\"\n";
    t += "circuit_threshold = 3\nshutdown_timeout = \"5s\"\non_reject = \"refuse\"\n";
    return t;
}

std::unique_ptr<Engine> start_engine(const TempDir& dir, bool serial_sink = false, const std::string& more_pipeline_toml = "") {
    const std::string path = dir.path() + "/pipeline.toml";
    std::ofstream(path) << pipeline_toml(dir.path() + "/outbox.db", serial_sink) << more_pipeline_toml;
    config::LoadOptions lo;
    lo.environment = "testing";
    auto prepared = prepare(path, lo);
    observe::setup_logging(prepared->config.engine.log_level, prepared->config.engine.log_format);
    auto engine = std::make_unique<Engine>(std::move(prepared));
    engine->start();
    return engine;
}

double metric(Engine& e, const std::string& name, observe::Labels more = {}) {
    observe::Labels l{{"pipeline", "orders"}};
    l.insert(l.end(), more.begin(), more.end());
    return e.metrics().value(name, l);
}

// Rows of the pipeline in the outbox file by state, read with SQLite itself, not the store plugin.
std::map<std::string, std::set<std::string>> outbox_rows(const std::string& db) {
    std::map<std::string, std::set<std::string>> by_state;
    sqlite3* conn = nullptr;
    if (sqlite3_open_v2(db.c_str(), &conn, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
        ADD_FAILURE() << "cannot open " << db << ": " << sqlite3_errmsg(conn);
        sqlite3_close(conn);
        return by_state;
    }
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(conn, "SELECT state, event_id FROM spillway_outbox WHERE pipeline = 'orders'", -1, &st,
                           nullptr) != SQLITE_OK) {
        ADD_FAILURE() << "cannot read the outbox: " << sqlite3_errmsg(conn);
    } else {
        while (sqlite3_step(st) == SQLITE_ROW)
            by_state[reinterpret_cast<const char*>(sqlite3_column_text(st, 0))].insert(
                reinterpret_cast<const char*>(sqlite3_column_text(st, 1)));
    }
    sqlite3_finalize(st);
    sqlite3_close(conn);
    return by_state;
}

// --- the publishers ---

struct Published {
    std::string event_id, key;
    bool poison = false;
};

// `threads` threads publishing until stopped or refused as stopping. Each thread owns its keys, so
// per key the accept order is the order its thread published in. Every 7th call is a batch of 5
// (pairs share a key, so one call carries two events of a key), and every 101st event is poison.
class Publishers {
public:
    static constexpr int kKeysPerThread = 16;

    Publishers(pipeline::Pipeline& p, int threads) : pipeline_(p), accepted_(threads), refusals_(threads) {
        for (int t = 0; t < threads; ++t) threads_.emplace_back([this, t] { run(t); });
    }
    ~Publishers() { stop(); }

    void stop() {
        {
            std::lock_guard lock(pace_mutex_);
            stop_.store(true);
        }
        pace_cv_.notify_all();
        for (auto& t : threads_)
            if (t.joinable()) t.join();
    }
    // Each thread pauses this long between calls from now on (0: flat out). The load goes on, but
    // a machine busy with other work still lets the relay catch up with it.
    void pace(std::chrono::microseconds pause) { pause_us_.store(pause.count()); }
    size_t count() const { return count_.load(std::memory_order_relaxed); }

    // After stop().
    std::vector<Published> accepted() const {
        std::vector<Published> all;
        for (const auto& v : accepted_) all.insert(all.end(), v.begin(), v.end());
        return all;
    }
    // Refusals other than a poison event's and "stopping", with their messages (after stop()).
    std::vector<std::string> unexpected_refusals() const {
        std::vector<std::string> all;
        for (const auto& r : refusals_) all.insert(all.end(), r.unexpected.begin(), r.unexpected.end());
        return all;
    }
    size_t stopping_refusals() const {
        size_t n = 0;
        for (const auto& r : refusals_) n += r.stopping;
        return n;
    }

private:
    struct Refusals {
        size_t stopping = 0;
        std::vector<std::string> unexpected;
    };

    void run(int t) {
        auto& accepted = accepted_[t];
        auto& refusals = refusals_[t];
        for (int n = 0, call = 0; !stop_.load(); ++call) {
            std::vector<pipeline::Event> events(call % 7 == 3 ? 5 : 1);
            std::vector<Published> sent;
            for (auto& e : events) {
                Published p;
                p.key = "t" + std::to_string(t) + "-k" + std::to_string((n / 2) % kKeysPerThread);
                p.poison = n % 101 == 50;
                e.key = p.key;
                e.payload = p.poison ? "{\"poison\":true,\"n\":" + std::to_string(n) + "}"
                                     : "{\"t\":" + std::to_string(t) + ",\"n\":" + std::to_string(n) + "}";
                sent.push_back(std::move(p));
                ++n;
            }
            const auto out = pipeline_.publish(std::move(events));
            bool stopping = false;
            for (size_t i = 0; i < out.size(); ++i) {
                if (out[i].accepted()) {
                    sent[i].event_id = out[i].event_id;
                    accepted.push_back(std::move(sent[i]));
                    count_.fetch_add(1, std::memory_order_relaxed);
                } else if (out[i].reason == pipeline::Reason::Stopping) {
                    stopping = true;
                    ++refusals.stopping;
                } else if (!(sent[i].poison && out[i].reason == pipeline::Reason::Rejected)) {
                    refusals.unexpected.push_back(std::string(pipeline::reason_name(out[i].reason)) + ": " +
                                                  out[i].message);
                }
            }
            if (stopping) return;
            if (const auto us = pause_us_.load(); us > 0) {
                std::unique_lock lock(pace_mutex_);
                pace_cv_.wait_for(lock, std::chrono::microseconds(us), [&] { return stop_.load(); });
            }
        }
    }

    pipeline::Pipeline& pipeline_;
    std::atomic<bool> stop_{false};
    std::atomic<long long> pause_us_{0};
    std::mutex pace_mutex_;
    std::condition_variable pace_cv_;
    std::atomic<size_t> count_{0};
    std::vector<std::vector<Published>> accepted_;
    std::vector<Refusals> refusals_;
    std::vector<std::thread> threads_;
};

// --- the consumer's verdict ---

struct Verdict {
    size_t accepted = 0, delivered = 0, duplicates = 0;
    size_t lost = 0;                    // accepted, never delivered (and not in the outbox, if given)
    size_t overtaken = 0;               // delivered while an earlier event of its key was not
    size_t order_violations = 0;        // first deliveries of a key out of accept order
    size_t unjustified_duplicates = 0;  // sent again after the sink had acknowledged it
    size_t poison_delivered = 0;
    std::string first_problem;

    void problem(const std::string& what) {
        if (first_problem.empty()) first_problem = what;
    }
};

// `waiting`: event ids still in the outbox, which count as kept rather than lost.
Verdict check(const std::vector<Published>& accepted, const std::vector<Delivery>& deliveries,
              const std::set<std::string>& waiting = {}) {
    Verdict v;
    v.accepted = accepted.size();
    std::unordered_map<std::string, bool> acknowledged;  // by event id: was any copy acknowledged
    std::unordered_map<std::string, std::vector<std::string>> first_by_key;
    for (const Delivery& d : deliveries) {
        auto [it, first] = acknowledged.emplace(d.event_id, d.acknowledged);
        if (first) {
            first_by_key[d.key].push_back(d.event_id);
            continue;
        }
        ++v.duplicates;
        if (it->second) {
            ++v.unjustified_duplicates;
            v.problem("event " + d.event_id + " (key " + d.key + ") sent again after it was acknowledged");
        }
        it->second = it->second || d.acknowledged;
    }
    v.delivered = acknowledged.size();

    std::unordered_map<std::string, std::vector<std::string>> accepted_by_key;  // poison left out
    for (const Published& p : accepted) {
        const bool delivered = acknowledged.count(p.event_id) != 0;
        if (p.poison) {
            if (delivered) {
                ++v.poison_delivered;
                v.problem("poison event " + p.event_id + " was delivered");
            }
            continue;
        }
        if (!delivered && !waiting.count(p.event_id)) {
            ++v.lost;
            v.problem("lost " + p.event_id + " (key " + p.key + ")");
        }
        accepted_by_key[p.key].push_back(p.event_id);
    }
    for (const auto& [key, ids] : accepted_by_key) {
        // What was delivered must be a prefix of the accept order, and arrive in that order.
        std::vector<std::string> expected;
        bool gap = false;
        for (const auto& id : ids) {
            if (!acknowledged.count(id)) {
                gap = true;
                continue;
            }
            if (gap && v.overtaken++ == 0) v.problem("key " + key + ": " + id + " delivered before an earlier event");
            expected.push_back(id);
        }
        const std::set<std::string> wanted(ids.begin(), ids.end());
        std::vector<std::string> got;
        for (const auto& id : first_by_key[key])
            if (wanted.count(id)) got.push_back(id);
        if (got != expected) {
            ++v.order_violations;
            for (size_t i = 0; i < got.size() && i < expected.size(); ++i)
                if (got[i] != expected[i]) {
                    v.problem("key " + key + ": delivery " + std::to_string(i) + " is " + got[i] + ", expected " +
                              expected[i]);
                    break;
                }
        }
    }
    return v;
}

std::ostream& operator<<(std::ostream& os, const Verdict& v) {
    return os << v.accepted << " accepted, " << v.delivered << " delivered, " << v.duplicates << " duplicates, "
              << v.lost << " lost, " << v.overtaken << " overtaken, " << v.order_violations << " out of order, "
              << v.unjustified_duplicates << " unjustified duplicates; " << v.first_problem;
}

void expect_clean(const Verdict& v) {
    EXPECT_EQ(v.lost, 0u) << v;
    EXPECT_EQ(v.overtaken, 0u) << v;
    EXPECT_EQ(v.order_violations, 0u) << v;
    EXPECT_EQ(v.unjustified_duplicates, 0u) << v;
    EXPECT_EQ(v.poison_delivered, 0u) << v;
}

size_t poison_count(const std::vector<Published>& accepted) {
    size_t n = 0;
    for (const auto& p : accepted) n += p.poison;
    return n;
}

// The consumer must catch what it is there to catch, or its clean verdicts mean nothing.
TEST(PipelineUnitVerdict, CatchesLossOvertakingReorderingAndDuplicatesAfterAnAcknowledgement) {
    const std::vector<Published> accepted = {{"a1", "a"}, {"a2", "a"}, {"a3", "a"}, {"b1", "b"}, {"p", "b", true}};
    auto d = [](std::string id, std::string key, bool acknowledged = true) {
        Delivery x;
        x.event_id = std::move(id);
        x.key = std::move(key);
        x.has_key = true;
        x.acknowledged = acknowledged;
        return x;
    };
    const Verdict clean = check(accepted, {d("a1", "a", false), d("b1", "b"), d("a1", "a"), d("a2", "a"), d("a3", "a")});
    EXPECT_EQ(clean.lost + clean.overtaken + clean.order_violations + clean.unjustified_duplicates, 0u) << clean;
    EXPECT_EQ(clean.duplicates, 1u);

    const Verdict lost = check(accepted, {d("a1", "a"), d("a2", "a"), d("a3", "a")});
    EXPECT_EQ(lost.lost, 1u) << lost;
    EXPECT_EQ(check(accepted, {d("a1", "a"), d("a2", "a"), d("b1", "b")}, {"a3"}).lost, 0u) << "a3 is in the outbox";

    const Verdict overtaken = check(accepted, {d("a1", "a"), d("a3", "a"), d("b1", "b")}, {"a2"});
    EXPECT_EQ(overtaken.overtaken, 1u) << overtaken;

    const Verdict reordered = check(accepted, {d("a2", "a"), d("a1", "a"), d("a3", "a"), d("b1", "b")});
    EXPECT_EQ(reordered.order_violations, 1u) << reordered;

    const Verdict again = check(accepted, {d("a1", "a"), d("a2", "a"), d("a3", "a"), d("b1", "b"), d("a2", "a")});
    EXPECT_EQ(again.unjustified_duplicates, 1u) << again;

    const Verdict poison = check(accepted, {d("a1", "a"), d("a2", "a"), d("a3", "a"), d("b1", "b"), d("p", "b")});
    EXPECT_EQ(poison.poison_delivered, 1u) << poison;
}

// --- the scenarios ---

class PipelineUnit : public ::testing::Test {
protected:
    void SetUp() override { Control::get().reset(); }
    void TearDown() override {
        if (engine_) engine_->stop();
        engine_.reset();
        EXPECT_FALSE(rdkafka_loaded()) << "librdkafka was loaded: this suite must run without it";
    }

    pipeline::Pipeline& orders() { return *engine_->pipeline("orders"); }
    // Waits until the outbox is empty and the circuit closed (the publishers have stopped).
    bool drained(std::chrono::milliseconds deadline) {
        return wait_until(
            [&] { return orders().circuit() == pipeline::Circuit::State::Closed && orders().status().pending == 0; },
            deadline, 10ms);
    }

    Control& control_ = Control::get();
    TempDir dir_;
    std::unique_ptr<Engine> engine_;
};

TEST_F(PipelineUnit, ProcessLoadsNoLibrdkafka) {
    engine_ = start_engine(dir_);
    for (const auto& lib : engine_->prepared().registry.libraries()) EXPECT_NE(lib->name, "kafka") << lib->path;
    EXPECT_EQ(engine_->instance("orders", "sink")->binding().library->name, "scripted");
    EXPECT_FALSE(rdkafka_loaded());
}

// (a) Four publishers while the sink flips between working, failing, failing yet delivering, and
// saying DOWN: the circuit opens, events spill, the relay drains, the circuit closes at the end.
TEST_F(PipelineUnit, FlappingSinkLosesNothingAndKeepsPerKeyOrder) {
    engine_ = start_engine(dir_);
    Publishers publishers(orders(), 4);
    ASSERT_TRUE(wait_until([&] { return publishers.count() >= 200; }, 10s));

    struct Phase {
        Mode mode;
        sw_health_state health;
    };
    const Phase script[] = {
        {Mode::Retry, SW_HEALTH_UP},                   // direct failures open the circuit
        {Mode::Ok, SW_HEALTH_UP},                      // the relay's probe half-opens it, the drain closes it
        {Mode::Retry, SW_HEALTH_DOWN},                 // DOWN opens it before anyone waits
        {Mode::Ok, SW_HEALTH_DOWN},                    // the health lags: the relay only looks
        {Mode::Ok, SW_HEALTH_UP},
        {Mode::RetryPossiblyDelivered, SW_HEALTH_UP},  // faults that leave duplicates
        {Mode::Flaky, SW_HEALTH_UP},                   // one in three fails, mixed batch results
        {Mode::Ok, SW_HEALTH_UP},
    };
    constexpr int kCycles = 12;
    for (int cycle = 0; cycle < kCycles; ++cycle) {
        for (const Phase& p : script) {
            control_.set_mode(p.mode);
            control_.set_health(p.health);
            std::this_thread::sleep_for(50ms);  // the fault's rhythm
        }
        // Each cycle ends with the circuit closed again under load, and events going direct
        // while the relay may still settle the last sticky keys. The circuit closes once the
        // backlog is empty: the publishers slow down meanwhile (still publishing, each to ~500
        // calls/s), so that the relay catches up on a machine busy with other work too.
        publishers.pace(2ms);
        ASSERT_TRUE(wait_until([&] { return orders().circuit() == pipeline::Circuit::State::Closed; }, 10s, 1ms))
            << "cycle " << cycle << ": the circuit stayed " << pipeline::Circuit::name(orders().circuit());
        publishers.pace(0ms);
        std::this_thread::sleep_for(50ms);
    }
    publishers.stop();

    ASSERT_TRUE(drained(20s)) << "pending " << orders().status().pending << ", circuit "
                              << pipeline::Circuit::name(orders().circuit());
    const auto accepted = publishers.accepted();
    EXPECT_TRUE(publishers.unexpected_refusals().empty()) << publishers.unexpected_refusals().front();
    const Verdict v = check(accepted, control_.deliveries());
    expect_clean(v);
    // The faults did what they were meant to.
    const auto s = orders().status();
    EXPECT_GT(s.direct, 0u);
    EXPECT_GT(s.outbox, 0u);
    EXPECT_GT(s.relayed, 0u);
    EXPECT_GE(metric(*engine_, "circuit_transitions_total", {{"from", "closed"}, {"to", "open"}}), kCycles);
    EXPECT_GE(metric(*engine_, "circuit_transitions_total", {{"from", "half-open"}, {"to", "closed"}}), kCycles);
    // Poison that came through the outbox is parked; poison sent direct was refused.
    EXPECT_EQ(static_cast<size_t>(s.dead), poison_count(accepted)) << v;
    std::cout << "[          ] " << v << "; " << s.direct << " direct, " << s.outbox << " outbox, " << s.relayed
              << " relayed\n";
}

// (a2) A backlog drains with each batch claimed while the one before is out (claim_next). A sink
// failing every third event makes the relay give back, unsent, the events of the batch claimed
// ahead whose key just failed: they must follow the failed event, not overtake it.
TEST_F(PipelineUnit, DrainClaimingAheadKeepsKeyOrderThroughFailures) {
    engine_ = start_engine(dir_);
    control_.set_mode(Mode::Retry);
    control_.set_health(SW_HEALTH_DOWN);
    std::vector<Published> accepted;
    {
        Publishers publishers(orders(), 4);
        ASSERT_TRUE(wait_until([&] { return orders().status().pending >= 2000; }, 30s, 5ms));
        publishers.stop();
        accepted = publishers.accepted();
        EXPECT_TRUE(publishers.unexpected_refusals().empty()) << publishers.unexpected_refusals().front();
    }
    control_.set_mode(Mode::Flaky);
    control_.set_health(SW_HEALTH_UP);
    ASSERT_TRUE(wait_until([&] { return metric(*engine_, "relay_held_back_total") > 0; }, 30s, 1ms))
        << "no event was held back after a failure; pending " << orders().status().pending;
    // Then healthy for the rest: the fake fails by a count of events, which a small remainder of a
    // backlog can keep hitting on the same key.
    ASSERT_TRUE(wait_until([&] { return orders().status().pending < 1000; }, 30s, 1ms));
    control_.set_mode(Mode::Ok);
    ASSERT_TRUE(drained(30s)) << "pending " << orders().status().pending;
    const Verdict v = check(accepted, control_.deliveries());
    expect_clean(v);
    EXPECT_GT(metric(*engine_, "relay_claimed_ahead_total"), 0) << "the drain never claimed ahead";
    EXPECT_GT(metric(*engine_, "relay_failures_total"), 0) << "the flaky sink's failures were not counted";
    // Both are counted just after the last settle, which can still be under way.
    EXPECT_TRUE(wait_until(
        [&] { return metric(*engine_, "relay_published_total") == static_cast<double>(orders().status().relayed); }, 5s))
        << metric(*engine_, "relay_published_total") << " published, " << orders().status().relayed << " relayed";
    std::cout << "[          ] " << v << "; " << metric(*engine_, "relay_claimed_ahead_total") << " batches claimed ahead, "
              << metric(*engine_, "relay_held_back_total") << " events held back\n";
}

// The health contract (plugin.h): a sink that learns its state only from sends (a webhook, SMTP)
// says DOWN after a failed send and would stay DOWN for ever if nobody sent to it again. The
// engine makes a trial send of one event after a backoff; its answer decides. Here the sink keeps
// saying DOWN even after it delivers (the worst such author): the backlog still drains, and a
// later failed send lets its DOWN open the circuit again.
TEST_F(PipelineUnit, ASinkThatLearnsOnlyFromSendsRecoversThroughTheEnginesTrialSend) {
    engine_ = start_engine(dir_);
    control_.set_mode(Mode::Retry);
    control_.set_health(SW_HEALTH_DOWN);
    std::vector<Published> accepted;
    {
        Publishers publishers(orders(), 2);
        ASSERT_TRUE(wait_until([&] { return orders().status().pending >= 200; }, 30s, 5ms));
        publishers.stop();
        accepted = publishers.accepted();
        EXPECT_TRUE(publishers.unexpected_refusals().empty()) << publishers.unexpected_refusals().front();
    }
    ASSERT_EQ(orders().circuit(), pipeline::Circuit::State::Open);
    // Failed trials while the destination is away: they give the row back without an attempt.
    ASSERT_TRUE(wait_until([&] { return metric(*engine_, "sink_trials_total") >= 2; }, 30s, 10ms));
    EXPECT_EQ(orders().status().relayed, 0u);
    EXPECT_GT(metric(*engine_, "relay_wakeups_total", {{"cause", "probe"}}), 0) << "the open circuit's looks are probes";
    EXPECT_EQ(orders().status().last_error.rfind("sink.kafka: scripted:", 0), 0u)
        << "the engine names the sink instance: " << orders().status().last_error;

    control_.set_mode(Mode::Ok);  // the destination is back; the health still says DOWN
    const auto back = std::chrono::steady_clock::now();
    ASSERT_TRUE(drained(30s)) << "pending " << orders().status().pending << ", circuit "
                              << pipeline::Circuit::name(orders().circuit());
    const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - back);
    expect_clean(check(accepted, control_.deliveries()));
    std::cout << "[          ] drained " << accepted.size() << " events " << took.count()
              << " ms after the destination returned, " << metric(*engine_, "sink_trials_total") << " trial sends\n";

    // Closed again and sending direct, though the sink never said UP.
    const auto one = [] {
        pipeline::Event e;
        e.key = "k";
        e.payload = "{}";
        return e;
    };
    const uint64_t direct_before = orders().status().direct;
    pipeline::Outcome o = orders().publish(one());
    EXPECT_EQ(o.path, pipeline::Path::Direct) << o.message;
    EXPECT_GT(orders().status().direct, direct_before);

    // A send that fails outright ends the overrule: the DOWN counts again and opens the circuit.
    control_.set_mode(Mode::Retry);
    o = orders().publish(one());
    EXPECT_EQ(o.path, pipeline::Path::Outbox) << o.message;
    ASSERT_TRUE(wait_until([&] { return orders().circuit() == pipeline::Circuit::State::Open; }, 10s, 5ms))
        << pipeline::Circuit::name(orders().circuit());
}

// A backlog drains in rounds that double from batch_size (50 here) to drain_batch_size while
// claims come back full; with drain_batch_size = batch_size they stay at 50. Both relays, the one
// claiming ahead and the one claiming a batch at a time.
TEST_F(PipelineUnit, BacklogClaimsGrowToDrainBatchSize) {
    for (const std::string extra : {"", "drain_batch_size = 400\n", "claim_ahead = false\ndrain_batch_size = 400\n",
                                    "drain_batch_size = 50\n"}) {
        SCOPED_TRACE(extra.empty() ? std::string("defaults") : extra);
        TempDir dir;
        control_.reset();
        engine_ = start_engine(dir, false, extra);
        control_.set_mode(Mode::Retry);
        control_.set_health(SW_HEALTH_DOWN);
        {
            Publishers publishers(orders(), 2);
            ASSERT_TRUE(wait_until([&] { return orders().status().pending >= 3000; }, 30s, 5ms));
            publishers.stop();
        }
        const size_t before = control_.largest_send();  // the publishers' direct attempts
        control_.set_mode(Mode::Ok);
        control_.set_health(SW_HEALTH_UP);
        ASSERT_TRUE(drained(30s)) << "pending " << orders().status().pending;
        const size_t most = control_.largest_send();
        // A relay that claims one batch at a time comes back to its loop after each full claim.
        if (extra.find("claim_ahead = false") != std::string::npos) {
            EXPECT_GT(metric(*engine_, "relay_wakeups_total", {{"cause", "backlog"}}), 0) << "no round after a full claim";
        }
        if (extra == "drain_batch_size = 50\n") EXPECT_EQ(most, std::max<size_t>(before, 50));
        else if (extra.empty()) EXPECT_EQ(most, 1000u) << "50, 100, 200, 400, 800, then 1000s";
        else EXPECT_EQ(most, 400u);
        engine_->stop();
        engine_.reset();
    }
}

// (a3) A sink that does not declare SW_PLUGIN_THREAD_SAFE is called from one thread at a time,
// whatever the publishers and the relay do at once (plugin.h's promise); the relay then drains
// one batch at a time.
TEST_F(PipelineUnit, SinkThatIsNotThreadSafeIsNeverCalledFromTwoThreadsAtOnce) {
    engine_ = start_engine(dir_, true);
    Publishers publishers(orders(), 4);
    ASSERT_TRUE(wait_until([&] { return publishers.count() >= 300; }, 20s));
    control_.set_mode(Mode::Retry);
    control_.set_health(SW_HEALTH_DOWN);
    ASSERT_TRUE(wait_until([&] { return orders().status().pending >= 200; }, 20s, 5ms));
    control_.set_mode(Mode::Ok);
    control_.set_health(SW_HEALTH_UP);
    const uint64_t relayed = orders().status().relayed;
    ASSERT_TRUE(wait_until([&] { return orders().status().relayed >= relayed + 100; }, 20s, 1ms));
    publishers.stop();
    ASSERT_TRUE(drained(20s)) << "pending " << orders().status().pending;
    EXPECT_EQ(control_.overlaps(), 0u) << "the host called the sink from two threads at once";
    EXPECT_EQ(metric(*engine_, "relay_claimed_ahead_total"), 0) << "claiming ahead would overlap sink calls";
    const auto accepted = publishers.accepted();
    EXPECT_TRUE(publishers.unexpected_refusals().empty()) << publishers.unexpected_refusals().front();
    expect_clean(check(accepted, control_.deliveries()));
}

// The same load over the thread-safe sink does overlap: the check above can fail.
TEST_F(PipelineUnit, ThreadSafeSinkIsCalledFromSeveralThreadsAtOnce) {
    engine_ = start_engine(dir_);
    Publishers publishers(orders(), 4);
    ASSERT_TRUE(wait_until([&] { return control_.overlaps() > 0; }, 20s, 1ms)) << "no two sends ever overlapped";
}

// (b) The sink reports FATAL while publishers and the relay run — at a send, and without one
// (the instance just dies and says DOWN) — and is rebuilt each time; nothing is lost.
TEST_F(PipelineUnit, FatalSinkIsRebuiltWhilePublishingAndNothingIsLost) {
    engine_ = start_engine(dir_);
    Publishers publishers(orders(), 4);
    ASSERT_TRUE(wait_until([&] { return publishers.count() >= 200; }, 10s));

    constexpr int kFaults = 10;
    for (int i = 0; i < kFaults; ++i) {
        const uint64_t recorded = control_.recorded();
        if (i % 2 == 0) control_.fail_next_send_fatally();
        else control_.kill_instances();
        ASSERT_TRUE(wait_until([&] { return metric(*engine_, "sink_rebuilds_total") >= i + 1; }, 10s, 5ms))
            << "fault " << i << ": the sink was not rebuilt";
        // The fresh instance takes events before the next fault.
        ASSERT_TRUE(wait_until([&] { return control_.recorded() >= recorded + 300; }, 10s, 5ms));
    }
    publishers.stop();

    ASSERT_TRUE(drained(20s)) << "pending " << orders().status().pending;
    EXPECT_TRUE(publishers.unexpected_refusals().empty()) << publishers.unexpected_refusals().front();
    const auto accepted = publishers.accepted();
    const auto deliveries = control_.deliveries();
    const Verdict v = check(accepted, deliveries);
    expect_clean(v);
    // One rebuild per fault, each old instance destroyed, and every instance delivered something.
    EXPECT_EQ(metric(*engine_, "sink_rebuilds_total"), kFaults);
    EXPECT_EQ(control_.created(), kFaults + 1u);
    EXPECT_EQ(control_.destroyed(), static_cast<uint64_t>(kFaults));
    EXPECT_GE(control_.fatal_reports(), kFaults / 2u);
    std::set<uint64_t> instances;
    for (const auto& d : deliveries) instances.insert(d.instance);
    EXPECT_EQ(instances.size(), kFaults + 1u);
    EXPECT_EQ(static_cast<size_t>(orders().status().dead), poison_count(accepted)) << v;
    std::cout << "[          ] " << v << "\n";
}

// (c) The pipeline stops while publishers are still publishing and the relay is draining a
// backlog. Engine::stop() stops each pipeline this way first, and then destroys it, so callers must
// have returned by then (`spillway run` closes its HTTP listener first): the test stops the
// pipeline itself, lets the publishers see "stopping", then stops the engine. Every accepted event
// is delivered or still in the outbox file, and a second engine on the file delivers the rest.
TEST_F(PipelineUnit, StopWhilePublishingKeepsEveryAcceptedEventAndARestartDeliversIt) {
    engine_ = start_engine(dir_);
    std::vector<Published> accepted;
    size_t stopping = 0;
    {
        Publishers publishers(orders(), 4);
        ASSERT_TRUE(wait_until([&] { return publishers.count() >= 200; }, 10s));
        // A backlog, then the sink back: the relay is mid-drain when the stop comes.
        control_.set_mode(Mode::Retry);
        control_.set_health(SW_HEALTH_DOWN);
        ASSERT_TRUE(wait_until([&] { return orders().status().pending >= 400; }, 15s, 5ms));
        control_.set_mode(Mode::Flaky);
        control_.set_health(SW_HEALTH_UP);
        const uint64_t relayed = orders().status().relayed;
        ASSERT_TRUE(wait_until([&] { return orders().status().relayed >= relayed + 50; }, 10s, 1ms));
        orders().stop();
        publishers.stop();
        accepted = publishers.accepted();
        stopping = publishers.stopping_refusals();
        EXPECT_TRUE(publishers.unexpected_refusals().empty()) << publishers.unexpected_refusals().front();
    }
    EXPECT_GT(stopping, 0u) << "the publishers had all finished before the stop";
    engine_->stop();
    engine_.reset();

    // Nothing accepted is gone: delivered, or in the file.
    auto rows = outbox_rows(dir_.path() + "/outbox.db");
    const Verdict at_stop = check(accepted, control_.deliveries(), rows["pending"]);
    expect_clean(at_stop);
    for (const auto& p : accepted) {
        if (!p.poison) continue;
        EXPECT_TRUE(rows["pending"].count(p.event_id) || rows["dead"].count(p.event_id)) << p.event_id;
    }
    EXPECT_GT(rows["pending"].size(), 0u) << "nothing was left for the restart to deliver";

    // The restart delivers the rest, in order.
    control_.set_mode(Mode::Ok);
    engine_ = start_engine(dir_);
    ASSERT_TRUE(drained(20s)) << "pending " << orders().status().pending;
    const Verdict v = check(accepted, control_.deliveries());
    expect_clean(v);
    EXPECT_EQ(static_cast<size_t>(orders().status().dead), poison_count(accepted));
    std::cout << "[          ] at the stop " << rows["pending"].size() << " pending; after the restart " << v << "\n";
}

// (g) Transforms run immediately before every send, in the pipeline's order, on the direct path and
// the relay's alike; the outbox keeps the event as accepted, so the relayed record equals the
// direct one. What a transform drops is settled and counted, what it rejects is refused (direct)
// or parked (relay), and a transform that fails its call keeps the events for later.
const char* kTwoTransforms = "transforms = [\"a\", \"b\"]\n\n"
                             "[transform.a]\nplugin = \"scripted\"\ntag = \"a\"\nretopic = true\n\n"
                             "[transform.b]\nplugin = \"scripted\"\ntag = \"b\"\n";

pipeline::Event keyed(const std::string& key, const std::string& payload) {
    pipeline::Event e;
    e.key = key;
    e.payload = payload;
    return e;
}

const Delivery* delivered(const std::vector<Delivery>& all, const std::string& event_id) {
    for (const auto& d : all)
        if (d.event_id == event_id && d.acknowledged) return &d;
    return nullptr;
}

TEST_F(PipelineUnit, TransformsRewriteEveryEventInOrderOnTheDirectPathAndTheRelaysAlike) {
    engine_ = start_engine(dir_, false, kTwoTransforms);
    const auto direct = orders().publish(keyed("k1", "{\"n\":1}"));
    ASSERT_EQ(direct.path, pipeline::Path::Direct) << direct.message;

    control_.set_mode(Mode::Retry);  // the direct send fails: the event spills
    const auto spilled = orders().publish(keyed("k1", "{\"n\":2}"));
    ASSERT_EQ(spilled.path, pipeline::Path::Outbox) << spilled.message;
    EXPECT_EQ(outbox_rows(dir_.path() + "/outbox.db")["pending"].count(spilled.event_id), 1u);
    control_.set_mode(Mode::Ok);
    control_.set_health(SW_HEALTH_UP);
    ASSERT_TRUE(drained(10s));

    const auto all = control_.deliveries();
    for (const auto* id : {&direct.event_id, &spilled.event_id}) {
        const Delivery* d = delivered(all, *id);
        ASSERT_TRUE(d) << *id << " was not delivered";
        EXPECT_EQ(d->topic, "orders.events.a") << "transform a sets the topic, b leaves it";
        EXPECT_EQ(d->key, "k1");
        // a ran before b: their headers come in that order, after whatever the engine set.
        ASSERT_GE(d->headers.size(), 2u);
        EXPECT_EQ(d->headers[d->headers.size() - 2], (std::pair<std::string, std::string>{"x-tag-a", "a"}));
        EXPECT_EQ(d->headers.back(), (std::pair<std::string, std::string>{"x-tag-b", "b"}));
        EXPECT_GT(d->created_at_us, 0) << "the accepted time is the host's, whatever a transform returns";
    }
    EXPECT_EQ(metric(*engine_, "transform_dropped_total", {{"transform", "transform.a"}}), 0);
}

TEST_F(PipelineUnit, WhatATransformDropsIsSettledAndWhatItRejectsIsRefusedOrParked) {
    engine_ = start_engine(dir_, false, kTwoTransforms);
    // Direct.
    const auto dropped = orders().publish(keyed("k1", "{\"drop\":true}"));
    EXPECT_EQ(dropped.path, pipeline::Path::Direct) << "a dropped event is done with: " << dropped.message;
    const auto rejected = orders().publish(keyed("k2", "{\"reject\":true}"));
    EXPECT_EQ(rejected.path, pipeline::Path::Refused);
    EXPECT_EQ(rejected.reason, pipeline::Reason::Rejected);
    EXPECT_EQ(rejected.message, "transform.a: asked to reject");
    EXPECT_EQ(metric(*engine_, "transform_dropped_total", {{"transform", "transform.a"}}), 1);
    EXPECT_EQ(metric(*engine_, "transform_rejected_total", {{"transform", "transform.a"}}), 1);
    EXPECT_EQ(metric(*engine_, "transform_rejected_total", {{"transform", "transform.b"}}), 0)
        << "b never saw what a rejected";

    // Through the outbox: the relay drops and parks the same way.
    control_.set_mode(Mode::Retry);  // a send that reaches the sink fails: the events spill
    const auto dropped2 = orders().publish(keyed("k3", "{\"drop\":true}"));
    const auto rejected2 = orders().publish(keyed("k4", "{\"reject\":true}"));
    const auto plain = orders().publish(keyed("k4", "{\"n\":1}"));
    // The first two never reach the sink (a transform settles them), the third spills.
    EXPECT_EQ(dropped2.path, pipeline::Path::Direct);
    EXPECT_EQ(rejected2.path, pipeline::Path::Refused);
    ASSERT_EQ(plain.path, pipeline::Path::Outbox);
    control_.set_health(SW_HEALTH_DOWN);  // the next publish opens the circuit: these spill unsent
    const auto dropped3 = orders().publish(keyed("k5", "{\"drop\":true}"));
    const auto rejected3 = orders().publish(keyed("k5", "{\"reject\":true}"));
    ASSERT_EQ(dropped3.path, pipeline::Path::Outbox);
    ASSERT_EQ(rejected3.path, pipeline::Path::Outbox);
    control_.set_mode(Mode::Ok);
    control_.set_health(SW_HEALTH_UP);
    ASSERT_TRUE(drained(10s));
    auto rows = outbox_rows(dir_.path() + "/outbox.db");
    EXPECT_EQ(rows["dead"], std::set<std::string>{rejected3.event_id});
    const auto all = control_.deliveries();
    for (const auto* id : {&dropped.event_id, &dropped2.event_id, &rejected2.event_id, &dropped3.event_id,
                           &rejected3.event_id})
        EXPECT_FALSE(delivered(all, *id)) << *id;
    EXPECT_TRUE(delivered(all, plain.event_id));
    EXPECT_EQ(metric(*engine_, "transform_dropped_total", {{"transform", "transform.a"}}), 3);
    EXPECT_EQ(metric(*engine_, "transform_rejected_total", {{"transform", "transform.a"}}), 3);
}

TEST_F(PipelineUnit, ATransformThatFailsItsCallKeepsTheEventsForLater) {
    engine_ = start_engine(dir_, false, kTwoTransforms);
    const auto failed = orders().publish(keyed("k1", "{\"fail\":true}"));
    ASSERT_EQ(failed.path, pipeline::Path::Outbox) << "a failed transform is a failed send: the event spills";
    EXPECT_NE(failed.message.find("transform.a: RETRY: asked to fail the call"), std::string::npos) << failed.message;
    // The relay tries again and again (a pure transform that fails now fails later too) and never
    // lets the key's next event overtake it.
    const auto next = orders().publish(keyed("k1", "{\"n\":2}"));
    EXPECT_EQ(next.path, pipeline::Path::Outbox) << "k1 is sticky behind the failed event";
    ASSERT_TRUE(wait_until([&] { return orders().status().relayed == 0 && metric(*engine_, "relay_failures_total") >= 2; },
                           10s, 5ms));
    EXPECT_FALSE(delivered(control_.deliveries(), next.event_id));
    EXPECT_EQ(outbox_rows(dir_.path() + "/outbox.db")["pending"].size(), 2u);
}

// (h) The HTTP server's threads (io threads, the handler pool, stop) with everything it shares:
// four keep-alive clients publishing, one reading probes and metrics, one trickling a header, then
// stop() while the trickler still sends. Here so that ThreadSanitizer watches it (no librdkafka).
TEST_F(PipelineUnit, HttpServerServesConcurrentClientsAndStopsWithinItsDeadline) {
    namespace net = boost::asio;
    namespace beast = boost::beast;
    namespace bhttp = beast::http;
    using tcp = net::ip::tcp;
    engine_ = start_engine(dir_);
    config::HttpLimits limits;
    limits.shutdown_timeout_ms = 1000;
    http::Server server(*engine_, "127.0.0.1:0", "", limits);
    server.start();
    const tcp::endpoint at(net::ip::make_address("127.0.0.1"), static_cast<unsigned short>(server.port()));

    std::atomic<int> accepted{0};
    std::mutex failures_mutex;
    std::vector<std::string> failures;
    auto fail = [&](std::string what) {
        std::lock_guard lock(failures_mutex);
        failures.push_back(std::move(what));
    };
    auto exchange = [](tcp::socket& s, beast::flat_buffer& buf, bhttp::request<bhttp::string_body>& req) {
        req.set(bhttp::field::host, "127.0.0.1");
        req.prepare_payload();
        bhttp::write(s, req);
        bhttp::response<bhttp::string_body> res;
        bhttp::read(s, buf, res);
        return res;
    };
    constexpr int kClients = 4, kRequests = 40, kPerRequest = 3;
    std::vector<std::thread> threads;
    for (int c = 0; c < kClients; ++c)
        threads.emplace_back([&, c] {
            try {
                net::io_context ioc;
                tcp::socket s(ioc);
                s.connect(at);
                beast::flat_buffer buf;
                for (int i = 0; i < kRequests; ++i) {
                    bhttp::request<bhttp::string_body> req{bhttp::verb::post, "/v1/pipelines/orders/events", 11};
                    req.set(bhttp::field::content_type, "application/x-ndjson");
                    for (int e = 0; e < kPerRequest; ++e)
                        req.body() += "{\"key\":\"c" + std::to_string(c) + "\",\"payload\":{\"n\":" +
                                      std::to_string(i * kPerRequest + e) + "}}\n";
                    const auto res = exchange(s, buf, req);
                    if (res.result_int() == 202) accepted += kPerRequest;
                    else fail("publish: HTTP " + std::to_string(res.result_int()) + " " + res.body());
                }
            } catch (const std::exception& e) {
                fail(std::string("publisher: ") + e.what());
            }
        });
    threads.emplace_back([&] {
        try {
            net::io_context ioc;
            tcp::socket s(ioc);
            s.connect(at);
            beast::flat_buffer buf;
            for (int i = 0; i < 60; ++i) {
                bhttp::request<bhttp::string_body> req{bhttp::verb::get, i % 3 == 0 ? "/metrics" : i % 3 == 1 ? "/healthz" : "/v1/pipelines", 11};
                const auto res = exchange(s, buf, req);
                if (res.result_int() != 200) fail("probe: HTTP " + std::to_string(res.result_int()));
            }
        } catch (const std::exception& e) {
            fail(std::string("prober: ") + e.what());
        }
    });
    std::atomic<bool> trickle{true};
    std::thread trickler([&] {
        net::io_context ioc;
        tcp::socket s(ioc);
        beast::error_code ec;
        s.connect(at, ec);
        net::write(s, net::buffer(std::string("POST /v1/pipelines/orders/events HTTP/1.1\r\nHost: x\r\n")), ec);
        while (trickle && !ec) {
            net::write(s, net::buffer(std::string("X: y\r\n")), ec);
            std::this_thread::sleep_for(20ms);  // the attack's rhythm
        }
    });
    for (auto& t : threads) t.join();
    {
        std::lock_guard lock(failures_mutex);
        EXPECT_TRUE(failures.empty()) << failures.size() << " failures, the first: " << failures.front();
    }
    EXPECT_EQ(accepted.load(), kClients * kRequests * kPerRequest);
    EXPECT_TRUE(wait_until(
        [&] {
            std::set<std::string> ids;
            for (const Delivery& d : control_.deliveries()) ids.insert(d.event_id);
            return ids.size() >= static_cast<size_t>(accepted.load());
        },
        20s))
        << "not every accepted event reached the sink";

    // The trickler's request is in flight: stop() gives it the shutdown timeout, then closes it.
    const auto t0 = std::chrono::steady_clock::now();
    server.stop();
    const auto took = std::chrono::steady_clock::now() - t0;
    EXPECT_LT(took, std::chrono::milliseconds(limits.shutdown_timeout_ms) + 5s)
        << std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms";
    trickle = false;
    trickler.join();
}

}  // namespace
}  // namespace spillway
