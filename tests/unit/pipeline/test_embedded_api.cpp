// The embedded C++ API (spillway/engine.hpp) as a service uses it, linked against
// libspillway-engine.so alone (no engine internals in this program): outcomes and their reasons,
// the options, errors, and publishers racing stop() — every event accepted before the stop reaches
// the sink, at once or from the outbox after a restart, and none is lost. The scripted fake sink
// (tests/fakes/scripted) is the independent consumer; nothing here loads librdkafka (TSan-clean).
#include <spillway/engine.hpp>

#include "scripted/control.hpp"
#include "temp_dir.hpp"

#include <spillway/test_support/wait.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace spillway::embed {
namespace {

using namespace std::chrono_literals;
using fakes::scripted::Control;
using fakes::scripted::Mode;
using pipeline_unit::TempDir;
using test_support::wait_until;

// One direct-first pipeline "orders" over the scripted sink and SQLite; the outbox path and the
// listen address come from ${...} so the options' variables can fill them.
std::string write_pipeline(const TempDir& dir) {
    const std::string path = dir.path() + "/orders.toml";
    std::ofstream(path) << "[engine]\n"
                           "plugin_path = [\"" SCRIPTED_SINK_PLUGIN "\", \"" SQLITE_PLUGIN "\", \"" INPROC_PLUGIN
                           "\", \"" ADAPTIVE_PLUGIN "\"]\n"
                           "log_level = \"warn\"\n"
                           "http_listen = \"${LISTEN:-127.0.0.1:0}\"\n\n"
                           "[sink.kafka]\nplugin = \"scripted\"\n\n"
                           "[store.outbox]\nplugin = \"sqlite\"\npath = \"${OUTBOX_PATH}\"\nmax_attempts = 0\n"
                           "backoff_base = \"5ms\"\nbackoff_max = \"50ms\"\n\n"
                           "[notifier.bell]\nplugin = \"inproc\"\n\n"
                           "[scheduler.poll]\nplugin = \"adaptive\"\nerror_interval = \"50ms\"\n\n"
                           "[pipeline.orders]\nsink = \"kafka\"\nstore = \"outbox\"\nnotifier = \"bell\"\n"
                           "scheduler = \"poll\"\ntopic = \"orders.events\"\ndirect_timeout = \"1s\"\n"
                           "circuit_threshold = 3\nshutdown_timeout = \"5s\"\n";
    return path;
}

Options options_for(const TempDir& dir, bool http = false) {
    Options o;
    o.environment = "testing";
    o.variables = {{"OUTBOX_PATH", dir.path() + "/outbox.db"}};
    o.http = http;
    return o;
}

Event keyed(const std::string& key, int seq) {
    Event e;
    e.key = key;
    e.payload = "{\"seq\":" + std::to_string(seq) + "}";
    return e;
}

std::set<std::string> delivered_ids() {
    std::set<std::string> out;
    for (const auto& d : Control::get().deliveries()) out.insert(d.event_id);
    return out;
}

class EmbeddedApi : public ::testing::Test {
protected:
    void SetUp() override { Control::get().reset(); }
    void TearDown() override { Control::get().reset(); }
    TempDir dir_;
};

TEST_F(EmbeddedApi, PublishesDirectAndSaysWhyForEachEvent) {
    Engine engine(write_pipeline(dir_), options_for(dir_));
    EXPECT_EQ(engine.pipelines(), std::vector<std::string>{"orders"});
    EXPECT_EQ(engine.http_port(), 0) << "Options::http = false serves nothing, whatever the file says";
    Pipeline& orders = engine.pipeline("orders");
    EXPECT_EQ(orders.name(), "orders");

    Event mine = keyed("k", 1);
    mine.event_id = "0190aaaa-0000-7000-8000-000000000001";
    mine.event_type = "OrderPlaced";
    mine.headers = {{"tenant", "acme"}};
    Outcome o = orders.publish(std::move(mine));
    EXPECT_EQ(o.path, Path::direct);
    EXPECT_EQ(o.reason, Reason::none);
    EXPECT_TRUE(o.accepted());
    EXPECT_EQ(o.event_id, "0190aaaa-0000-7000-8000-000000000001") << "the caller's event_id is kept";

    Outcome fresh = orders.publish(keyed("k", 2));
    EXPECT_EQ(fresh.path, Path::direct);
    EXPECT_EQ(fresh.event_id.size(), 36u) << "an event without an id gets a UUID: " << fresh.event_id;

    Event forged = keyed("k", 3);
    forged.headers = {{"event_id", "forged"}};
    Outcome bad = orders.publish(std::move(forged));
    EXPECT_EQ(bad.path, Path::refused);
    EXPECT_EQ(bad.reason, Reason::invalid);
    EXPECT_FALSE(bad.retryable()) << "a malformed event is not retried as is";
    EXPECT_NE(bad.message.find("reserved"), std::string::npos) << bad.message;
    EXPECT_STREQ(to_string(bad.reason), "invalid");
    EXPECT_STREQ(to_string(bad.path), "refused");

    const auto deliveries = Control::get().deliveries();
    ASSERT_EQ(deliveries.size(), 2u);
    EXPECT_EQ(deliveries[0].topic, "orders.events");
    const std::vector<std::pair<std::string, std::string>> tenant{{"tenant", "acme"}};
    EXPECT_EQ(deliveries[0].headers, tenant) << "the caller's headers reach the sink";
}

TEST_F(EmbeddedApi, SpillsWhileKafkaIsDownAndDrainsWhenItIsBack) {
    Engine engine(write_pipeline(dir_), options_for(dir_));
    Pipeline& orders = engine.pipeline("orders");
    Control::get().set_mode(Mode::Retry);
    std::vector<Event> batch;
    for (int i = 1; i <= 20; ++i) batch.push_back(keyed("k" + std::to_string(i % 3), i));
    std::vector<Outcome> out = orders.publish(std::move(batch));
    ASSERT_EQ(out.size(), 20u);
    std::set<std::string> accepted;
    for (const auto& o : out) {
        EXPECT_EQ(o.path, Path::outbox) << to_string(o.reason) << ": " << o.message;
        EXPECT_TRUE(o.reason == Reason::failure || o.reason == Reason::circuit || o.reason == Reason::sticky)
            << to_string(o.reason);
        accepted.insert(o.event_id);
    }
    EXPECT_EQ(orders.pending(), 20);
    Control::get().set_mode(Mode::Ok);
    ASSERT_TRUE(wait_until([&] { return orders.pending() == 0; }, 30s)) << "pending " << orders.pending();
    const auto got = delivered_ids();
    for (const auto& id : accepted) EXPECT_TRUE(got.count(id)) << id << " accepted but never delivered";
}

TEST_F(EmbeddedApi, ServesTheFilesListenerOnlyWhenAsked) {
    Engine engine(write_pipeline(dir_), options_for(dir_, /*http=*/true));
    EXPECT_GT(engine.http_port(), 0) << "http_listen port 0 is bound to a real port";
}

TEST_F(EmbeddedApi, ErrorsNameTheProblem) {
    {
        Engine engine(write_pipeline(dir_), options_for(dir_));
        try {
            engine.pipeline("invoices");
            FAIL() << "an unknown pipeline name must throw";
        } catch (const Error& e) {
            EXPECT_STREQ(e.what(), "no pipeline named 'invoices' (the file has: orders)");
        }
    }
    // Without the variable the file's ${OUTBOX_PATH} names nothing: a config error naming it.
    Options missing = options_for(dir_);
    missing.variables.clear();
    try {
        Engine engine(write_pipeline(dir_), missing);
        FAIL() << "a file that does not load must throw";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("OUTBOX_PATH"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("orders.toml:"), std::string::npos) << e.what();
    }
    try {
        Engine engine(dir_.path() + "/no-such.toml", options_for(dir_));
        FAIL() << "a missing file must throw";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("no-such.toml"), std::string::npos) << e.what();
    }
}

