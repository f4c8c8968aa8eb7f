// The operator commands, run as the real `spillway` binary: publish (NDJSON on stdin), outbox
// (status, dead, replay, purge, migrate on a SQLite file) and status (against a running server).
#include "http_env.hpp"

#include <spillway/test_support/run_command.hpp>
#include <spillway/test_support/wait.hpp>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <sstream>

namespace spillway::http_test {
namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;
using test_support::wait_until;

using Ran = test_support::CommandResult;

// Runs `spillway <args>` with `input` on stdin; args are split at spaces (paths in them must not
// hold any).
Ran spillway(const std::string& args, const std::string& input = "") {
    std::vector<std::string> argv{SPILLWAY_BIN};
    std::istringstream words(args);
    for (std::string w; words >> w;) argv.push_back(w);
    return test_support::run_command(argv, input);
}

std::vector<json> json_lines(const std::string& text) {
    std::vector<json> out;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);)
        if (!line.empty()) out.push_back(json::parse(line));
    return out;
}

TEST(CliPublish, NdjsonOnStdinGivesOneResultLinePerEventInOrder) {
    EnvOptions o;
    o.start_server = false;
    Env env(o);
    env.stop_engine();  // the command runs its own engine over the same files and cluster
    const std::string cfg = env.config_path();

    auto ok = spillway("publish " + cfg + " --pipeline orders",
                       "{\"key\":\"a\",\"payload\":{\"n\":1},\"event_id\":\"cli-1\"}\n\n{\"payload\":2}\n");
    ASSERT_EQ(ok.code, 0) << ok.err << ok.out;
    auto lines = json_lines(ok.out);
    ASSERT_EQ(lines.size(), 2u) << ok.out;
    EXPECT_EQ(lines[0]["line"], 1);
    EXPECT_EQ(lines[0]["event_id"], "cli-1");
    EXPECT_EQ(lines[0]["path"], "direct");
    EXPECT_EQ(lines[1]["line"], 3);
    EXPECT_EQ(lines[1]["path"], "direct");

    // A malformed line is reported with its number; the others still go; the exit status says so.
    auto mixed = spillway("publish " + cfg + " -p orders",
                          "{\"payload\":3,\"event_id\":\"cli-3\"}\n{\"payload\":4,\"key\":7}\n{\"payload\":5,\"event_id\":\"cli-5\"}\n");
    EXPECT_EQ(mixed.code, 3) << mixed.err;
    lines = json_lines(mixed.out);
    ASSERT_EQ(lines.size(), 3u) << mixed.out;
    EXPECT_EQ(lines[0]["event_id"], "cli-3");
    EXPECT_EQ(lines[1]["line"], 2);
    EXPECT_NE(lines[1]["error"].get<std::string>().find("field 'key'"), std::string::npos) << lines[1];
    EXPECT_EQ(lines[2]["event_id"], "cli-5");

    size_t found = 0;
    for (const auto& r : env.kafka().consume_all(env.topic(), 4, 30s)) {
        const auto id = r.header("event_id").value_or("");
        found += id == "cli-1" || id == "cli-3" || id == "cli-5";
    }
    EXPECT_EQ(found, 3u);

    auto unknown = spillway("publish " + cfg + " --pipeline nope", "");
    EXPECT_EQ(unknown.code, 2);
    EXPECT_NE(unknown.err.find("no such pipeline"), std::string::npos) << unknown.err;
}

