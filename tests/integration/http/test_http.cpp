// The HTTP ingress and admin API against a running engine over real plugins.
#include "http_env.hpp"

#include "engine/http/event_json.hpp"

#include <spillway/test_support/postgres.hpp>
#include <spillway/test_support/wait.hpp>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <map>
#include <set>
#include <sstream>

namespace spillway::http_test {
namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;
using test_support::wait_until;

json body_of(const httplib::Result& r) {
    if (!r) return json();
    return json::parse(r->body, nullptr, false);
}

// Everything in the topic, by event_id header.
std::map<std::string, test_support::KafkaRecord> records_by_id(const Env& env, test_support::MockKafka& kafka,
                                                               size_t expected) {
    std::map<std::string, test_support::KafkaRecord> out;
    for (auto& r : kafka.consume_all(env.topic(), expected, 30s))
        if (auto id = r.header("event_id")) out[*id] = r;
    return out;
}

struct Answer {
    int status = 0;
    std::string body, retry_after;
};
Answer answer(const httplib::Result& r) {
    if (!r) return {0, "no answer: " + httplib::to_string(r.error()), ""};
    return {r->status, r->body, r->get_header_value("Retry-After")};
}

uint64_t answered(pipeline::Pipeline& p) {
    const auto s = p.status();
    return s.direct + s.outbox + s.refused;
}

TEST(HttpIngress, SingleEventIs202AndReachesKafkaWithItsEventId) {
    Env env;
    auto c = env.client();
    const json event = {{"key", "customer-7"},
                        {"payload", {{"order", 42}, {"items", {1, 2}}}},
                        {"headers", {{"source", "test"}}},
                        {"event_type", "order.created"},
                        {"correlation_id", "corr-1"},
                        {"event_id", "evt-single-1"}};
    auto r = c->Post("/v1/pipelines/orders/events", event.dump(), "application/json");
    ASSERT_TRUE(r) << httplib::to_string(r.error());
    ASSERT_EQ(r->status, 202) << r->body;
    const json b = body_of(r);
    ASSERT_EQ(b["results"].size(), 1u) << r->body;
    EXPECT_EQ(b["results"][0]["event_id"], "evt-single-1");
    EXPECT_EQ(b["results"][0]["path"], "direct");
    EXPECT_EQ(b["accepted"], 1);

    auto got = records_by_id(env, env.kafka(), 1);
    ASSERT_TRUE(got.count("evt-single-1")) << "not in Kafka";
    const auto& rec = got["evt-single-1"];
    EXPECT_EQ(rec.key.value_or(""), "customer-7");
    EXPECT_EQ(json::parse(rec.payload.value_or("null")), event["payload"]);
    EXPECT_EQ(rec.header("source").value_or(""), "test");
}

// W3C trace context: the request's traceparent/tracestate headers, or an event's own fields, reach
// the Kafka record as headers of those names, sent straight and through the outbox (stored with
// the row), read by an independent consumer.
TEST(HttpIngress, TraceContextReachesKafkaOnTheDirectPathAndThroughTheOutbox) {
    const std::string from_request = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    const std::string own = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00";
    for (const std::string mode : {"direct-first", "outbox-first"}) {
        SCOPED_TRACE(mode);
        EnvOptions o;
        o.mode = mode;
        Env env(o);
        auto c = env.client();
        const std::string body = R"([{"event_id":"tc-1","key":"k","payload":1},)"
                                 R"({"event_id":"tc-2","key":"k","payload":2,"traceparent":")" + own + R"("}])";
        const httplib::Headers headers = {{"traceparent", from_request}, {"tracestate", "rojo=00f067aa0ba902b7"},
                                          {"tracestate", "congo=t61rcWkgMzE"}};
        auto r = c->Post("/v1/pipelines/orders/events", headers, body, "application/json");
        ASSERT_TRUE(r) << httplib::to_string(r.error());
        ASSERT_EQ(r->status, 202) << r->body;
        EXPECT_EQ(body_of(r)["results"][0]["path"], mode == "direct-first" ? "direct" : "outbox") << r->body;

        auto got = records_by_id(env, env.kafka(), 2);
        ASSERT_TRUE(got.count("tc-1") && got.count("tc-2")) << "not in Kafka";
        EXPECT_EQ(got["tc-1"].header("traceparent").value_or("(none)"), from_request);
        EXPECT_EQ(got["tc-1"].header("tracestate").value_or("(none)"), "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE");
        // An event's own traceparent wins, and the request's tracestate (which belongs to the
        // request's traceparent) does not go with it.
        EXPECT_EQ(got["tc-2"].header("traceparent").value_or("(none)"), own);
        EXPECT_FALSE(got["tc-2"].header("tracestate")) << *got["tc-2"].header("tracestate");
    }
}

TEST(HttpIngress, InvalidTraceContextIs400NamingTheHeaderOrFieldAndNothingIsAccepted) {
    Env env;
    auto c = env.client();
    const std::string ok = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    const std::string one = R"({"payload":1})";
    const struct {
        httplib::Headers headers;
        std::string body, expected;
    } cases[] = {
        {{{"traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7"}}, one, "header traceparent: expected"},
        {{{"traceparent", ok}, {"traceparent", ok}}, one, "header traceparent: sent 2 times"},
        {{{"tracestate", "congo=t61"}}, one, "header tracestate: sent without a traceparent header"},
        {{{"traceparent", ok}, {"tracestate", "congo"}}, one, "header tracestate: member 'congo' is not key=value"},
        {{}, R"({"payload":1,"traceparent":"00-00000000000000000000000000000000-00f067aa0ba902b7-01"})",
         "field 'traceparent': trace-id must not be all zeros"},
        {{}, R"({"payload":1,"headers":{"tracestate":"congo=t61"}})", "field 'headers.tracestate': reserved"},
    };
    for (const auto& k : cases) {
        auto r = c->Post("/v1/pipelines/orders/events", k.headers, k.body, "application/json");
        ASSERT_TRUE(r) << httplib::to_string(r.error());
        EXPECT_EQ(r->status, 400) << k.expected << ": " << r->body;
        EXPECT_NE(body_of(r).value("error", "").find(k.expected), std::string::npos) << r->body;
    }
    EXPECT_EQ(answered(env.pipeline()), 0u);
}

TEST(HttpIngress, NdjsonBatchIs202PerEventAndEveryEventArrives) {
    Env env;
    auto c = env.client();
    const std::string raw = std::string("\x00\x01\xfe binary", 10);
    const std::string body =
        "{\"key\":\"a\",\"payload\":{\"n\":1}}\n"
        "\n"  // blank lines are skipped
        "{\"key\":null,\"payload\":\"just a string\",\"topic\":\"" + env.topic() + "\"}\r\n"
        "{\"key\":\"a\",\"payload\":\"" + http::base64_encode(raw) + "\",\"payload_encoding\":\"base64\"}\n";
    auto r = c->Post("/v1/pipelines/orders/events", body, "application/x-ndjson");
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 202) << r->body;
    const json b = body_of(r);
    ASSERT_EQ(b["results"].size(), 3u) << r->body;
    std::vector<std::string> ids;
    for (const auto& res : b["results"]) {
        EXPECT_EQ(res["path"], "direct") << res.dump();
        ids.push_back(res["event_id"]);
    }
    EXPECT_EQ(std::set<std::string>(ids.begin(), ids.end()).size(), 3u) << "event ids must be distinct";