// Publishers on four threads, each with keys of its own sent causally (a key's next event only
// after the previous one was accepted), while another thread stops the engine half-way and the
// sink is failing part of the time. Every call returns; an accepted event reaches the sink, now or
// from the outbox when the engine starts again on the same file; a refused one says "stopping";
// the first deliveries of each key follow its accept order.
TEST_F(EmbeddedApi, PublishersRacingStopLoseNothingTheyWereToldWasAccepted) {
    const std::string file = write_pipeline(dir_);
    std::mutex mutex;
    std::map<std::string, std::vector<std::string>> accepted_by_key;  // event ids, accept order
    std::atomic<int> accepted{0}, stopping{0}, other{0};
    {
        Engine engine(file, options_for(dir_));
        Pipeline& orders = engine.pipeline("orders");
        Control::get().set_mode(Mode::Flaky);
        std::vector<std::thread> publishers;
        for (int t = 0; t < 4; ++t) {
            publishers.emplace_back([&, t] {
                for (int i = 0; i < 400; ++i) {
                    const std::string key = "t" + std::to_string(t) + "-k" + std::to_string(i % 4);
                    Outcome o = orders.publish(keyed(key, i));
                    if (o.accepted()) {
                        ++accepted;
                        std::lock_guard lock(mutex);
                        accepted_by_key[key].push_back(o.event_id);
                    } else if (o.reason == Reason::stopping) {
                        ++stopping;
                    } else {
                        ++other;
                    }
                }
            });
        }
        ASSERT_TRUE(wait_until([&] { return accepted.load() >= 200; }, 30s));
        engine.stop();
        engine.stop();  // idempotent
        for (auto& p : publishers) p.join();
        EXPECT_EQ(orders.publish(keyed("late", 1)).reason, Reason::stopping) << "the Pipeline outlives stop()";
    }
    EXPECT_EQ(other.load(), 0) << "only 'stopping' refusals";
    EXPECT_GT(stopping.load(), 0) << "the stop came while publishers were still sending";

    // The same file again, with a healthy sink: what the first engine left in the outbox drains.
    Control::get().set_mode(Mode::Ok);
    Engine again(file, options_for(dir_));
    Pipeline& orders = again.pipeline("orders");
    ASSERT_TRUE(wait_until([&] { return orders.pending() == 0; }, 30s)) << "pending " << orders.pending();

    std::map<std::string, std::vector<std::string>> first_by_key;
    std::set<std::string> seen;
    for (const auto& d : Control::get().deliveries())
        if (d.acknowledged && seen.insert(d.event_id).second) first_by_key[d.key].push_back(d.event_id);
    size_t lost = 0;
    for (const auto& [key, ids] : accepted_by_key) {
        for (const auto& id : ids) lost += seen.count(id) ? 0 : 1;
        std::vector<std::string> delivered_order;
        for (const auto& id : first_by_key[key])
            if (std::find(ids.begin(), ids.end(), id) != ids.end()) delivered_order.push_back(id);
        EXPECT_EQ(delivered_order, ids) << "key " << key << ": first deliveries out of accept order";
    }
    EXPECT_EQ(lost, 0u) << "of " << accepted.load() << " accepted";
}

}  // namespace
}  // namespace spillway::embed
