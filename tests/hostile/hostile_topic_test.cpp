// Hostile topics (issue 19, class 5): names Kafka would truncate, refuse or keep internal, and names
// outside the pipeline's `topics`, each answered 400 naming the topic; and a burst of legal names the
// cluster does not have, each refused as rejected by Kafka (422) while the pipeline's own topic
// keeps going direct with its circuit closed. The engine stays up with its memory bounded.
#include "hostile_engine.hpp"

#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include <spillway/test_support/wait.hpp>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

namespace spillway::hostile {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

// Resident memory the engine may reach in these tests: it idles near 30 MB; a cache of every
// name ever seen, or records kept per unknown topic, would pass this.
constexpr long kRssBoundKb = rss_bound_kb(200 * 1024);

struct Answer {
    int status = 0;
    json body;
    std::string text;
};

// `topic_json` is the topic as JSON text (quotes and escapes included), so a \u0000 goes as the
// client would write it.
Answer publish(HostileEngine& engine, const std::string& topic_json, const std::string& payload = "1") {
    httplib::Client c(engine.base_url());
    c.set_read_timeout(30s);
    const std::string body = "{\"topic\":" + topic_json + ",\"key\":\"k\",\"payload\":" + payload + "}";
    auto res = c.Post("/v1/pipelines/orders/events", body, "application/json");
    Answer a;
    if (!res) return a;
    a.status = res->status;
    a.text = res->body;
    a.body = json::parse(res->body, nullptr, false);
    return a;
}

std::string first_message(const Answer& a) {
    if (!a.body.is_object() || !a.body.contains("results")) return a.text;
    return a.body["results"][0].value("message", std::string());
}

void expect_refused(HostileEngine& engine, const std::string& topic_json, const std::string& says) {
    const Answer a = publish(engine, topic_json);
    EXPECT_EQ(a.status, 400) << topic_json << ": " << a.text;
    EXPECT_NE(first_message(a).find(says), std::string::npos) << topic_json << ": " << a.text;
    if (a.body.is_object() && a.body.contains("results")) {
        EXPECT_EQ(a.body["results"][0]["path"], "refused") << a.text;
        EXPECT_EQ(a.body["results"][0]["reason"], "invalid") << a.text;
    }
    EXPECT_TRUE(engine.alive()) << engine.log_tail();
}

TEST(HostileTopic, NulInsideTheTopicIsRefusedNotTruncated) {
    HostileEngine engine;
    ASSERT_TRUE(engine.start()) << engine.log_tail();
    // Before the fix this went to "orders.events" (librdkafka reads the name as a C string).
    expect_refused(engine, "\"orders.events\\u0000x\"", "\"orders.events\\x00x\" is not a legal Kafka topic name");
    // The same with a control character and an escape sequence: shown escaped, never as sent.
    expect_refused(engine, "\"orders\\u001b[31m\"", "\"orders\\x1b[31m\"");
    // Nothing reached the real topic: a good event after it is the only record there.
    ASSERT_EQ(publish(engine, "\"orders.events\"", "{\"good\":1}").status, 202);
    const auto records = engine.kafka().consume_all(engine.topic(), 1, 10s);
    ASSERT_EQ(records.size(), 1u);
    EXPECT_EQ(records[0].payload.value_or(""), "{\"good\":1}");
    EXPECT_LT(engine.rss_kb(), kRssBoundKb);
}

TEST(HostileTopic, IllegalCharactersAndLengthAreRefused) {
    HostileEngine engine;
    ASSERT_TRUE(engine.start()) << engine.log_tail();
    expect_refused(engine, "\"orders events\"", "is not a legal Kafka topic name");
    expect_refused(engine, "\"orders/events\"", "is not a legal Kafka topic name");
    expect_refused(engine, "\"ordérs\"", "is not a legal Kafka topic name");
    expect_refused(engine, "\".\"", "is not a legal Kafka topic name");
    expect_refused(engine, "\"..\"", "is not a legal Kafka topic name");
    expect_refused(engine, "\"" + std::string(250, 'a') + "\"", "longer than 249 characters");
    expect_refused(engine, "\"" + std::string(100000, 'a') + "\"", "(100000 bytes)");  // cut in the message
    // 249 is still legal.
    EXPECT_EQ(publish(engine, "\"" + std::string(249, 'a') + "\"").status, 202);
    EXPECT_LT(engine.rss_kb(), kRssBoundKb);
}

TEST(HostileTopic, InternalTopicsAreRefused) {
    HostileEngine engine;
    ASSERT_TRUE(engine.start()) << engine.log_tail();
    expect_refused(engine, "\"__consumer_offsets\"", "is internal to Kafka");
    expect_refused(engine, "\"__transaction_state\"", "is internal to Kafka");
    expect_refused(engine, "\"__anything\"", "is internal to Kafka");
}

TEST(HostileTopic, TopicsOutsideThePipelinesListAreRefused) {
    HostileEngine engine("", "topics = [\"orders.events\", \"orders.audit.*\"]\n");
    ASSERT_TRUE(engine.start()) << engine.log_tail();
    expect_refused(engine, "\"payments\"", "is not one pipeline orders publishes to");
    expect_refused(engine, "\"orders.audit\"", "is not one pipeline orders publishes to");
    EXPECT_EQ(publish(engine, "\"orders.events\"").status, 202);
    EXPECT_EQ(publish(engine, "\"orders.audit.2024\"").status, 202);
    // An event without a topic takes the pipeline's own, which the list allows.
    httplib::Client c(engine.base_url());
    auto res = c.Post("/v1/pipelines/orders/events", "{\"payload\":2}", "application/json");
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 202) << res->body;
}

