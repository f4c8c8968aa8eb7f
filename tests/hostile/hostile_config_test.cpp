// Hostile configuration (issue 19 classes 7 and 8), through the real `spillway` binary: what
// validate prints holds no credential, a token that expands to nothing stops the engine instead of
// turning authentication off, and a file nested past the limit is refused at file:line:col, never
// a crash (the loader recursed once per dotted-key part; the parser ran out of stack).
#include "hostile_engine.hpp"

#include <spillway/test_support/pipeline_toml.hpp>
#include <spillway/test_support/run_command.hpp>
#include <spillway/test_support/temp_dir.hpp>

#include <gtest/gtest.h>

#include <fstream>

namespace spillway::hostile {
namespace {

using namespace std::chrono_literals;

const std::string kTooDeep = "nested deeper than 64 levels";

// A complete pipeline file: `engine_extra` goes into [engine], `sink_extra` into [sink.kafka].
// The brokers are never contacted: validate and a refused start need none.
class ConfigFile {
public:
    ConfigFile(const std::string& engine_extra, const std::string& sink_extra) {
        test_support::PipelineToml toml(SPILLWAY_PLUGIN_DIR);
        toml.engine().add_lines(engine_extra);
        toml.kafka_sink("127.0.0.1:1").add_lines(sink_extra);
        toml.sqlite_store(dir_.path() + "/outbox.db");
        toml.notifier("inproc");
        toml.adaptive_scheduler();
        toml.pipeline("orders").set("topic", "orders.events");
        toml.write(path_);
    }
    const std::string& path() const { return path_; }
    test_support::CommandResult run(const std::string& command) const {
        return test_support::run_command({SPILLWAY_BIN, command, path_}, "", {}, {"SPILLWAY_HOSTILE_TOKEN"});
    }

private:
    test_support::TempDir dir_{"hostile-config"};
    std::string path_ = dir_.path() + "/pipeline.toml";
};

std::string dotted(size_t parts) {
    std::string key = "a";
    for (size_t i = 1; i < parts; ++i) key += ".a";
    return key;
}

TEST(HostileConfig, ValidatePrintsNoPassThroughCredential) {
    const ConfigFile file("", "\"security.protocol\" = \"sasl_ssl\"\n\"sasl.mechanisms\" = \"PLAIN\"\n"
                              "\"sasl.username\" = \"alice\"\n\"sasl.password\" = \"hunter2-sasl\"\n"
                              "\"ssl.key.password\" = \"hunter2-ssl-key\"\n\"ssl.keystore.password\" = \"hunter2-keystore\"");
    const auto r = file.run("validate");
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_EQ((r.out + r.err).find("hunter2"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("\"sasl.password\" = \"<secret>\""), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("\"ssl.key.password\" = \"<secret>\""), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("\"ssl.keystore.password\" = \"<secret>\""), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("\"sasl.username\" = \"alice\""), std::string::npos) << r.out;  // not a credential
}

TEST(HostileConfig, AnEmptyTokenIsAnErrorAtItsKeyNotAnOpenServer) {
    const ConfigFile literal("http_listen = \"127.0.0.1:0\"\nhttp_token = \"\"", "");
    auto r = literal.run("validate");
    EXPECT_EQ(r.code, 1) << r.out;
    EXPECT_NE(r.err.find(literal.path() + ":4:14: engine.http_token: is empty, which would turn authentication off"),
              std::string::npos) << r.err;

    const ConfigFile unset("http_listen = \"127.0.0.1:0\"\nhttp_token = \"${SPILLWAY_HOSTILE_TOKEN:-}\"", "");
    r = unset.run("validate");
    EXPECT_EQ(r.code, 1) << r.out;
    EXPECT_NE(r.err.find(unset.path() + ":4:14: engine.http_token: expands to an empty string"), std::string::npos)
        << r.err;

    // The real engine does not come up without authentication: it never answers /readyz.
    HostileEngine engine("http_token = \"${SPILLWAY_HOSTILE_TOKEN:-}\"");
    EXPECT_FALSE(engine.start(5s)) << "an engine started with an empty token";
    EXPECT_NE(engine.log_tail().find("engine.http_token: expands to an empty string"), std::string::npos)
        << engine.log_tail();
}

TEST(HostileConfig, AListenerBeyondLoopbackWithoutATokenIsWarnedAbout) {
    const ConfigFile open("http_listen = \"0.0.0.0:0\"", "");
    auto r = open.run("validate");
    EXPECT_EQ(r.code, 0) << r.err;
    EXPECT_NE(r.err.find("warning: " + open.path() + ":3:15: engine.http_listen: \"0.0.0.0:0\" accepts connections "
                                                     "from other hosts and no http_token is set"),
              std::string::npos) << r.err;
    const ConfigFile guarded("http_listen = \"0.0.0.0:0\"\nhttp_token = \"t0k3n\"", "");
    r = guarded.run("validate");
    EXPECT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(r.err.find("warning"), std::string::npos) << r.err;
}

TEST(HostileConfig, ADottedKeyOfFiftyThousandPartsIsRefusedNotACrash) {
    const ConfigFile file("", dotted(50'000) + " = 1");
    for (const char* command : {"validate", "run"}) {
        const auto r = file.run(command);
        EXPECT_EQ(r.code, 1) << command << " died by a signal (code -1) or passed";
        // [sink.kafka] is 2 levels; the 62nd dot, column 124 of line 7, makes the 65th.
        EXPECT_NE(r.err.find(file.path() + ":7:124: " + kTooDeep), std::string::npos) << command << ": "
                                                                                       << r.err.substr(0, 400);
    }
    const ConfigFile top("", "");
    std::ofstream(top.path()) << dotted(200'000) << " = 1\n";  // the parser's own recursion, before the loader's
    const auto r = top.run("validate");
    EXPECT_EQ(r.code, 1);
    EXPECT_NE(r.err.find(top.path() + ":1:128: " + kTooDeep), std::string::npos) << r.err.substr(0, 400);
}

TEST(HostileConfig, DeeplyNestedArraysAndInlineTablesAreRefusedNotACrash) {
    std::string tables = "x = ";
    for (int i = 0; i < 200; ++i) tables += "{" + dotted(200) + " = ";
    tables += "1" + std::string(200, '}');
    const ConfigFile arrays("", "x = " + std::string(100'000, '[') + std::string(100'000, ']'));
    const ConfigFile inline_tables("", tables);
    for (const ConfigFile* file : {&arrays, &inline_tables}) {
        const auto r = file->run("validate");
        EXPECT_EQ(r.code, 1);
        EXPECT_NE(r.err.find(file->path() + ":7:"), std::string::npos) << r.err.substr(0, 400);
        EXPECT_NE(r.err.find(kTooDeep), std::string::npos) << r.err.substr(0, 400);
    }
}

TEST(HostileConfig, AFileOverOneMebibyteIsRefusedUnread) {
    const ConfigFile file("", "# " + std::string(2 << 20, 'x'));
    const auto r = file.run("validate");
    EXPECT_EQ(r.code, 1);
    EXPECT_NE(r.err.find(file.path() + ":7:"), std::string::npos) << r.err.substr(0, 400);  // where byte 1 MiB + 1 is
    EXPECT_NE(r.err.find(": the file is larger than 1048576 bytes (1 MiB), the limit for a configuration file"),
              std::string::npos) << r.err.substr(0, 400);
}

}  // namespace
}  // namespace spillway::hostile
