// Engine logic that needs no plugin: the circuit breaker, sticky keys, event ids, and the
// Prometheus text the metrics registry writes.
#include "engine/http/event_json.hpp"
#include "engine/http/json_text.hpp"
#include "engine/observe/catalogue.hpp"
#include "engine/observe/log.hpp"
#include "engine/observe/metrics.hpp"
#include "engine/pipeline/circuit.hpp"
#include "engine/pipeline/event.hpp"
#include "engine/pipeline/sticky_keys.hpp"
#include "engine/pipeline/trace_context.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <unistd.h>
#include <functional>
#include <cstdio>
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string_view>
#include <thread>

namespace spillway {
namespace {

using pipeline::Circuit;

TEST(Circuit, OpensAfterThresholdConsecutiveFailuresOnly) {
    std::vector<std::string> moves;
    Circuit c(3, [&](Circuit::State f, Circuit::State t, const char* why) {
        moves.push_back(std::string(Circuit::name(f)) + "->" + Circuit::name(t) + ":" + why);
    });
    c.direct_failed();
    c.direct_failed();
    c.direct_succeeded();  // the run is broken: count again
    c.direct_failed();
    c.direct_failed();
    EXPECT_TRUE(c.closed());
    c.direct_failed();
    EXPECT_EQ(c.state(), Circuit::State::Open);
    ASSERT_EQ(moves.size(), 1u);
    EXPECT_EQ(moves[0], "closed->open:consecutive direct failures");
}

TEST(Circuit, HalfOpensOnDeliveryAndClosesOnlyWhenTheBacklogIsEmpty) {
    Circuit c(1);
    c.backlog_empty();  // nothing to do while closed
    EXPECT_TRUE(c.closed());
    c.sink_down();
    EXPECT_EQ(c.state(), Circuit::State::Open);
    c.backlog_empty();  // still open: nobody has seen Kafka come back
    EXPECT_EQ(c.state(), Circuit::State::Open);
    c.relay_delivered();
    EXPECT_EQ(c.state(), Circuit::State::HalfOpen);
    c.direct_failed();  // half-open sends nothing direct; a stray failure changes nothing
    EXPECT_EQ(c.state(), Circuit::State::HalfOpen);
    c.backlog_empty();
    EXPECT_TRUE(c.closed());
}

TEST(Circuit, SinkUpHalfOpensAndSinkDownReopens) {
    Circuit c(5);
    c.sink_down();
    c.sink_up();
    EXPECT_EQ(c.state(), Circuit::State::HalfOpen);
    c.sink_down();
    EXPECT_EQ(c.state(), Circuit::State::Open);
}

TEST(StickyKeys, CountsAppendsAndSettles) {
    pipeline::StickyKeys k;
    k.add("a");
    k.add("a");
    k.add("b");
    EXPECT_TRUE(k.contains("a"));
    k.settle("a");
    EXPECT_TRUE(k.contains("a"));
    k.settle("a");
    // At zero the key stays until the store confirms it holds no row of it.
    EXPECT_TRUE(k.contains("a"));
    EXPECT_EQ(k.unsure(), std::vector<std::string>{"a"});
    k.confirm(k.unsure(), {});
    EXPECT_FALSE(k.contains("a"));
    k.settle("zzz");  // unknown keys are harmless
    EXPECT_EQ(k.size(), 1u);
    EXPECT_EQ(k.unsure_size(), 0u);
}

TEST(StickyKeys, AKeyTheStoreStillHoldsRowsOfStaysAfterItsCountReachedZero) {
    // The relay delivered a row an application inserted (never counted here) before the engine's
    // own row of the key: the count reaches zero while the engine's row still waits.
    pipeline::StickyKeys k;
    k.add("a");      // this engine spilled a row of "a"
    k.settle("a");   // the relay delivered a row of "a": the application's
    EXPECT_TRUE(k.contains("a"));
    const auto asked = k.unsure();
    k.add("a");      // an append meanwhile counts on top of what the store says
    k.confirm(asked, {{"a", 1}});
    EXPECT_TRUE(k.contains("a"));
    EXPECT_EQ(k.unsure_size(), 0u);
    k.settle("a");
    EXPECT_TRUE(k.contains("a"));  // one of two counted
    k.settle("a");
    k.confirm(k.unsure(), {});
    EXPECT_FALSE(k.contains("a"));
    // A key cleared while it was being confirmed stays cleared.
    k.add("b");
    k.settle("b");
    const auto b = k.unsure();
    EXPECT_TRUE(k.clear_if_unchanged(k.generation()));
    k.confirm(b, {{"b", 3}});
    EXPECT_FALSE(k.contains("b"));
}

TEST(StickyKeys, ClearIsRefusedWhenAnAppendSlippedIn) {
    pipeline::StickyKeys k;
    k.add("a");
    const uint64_t g = k.generation();
    k.add("b");  // appended between the relay's look at the backlog and its clear
    EXPECT_FALSE(k.clear_if_unchanged(g));
    EXPECT_TRUE(k.contains("b"));
    EXPECT_TRUE(k.clear_if_unchanged(k.generation()));
    EXPECT_EQ(k.size(), 0u);
}

// 8-4-4-4-12 lower-case hex digits, the version digit 7, the variant digit 8, 9, a or b.
bool is_uuid_v7(std::string_view id) {
    if (id.size() != 36) return false;
    for (size_t i = 0; i < id.size(); ++i) {
        const char c = id[i];
        const bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? c != '-' : !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    }
    return id[14] == '7' && std::string_view("89ab").find(id[19]) != std::string_view::npos;
}

TEST(EventId, UuidV7IsWellFormedUniqueAndOrdered) {
    std::vector<std::string> ids;
    for (int i = 0; i < 20000; ++i) ids.push_back(pipeline::uuid_v7());
    for (const auto& id : ids) ASSERT_TRUE(is_uuid_v7(id)) << id;
    EXPECT_EQ(std::set<std::string>(ids.begin(), ids.end()).size(), ids.size());
    EXPECT_TRUE(std::is_sorted(ids.begin(), ids.end()));  // time-ordered within one process
}

TEST(EventId, UniqueAcrossThreads) {
    std::vector<std::vector<std::string>> per(4);
    std::vector<std::thread> ts;
    for (auto& v : per)
        ts.emplace_back([&v] {
            for (int i = 0; i < 5000; ++i) v.push_back(pipeline::uuid_v7());
        });
    for (auto& t : ts) t.join();
    std::set<std::string> all;
    for (auto& v : per) {
        EXPECT_TRUE(std::is_sorted(v.begin(), v.end())) << "each thread's ids in the order it made them";
        all.insert(v.begin(), v.end());
    }
    EXPECT_EQ(all.size(), 20000u);
}

// A batch's ids share one clock reading; the counter keeps them distinct and ordered, and one
// running over its 12 bits carries into the next millisecond rather than wrapping.
TEST(EventId, OneMillisecondForManyIdsStaysUniqueAndOrdered) {
    const uint64_t ms = static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count()) +
        60000;  // ahead of any id made so far
    std::vector<std::string> ids;
    for (int i = 0; i < 10000; ++i) ids.push_back(pipeline::uuid_v7(ms));
    EXPECT_TRUE(std::is_sorted(ids.begin(), ids.end()));
    EXPECT_EQ(std::set<std::string>(ids.begin(), ids.end()).size(), ids.size());
    auto millis = [](const std::string& id) { return std::stoull(id.substr(0, 8) + id.substr(9, 4), nullptr, 16); };
    EXPECT_EQ(millis(ids.front()), ms);
    EXPECT_GT(millis(ids.back()), ms) << "10,000 ids overflow one millisecond's counter";
    EXPECT_LE(millis(ids.back()), ms + 3);
    // A clock reading behind the last id still gives a later id.
    EXPECT_GT(pipeline::uuid_v7(ms - 1000), ids.back());
}

TEST(JsonText, FindsArrayElementsAndTheLastMemberOfAName) {
    using namespace http::json_text;
    const auto els = array_elements(R"( [ {"a":"],}"} , 2 ,"x\"," ,[[]], null ] )");
    ASSERT_EQ(els.size(), 5u);
    EXPECT_EQ(els[0], R"({"a":"],}"})");
    EXPECT_EQ(els[1], "2");
    EXPECT_EQ(els[2], R"("x\",")");
    EXPECT_EQ(els[3], "[[]]");
    EXPECT_EQ(els[4], "null");
    EXPECT_TRUE(array_elements("[]").empty());

    const std::string_view obj = R"({"p":{"payload":0},"payload" : [1, "}"] ,"x":true,"pay\u006coad":"last"})";
    EXPECT_EQ(member(obj, "payload"), R"("last")") << "a duplicate name: the last one, escapes compared unescaped";
    EXPECT_EQ(member(obj, "p"), R"({"payload":0})");
    EXPECT_EQ(member(obj, "x"), "true");
    EXPECT_FALSE(member(obj, "missing"));
    EXPECT_FALSE(member("{}", "p"));
}