    auto got = records_by_id(env, env.kafka(), 3);
    ASSERT_EQ(got.size(), 3u);
    EXPECT_EQ(got[ids[0]].payload.value_or(""), "{\"n\":1}");
    EXPECT_FALSE(got[ids[1]].key.has_value());
    EXPECT_EQ(got[ids[1]].payload.value_or(""), "\"just a string\"");
    EXPECT_EQ(got[ids[2]].payload.value_or(""), raw);
    EXPECT_EQ(got[ids[2]].key.value_or(""), "a");
}

TEST(HttpIngress, JsonArrayIsABatchToo) {
    Env env;
    auto c = env.client();
    auto r = c->Post("/v1/pipelines/orders/events", R"([{"payload":1},{"payload":2}])", "application/json");
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 202) << r->body;
    EXPECT_EQ(body_of(r)["results"].size(), 2u);
}

// A publishing client keeps its connection: httplib's default would close it after every fifth
// request (its answer saying Connection: close), and the client would reconnect for the next.
TEST(HttpIngress, KeepAliveConnectionServesManyRequests) {
    Env env;
    auto c = env.client();
    c->set_keep_alive(true);
    for (int i = 0; i < 12; ++i) {
        auto r = c->Post("/v1/pipelines/orders/events", "{\"payload\":" + std::to_string(i) + "}\n", "application/x-ndjson");
        ASSERT_TRUE(r) << "request " << i;
        ASSERT_EQ(r->status, 202) << r->body;
        EXPECT_NE(r->get_header_value("Connection"), "close") << "the server closed the connection after request " << i + 1;
    }
}

