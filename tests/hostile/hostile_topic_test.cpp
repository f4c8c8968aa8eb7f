// Hostile topics (issue 19, class 5): names Kafka would truncate, refuse or keep internal, names
// outside the pipeline's `topics`, and a burst of unknown names. Each is answered 400 naming the
// topic, the engine stays up, and the pipeline's own topic keeps going direct.
#include "hostile_engine.hpp"

#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include <string>

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

}  // namespace
}  // namespace spillway::hostile