TEST(HostileTopic, ABatchWithOneBadTopicRefusesOnlyThatEvent) {
    HostileEngine engine;
    ASSERT_TRUE(engine.start()) << engine.log_tail();
    httplib::Client c(engine.base_url());
    auto res = c.Post("/v1/pipelines/orders/events",
                      "[{\"payload\":1},{\"topic\":\"__consumer_offsets\",\"payload\":2}]", "application/json");
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 422) << "partly refused, refusals permanent: " << res->body;
    const json b = json::parse(res->body);
    EXPECT_EQ(b["accepted"], 1);
    EXPECT_EQ(b["results"][1]["reason"], "invalid");
}

// --- A burst of unknown topics (the circuit and the topic-handle cache) ---------------------------

json pipeline_status(HostileEngine& engine) {
    httplib::Client c(engine.base_url());
    auto res = c.Get("/v1/pipelines/orders");
    if (!res || res->status != 200) return {};
    return json::parse(res->body, nullptr, false);
}

// How the client asks for the burst's topics, which the cluster does not have. librdkafka 2.0.2's
// mock cluster speaks Metadata up to v2 only, so it never sees a client's AllowAutoTopicCreation
// and creates whatever topic a client's metadata request names, unless that topic was given an
// error: where the client names them, each gets UNKNOWN_TOPIC_OR_PART first (what a broker with
// auto.create.topics.enable=false answers).
enum class Unknown {
    // librdkafka's default for a producer: allow.auto.create.topics = true.
    AutoCreateAsked,
    // The sink sets allow.auto.create.topics = false (as a real broker would then not create them):
    // the sink checks names against the cluster's topic list and never names an unknown one to the
    // cluster or to librdkafka.
    AutoCreateNotAsked,
};

constexpr size_t kUnknownTopics = 2000;
constexpr size_t kPerRequest = 50;
constexpr size_t kBurstSenders = 2;
constexpr size_t kRealPerBurstRequest = 5;
constexpr size_t kRealAfterBurst = 50;