// Kafka gets the payload as the client wrote it, whitespace aside: key order, number spelling
// and escapes stay, in NDJSON and in a JSON array alike.
TEST(HttpIngress, PayloadKeepsTheClientsKeyOrderAndSpellingWithoutWhitespace) {
    Env env;
    auto c = env.client();
    const std::string payload = R"({ "z" : 1.50, "a" : [ 1, {"q": "x \" {y} ]"} ], "e": "caf\u00e9\n" })";
    const std::string compact = R"({"z":1.50,"a":[1,{"q":"x \" {y} ]"}],"e":"caf\u00e9\n"})";
    auto nd = c->Post("/v1/pipelines/orders/events", "{\"key\":\"k\",\"payload\": " + payload + " }\n",
                      "application/x-ndjson");
    auto arr = c->Post("/v1/pipelines/orders/events",
                       "[ {\"payload\":1}, { \"key\":\"k\", \"payload\" : " + payload + ", \"event_type\":\"T\" } ]",
                       "application/json");
    ASSERT_TRUE(nd && arr);
    ASSERT_EQ(nd->status, 202) << nd->body;
    ASSERT_EQ(arr->status, 202) << arr->body;
    const std::string id_nd = body_of(nd)["results"][0]["event_id"], id_arr = body_of(arr)["results"][1]["event_id"];
    auto got = records_by_id(env, env.kafka(), 3);
    ASSERT_EQ(got.size(), 3u);
    EXPECT_EQ(got[id_nd].payload.value_or(""), compact);
    EXPECT_EQ(got[id_arr].payload.value_or(""), compact);
    EXPECT_EQ(json::parse(compact), json::parse(payload));
}