TEST(JsonText, CompactDropsWhitespaceOutsideStringsOnly) {
    using namespace http::json_text;
    EXPECT_EQ(compact(" { \"a b\" : [ 1 ,\t2 ],\r\n \"c\":\" \\\" x \" } "), R"({"a b":[1,2],"c":" \" x "})");
    EXPECT_EQ(compact("1.50"), "1.50");
}

TEST(EventJson, NdjsonPayloadIsTheCompactedTextAndFieldErrorsNameTheLine) {
    const auto events = http::parse_events("{\"payload\": {\"b\": 1, \"a\": 2}, \"key\": \"k\"}\n\n{\"payload\":\"s\"}\n",
                                           http::BodyFormat::NdJson, "t");
    ASSERT_EQ(events.size(), 2u);
    EXPECT_EQ(events[0].payload, R"({"b":1,"a":2})");
    EXPECT_EQ(events[0].key, "k");
    EXPECT_EQ(events[1].payload, "\"s\"");
    try {
        http::parse_events("{\"payload\":1}\n{\"payload\":1,\"key\":3}\n", http::BodyFormat::NdJson, "t");
        FAIL() << "a numeric key was accepted";
    } catch (const http::BadRequest& e) {
        EXPECT_EQ(std::string(e.what()), "line 2: field 'key': expected a string or null, got a number");
    }
    const auto one = http::parse_events(R"([{"payload":[ 1 ]},{"payload":{"x" : null}}])", http::BodyFormat::Json, "t");
    ASSERT_EQ(one.size(), 2u);
    EXPECT_EQ(one[0].payload, "[1]");
    EXPECT_EQ(one[1].payload, R"({"x":null})");
}