// 2,000 distinct unknown names, 50 per request from two clients at once, while a third client
// publishes to the pipeline's real topic one event at a time, each after the last was answered
// (one key: their order is causal). The unknown names are refused per event as rejected by Kafka;
// the real events all go direct (never the outbox), the circuit stays closed, and every real
// event is in Kafka, in order.
void burst_of_unknown_topics(Unknown how) {
    HostileEngine engine("", "", how == Unknown::AutoCreateNotAsked ? "\"allow.auto.create.topics\" = \"false\"" : "");
    std::vector<std::string> names;
    for (size_t i = 0; i < kUnknownTopics; ++i) names.push_back("no.such.topic." + std::to_string(i));
    if (how == Unknown::AutoCreateAsked) {
        const auto t0 = std::chrono::steady_clock::now();
        engine.kafka().set_unknown_topics(names);
        std::printf("mock: %zu topic errors set in %.1f s\n", names.size(),
                    std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    ASSERT_TRUE(engine.start()) << engine.log_tail();
    {  // warm: the real topic is known before the burst
        const Answer a = publish(engine, "\"orders.events\"", "{\"seq\":-1}");
        ASSERT_EQ(a.status, 202) << a.text;
    }
    const long rss_before = engine.rss_kb();

    std::atomic<size_t> burst_done{0}, burst_answered{0};
    std::vector<int> burst_status(kUnknownTopics / kPerRequest, 0);
    std::vector<json> burst_results(kUnknownTopics / kPerRequest);
    const auto started = std::chrono::steady_clock::now();
    std::vector<std::thread> senders;
    for (size_t s = 0; s < kBurstSenders; ++s)
        senders.emplace_back([&, s] {
            httplib::Client c(engine.base_url());
            c.set_read_timeout(120s);
            for (size_t r = s; r < burst_status.size(); r += kBurstSenders) {
                json events = json::array();
                for (size_t i = r * kPerRequest; i < (r + 1) * kPerRequest; ++i)
                    events.push_back({{"topic", names[i]}, {"key", "k" + std::to_string(i)}, {"payload", i}});
                auto res = c.Post("/v1/pipelines/orders/events", events.dump(), "application/json");
                if (res) {
                    burst_status[r] = res->status;
                    burst_results[r] = json::parse(res->body, nullptr, false);
                }
                ++burst_answered;
            }
            ++burst_done;
        });

    // The real topic's events, each sent once the previous one is answered.
    struct Real {
        int status = 0;
        std::string path, reason, message;
        double ms = 0;
    };
    std::vector<Real> real;
    {
        httplib::Client c(engine.base_url());
        c.set_read_timeout(60s);
        size_t after_burst = 0;
        for (size_t seq = 0; after_burst < kRealAfterBurst; ++seq) {
            // Paced by the burst: a few real events per burst request answered, then more after it.
            const bool during = test_support::wait_until(
                [&] { return burst_done.load() == kBurstSenders || seq < (burst_answered.load() + 1) * kRealPerBurstRequest; },
                120s);
            if (!during) {
                ADD_FAILURE() << "the burst is not answered";
                break;
            }
            if (burst_done.load() == kBurstSenders) ++after_burst;
            const auto t0 = std::chrono::steady_clock::now();
            const std::string body = "{\"key\":\"customer-7\",\"payload\":{\"seq\":" + std::to_string(seq) + "}}";
            auto res = c.Post("/v1/pipelines/orders/events", body, "application/json");
            Real r;
            r.ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
            if (res) {
                r.status = res->status;
                const json b = json::parse(res->body, nullptr, false);
                if (b.is_object() && b.contains("results")) {
                    r.path = b["results"][0].value("path", "");
                    r.reason = b["results"][0].value("reason", "");
                    r.message = b["results"][0].value("message", "");
                }
            }
            real.push_back(r);
        }
    }
    for (auto& t : senders) t.join();
    const double burst_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    const long rss_after = engine.rss_kb();

    // What the burst got.
    size_t refused_rejected = 0, to_outbox = 0, other = 0;
    std::string sample;
    for (size_t r = 0; r < burst_results.size(); ++r) {
        const json& b = burst_results[r];
        if (!b.is_object() || !b.contains("results")) {
            other += kPerRequest;
            continue;
        }
        for (const auto& e : b["results"]) {
            if (e.value("path", "") == "refused" && e.value("reason", "") == "rejected") ++refused_rejected;
            else if (e.value("path", "") == "outbox") ++to_outbox;
            else ++other;
            if (sample.empty()) sample = e.dump();
        }
    }
    size_t real_direct = 0;
    double real_max_ms = 0;
    std::string real_other;
    for (const auto& r : real) {
        if (r.status == 202 && r.path == "direct") ++real_direct;
        else if (real_other.empty()) real_other = std::to_string(r.status) + " " + r.path + " " + r.reason + ": " + r.message;
        real_max_ms = std::max(real_max_ms, r.ms);
    }
    const json status = pipeline_status(engine);
    std::printf("burst (%s): %zu unknown-topic events in %.1f s: %zu refused as rejected, %zu to the outbox, %zu other;"
                " real topic: %zu/%zu direct (slowest %.0f ms); circuit %s; counts %s; engine RSS %ld kB before, %ld kB after\n"
                "  first burst result: %s\n  first real event not direct: %s\n",
                how == Unknown::AutoCreateNotAsked ? "allow.auto.create.topics=false" : "allow.auto.create.topics=true",
                kUnknownTopics, burst_s, refused_rejected, to_outbox, other, real_direct, real.size(), real_max_ms,
                status.value("circuit", std::string("?")).c_str(), status.contains("counts") ? status["counts"].dump().c_str() : "?",
                rss_before, rss_after, sample.c_str(), real_other.c_str());

    for (size_t r = 0; r < burst_status.size(); ++r) EXPECT_EQ(burst_status[r], 422) << "request " << r << ": " << burst_results[r].dump();
    EXPECT_EQ(refused_rejected, kUnknownTopics) << sample;
    EXPECT_NE(sample.find("UNKNOWN_TOPIC"), std::string::npos) << sample;
    EXPECT_NE(sample.find("no.such.topic."), std::string::npos) << "the refusal names the topic: " << sample;
    EXPECT_EQ(real_direct, real.size()) << real_other;
    EXPECT_EQ(status.value("circuit", std::string()), "closed") << status.dump();
    EXPECT_EQ(status["counts"].value("outbox", -1), 0) << status.dump();
    EXPECT_EQ(status.value("pending", -1), 0) << status.dump();
    // The burst is answered at once, not after a direct_timeout per request (40 requests x 2 s).
    EXPECT_LT(burst_s, 20.0);

    // Every real event reached Kafka, in the order it was sent.
    const auto records = engine.kafka().consume_all(engine.topic(), real.size() + 1, 30s);
    ASSERT_EQ(records.size(), real.size() + 1);
    std::vector<std::string> payloads;
    for (const auto& rec : records)
        if (rec.key == "customer-7") payloads.push_back(rec.payload.value_or(""));
    ASSERT_EQ(payloads.size(), real.size());
    for (size_t i = 0; i < payloads.size(); ++i) EXPECT_EQ(payloads[i], "{\"seq\":" + std::to_string(i) + "}");

    EXPECT_TRUE(engine.alive()) << engine.log_tail();
    EXPECT_LT(rss_after, kRssBoundKb);
    // What the names cost: before the fix, librdkafka kept a topic object per name, +50 MB for
    // these 2,000 (+100 MB where the mock created them); now a few MB.
    EXPECT_LT(rss_after - rss_before, rss_bound_kb(16 * 1024)) << rss_before << " kB before the burst";
}

TEST(HostileTopic, BurstOfUnknownTopicsIsRefusedAndKeepsTheCircuitClosed) {
    burst_of_unknown_topics(Unknown::AutoCreateAsked);
}

TEST(HostileTopic, BurstOfUnknownTopicsWithoutAutoCreateIsRefusedAndKeepsTheCircuitClosed) {
    burst_of_unknown_topics(Unknown::AutoCreateNotAsked);
}

}  // namespace
}  // namespace spillway::hostile