TEST(HttpIngress, MalformedInputIs400NamingTheFieldAndNothingIsAccepted) {
    Env env;
    auto c = env.client();
    struct Case {
        std::string body, content_type, expect;
    };
    const std::vector<Case> cases = {
        {"{\"payload\": ", "application/json", "invalid JSON"},
        {"{\"key\": 5, \"payload\": {}}", "application/json", "field 'key': expected a string or null, got a number"},
        {"{\"key\": \"k\"}", "application/json", "field 'payload': required"},
        {"{\"payload\": \"@@@\", \"payload_encoding\": \"base64\"}", "application/json", "field 'payload': not valid base64"},
        {"{\"payload\": 1, \"payload_encoding\": \"hex\"}", "application/json", "field 'payload_encoding'"},
        {"{\"payload\": 1, \"headers\": {\"h\": 3}}", "application/json", "field 'headers.h': expected a string"},
        {"{\"payload\": 1, \"paylod\": 2}", "application/json", "field 'paylod': unknown field"},
        {"{\"payload\": 1, \"topic\": \"\"}", "application/json", "field 'topic': must not be empty"},
        {"{\"payload\": 1, \"event_id\": 12}", "application/json", "field 'event_id': expected a string"},
        {"[{\"payload\": 1}, {\"payload\": 2, \"key\": []}]", "application/json", "event 2: field 'key'"},
        {"[]", "application/json", "no events"},
        // NDJSON: the line is named, and the two valid lines before it are not published either.
        {"{\"payload\":1}\n{\"payload\":2}\n{\"key\":true,\"payload\":3}\n", "application/x-ndjson",
         "line 3: field 'key': expected a string or null, got a boolean"},
        {"{\"payload\":1}\nnot json\n", "application/x-ndjson", "line 2: invalid JSON"},
    };
    for (const auto& k : cases) {
        auto r = c->Post("/v1/pipelines/orders/events", k.body, k.content_type.c_str());
        ASSERT_TRUE(r);
        EXPECT_EQ(r->status, 400) << k.body << " -> " << r->body;
        const json b = body_of(r);
        ASSERT_TRUE(b.contains("error")) << r->body;
        EXPECT_NE(b["error"].get<std::string>().find(k.expect), std::string::npos)
            << "body " << k.body << "\nexpected " << k.expect << "\ngot " << b["error"];
    }
    EXPECT_EQ(answered(env.pipeline()), 0u) << "a malformed request published something";
}

TEST(HttpIngress, UnknownPipelineAndRouteAre404) {
    Env env;
    auto c = env.client();
    auto r = c->Post("/v1/pipelines/nope/events", "{\"payload\":1}", "application/json");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 404);
    EXPECT_NE(body_of(r)["error"].get<std::string>().find("no pipeline named 'nope'"), std::string::npos) << r->body;
    auto g = c->Get("/v1/pipelines/nope");
    ASSERT_TRUE(g);
    EXPECT_EQ(g->status, 404);
    auto x = c->Get("/v2/whatever");
    ASSERT_TRUE(x);
    EXPECT_EQ(x->status, 404);
    EXPECT_TRUE(body_of(x).contains("error")) << x->body;
}

TEST(HttpIngress, BodyOverTheLimitIs413) {
    EnvOptions o;
    o.max_body = 4096;
    Env env(o);
    auto c = env.client();
    const std::string big = "{\"payload\":\"" + std::string(6000, 'x') + "\"}";
    auto r = c->Post("/v1/pipelines/orders/events", big, "application/json");
    ASSERT_TRUE(r) << httplib::to_string(r.error());
    EXPECT_EQ(r->status, 413) << r->body;
    EXPECT_EQ(answered(env.pipeline()), 0u);
    auto ok = c->Post("/v1/pipelines/orders/events", "{\"payload\":1}", "application/json");
    ASSERT_TRUE(ok);
    EXPECT_EQ(ok->status, 202) << ok->body;
}

TEST(HttpIngress, TokenGuardsTheV1RoutesOnly) {
    EnvOptions o;
    o.token = "s3cret";
    Env env(o);
    auto c = env.client();
    auto missing = c->Post("/v1/pipelines/orders/events", "{\"payload\":1}", "application/json");
    ASSERT_TRUE(missing);
    EXPECT_EQ(missing->status, 401);
    EXPECT_EQ(missing->get_header_value("WWW-Authenticate"), "Bearer");
    EXPECT_EQ(c->Get("/v1/pipelines")->status, 401);

    c->set_bearer_token_auth("wrong");
    EXPECT_EQ(c->Post("/v1/pipelines/orders/events", "{\"payload\":1}", "application/json")->status, 401);
    EXPECT_EQ(answered(env.pipeline()), 0u);

    c->set_bearer_token_auth("s3cret");
    auto ok = c->Post("/v1/pipelines/orders/events", "{\"payload\":1}", "application/json");
    ASSERT_TRUE(ok);
    EXPECT_EQ(ok->status, 202) << ok->body;

    auto open = env.client();  // probes and metrics need no token
    EXPECT_EQ(open->Get("/healthz")->status, 200);
    EXPECT_EQ(open->Get("/readyz")->status, 200);
    EXPECT_EQ(open->Get("/metrics")->status, 200);
}

