// coordination = "shards", direct-first: the publisher asks the store once per publish call which
// of the keys it would send directly have pending rows (any engine's), spills those (sticky-db)
// and refuses them when the store cannot answer (SCALE-OUT.md §3.7). Run through the C ABI over
// the scripted sink and the scripted store, whose probe answers as the test says and counts calls.
#include "engine/engine.hpp"
#include "engine/http/server.hpp"
#include "engine/observe/log.hpp"

#include "scripted/control.hpp"
#include "scripted/store_control.hpp"
#include "temp_dir.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace spillway {
namespace {

using fakes::scripted::Control;
using fakes::scripted::StoreControl;
using pipeline::Path;
using pipeline::Reason;
using pipeline_unit::TempDir;

// One direct-first pipeline "orders" on the scripted sink, store and doorbell.
std::string pipeline_toml(const std::string& coordination) {
    std::string t;
    t += "[engine]\nplugin_path = [\"" SCRIPTED_SINK_PLUGIN "\", \"" SCRIPTED_STORE_PLUGIN "\", \"" SCRIPTED_BELL_PLUGIN
         "\", \"" ADAPTIVE_PLUGIN "\"]\n";
    t += "log_level = \"warn\"\n\n";
    t += "[sink.kafka]\nplugin = \"scripted\"\n\n";
    t += "[store.outbox]\nplugin = \"scripted-store\"\n\n";
    t += "[notifier.bell]\nplugin = \"scripted-bell\"\n\n";
    t += "[scheduler.poll]\nplugin = \"adaptive\"\n\n";
    t += "[pipeline.orders]\nsink = \"kafka\"\nstore = \"outbox\"\nnotifier = \"bell\"\nscheduler = \"poll\"\n";
    t += "topic = \"orders.events\"\ndirect_timeout = \"1s\"\nshutdown_timeout = \"5s\"\n";
    t += "coordination = \"" + coordination + "\"\n";
    return t;
}

pipeline::Event event(std::optional<std::string> key, int n) {
    pipeline::Event e;
    e.key = std::move(key);
    e.payload = "{\"n\":" + std::to_string(n) + "}";
    return e;
}

class ShardsProbe : public ::testing::Test {
protected:
    void SetUp() override {
        Control::get().reset();
        StoreControl::get().reset();
    }
    void TearDown() override {
        if (engine_) engine_->stop();
    }

    void start(const std::string& coordination = "shards") {
        const std::string path = dir_.path() + "/pipeline.toml";
        std::ofstream(path) << pipeline_toml(coordination);
        config::LoadOptions lo;
        lo.environment = "testing";
        auto prepared = prepare(path, lo);
        observe::setup_logging(prepared->config.engine.log_level, prepared->config.engine.log_format);
        engine_ = std::make_unique<Engine>(std::move(prepared));
        engine_->start();
    }
    pipeline::Pipeline& orders() { return *engine_->pipeline("orders"); }
    double metric(const std::string& name, observe::Labels more = {}) {
        observe::Labels l{{"pipeline", "orders"}};
        l.insert(l.end(), more.begin(), more.end());
        return engine_->metrics().value(name, l);
    }
    uint64_t probe_count() { return engine_->metrics().count("direct_probe_seconds", {{"pipeline", "orders"}}); }
    // Event ids the sink took, and those the store took.
    std::set<std::string> sent() const {
        std::set<std::string> ids;
        for (const auto& d : Control::get().deliveries()) ids.insert(d.event_id);
        return ids;
    }
    std::set<std::string> stored() const {
        std::set<std::string> ids;
        for (const auto& a : StoreControl::get().appends()) ids.insert(a.event_id);
        return ids;
    }