TEST(CliOutbox, StatusDeadReplayPurgeAndMigrateOnASqliteFile) {
    EnvOptions o;
    o.mode = "outbox-first";
    o.start_server = false;
    Env env(o);
    // Two dead letters: the relay's next two sends fail permanently.
    env.kafka().push_produce_errors({RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE, RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE});
    for (const char* id : {"dead-1", "dead-2"}) {
        pipeline::Event e;
        e.event_id = id;
        e.payload = "{}";
        ASSERT_EQ(env.pipeline().publish(std::move(e)).path, pipeline::Path::Outbox);
        ASSERT_TRUE(wait_until([&] { return env.pipeline().status().pending == 0; }, 30s, 10ms));
    }
    ASSERT_EQ(env.pipeline().status().dead, 2);
    env.stop_engine();
    const std::string cfg = env.config_path();

    auto migrate = spillway("outbox " + cfg + " migrate");
    ASSERT_EQ(migrate.code, 0) << migrate.err;
    EXPECT_NE(migrate.out.find("store.outbox: schema up to date"), std::string::npos) << migrate.out;

    auto status = spillway("outbox " + cfg + " status --json");
    ASSERT_EQ(status.code, 0) << status.err;
    json s = json::parse(status.out);
    ASSERT_EQ(s.size(), 1u);
    EXPECT_EQ(s[0]["pipeline"], "orders");
    EXPECT_EQ(s[0]["dead"], 2);
    EXPECT_EQ(s[0]["pending"], 0);
    auto table = spillway("outbox " + cfg + " status");
    EXPECT_EQ(table.code, 0);
    EXPECT_NE(table.out.find("orders"), std::string::npos) << table.out;

    auto dead = spillway("outbox " + cfg + " dead");
    ASSERT_EQ(dead.code, 0) << dead.err;
    auto rows = json_lines(dead.out);
    ASSERT_EQ(rows.size(), 2u) << dead.out;
    EXPECT_EQ(rows[0]["event_id"], "dead-1");
    EXPECT_EQ(rows[0]["pipeline"], "orders");
    EXPECT_NE(rows[0]["last_error"].get<std::string>().find("MSG_SIZE_TOO_LARGE"), std::string::npos) << rows[0];
    EXPECT_EQ(json_lines(spillway("outbox " + cfg + " dead --limit 1").out).size(), 1u);

    auto refuse = spillway("outbox " + cfg + " purge");
    EXPECT_EQ(refuse.code, 2) << "purge without --event-id or --all must refuse";
    EXPECT_NE(refuse.err.find("--all"), std::string::npos) << refuse.err;

    auto replay = spillway("outbox " + cfg + " replay --event-id dead-1");
    ASSERT_EQ(replay.code, 0) << replay.err;
    EXPECT_NE(replay.out.find("orders: replayed 1 dead letter(s)"), std::string::npos) << replay.out;
    auto purge = spillway("outbox " + cfg + " purge --event-id dead-2");
    ASSERT_EQ(purge.code, 0) << purge.err;
    EXPECT_NE(purge.out.find("orders: purged 1 dead letter(s)"), std::string::npos) << purge.out;

    s = json::parse(spillway("outbox " + cfg + " status --json").out);
    EXPECT_EQ(s[0]["dead"], 0);
    EXPECT_EQ(s[0]["pending"], 1);  // dead-1, waiting for a relay

    auto unknown = spillway("outbox " + cfg + " status --pipeline nope");
    EXPECT_EQ(unknown.code, 2);
}

TEST(CliStatus, OncePrintsThePipelinesOfARunningServer) {
    EnvOptions o;
    o.token = "tok";
    Env env(o);
    pipeline::Event e;
    e.payload = "1";
    ASSERT_EQ(env.pipeline().publish(std::move(e)).path, pipeline::Path::Direct);

    auto ok = spillway("status " + env.url() + " --once --token tok");
    ASSERT_EQ(ok.code, 0) << ok.err;
    EXPECT_NE(ok.out.find("PIPELINE"), std::string::npos) << ok.out;
    EXPECT_NE(ok.out.find("orders"), std::string::npos) << ok.out;
    EXPECT_NE(ok.out.find("closed"), std::string::npos) << ok.out;
    EXPECT_EQ(ok.out.find("\033["), std::string::npos) << "no ANSI codes when stdout is not a terminal";

    EXPECT_EQ(ok.out.find("paused"), std::string::npos) << ok.out;

    // --json: what the admin API says, once; a paused relay is shown in both forms.
    env.pipeline().pause();
    auto as_json = spillway("status " + env.url() + " --json --token tok");
    ASSERT_EQ(as_json.code, 0) << as_json.err;
    const auto j = nlohmann::json::parse(as_json.out, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << as_json.out;
    ASSERT_EQ(j["pipelines"].size(), 1u) << as_json.out;
    EXPECT_EQ(j["pipelines"][0]["name"], "orders");
    EXPECT_EQ(j["pipelines"][0]["counts"]["direct"], 1);
    EXPECT_EQ(j["pipelines"][0]["relay_paused"], true);
    auto paused = spillway("status " + env.url() + " --once --token tok");
    EXPECT_NE(paused.out.find("relay of orders paused"), std::string::npos) << paused.out;
    env.pipeline().resume();

    auto no_token = spillway("status " + env.url() + " --once");
    EXPECT_EQ(no_token.code, 3);
    EXPECT_NE(no_token.err.find("401"), std::string::npos) << no_token.err;

    const int port = env.server().port();
    env.stop_engine();
    auto gone = spillway("status 127.0.0.1:" + std::to_string(port) + " --once --token tok");
    EXPECT_EQ(gone.code, 3);
    EXPECT_NE(gone.err.find("cannot connect"), std::string::npos) << gone.err;
}

}  // namespace
}  // namespace spillway::http_test