// Issue 19, class 1: a body behind a byte order mark once had its payload serialised again from
// the parsed tree (rewritten, and recursion per level); now it is the client's text like any other.
TEST(EventJson, ByteOrderMarkIsSkippedAndThePayloadKeptAsWritten) {
    const std::string bom = "\xEF\xBB\xBF";
    const auto one = http::parse_events(bom + R"({"payload":{"b":1,"a":12345678901234567890123}})", http::BodyFormat::Json, "t");
    ASSERT_EQ(one.size(), 1u);
    EXPECT_EQ(one[0].payload, R"({"b":1,"a":12345678901234567890123})");
    const auto batch = http::parse_events(bom + R"([{"payload":{"z":1,"y":2}},{"payload":1.50}])", http::BodyFormat::Json, "t");
    ASSERT_EQ(batch.size(), 2u);
    EXPECT_EQ(batch[0].payload, R"({"z":1,"y":2})");
    EXPECT_EQ(batch[1].payload, "1.50");
    const auto lines = http::parse_events(bom + "{\"payload\":{\"q\":2,\"p\":1}}\n", http::BodyFormat::NdJson, "t");
    ASSERT_EQ(lines.size(), 1u);
    EXPECT_EQ(lines[0].payload, R"({"q":2,"p":1})");
    EXPECT_EQ(http::parse_event(bom + R"({"payload":[2, 1]})", "t").payload, "[2,1]");
}

