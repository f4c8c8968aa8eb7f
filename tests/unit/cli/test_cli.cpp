// The spillway command as a user meets it: output and exit codes of plugins, validate and run.
#include <spillway/test_support/child_process.hpp>
#include <spillway/test_support/run_command.hpp>
#include <spillway/test_support/temp_dir.hpp>
#include <spillway/test_support/wait.hpp>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>


#include <fstream>
#include <sstream>

namespace {

using namespace std::chrono_literals;

using Result = spillway::test_support::CommandResult;

std::string slurp(const std::string& path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// Runs the built spillway binary with `args` and extra environment, whatever SPILLWAY_* settings
// the shell running the tests has.
Result spillway(const std::vector<std::string>& args, const std::vector<std::string>& env = {}) {
    std::vector<std::string> argv{SPILLWAY_BIN};
    argv.insert(argv.end(), args.begin(), args.end());
    return spillway::test_support::run_command(argv, "", env, {"SPILLWAY_ENV", "ENVIRONMENT", "SPILLWAY_PLUGIN_PATH"});
}

const std::string kConfigDir = CONFIG_TEST_DIR;
const std::string kFakes = std::string("FAKE_PLUGINS=") + FAKE_PLUGIN_DIR;

TEST(CliPlugins, ListsPluginsAndRefusedFilesWithReasons) {
    Result r = spillway({"plugins", "--plugin-path", ABI_PLUGIN_DIR});
    EXPECT_EQ(r.code, 0) << r.err;
    // The name column is as wide as the longest name there (c-transform).
    EXPECT_NE(r.out.find("KIND       NAME        VERSION   ABI   PATH"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("sink       c-echo      1.0.0     1.0   " + std::string(ABI_PLUGIN_DIR) + "/spillway-c-echo.so"),
              std::string::npos)
        << r.out;
    EXPECT_NE(r.out.find("transform  c-transform 1.0.0     1.2   "), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("refused:\n"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find(std::string(ABI_PLUGIN_DIR) + "/spillway-bad-major.so: built for ABI major 2, this engine speaks major 1"),
              std::string::npos)
        << r.out;
}

TEST(CliPlugins, JsonIsMachineReadable) {
    Result r = spillway({"plugins", "--json", "--plugin-path", ABI_PLUGIN_DIR});
    ASSERT_EQ(r.code, 0) << r.err;
    const auto j = nlohmann::json::parse(r.out);
    bool found = false;
    for (const auto& p : j.at("plugins")) {
        if (p.at("name") != "c-echo") continue;
        found = true;
        EXPECT_EQ(p.at("kind"), "sink");
        EXPECT_EQ(p.at("abi"), "1.0");
        EXPECT_EQ(p.at("version"), "1.0.0");
        EXPECT_EQ(p.at("options").at(0).at("name"), "prefix");
    }
    EXPECT_TRUE(found) << r.out;
    EXPECT_EQ(j.at("refused").size(), 8u);
}

TEST(CliPlugins, PluginPathFromTheEnvironment) {
    Result r = spillway({"plugins"}, {std::string("SPILLWAY_PLUGIN_PATH=") + FAKE_PLUGIN_DIR});
    EXPECT_EQ(r.code, 0);
    EXPECT_NE(r.out.find("store      fake"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("scheduler  fake"), std::string::npos) << r.out;
}

TEST(CliPluginInfo, ShowsTheOptionTableTheValidatorUses) {
    Result r = spillway({"plugin-info", "fake", "--kind", "store", "--plugin-path", FAKE_PLUGIN_DIR});
    EXPECT_EQ(r.code, 0) << r.err;
    EXPECT_NE(r.out.find("store plugin fake 1.0.0"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("  path (string, required)\n      the database file\n"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("  max_pending (integer, default 0)"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("  url (string, secret)"), std::string::npos) << r.out;

    Result j = spillway({"plugin-info", "fake", "--kind", "sink", "--json", "--plugin-path", FAKE_PLUGIN_DIR});
    ASSERT_EQ(j.code, 0) << j.err;
    const auto info = nlohmann::json::parse(j.out);
    EXPECT_EQ(info.at("kind"), "sink");
    EXPECT_EQ(info.at("open_options"), true);
    EXPECT_EQ(info.at("options").at(1).at("name"), "linger");
    EXPECT_EQ(info.at("options").at(1).at("type"), "duration");
    EXPECT_EQ(info.at("options").at(1).at("default"), "5ms");
}

TEST(CliPluginInfo, AmbiguousOrUnknownNamesAreErrors) {
    Result both = spillway({"plugin-info", "fake", "--plugin-path", FAKE_PLUGIN_DIR});
    EXPECT_EQ(both.code, 2);
    EXPECT_NE(both.err.find("several plugins are named 'fake'; choose one with --kind"), std::string::npos) << both.err;
    Result none = spillway({"plugin-info", "kafak", "--plugin-path", FAKE_PLUGIN_DIR});
    EXPECT_EQ(none.code, 1);
    EXPECT_NE(none.err.find("no plugin named 'kafak' on the plugin path"), std::string::npos) << none.err;
}

TEST(CliValidate, GoodConfigPrintsTheEffectiveConfigAndExitsZero) {
    Result r = spillway({"validate", kConfigDir + "/good-base.toml", "--env", "testing"}, {kFakes});
    EXPECT_EQ(r.code, 0) << r.err;
    EXPECT_NE(r.out.find("environment \"testing\" (from --env)"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("[pipeline.essays]"), std::string::npos) << r.out;
    EXPECT_NE(r.err.find(": OK (4 components, 1 pipelines, environment testing)"), std::string::npos) << r.err;
}

TEST(CliValidate, BadConfigExitsOneWithFileLineColumn) {
    const std::string bad = kConfigDir + "/bad/05-unknown-plugin-option.toml";
    Result r = spillway({"validate", bad}, {kFakes});
    EXPECT_EQ(r.code, 1);
    EXPECT_EQ(r.out, "");
    EXPECT_EQ(r.err, bad + ":11:9: store.outbox.pathh: unknown option for store plugin 'fake' (it takes: path, max_pending, url, labels.*)\n" +
                         bad + ": 1 error\n");
}

TEST(CliValidate, MissingFileExitsOne) {
    Result r = spillway({"validate", "/nonexistent/pipes.toml"});
    EXPECT_EQ(r.code, 1);
    EXPECT_NE(r.err.find("/nonexistent/pipes.toml: cannot read the file: No such file or directory"), std::string::npos) << r.err;
}

TEST(CliValidate, EnvironmentVariableSelectsTheEnvironment) {
    Result r = spillway({"validate", kConfigDir + "/good-base.toml"}, {kFakes, "ENVIRONMENT=staging"});
    EXPECT_EQ(r.code, 0) << r.err;
    EXPECT_NE(r.out.find("environment \"staging\" (from ENVIRONMENT)"), std::string::npos) << r.out;
}

TEST(CliUsage, NoSubcommandOrUnknownOptionExitsTwo) {
    EXPECT_EQ(spillway({}).code, 2);
    EXPECT_EQ(spillway({"validate"}).code, 2);
    EXPECT_EQ(spillway({"plugins", "--colour"}).code, 2);
    EXPECT_EQ(spillway({"--version"}).code, 0);
}

TEST(CliRun, StartsThePipelinesAndStopsCleanlyOnSigterm) {
    spillway::test_support::TempDir dir("cli-run");
    const std::string log = dir.path() + "/run.log";
    spillway::test_support::ChildProcess child({{SPILLWAY_BIN, "run", kConfigDir + "/good-base.toml", "--env", "testing"},
                                                log,
                                                "/",
                                                {},
                                                SIGTERM,
                                                {kFakes}});
    ASSERT_TRUE(spillway::test_support::wait_until(
        [&] { return slurp(log).find("running 1 pipeline(s)") != std::string::npos; }, 20s))
        << slurp(log);
    child.signal(SIGTERM);
    ASSERT_TRUE(child.wait_exit(20s)) << slurp(log);
    EXPECT_TRUE(child.exited_ok()) << child.describe_exit() << "\n" << slurp(log);
    const std::string text = slurp(log);
    EXPECT_NE(text.find("started sink.kafka (fake plugin 1.0.0)"), std::string::npos) << text;
    EXPECT_NE(text.find("SIGTERM received: shutting down"), std::string::npos) << text;
    EXPECT_NE(text.find("stopped cleanly"), std::string::npos) << text;
}

TEST(CliRun, InvalidConfigExitsOneWithoutStarting) {
    Result r = spillway({"run", kConfigDir + "/bad/20-bad-mode.toml"}, {kFakes});
    EXPECT_EQ(r.code, 1);
    EXPECT_NE(r.err.find("pipeline.essays.mode: \"kafka-first\" is not one of direct-first, outbox-first"), std::string::npos) << r.err;
}

}  // namespace
