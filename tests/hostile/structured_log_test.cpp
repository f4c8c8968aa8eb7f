// Structured logs from the real `spillway run` (issue 23): with log_format = "json" every line the
// engine writes is one JSON object, and the decisions an operator selects on carry their fields:
// the path a publish took, a spill and its reason, a relay round and the cause that woke it, a poll
// interval change (from/to), a circuit transition (from/to).
#include "hostile_engine.hpp"

#include <spillway/test_support/wait.hpp>

#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <string>
#include <vector>

namespace spillway::hostile {
namespace {

using namespace std::chrono_literals;

std::vector<nlohmann::json> json_lines(const std::string& path, std::vector<std::string>& not_json) {
    std::vector<nlohmann::json> out;
    std::ifstream in(path);
    for (std::string line; std::getline(in, line);) {
        if (line.empty()) continue;
        auto j = nlohmann::json::parse(line, nullptr, false);
        if (j.is_discarded() || !j.is_object()) not_json.push_back(line);
        else out.push_back(std::move(j));
    }
    return out;
}

// The first line whose members include every one of `want` (a value "*" matches any value).
const nlohmann::json* find(const std::vector<nlohmann::json>& lines,
                           const std::vector<std::pair<std::string, std::string>>& want) {
    for (const auto& j : lines) {
        bool all = true;
        for (const auto& [k, v] : want)
            if (!j.contains(k) || !j[k].is_string() || (v != "*" && j[k].get<std::string>() != v)) all = false;
        if (all) return &j;
    }
    return nullptr;
}

std::string publish(httplib::Client& c, const std::string& key, int seq) {
    const std::string body = R"({"key":")" + key + R"(","payload":{"seq":)" + std::to_string(seq) + "}}";
    auto res = c.Post("/v1/pipelines/orders/events", body, "application/json");
    if (!res) return "no answer";
    return res->body;
}

TEST(StructuredLogE2E, JsonLinesCarryThePathTheSpillTheWakeCauseTheIntervalAndTheCircuit) {
    HostileEngine engine("log_level = \"debug\"\nlog_format = \"json\"\n", "direct_timeout = \"1s\"\n",
                         "\"message.timeout.ms\" = 1000\n");
    ASSERT_TRUE(engine.start()) << engine.log_tail();
    httplib::Client c(engine.base_url());
    c.set_read_timeout(10, 0);

    const std::string direct = publish(c, "k", 1);
    ASSERT_NE(direct.find("\"path\":\"direct\""), std::string::npos) << direct;
    const std::string direct_id = nlohmann::json::parse(direct)["results"][0]["event_id"];

    // The relay waits (paused) while Kafka is away, so that the round after it is the doorbell's:
    // resume rings it.
    auto paused = c.Post("/v1/pipelines/orders/pause", "", "application/json");
    ASSERT_TRUE(paused && paused->status == 200) << (paused ? paused->body : "no answer");

    // Kafka away: the next events spill (a key's next only after the previous was answered)
    // until the circuit opens.
    engine.kafka().all_down();
    const auto circuit = [&] {
        auto res = c.Get("/v1/pipelines/orders");
        return res && res->status == 200 ? nlohmann::json::parse(res->body)["circuit"].get<std::string>() : "?";
    };
    std::string spilled;
    for (int seq = 2; seq < 200 && (spilled.empty() || circuit() != "open"); ++seq) {
        const std::string r = publish(c, "k", seq);
        if (spilled.empty() && r.find("\"path\":\"outbox\"") != std::string::npos) spilled = r;
    }
    ASSERT_FALSE(spilled.empty()) << engine.log_tail();
    ASSERT_EQ(circuit(), "open") << engine.log_tail();
    engine.kafka().all_up();
    ASSERT_TRUE(test_support::wait_until(
        [&] {
            auto res = c.Get("/v1/pipelines/orders");
            return res && res->status == 200 && nlohmann::json::parse(res->body)["sink"]["state"] == "up";
        },
        60s, 20ms))
        << engine.log_tail();
    auto resumed = c.Post("/v1/pipelines/orders/resume", "", "application/json");
    ASSERT_TRUE(resumed && resumed->status == 200) << (resumed ? resumed->body : "no answer");
    ASSERT_TRUE(test_support::wait_until(
        [&] {
            auto res = c.Get("/v1/pipelines/orders");
            return res && res->status == 200 && nlohmann::json::parse(res->body)["pending"] == 0 &&
                   nlohmann::json::parse(res->body)["circuit"] == "closed";
        },
        60s, 20ms))
        << engine.log_tail();
    ASSERT_TRUE(engine.stop()) << engine.log_tail();

    std::vector<std::string> not_json;
    const auto lines = json_lines(engine.log_path(), not_json);
    EXPECT_TRUE(not_json.empty()) << not_json.size() << " line(s) are not JSON objects, e.g. " << not_json.front();
    ASSERT_FALSE(lines.empty());
    for (const auto& j : lines)
        for (const char* member : {"ts", "level", "logger", "msg"})
            ASSERT_TRUE(j.contains(member)) << member << " missing in " << j.dump();

    const std::string spilled_id = nlohmann::json::parse(spilled)["results"][0]["event_id"];
    EXPECT_TRUE(find(lines, {{"pipeline", "orders"}, {"event_id", direct_id}, {"path", "direct"}, {"reason", "*"}}))
        << "no line says which path " << direct_id << " took";
    EXPECT_TRUE(find(lines, {{"pipeline", "orders"}, {"event_id", spilled_id}, {"path", "outbox"}, {"reason", "*"}}))
        << "no line says " << spilled_id << " went to the outbox and why";
    EXPECT_TRUE(find(lines, {{"pipeline", "orders"}, {"cause", "doorbell"}, {"claimed", "*"}}))
        << "no relay round says the doorbell woke it";
    EXPECT_TRUE(find(lines, {{"pipeline", "orders"}, {"interval_from_ms", "*"}, {"interval_to_ms", "*"}}))
        << "no poll interval change with from/to";
    EXPECT_TRUE(find(lines, {{"pipeline", "orders"}, {"circuit_from", "closed"}, {"circuit_to", "open"}, {"reason", "*"}}))
        << "no circuit transition closed -> open";
    EXPECT_TRUE(find(lines, {{"pipeline", "orders"}, {"circuit_from", "half-open"}, {"circuit_to", "closed"}}))
        << "no circuit transition half-open -> closed";
}

}  // namespace
}  // namespace spillway::hostile