TEST(HttpIngress, PermanentRefusalIs422WithPerEventResults) {
    Env env;  // on_reject = "refuse": Kafka's permanent errors go back to the caller
    auto c = env.client();
    ASSERT_EQ(c->Post("/v1/pipelines/orders/events", "{\"payload\":0}", "application/json")->status, 202);
    env.kafka().push_produce_errors({RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE});
    auto r = c->Post("/v1/pipelines/orders/events", "{\"payload\":1,\"event_id\":\"too-big\"}", "application/json");
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 422) << r->body;
    EXPECT_TRUE(r->get_header_value("Retry-After").empty()) << "a permanent refusal is not worth retrying";
    const json b = body_of(r);
    EXPECT_EQ(b["results"][0]["event_id"], "too-big");
    EXPECT_EQ(b["results"][0]["path"], "refused");
    EXPECT_EQ(b["results"][0]["reason"], "rejected");
    EXPECT_NE(b["results"][0]["message"].get<std::string>().find("MSG_SIZE_TOO_LARGE"), std::string::npos) << r->body;
}

TEST(HttpIngress, FullBacklogWithKafkaDownIs503WithRetryAfter) {
    EnvOptions o;
    o.extra_store = "max_pending = 1\n";
    Env env(o);
    auto c = env.client();
    env.kafka().all_down();
    // Kafka down: the first event spills to the outbox; then the outbox is at its bound.
    Answer r;
    ASSERT_TRUE(wait_until([&] {
        r = answer(c->Post("/v1/pipelines/orders/events", "{\"payload\":1}", "application/json"));
        return r.status == 503;
    }, 60s, 10ms)) << r.body;
    EXPECT_EQ(r.retry_after, "1");
    const json b = json::parse(r.body);
    ASSERT_EQ(b["results"].size(), 1u) << r.body;
    EXPECT_EQ(b["results"][0]["path"], "refused");
    EXPECT_EQ(b["results"][0]["reason"], "backlog-full");
    EXPECT_EQ(b["refused"], 1);
    env.kafka().all_up();
}

TEST(HttpIngress, KafkaAndStoreBothDownIs503WithTheReasonsAndReadyzSaysWhy) {
    test_support::Postgres pg;  // our own server: this test stops it
    EnvOptions o;
    o.pg_conninfo = pg.create_database("http_down");
    Env env(o);
    auto c = env.client();
    ASSERT_EQ(c->Post("/v1/pipelines/orders/events", "{\"key\":\"a\",\"payload\":1}", "application/json")->status, 202);
    pg.stop();
    env.kafka().all_down();
    Answer r;
    ASSERT_TRUE(wait_until([&] {
        r = answer(c->Post("/v1/pipelines/orders/events", "{\"key\":\"b\",\"payload\":2}", "application/json"));
        return r.status == 503;
    }, 60s, 10ms)) << r.body;
    const json b = json::parse(r.body);
    ASSERT_EQ(b["results"].size(), 1u) << r.body;
    EXPECT_EQ(b["results"][0]["path"], "refused");
    EXPECT_EQ(b["results"][0]["reason"], "unavailable");
    EXPECT_NE(b["results"][0]["message"].get<std::string>().find("outbox: "), std::string::npos) << r.body;

    auto ready = c->Get("/readyz");
    ASSERT_TRUE(ready);
    EXPECT_EQ(ready->status, 503) << ready->body;
    EXPECT_NE(ready->body.find("store is unreachable"), std::string::npos) << ready->body;
    EXPECT_EQ(c->Get("/healthz")->status, 200);  // the process is up all the same

    auto status = body_of(c->Get("/v1/pipelines/orders"));
    EXPECT_EQ(status["store_reachable"], false) << status.dump();
    EXPECT_TRUE(status["pending"].is_null()) << status.dump();

    pg.start();
    env.kafka().all_up();
    EXPECT_TRUE(wait_until([&] { return c->Get("/readyz")->status == 200; }, 60s, 50ms));
}