TEST(EventJson, NestingPastTheLimitIsRefusedNamingTheLimit) {
    const size_t limit = http::kMaxJsonDepth;
    auto nested = [](size_t levels) { return std::string(levels, '[') + std::string(levels, ']'); };
    // The event object is level 1: its payload may take the rest.
    const auto ok = http::parse_events("{\"payload\":" + nested(limit - 1) + "}", http::BodyFormat::Json, "t");
    EXPECT_EQ(ok[0].payload, nested(limit - 1));
    for (const std::string& body : {"{\"payload\":" + nested(limit) + "}", std::string(100000, '['),
                                    "{\"payload\":\"[[[[\"," + std::string(8 << 20, '{')}) {
        try {
            http::parse_events(body, http::BodyFormat::Json, "t");
            FAIL() << "a body " << body.size() << " bytes long nesting past the limit was accepted";
        } catch (const http::BadRequest& e) {
            EXPECT_NE(std::string(e.what()).find("the limit is " + std::to_string(limit) + " levels"), std::string::npos) << e.what();
        }
    }
    // Brackets inside strings are text, not nesting.
    EXPECT_EQ(http::parse_events("{\"payload\":\"" + std::string(1000, '[') + "\"}", http::BodyFormat::Json, "t").size(), 1u);
}

TEST(EventJson, NumbersADoubleCannotHoldAreABadRequest) {
    for (const char* body : {R"({"payload":1e400})", R"({"payload":[1,-1e999]})"}) {
        try {
            http::parse_events(body, http::BodyFormat::Json, "t");
            FAIL() << body << " was accepted";
        } catch (const http::BadRequest& e) {
            EXPECT_NE(std::string(e.what()).find("number overflow"), std::string::npos) << e.what();
        }
    }
    EXPECT_THROW(http::parse_event(R"({"payload":1e400})", "t"), http::BadRequest);
}

