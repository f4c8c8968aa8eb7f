// The pipeline files the project ships (configs/*.toml and configs/examples/*.toml), loaded as
// `spillway validate FILE --env E` loads them: the real config loader and the real plugins, each
// checking its own options, in every environment. An example that stops validating, validates
// only with warnings, or says something its header does not, fails here rather than in the hands
// of whoever copies it.
#include "engine/config/config.hpp"
#include "engine/engine.hpp"
#include "engine/observe/catalogue.hpp"
#include "engine/plugin/reference.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <vector>

namespace spillway {
namespace {

namespace fs = std::filesystem;

const std::string kSource = SPILLWAY_SOURCE_DIR;
const std::string kExamples = kSource + "/configs/examples";

// One file for each deployment shape configs/examples promises (README "Layout").
const std::vector<std::string> kShapes = {
    "direct-first-postgres-redis.toml",   // direct-first, PostgreSQL outbox, Redis doorbell
    "outbox-first-postgres-pgnotify.toml",  // outbox-first, PostgreSQL + the NOTIFY trigger
    "sqlite-single-node.toml",            // one engine, a SQLite file
    "adopt-debezium-outbox.toml",         // a Debezium-layout table
    "adopt-event-outbox.toml",            // the original system's event_outbox
    "environments.toml",                  // [environments.*] overlays, one per environment
};

std::string slurp(const std::string& path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

std::vector<std::string> shipped_files() {
    std::vector<std::string> files;
    for (const std::string& dir : {kSource + "/configs", kExamples})
        for (const auto& e : fs::directory_iterator(dir))
            if (e.path().extension() == ".toml") files.push_back(e.path().string());
    std::sort(files.begin(), files.end());
    return files;
}

// What an operator exports before `spillway run`: every variable a shipped file requires
// (${VAR:?...}), and nothing else, so a file that needs one more fails here.
config::LoadOptions options(const std::string& environment, bool with_variables = true) {
    std::map<std::string, std::string> env{{"SPILLWAY_PLUGIN_PATH", SPILLWAY_PLUGIN_DIR}};
    if (with_variables) {
        env.emplace("KAFKA_BROKERS", "kafka-1:9092,kafka-2:9092");
        env.emplace("OUTBOX_DATABASE_URL", "postgresql://relay:secret@db:5432/app?sslmode=require");
        env.emplace("REDIS_HOST", "redis");
        env.emplace("SPILLWAY_HTTP_TOKEN", "a-long-random-token");
    }
    config::LoadOptions o;
    o.environment = environment;
    o.getenv = [env](const std::string& name) -> std::optional<std::string> {
        auto it = env.find(name);
        if (it == env.end()) return std::nullopt;
        return it->second;
    };
    return o;
}

std::string name_of(const std::string& path) { return fs::path(path).filename().string(); }

std::string test_name(std::string s) {
    for (auto& c : s)
        if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
    return s;
}

TEST(ConfigExamples, EveryDeploymentShapeHasItsFile) {
    for (const auto& shape : kShapes) EXPECT_TRUE(fs::exists(kExamples + "/" + shape)) << shape;
    // A file added without a line in kShapes is still validated below, but should say which shape it is.
    size_t examples = 0;
    for (const auto& file : shipped_files()) examples += fs::path(file).parent_path() == kExamples;
    EXPECT_EQ(examples, kShapes.size()) << "configs/examples has a file kShapes does not list";
}

// --- Every file in every environment.

struct FileInEnvironment {
    std::string file;
    std::string environment;
};

void PrintTo(const FileInEnvironment& p, std::ostream* os) { *os << p.file << " --env " << p.environment; }

std::vector<FileInEnvironment> every_file_in_every_environment() {
    std::vector<FileInEnvironment> out;
    for (const auto& file : shipped_files())
        for (const char* env : config::kEnvironments) out.push_back({file, env});
    return out;
}

class ShippedConfig : public ::testing::TestWithParam<FileInEnvironment> {};

TEST_P(ShippedConfig, ValidatesWithoutErrorsOrWarnings) {
    const auto& [file, environment] = GetParam();
    std::unique_ptr<Prepared> prepared;
    try {
        prepared = prepare(file, options(environment));
    } catch (const std::exception& e) {
        FAIL() << name_of(file) << " --env " << environment << ":\n" << e.what();
    }
    EXPECT_EQ(prepared->config.environment, environment);
    EXPECT_FALSE(prepared->config.pipelines.empty());
    for (const auto& w : prepared->config.warnings) ADD_FAILURE() << "warning: " << w.str();
}

INSTANTIATE_TEST_SUITE_P(ConfigExamples, ShippedConfig, ::testing::ValuesIn(every_file_in_every_environment()),
                         [](const auto& info) {
                             return test_name(fs::path(info.param.file).stem().string() + "_" + info.param.environment);
                         });

// --- Each file on its own.

class ShippedFile : public ::testing::TestWithParam<std::string> {};

TEST_P(ShippedFile, StartsWithACommentSayingWhenToUseIt) {
    std::istringstream text(slurp(GetParam()));
    std::string first;
    std::getline(text, first);
    EXPECT_EQ(first.rfind("# ", 0), 0u) << name_of(GetParam()) << " starts with: " << first;
    if (fs::path(GetParam()).parent_path() == kExamples) {
        EXPECT_EQ(first.rfind("# Use this ", 0), 0u) << name_of(GetParam()) << " starts with: " << first;
    }
}

// The paths a file's text cites: a run of path characters after a blank, a bracket or a quote,
// that starts with a top-level folder ("engine/...") or names a .toml file; trailing punctuation
// is the sentence's. (No std::regex: GCC 12 warns inside <regex> under the sanitizers.)
std::vector<std::string> cited_paths(const std::string& text) {
    static const std::string kOpeners = " \t\r\n(`'\"";
    static const std::vector<std::string> kFolders = {"configs/", "plugins/", "engine/", "tools/", "docs/", "sdk/"};
    auto path_char = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || std::strchr("_./-", c); };
    std::vector<std::string> found;
    for (size_t i = 0; i < text.size(); ++i) {
        if (i > 0 && kOpeners.find(text[i - 1]) == std::string::npos) continue;
        size_t end = i;
        while (end < text.size() && path_char(text[end])) ++end;
        std::string token = text.substr(i, end - i);
        while (!token.empty() && std::strchr("./-", token.back())) token.pop_back();
        const bool in_folder = std::any_of(kFolders.begin(), kFolders.end(), [&](const std::string& f) {
            return token.size() > f.size() && token.compare(0, f.size(), f) == 0;
        });
        const bool toml_name =
            token.size() > 5 && token.ends_with(".toml") &&
            std::all_of(token.begin(), token.end() - 5, [](char c) { return std::islower(c) || std::isdigit(c) || c == '-'; });
        if (in_folder || toml_name) found.push_back(token);
        i = std::max(i, end);
    }
    return found;
}

TEST(ConfigExamples, CitedPathsAreFoundWhereAReaderSeesThem) {
    EXPECT_EQ(cited_paths("see configs/examples/a.toml, and (engine/README.md). Also `b-2.toml`"),
              (std::vector<std::string>{"configs/examples/a.toml", "engine/README.md", "b-2.toml"}));
    EXPECT_TRUE(cited_paths("xengine/foo Upper.toml configs/").empty());
}

// Paths in the comments are how a reader finds the trigger, the reference, the sibling example:
// each must exist (config.hpp once cited a file that did not).
TEST_P(ShippedFile, EveryFileItCitesExists) {
    const auto cited = cited_paths(slurp(GetParam()));
    for (const std::string& path : cited) {
        const std::string base = path.find('/') == std::string::npos ? kExamples : kSource;
        EXPECT_TRUE(fs::exists(base + "/" + path)) << name_of(GetParam()) << " cites " << path;
    }
    EXPECT_GT(cited.size(), 0u) << "the pattern found nothing in " << name_of(GetParam());
}

// With nothing exported, production refuses every file: none falls back to embedded Kafka or a
// database guessed from a default.
TEST_P(ShippedFile, InProductionNothingIsGuessed) {
    EXPECT_THROW(prepare(GetParam(), options("production", false)), config::ConfigError) << name_of(GetParam());
}

INSTANTIATE_TEST_SUITE_P(ConfigExamples, ShippedFile, ::testing::ValuesIn(shipped_files()),
                         [](const auto& info) { return test_name(fs::path(info.param).stem().string()); });

// --- The reference tables: made from the code, never written by hand.

// configs/README.md and every plugins/*/README.md hold exactly the tables `tools/dev reference` makes
// from the loader's key tables and the built plugins' option tables.
TEST(Reference, ReadmesHoldTheTablesTheCodeDeclares) {
    plugin::Registry registry;
    registry.scan({SPILLWAY_PLUGIN_DIR});
    std::vector<std::string> files = {kSource + "/configs/README.md", kSource + "/docs/metrics.md"};
    for (const auto& entry : fs::directory_iterator(kSource + "/plugins"))
        if (fs::exists(entry.path() / "README.md")) files.push_back((entry.path() / "README.md").string());
    size_t tables = 0;
    for (const std::string& file : files) {
        const std::string text = slurp(file);
        std::string made = text;
        if (made.find("<!-- keys:") != std::string::npos) made = config::with_key_tables(made);
        if (made.find("<!-- metrics:") != std::string::npos) made = observe::with_metric_table(made);
        made = plugin::with_option_tables(made, registry);
        EXPECT_EQ(made, text) << file << " is stale: run tools/dev reference";
        for (size_t at = text.find("<!-- options:"); at != std::string::npos; at = text.find("<!-- options:", at + 1)) ++tables;
    }
    EXPECT_GE(tables, 4u) << "redis, pgnotify, adaptive and kafka each have a made table";
}

TEST(Reference, AnOptionTableOfAnUnknownPluginIsRefused) {
    plugin::Registry registry;
    registry.scan({SPILLWAY_PLUGIN_DIR});
    EXPECT_THROW(plugin::with_option_tables("<!-- options:sink.nope -->\n<!-- /options:sink.nope -->\n", registry),
                 std::runtime_error);
    EXPECT_THROW(plugin::with_option_tables("<!-- options:sink.kafka -->\nno end\n", registry), std::runtime_error);
}

// --- What the headers promise.

const plugin::Option& option(const Prepared& p, const std::string& component, const std::string& key) {
    return p.bindings.at(component).options.at(key);
}

// environments.toml's header table: testing polls at a 0.1 s ceiling, staging starts at 1 s with
// medium batches, production's ceiling is 5 s; staging and production run on PostgreSQL and Redis.
TEST(ConfigExamples, EnvironmentOverlaysGiveTheSeedProfiles) {
    const std::string file = kExamples + "/environments.toml";
    auto development = prepare(file, options("development"));
    EXPECT_EQ(development->bindings.at("store.outbox").library->name, "sqlite");
    EXPECT_EQ(development->bindings.at("notifier.doorbell").library->name, "inproc");

    auto testing = prepare(file, options("testing"));
    EXPECT_EQ(option(*testing, "scheduler.poll", "ceiling").integer, 100);
    EXPECT_EQ(testing->bindings.at("notifier.doorbell").library->name, "inproc");

    auto staging = prepare(file, options("staging"));
    EXPECT_EQ(option(*staging, "scheduler.poll", "ladder").list, (config::List{"1s x7"}));
    EXPECT_EQ(option(*staging, "scheduler.poll", "ceiling").integer, 5000);
    EXPECT_EQ(staging->config.pipelines.at("orders").batch_size, 500);
    EXPECT_EQ(staging->config.pipelines.at("orders").drain_batch_size, 2000);

    auto production = prepare(file, options("production"));
    EXPECT_EQ(option(*production, "scheduler.poll", "ceiling").integer, 5000);
    EXPECT_EQ(production->config.pipelines.at("orders").batch_size, 100);
    for (const auto* p : {staging.get(), production.get()}) {
        EXPECT_EQ(p->bindings.at("store.outbox").library->name, "postgres");
        EXPECT_EQ(p->bindings.at("notifier.doorbell").library->name, "redis");
    }
    EXPECT_FALSE(production->config.engine.http_token.empty()) << "production listens beyond loopback";
}

// The trigger rings '<channel_prefix><pipeline>' for rows inserted into one table; the example's
// notifier must listen on that prefix and its store must be that table, or no ring arrives.
TEST(ConfigExamples, OutboxFirstExampleMatchesTheTrigger) {
    auto p = prepare(kExamples + "/outbox-first-postgres-pgnotify.toml", options("production"));
    EXPECT_EQ(p->config.pipelines.at("orders").mode, config::Mode::OutboxFirst);
    EXPECT_EQ(p->bindings.at("notifier.doorbell").library->name, "pgnotify");
    const std::string trigger = slurp(kSource + "/plugins/pgnotify/trigger.sql");
    const std::string prefix = option(*p, "notifier.doorbell", "channel_prefix").text;
    const std::string table = option(*p, "store.outbox", "table").text;
    EXPECT_NE(trigger.find("EXECUTE FUNCTION spillway_outbox_ring('" + prefix + "')"), std::string::npos) << prefix;
    EXPECT_NE(trigger.find("AFTER INSERT ON " + table + "\n"), std::string::npos) << table;
}

}  // namespace
}  // namespace spillway