TEST(HttpAdmin, PipelinesReportModeCircuitCountsAndSink) {
    Env env;
    auto c = env.client();
    for (int i = 0; i < 3; ++i)
        ASSERT_EQ(c->Post("/v1/pipelines/orders/events", "{\"payload\":1}", "application/json")->status, 202);
    auto r = c->Get("/v1/pipelines");
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 200);
    const json all = body_of(r);
    ASSERT_EQ(all["pipelines"].size(), 1u) << r->body;
    const json& p = all["pipelines"][0];
    EXPECT_EQ(p["name"], "orders");
    EXPECT_EQ(p["mode"], "direct-first");
    EXPECT_EQ(p["topic"], env.topic());
    EXPECT_EQ(p["circuit"], "closed");
    EXPECT_EQ(p["pending"], 0);
    EXPECT_EQ(p["dead"], 0);
    EXPECT_EQ(p["oldest_pending_age_ms"], 0);
    EXPECT_TRUE(p["poll_interval_ms"].is_number());
    EXPECT_EQ(p["counts"]["direct"], 3);
    EXPECT_EQ(p["counts"]["refused"], 0);
    EXPECT_EQ(p["store_reachable"], true);
    EXPECT_EQ(p["sink"]["state"], "up") << p.dump();
    EXPECT_TRUE(p.contains("last_error"));

    auto one = c->Get("/v1/pipelines/orders");
    ASSERT_TRUE(one);
    EXPECT_EQ(one->status, 200);
    EXPECT_EQ(body_of(one)["counts"]["direct"], 3);
}

// The sum of a counter's series for pipeline orders in a /metrics scrape.
double scraped(httplib::Client& c, const std::string& family) {
    auto r = c.Get("/metrics");
    if (!r) return -1;
    double sum = 0;
    std::istringstream lines(r->body);
    for (std::string line; std::getline(lines, line);)
        if (line.rfind("spillway_" + family + "{", 0) == 0 && line.find("pipeline=\"orders\"") != std::string::npos)
            sum += std::stod(line.substr(line.rfind(' ') + 1));
    return sum;
}

// Kafka Connect's pause and resume, for the relay: paused, it claims nothing however often it
// wakes, and publishing goes on; resumed, what waited goes at once.
TEST(HttpAdmin, PauseKeepsTheRowsInTheOutboxAndResumeRelaysThem) {
    EnvOptions o;
    o.mode = "outbox-first";
    Env env(o);
    auto c = env.client();
    auto paused = c->Post("/v1/pipelines/orders/pause", "", "application/json");
    ASSERT_TRUE(paused) << httplib::to_string(paused.error());
    ASSERT_EQ(paused->status, 200) << paused->body;
    EXPECT_EQ(body_of(paused), (json{{"pipeline", "orders"}, {"paused", true}, {"was_paused", false}}));
    EXPECT_EQ(body_of(c->Get("/v1/pipelines/orders"))["relay_paused"], true);
    EXPECT_EQ(scraped(*c, "relay_paused"), 1);

    const double woken_before = scraped(*c, "relay_wakeups_total");
    auto r = c->Post("/v1/pipelines/orders/events", R"([{"event_id":"p-1","payload":1},{"event_id":"p-2","payload":2}])",
                     "application/json");
    ASSERT_TRUE(r) << httplib::to_string(r.error());
    ASSERT_EQ(r->status, 202) << r->body;
    // The relay woke (the commit's doorbell, then its paused poll) and left the rows where they are.
    ASSERT_TRUE(wait_until([&] { return scraped(*c, "relay_wakeups_total") >= woken_before + 2; }, 30s))
        << "the paused relay never woke";
    EXPECT_EQ(body_of(c->Get("/v1/pipelines/orders"))["pending"], 2);
    EXPECT_EQ(env.pipeline().status().relayed, 0u);

    auto resumed = c->Post("/v1/pipelines/orders/resume", "", "application/json");
    ASSERT_TRUE(resumed) << httplib::to_string(resumed.error());
    EXPECT_EQ(body_of(resumed), (json{{"pipeline", "orders"}, {"paused", false}, {"was_paused", true}}));
    auto got = records_by_id(env, env.kafka(), 2);
    EXPECT_TRUE(got.count("p-1") && got.count("p-2")) << "not relayed after resume";
    EXPECT_TRUE(wait_until([&] { return body_of(c->Get("/v1/pipelines/orders"))["pending"] == 0; }, 30s));
    EXPECT_EQ(scraped(*c, "relay_paused"), 0);
    EXPECT_EQ(body_of(c->Get("/v1/pipelines/orders"))["relay_paused"], false);

    EXPECT_EQ(c->Get("/v1/pipelines/orders/pause")->status, 405);
    EXPECT_EQ(c->Post("/v1/pipelines/nope/pause", "", "application/json")->status, 404);
}