    TempDir dir_;
    std::unique_ptr<Engine> engine_;
};

TEST_F(ShardsProbe, KeysTheStoreHoldsSpillAsStickyDbAndTheRestGoDirectAfterOneProbe) {
    start();
    const auto holds = StoreControl::get().holds();
    ASSERT_EQ(holds.size(), 1u);
    EXPECT_EQ(holds[0], (std::pair<std::string, uint32_t>{"orders", SW_HOLD_SHARDS}));

    StoreControl::get().set_pending({"held"});
    std::vector<pipeline::Event> call;
    call.push_back(event("held", 0));
    call.push_back(event("free", 1));
    call.push_back(event(std::nullopt, 2));
    call.push_back(event("held", 3));
    call.push_back(event("free", 4));
    const auto out = orders().publish(std::move(call));
    ASSERT_EQ(out.size(), 5u);

    for (size_t i : {0u, 3u}) {
        EXPECT_EQ(out[i].path, Path::Outbox) << i << ": " << out[i].message;
        EXPECT_STREQ(pipeline::reason_name(out[i].reason), "sticky-db") << i;
    }
    for (size_t i : {1u, 2u, 4u}) EXPECT_EQ(out[i].path, Path::Direct) << i << ": " << out[i].message;
    EXPECT_EQ(stored(), (std::set<std::string>{out[0].event_id, out[3].event_id}));
    EXPECT_EQ(sent(), (std::set<std::string>{out[1].event_id, out[2].event_id, out[4].event_id}));

    // One probe for the call, of its distinct keys; the keyless event asked nothing.
    const auto probes = StoreControl::get().probes();
    ASSERT_EQ(probes.size(), 1u);
    EXPECT_EQ(probes[0], (std::vector<std::string>{"held", "free"}));
    EXPECT_EQ(probe_count(), 1u);
    EXPECT_EQ(metric("publish_total", {{"path", "outbox"}, {"reason", "sticky-db"}}), 2.0);
    EXPECT_EQ(metric("publish_total", {{"path", "direct"}, {"reason", "none"}}), 3.0);
    EXPECT_EQ(metric("direct_probe_failures_total"), 0.0);
}

TEST_F(ShardsProbe, EachCallProbesOnceAndOnlyForKeysItWouldSendDirect) {
    start();
    StoreControl::get().set_pending({"held"});
    // Keyless only: nothing to ask.
    std::vector<pipeline::Event> keyless;
    for (int n = 0; n < 3; ++n) keyless.push_back(event(std::nullopt, n));
    for (const auto& o : orders().publish(std::move(keyless))) EXPECT_EQ(o.path, Path::Direct);
    EXPECT_TRUE(StoreControl::get().probes().empty());

    // Ten calls of a free key: ten probes, one each.
    for (int n = 0; n < 10; ++n) EXPECT_EQ(orders().publish(event("k" + std::to_string(n % 3), n)).path, Path::Direct);
    EXPECT_EQ(StoreControl::get().probes().size(), 10u);

    // "held" spills. This engine's own count of it does not decide its next event: the outbox
    // does, so the next call asks about both keys.
    EXPECT_EQ(orders().publish(event("held", 10)).reason, Reason::StickyDb);
    std::vector<pipeline::Event> both;
    both.push_back(event("held", 11));
    both.push_back(event("k0", 12));
    const auto out = orders().publish(std::move(both));
    EXPECT_EQ(out[0].reason, Reason::StickyDb);
    EXPECT_EQ(out[1].path, Path::Direct);
    const auto probes = StoreControl::get().probes();
    ASSERT_EQ(probes.size(), 12u);
    EXPECT_EQ(probes.back(), (std::vector<std::string>{"held", "k0"}));
    EXPECT_EQ(probe_count(), 12u);
}

// A key this engine spilled whose rows another engine relayed (the shard's owner): the outbox no
// longer holds it, so its next event goes direct here at once, instead of following a backlog
// that is gone for as long as any row of the pipeline waits (this engine never settles the row,
// so its own count of the key would not come down).
TEST_F(ShardsProbe, AKeyThisEngineSpilledGoesDirectOnceTheOutboxNoLongerHoldsIt) {
    start();
    StoreControl::get().set_pending({"moved", "other"});
    EXPECT_EQ(orders().publish(event("moved", 0)).reason, Reason::StickyDb);
    EXPECT_EQ(orders().publish(event("other", 1)).reason, Reason::StickyDb);
    StoreControl::get().set_pending({"other"});  // another engine relayed "moved"; "other" still waits
    const auto again = orders().publish(event("moved", 2));
    EXPECT_EQ(again.path, Path::Direct) << again.message;
    EXPECT_EQ(orders().publish(event("other", 3)).reason, Reason::StickyDb);
}

TEST_F(ShardsProbe, AFailedProbeRefusesTheKeyedEventsAndSendsTheKeylessDirect) {
    start();
    StoreControl::get().fail_probes(true);
    std::vector<pipeline::Event> call;
    call.push_back(event("a", 0));
    call.push_back(event(std::nullopt, 1));
    call.push_back(event("b", 2));
    const auto out = orders().publish(std::move(call));
    for (size_t i : {0u, 2u}) {
        EXPECT_EQ(out[i].path, Path::Refused) << i;
        EXPECT_EQ(out[i].reason, Reason::Unavailable) << i;
        EXPECT_NE(out[i].message.find("store.outbox"), std::string::npos) << out[i].message;
        EXPECT_NE(out[i].message.find("overtake"), std::string::npos) << out[i].message;
        EXPECT_NE(out[i].message.find("cannot be reached"), std::string::npos) << out[i].message;
    }
    EXPECT_EQ(out[1].path, Path::Direct) << out[1].message;
    EXPECT_EQ(sent(), (std::set<std::string>{out[1].event_id}));
    EXPECT_TRUE(stored().empty()) << "a refused event is neither sent nor stored";
    EXPECT_EQ(StoreControl::get().probes().size(), 1u);
    EXPECT_EQ(metric("direct_probe_failures_total"), 1.0);
    EXPECT_EQ(metric("publish_total", {{"path", "refused"}, {"reason", "unavailable"}}), 2.0);

    // The store back: the same keys go direct again.
    StoreControl::get().fail_probes(false);
    EXPECT_EQ(orders().publish(event("a", 3)).path, Path::Direct);
}

TEST_F(ShardsProbe, SingleCoordinationNeverProbes) {
    start("single");
    EXPECT_EQ(StoreControl::get().holds().at(0).second, static_cast<uint32_t>(SW_HOLD_EXCLUSIVE));
    StoreControl::get().set_pending({"held"});
    EXPECT_EQ(orders().publish(event("held", 0)).path, Path::Direct);
    EXPECT_TRUE(StoreControl::get().probes().empty());
    EXPECT_EQ(probe_count(), 0u);
}

// What an HTTP client sees: the per-event path and reason, and 503 when the probe failed.
TEST_F(ShardsProbe, HttpAnswersShowStickyDbAndA503WhenTheProbeFails) {
    namespace net = boost::asio;
    namespace bhttp = boost::beast::http;
    using tcp = net::ip::tcp;
    start();
    http::Server server(*engine_, "127.0.0.1:0", "", config::HttpLimits{});
    server.start();
    net::io_context ioc;
    tcp::socket s(ioc);
    s.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), static_cast<unsigned short>(server.port())));
    boost::beast::flat_buffer buf;
    auto post = [&](const std::string& ndjson) {
        bhttp::request<bhttp::string_body> req{bhttp::verb::post, "/v1/pipelines/orders/events", 11};
        req.set(bhttp::field::host, "127.0.0.1");
        req.set(bhttp::field::content_type, "application/x-ndjson");
        req.body() = ndjson;
        req.prepare_payload();
        bhttp::write(s, req);
        bhttp::response<bhttp::string_body> res;
        bhttp::read(s, buf, res);
        return res;
    };
    const std::string body = "{\"key\":\"held\",\"payload\":1}\n{\"payload\":2}\n{\"key\":\"free\",\"payload\":3}\n";

    StoreControl::get().set_pending({"held"});
    auto res = post(body);
    ASSERT_EQ(res.result_int(), 202) << res.body();
    auto j = nlohmann::json::parse(res.body());
    EXPECT_EQ(j["results"][0]["path"], "outbox");
    EXPECT_EQ(j["results"][0]["reason"], "sticky-db");
    EXPECT_EQ(j["results"][1]["path"], "direct");
    EXPECT_EQ(j["results"][2]["path"], "direct");

    // Keys this engine has not spilled (its own sticky keys would send "held" to the outbox unasked).
    StoreControl::get().fail_probes(true);
    res = post("{\"key\":\"a\",\"payload\":1}\n{\"payload\":2}\n{\"key\":\"b\",\"payload\":3}\n");
    ASSERT_EQ(res.result_int(), 503) << res.body();
    EXPECT_EQ(res[bhttp::field::retry_after], "1");
    j = nlohmann::json::parse(res.body());
    EXPECT_EQ(j["accepted"], 1);
    EXPECT_EQ(j["refused"], 2);
    EXPECT_EQ(j["results"][1]["path"], "direct") << "the keyless event needs no probe";
    for (int i : {0, 2}) {
        EXPECT_EQ(j["results"][i]["path"], "refused");
        EXPECT_EQ(j["results"][i]["reason"], "unavailable");
        EXPECT_NE(j["results"][i]["message"].get<std::string>().find("store.outbox"), std::string::npos) << res.body();
    }
    server.stop();
}

}  // namespace
}  // namespace spillway