// W3C trace context: what the spec's version 00 allows, and a later version's extra fields.
TEST(TraceContext, TraceparentIsCheckedAsTheW3CSpecSpellsIt) {
    const std::string ok = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    EXPECT_EQ(pipeline::traceparent_problem(ok), "");
    EXPECT_EQ(pipeline::traceparent_problem("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-comes-later"), "");
    const std::pair<std::string, std::string> bad[] = {
        {"", "got 0 characters"},
        {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0", "got 54 characters"},
        {ok + "-x", "version 00 is exactly 55 characters"},
        {"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", "trace-id must be 32 lowercase hex digits"},
        {"00-00000000000000000000000000000000-00f067aa0ba902b7-01", "trace-id must not be all zeros"},
        {"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", "parent-id must not be all zeros"},
        {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g", "trace-flags must be 2 lowercase hex digits"},
        {"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "version ff is not a version"},
        {"00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "separated by '-'"},
        {"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x", "must follow a '-'"},
    };
    for (const auto& [value, expected] : bad)
        EXPECT_NE(pipeline::traceparent_problem(value).find(expected), std::string::npos)
            << "'" << value << "': " << pipeline::traceparent_problem(value);
}

TEST(TraceContext, TracestateIsCheckedAsTheW3CSpecSpellsIt) {
    for (const char* ok : {"", "congo=t61rcWkgMzE", "rojo=00f067aa0ba902b7 , congo=t61rcWkgMzE,", "tenant1@sys=x,a_b-c*d/e=1"})
        EXPECT_EQ(pipeline::tracestate_problem(ok), "") << ok;
    std::string many;
    for (int i = 0; i < 33; ++i) many += (many.empty() ? "" : ",") + std::string("k") + std::to_string(i) + "=v";
    const std::pair<std::string, std::string> bad[] = {
        {"Congo=t61", "is not a tracestate key"},
        {"congo", "is not key=value"},
        {"congo=a,congo=b", "appears twice"},
        {"congo=", "must be 1 to 256 characters"},
        {"congo=a=b", "printable ASCII only"},
        {"congo=caf\xc3\xa9", "printable ASCII only"},
        {many, "more than 32 list members"},
        {std::string(513, 'a'), "longer than 512"},
    };
    for (const auto& [value, expected] : bad)
        EXPECT_NE(pipeline::tracestate_problem(value).find(expected), std::string::npos)
            << "'" << value << "': " << pipeline::tracestate_problem(value);
}

TEST(EventJson, TraceContextFieldsAreCheckedAndKeptOutOfTheUserHeaders) {
    const std::string tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    const auto e = http::parse_event(R"({"payload":1,"traceparent":")" + tp + R"(","tracestate":"congo=t61"})", "t");
    EXPECT_EQ(e.traceparent, tp);
    EXPECT_EQ(e.tracestate, "congo=t61");
    EXPECT_TRUE(e.headers.empty());
    // The views the plugins get carry them as headers of their own names.
    const std::vector<pipeline::Event> events{e};
    const pipeline::EventViews views(events, "orders");
    ASSERT_EQ(views.data()[0].n_headers, 2u);
    EXPECT_EQ(std::string(views.data()[0].headers[0].name.ptr, views.data()[0].headers[0].name.len), "traceparent");
    EXPECT_EQ(std::string(views.data()[0].headers[1].value.ptr, views.data()[0].headers[1].value.len), "congo=t61");
    const std::pair<std::string, std::string> bad[] = {
        {R"({"payload":1,"traceparent":"00-abc"})", "field 'traceparent': expected version-traceid-parentid-flags"},
        {R"({"payload":1,"traceparent":7})", "field 'traceparent': expected a string"},
        {R"({"payload":1,"tracestate":"congo=t61"})", "field 'tracestate': sent without a traceparent"},
        {R"({"payload":1,"traceparent":")" + tp + R"(","tracestate":"Congo=t61"})", "field 'tracestate': key 'Congo'"},
    };
    for (const auto& [body, expected] : bad) {
        try {
            http::parse_event(body, "t");
            ADD_FAILURE() << body << " was accepted";
        } catch (const http::BadRequest& x) {
            EXPECT_NE(std::string(x.what()).find(expected), std::string::npos) << x.what();
        }
    }
}

TEST(EventJson, ReservedHeaderNamesAreRefusedNamingTheHeader) {
    for (const char* name : {"event_id", "Event_Type", "correlation_id", "traceparent", "TraceState", "ce_source", "CE_id"}) {
        const std::string body = std::string(R"({"payload":1,"headers":{"ok":"1",")") + name + R"(":"forged"}})";
        try {
            http::parse_events(body, http::BodyFormat::Json, "t");
            FAIL() << name << " was accepted";
        } catch (const http::BadRequest& e) {
            EXPECT_EQ(std::string(e.what()), std::string("field 'headers.") + name +
                                                 "': reserved for the engine's own headers (event_id, event_type, "
                                                 "correlation_id, traceparent, tracestate, ce_*)");
        }
    }
    EXPECT_EQ(http::parse_events(R"({"payload":1,"headers":{"event":"x","cex":"y","my_event_id":"z"}})", http::BodyFormat::Json, "t")[0]
                  .headers.size(),
              3u);
}

TEST(EventJson, OutcomeIsJsonWithEscapesOnlyWhereNeeded) {
    pipeline::Outcome o{"0190-abc", pipeline::Path::Direct, pipeline::Reason::None, ""};
    EXPECT_EQ(http::outcome_json(o), R"({"event_id":"0190-abc","path":"direct"})");
    o = {"id \"q\"", pipeline::Path::Refused, pipeline::Reason::Rejected, "Kafka said\n\"no\""};
    const auto j = nlohmann::json::parse(http::outcome_json(o));
    EXPECT_EQ(j["event_id"], "id \"q\"");
    EXPECT_EQ(j["path"], "refused");
    EXPECT_EQ(j["reason"], "rejected");
    EXPECT_EQ(j["message"], "Kafka said\n\"no\"");
}

// What observe::log writes to stderr while `body` runs (fd 2 redirected to a file).
std::string stderr_of(const std::function<void()>& body) {
    std::fflush(stderr);
    char path[] = "/tmp/spillway-log-XXXXXX";
    const int fd = mkstemp(path);
    const int saved = dup(2);
    dup2(fd, 2);
    body();
    std::fflush(stderr);
    dup2(saved, 2);
    close(saved);
    close(fd);
    std::ifstream in(path);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::remove(path);
    return text;
}

// Structured logs: a JSON line carries the fields as members beside msg; a text line ends with
// them as key=value, quoted where a value holds a space, a quote or '='.
TEST(StructuredLog, JsonLinesCarryTheFieldsAndTextLinesEndWithKeyValue) {
    const auto line = [](const std::string& format) {
        observe::setup_logging("debug", format);
        auto l = observe::logger("test.fields");
        return stderr_of([&] {
            observe::log(*l, spdlog::level::info, "event e-1 spilled to the outbox",
                         {{"pipeline", "orders"}, {"event_id", "e-1"}, {"path", "outbox"}, {"error", "a \"b\" c"}});
            observe::log(*l, spdlog::level::trace, "below the level", {{"pipeline", "orders"}});
            l->flush();
        });
    };
    const std::string json_text = line("json");
    const std::string text = line("text");
    observe::setup_logging("info", "text");

    ASSERT_EQ(std::count(json_text.begin(), json_text.end(), '\n'), 1) << json_text;
    const auto j = nlohmann::json::parse(json_text);
    EXPECT_EQ(j["msg"], "event e-1 spilled to the outbox");
    EXPECT_EQ(j["logger"], "test.fields");
    EXPECT_EQ(j["pipeline"], "orders");
    EXPECT_EQ(j["event_id"], "e-1");
    EXPECT_EQ(j["path"], "outbox");
    EXPECT_EQ(j["error"], "a \"b\" c");
    ASSERT_EQ(std::count(text.begin(), text.end(), '\n'), 1) << text;
    EXPECT_NE(text.find("[test.fields] event e-1 spilled to the outbox pipeline=orders event_id=e-1 path=outbox "
                        "error=\"a \\\"b\\\" c\"\n"),
              std::string::npos)
        << text;
}

// A line a fault repeats per event passes at most N times a second; the next one let through
// after a refusal is preceded by a line counting what was left out.
TEST(StructuredLog, ALimitedLineFloodsNothingAndCountsWhatItLeftOut) {
    observe::setup_logging("info", "json");
    auto l = observe::logger("test.limit");
    observe::LogLimit limit(5);
    const std::string out = stderr_of([&] {
        for (int i = 0; i < 1000; ++i)
            limit.log(*l, spdlog::level::warn, "event e-" + std::to_string(i) + " rejected", {{"event_id", std::to_string(i)}});
        l->flush();
    });
    observe::setup_logging("info", "text");
    // 1000 calls in (much) less than a few seconds: a handful of windows of 5 lines, not 1000.
    const auto lines = std::count(out.begin(), out.end(), '\n');
    EXPECT_GE(lines, 5);
    EXPECT_LT(lines, 100) << out.substr(0, 2000);
    EXPECT_EQ(out.find("event e-5 rejected"), std::string::npos) << "the sixth line of the first second passed";
    if (lines > 5) {
        EXPECT_NE(out.find("\"suppressed\":\""), std::string::npos) << out.substr(0, 2000);
    }
}

TEST(Metrics, LabelOrderDoesNotMatter) {
    observe::Metrics m;
    m.add("x_total", {{"b", "2"}, {"a", "1"}});
    m.add("x_total", {{"a", "1"}, {"b", "2"}}, 2);
    EXPECT_EQ(m.value("x_total", {{"a", "1"}, {"b", "2"}}), 3.0);
}

// The metric names `text` emits: the quoted [a-z_]+ first argument of every .add(, .set(, .observe(
// and .observe_each( call.
std::vector<std::string> emitted_names(std::string_view text) {
    std::vector<std::string> names;
    for (const std::string_view call : {".add(\"", ".set(\"", ".observe(\"", ".observe_each(\""}) {
        for (size_t at = text.find(call); at != std::string_view::npos; at = text.find(call, at + 1)) {
            const size_t begin = at + call.size();
            size_t end = begin;
            while (end < text.size() && ((text[end] >= 'a' && text[end] <= 'z') || text[end] == '_')) ++end;
            if (end > begin && end < text.size() && text[end] == '"') names.emplace_back(text.substr(begin, end - begin));
        }
    }
    return names;
}

// Every family the engine emits is in the catalogue, with a type, HELP and bounded labels: the
// engine's sources are scanned for the names they emit.
TEST(MetricCatalogue, ListsEveryFamilyTheEngineEmitsWithHelpAndBoundedLabels) {
    std::set<std::string> listed;
    for (size_t i = 0; i < observe::kEngineMetricCount; ++i) {
        const auto& f = observe::kEngineMetrics[i];
        EXPECT_TRUE(listed.insert(f.name).second) << f.name << " listed twice";
        EXPECT_TRUE(std::string(f.type) == "counter" || std::string(f.type) == "gauge" || std::string(f.type) == "histogram") << f.name;
        EXPECT_GT(std::string(f.help).size(), 10u) << f.name;
        // prometheus-cpp writes HELP as it is: a newline or backslash would break the scrape.
        EXPECT_EQ(std::string(f.help).find_first_of("\n\\"), std::string::npos) << f.name;
        for (const char* unbounded : {"key", "event_id"})
            EXPECT_EQ(("," + std::string(f.labels) + ",").find("," + std::string(unbounded) + ","), std::string::npos) << f.name;
    }
    size_t found = 0;
    for (const auto& entry : std::filesystem::recursive_directory_iterator(std::string(SPILLWAY_SOURCE_DIR) + "/engine")) {
        if (entry.path().extension() != ".cpp") continue;
        std::ifstream in(entry.path());
        const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        for (const std::string& name : emitted_names(text)) {
            ++found;
            EXPECT_TRUE(listed.count(name)) << name << " is emitted by " << entry.path().filename()
                                            << " but not in engine/observe/catalogue.cpp";
        }
    }
    EXPECT_GT(found, 15u) << "the scan found too few emitting calls to mean anything";
}

// The same for the bundled plugins: every family their sources report through the host (count(,
// gauge(, observe( of the SDK, and the shard coordinator's metric() helper) is in kPluginMetrics,
// so a scrape has HELP for all of them; and none is listed that no plugin emits.
TEST(MetricCatalogue, ListsEveryFamilyTheBundledPluginsEmit) {
    std::map<std::string, std::string> listed;  // name -> folder
    for (size_t i = 0; i < observe::kPluginMetricCount; ++i) {
        const auto& f = observe::kPluginMetrics[i];
        EXPECT_TRUE(listed.emplace(f.name, f.was).second) << f.name << " listed twice";
        EXPECT_GT(std::string(f.help).size(), 10u) << f.name;
        EXPECT_EQ(("," + std::string(f.labels) + ",").find(",component,"), 0u) << f.name << ": the host adds component";
    }
    std::set<std::string> emitted;
    for (const auto& entry : std::filesystem::recursive_directory_iterator(std::string(SPILLWAY_SOURCE_DIR) + "/plugins")) {
        if (entry.path().extension() != ".cpp") continue;
        std::ifstream in(entry.path());
        const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        for (const std::string_view call : {"count(\"", "gauge(\"", "observe(\"", "metric(\""}) {
            for (size_t at = text.find(call); at != std::string::npos; at = text.find(call, at + 1)) {
                const size_t begin = at + call.size();
                size_t end = begin;
                while (end < text.size() && ((text[end] >= 'a' && text[end] <= 'z') || text[end] == '_')) ++end;
                if (end == begin || end >= text.size() || text[end] != '"') continue;
                const std::string name = text.substr(begin, end - begin);
                emitted.insert(name);
                bool engines = false;  // a plugin may add series to an engine family (outbox_pending)
                for (size_t i = 0; i < observe::kEngineMetricCount; ++i) engines = engines || name == observe::kEngineMetrics[i].name;
                EXPECT_TRUE(listed.count(name) || engines) << name << " is reported by " << entry.path().filename()
                                                << " but not in kPluginMetrics (engine/observe/catalogue.cpp)";
            }
        }
    }
    for (const auto& [name, folder] : listed) EXPECT_TRUE(emitted.count(name)) << name << " is listed but no plugin reports it";
}

TEST(Metrics, RendersPrometheusTextWithHelpTypeAndCumulativeBuckets) {
    observe::Metrics m;
    m.describe("publish_total", "Events published, by path");
    m.add("publish_total", {{"path", "direct"}, {"pipeline", "orders"}}, 5);
    m.set("circuit_state", {{"pipeline", "orders"}}, 1);
    m.observe("latency_seconds", {{"pipeline", "orders"}}, 0.0004);
    m.observe("latency_seconds", {{"pipeline", "orders"}}, 0.003);
    m.observe("latency_seconds", {{"pipeline", "orders"}}, 42);  // beyond the last bucket
    m.add("weird_total", {{"q", "a\"b\\c\nd"}});
    const std::string text = m.render();
    EXPECT_NE(text.find("# HELP spillway_publish_total Events published, by path\n"
                        "# TYPE spillway_publish_total counter\n"
                        "spillway_publish_total{path=\"direct\",pipeline=\"orders\"} 5\n"),
              std::string::npos)
        << text;
    EXPECT_NE(text.find("# TYPE spillway_circuit_state gauge\nspillway_circuit_state{pipeline=\"orders\"} 1\n"),
              std::string::npos);
    EXPECT_NE(text.find("spillway_latency_seconds_bucket{pipeline=\"orders\",le=\"0.0005\"} 1\n"), std::string::npos) << text;
    EXPECT_NE(text.find("spillway_latency_seconds_bucket{pipeline=\"orders\",le=\"0.005\"} 2\n"), std::string::npos) << text;
    EXPECT_NE(text.find("spillway_latency_seconds_bucket{pipeline=\"orders\",le=\"10\"} 2\n"), std::string::npos) << text;
    EXPECT_NE(text.find("spillway_latency_seconds_bucket{pipeline=\"orders\",le=\"+Inf\"} 3\n"), std::string::npos) << text;
    EXPECT_NE(text.find("spillway_latency_seconds_count{pipeline=\"orders\"} 3\n"), std::string::npos) << text;
    EXPECT_NE(text.find("spillway_weird_total{q=\"a\\\"b\\\\c\\nd\"} 1\n"), std::string::npos) << text;
}

// A plugin names its series as it likes: the scrape must stay valid whatever it sends.
TEST(Metrics, KeepsAFamilysFirstTypeAndMakesPluginNamesFitTheFormat) {
    observe::Metrics m;
    m.add("x_total", {{"a", "1"}}, 2);
    m.set("x_total", {{"a", "1"}}, 7);  // another type under the same name: dropped
    EXPECT_EQ(m.value("x_total", {{"a", "1"}}), 2.0);
    m.add("plugin-made.name", {{"bad-label", "v"}, {"9lead", "w"}, {"__x", "y"}});
    m.observe("h_seconds", {{"le", "x"}}, 1);  // would clash with the bucket label: dropped
    m.observe("batch_seconds", {}, 0.003, 1000);  // a batch's events all took as long
    EXPECT_EQ(m.count("batch_seconds"), 1000u);
    const std::string text = m.render();
    EXPECT_NE(text.find("# TYPE spillway_x_total counter\nspillway_x_total{a=\"1\"} 2\n"), std::string::npos) << text;
    EXPECT_NE(text.find("spillway_plugin_made_name{bad_label=\"v\",label_9lead=\"w\",label___x=\"y\"} 1\n"),
              std::string::npos) << text;
    EXPECT_NE(text.find("# HELP spillway_plugin_made_name Reported by a plugin"), std::string::npos) << text;
    EXPECT_EQ(text.find("le=\"x\""), std::string::npos) << text;
    EXPECT_NE(text.find("spillway_batch_seconds_bucket{le=\"0.0025\"} 0\n"), std::string::npos) << text;
    EXPECT_NE(text.find("spillway_batch_seconds_bucket{le=\"0.005\"} 1000\n"), std::string::npos) << text;
    EXPECT_NE(text.find("spillway_batch_seconds_sum 3\n"), std::string::npos) << text;
}

TEST(Metrics, ParsesPluginLabelText) {
    EXPECT_EQ(observe::parse_labels("to=1s,from=100ms"), (observe::Labels{{"from", "100ms"}, {"to", "1s"}}));
    EXPECT_EQ(observe::parse_labels(nullptr), observe::Labels{});
    EXPECT_EQ(observe::parse_labels("novalue,=x,a=b"), (observe::Labels{{"a", "b"}}));
}

}  // namespace
}  // namespace spillway