TEST(HttpAdmin, ConfigIsThePipelinesEffectiveSettingsWithSecretsRedacted) {
    EnvOptions o;
    o.extra_sink = "\"sasl.password\" = \"hunter2\"\n";
    o.extra_pipeline = "batch_size = 7\n";
    Env env(o);
    auto c = env.client();
    auto r = c->Get("/v1/pipelines/orders/config");
    ASSERT_TRUE(r) << httplib::to_string(r.error());
    ASSERT_EQ(r->status, 200) << r->body;
    EXPECT_EQ(r->get_header_value("Content-Type").rfind("application/toml", 0), 0u) << r->get_header_value("Content-Type");
    EXPECT_NE(r->body.find("[pipeline.orders]"), std::string::npos) << r->body;
    EXPECT_NE(r->body.find("batch_size = 7"), std::string::npos) << r->body;
    EXPECT_NE(r->body.find("mode = \"direct-first\""), std::string::npos) << r->body;
    EXPECT_NE(r->body.find("[sink."), std::string::npos) << r->body;
    EXPECT_NE(r->body.find("[store."), std::string::npos) << r->body;
    EXPECT_NE(r->body.find("# default"), std::string::npos) << "plugin defaults are shown: " << r->body;
    EXPECT_EQ(r->body.find("hunter2"), std::string::npos) << r->body;
    EXPECT_NE(r->body.find("\"sasl.password\" = \"<secret>\""), std::string::npos) << r->body;
    EXPECT_EQ(c->Get("/v1/pipelines/nope/config")->status, 404);
    EXPECT_EQ(c->Post("/v1/pipelines/orders/config", "", "application/json")->status, 405);
}

TEST(HttpAdmin, DeadLetterIsListedAndReplayedToKafka) {
    EnvOptions o;
    o.mode = "outbox-first";  // only the relay produces, so the pushed error hits its send
    Env env(o);
    auto c = env.client();
    env.kafka().push_produce_errors({RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE});
    auto r = c->Post("/v1/pipelines/orders/events", "{\"event_id\":\"poison-1\",\"key\":\"k\",\"payload\":{\"x\":1}}",
                     "application/json");
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 202) << r->body;
    EXPECT_EQ(body_of(r)["results"][0]["path"], "outbox");
    ASSERT_TRUE(wait_until([&] { return body_of(c->Get("/v1/pipelines/orders"))["dead"] == 1; }, 60s, 20ms))
        << c->Get("/v1/pipelines/orders")->body;

    auto list = c->Get("/v1/pipelines/orders/dead-letters");
    ASSERT_TRUE(list);
    ASSERT_EQ(list->status, 200) << list->body;
    const json dead = body_of(list);
    ASSERT_EQ(dead["dead_letters"].size(), 1u) << list->body;
    EXPECT_EQ(dead["dead_letters"][0]["event_id"], "poison-1");
    EXPECT_EQ(dead["dead_letters"][0]["payload"], json({{"x", 1}}));
    EXPECT_NE(dead["dead_letters"][0]["last_error"].get<std::string>().find("MSG_SIZE_TOO_LARGE"), std::string::npos)
        << list->body;

    auto bad = c->Post("/v1/pipelines/orders/dead-letters/replay", "{\"event_ids\": [1]}", "application/json");
    ASSERT_TRUE(bad);
    EXPECT_EQ(bad->status, 400) << bad->body;

    auto none = c->Post("/v1/pipelines/orders/dead-letters/replay", "{\"event_ids\": [\"other\"]}", "application/json");
    ASSERT_TRUE(none);
    EXPECT_EQ(body_of(none)["replayed"], 0) << none->body;

    auto replay = c->Post("/v1/pipelines/orders/dead-letters/replay", "{\"event_ids\": [\"poison-1\"]}", "application/json");
    ASSERT_TRUE(replay);
    ASSERT_EQ(replay->status, 200) << replay->body;
    EXPECT_EQ(body_of(replay)["replayed"], 1);
    auto got = records_by_id(env, env.kafka(), 1);
    EXPECT_TRUE(got.count("poison-1")) << "replayed event not delivered";
    EXPECT_TRUE(wait_until([&] {
        const json s = body_of(c->Get("/v1/pipelines/orders"));
        return s["dead"] == 0 && s["pending"] == 0;
    }, 30s, 20ms));
}

TEST(HttpProbes, HealthzAndReadyzAnswer200WhenRunning) {
    Env env;
    auto c = env.client();
    auto h = c->Get("/healthz");
    ASSERT_TRUE(h);
    EXPECT_EQ(h->status, 200);
    auto r = c->Get("/readyz");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200) << r->body;
    EXPECT_EQ(body_of(r)["ready"], true);
}

TEST(EventJson, Base64IsStrict) {
    std::string out;
    EXPECT_TRUE(http::base64_decode("QUJD", out));
    EXPECT_EQ(out, "ABC");
    EXPECT_TRUE(http::base64_decode("QQ==", out));
    EXPECT_EQ(out, "A");
    EXPECT_TRUE(http::base64_decode("", out));
    EXPECT_EQ(out, "");
    for (const char* bad : {"QQ=", "Q===", "QQ=A", "QU JD", "QUJD\n", "QUJ*"}) EXPECT_FALSE(http::base64_decode(bad, out)) << bad;
    EXPECT_EQ(http::base64_encode(std::string("\0\xff", 2)), "AP8=");
}

TEST(HttpServer, ListenAddressesAreCheckedAndABusyPortIsAClearError) {
    EXPECT_EQ(http::parse_listen("127.0.0.1:8080"), std::make_pair(std::string("127.0.0.1"), 8080));
    EXPECT_EQ(http::parse_listen("[::1]:0"), std::make_pair(std::string("::1"), 0));
    EXPECT_THROW(http::parse_listen("8080"), std::invalid_argument);
    EXPECT_THROW(http::parse_listen("localhost:99999"), std::invalid_argument);
    EXPECT_THROW(http::parse_listen(":80"), std::invalid_argument);

    Env env;
    http::Server second(env.engine(), "127.0.0.1:" + std::to_string(env.server().port()), "");
    try {
        second.start();
        FAIL() << "bound a port already in use";
    } catch (const std::runtime_error& e) {
        EXPECT_NE(std::string(e.what()).find("cannot listen on 127.0.0.1:"), std::string::npos) << e.what();
    }
}

}  // namespace
}  // namespace spillway::http_test
