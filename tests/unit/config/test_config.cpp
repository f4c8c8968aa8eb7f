// The config loader and validator: every bad config in bad/ fails with exactly the message in its
// .expected file (file:line:col, key path, reason); good configs give the expected effective config
// with overlays and interpolation applied and secrets redacted.
#include "engine/config/config.hpp"
#include "engine/engine.hpp"

#include <spillway/detail/duration.hpp>

#include <gtest/gtest.h>

#include <set>
#include <sstream>

#include <filesystem>
#include <unistd.h>
#include <fstream>
#include <sstream>

namespace spillway {
namespace {

namespace fs = std::filesystem;

const std::string kDir = CONFIG_TEST_DIR;

std::string slurp(const std::string& path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// A fixed environment: only what a test puts here is "set".
config::LoadOptions options(std::map<std::string, std::string> env = {}, std::optional<std::string> environment = {}) {
    env.emplace("FAKE_PLUGINS", FAKE_PLUGIN_DIR);
    config::LoadOptions o;
    o.environment = std::move(environment);
    o.getenv = [env](const std::string& name) -> std::optional<std::string> {
        auto it = env.find(name);
        if (it == env.end()) return std::nullopt;
        return it->second;
    };
    return o;
}

// A pipeline file a test writes; removed after.
struct TempFile {
    std::string path = (fs::temp_directory_path() / ("spillway-config-" + std::to_string(::getpid()) + ".toml")).string();
    ~TempFile() { std::remove(path.c_str()); }
};

std::string error_of(const std::string& path, const config::LoadOptions& o) {
    try {
        prepare(path, o);
    } catch (const config::ConfigError& e) {
        return e.what();
    }
    return "(no error)";
}

std::vector<std::string> bad_configs() {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(kDir + "/bad"))
        if (e.path().extension() == ".toml") names.push_back(e.path().stem().string());
    std::sort(names.begin(), names.end());
    return names;
}

class BadConfig : public ::testing::TestWithParam<std::string> {};

TEST_P(BadConfig, FailsWithTheExactMessage) {
    const std::string toml = kDir + "/bad/" + GetParam() + ".toml";
    const std::string expected_file = kDir + "/bad/" + GetParam() + ".expected";
    const std::string actual = error_of(toml, options());
    ASSERT_TRUE(fs::exists(expected_file)) << "no " << expected_file << "; the message is:\n" << actual;
    std::string expected = slurp(expected_file);
    while (!expected.empty() && expected.back() == '\n') expected.pop_back();
    for (size_t at; (at = expected.find("{file}")) != std::string::npos;) expected.replace(at, 6, toml);
    EXPECT_EQ(actual, expected);
}

INSTANTIATE_TEST_SUITE_P(Config, BadConfig, ::testing::ValuesIn(bad_configs()), [](const auto& info) {
    std::string n = info.param;
    for (auto& c : n)
        if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
    return n;
});

TEST(Config, AtLeastTwentyFiveBadConfigsAreChecked) { EXPECT_GE(bad_configs().size(), 25u); }

// "${RETRIES:-5}" types as an integer whether the variable or its default supplied the text; only
// text the environment supplied is redacted when printed.
TEST(Config, AnInterpolatedDefaultIsTypedLikeTheVariable) {
    TempFile f;
    std::string text = slurp(kDir + "/good-base.toml");
    text.replace(text.find("brokers = \"localhost:9092\""), 26, "brokers = \"localhost:9092\"\nretries = \"${RETRIES:-5}\"");
    std::ofstream(f.path) << text;
    auto unset = prepare(f.path, options());
    EXPECT_EQ(unset->bindings.at("sink.kafka").options.at("retries").integer, 5);
    auto set = prepare(f.path, options({{"RETRIES", "7"}}));
    EXPECT_EQ(set->bindings.at("sink.kafka").options.at("retries").integer, 7);
}

TEST(Config, UnknownEnvironmentFromFlagIsAnError) {
    const std::string toml = kDir + "/good-base.toml";
    EXPECT_EQ(error_of(toml, options({}, "prod")),
              toml + ": unknown environment 'prod' (from --env); expected one of testing, development, staging, production");
}

TEST(Config, UnknownEnvironmentFromVariableNamesTheVariable) {
    const std::string toml = kDir + "/good-base.toml";
    EXPECT_EQ(error_of(toml, options({{"SPILLWAY_ENV", "live"}})),
              toml + ": unknown environment 'live' (from SPILLWAY_ENV); expected one of testing, development, staging, production");
}

TEST(Config, EnvironmentSelectionOrder) {
    const std::string toml = kDir + "/good-base.toml";
    EXPECT_EQ(prepare(toml, options())->config.environment, "development");
    EXPECT_EQ(prepare(toml, options({{"ENVIRONMENT", "staging"}}))->config.environment, "staging");
    EXPECT_EQ(prepare(toml, options({{"ENVIRONMENT", "staging"}, {"SPILLWAY_ENV", "testing"}}))->config.environment, "testing");
    auto p = prepare(toml, options({{"ENVIRONMENT", "staging"}, {"SPILLWAY_ENV", "testing"}}, "production"));
    EXPECT_EQ(p->config.environment, "production");
    EXPECT_EQ(p->config.environment_source, "--env");
}

TEST(Config, OverlayAndInterpolationGiveTheExpectedEffectiveConfig) {
    const std::string toml = kDir + "/good/overlay.toml";
    auto p = prepare(toml, options({{"OUTBOX_URL", "postgresql://app:hunter2@db/outbox"},
                                    {"KAFKA_BROKERS", "broker-1:9092"}},
                                   "production"));
    std::string expected = slurp(kDir + "/good/overlay.production.expected");
    for (size_t at; (at = expected.find("{file}")) != std::string::npos;) expected.replace(at, 6, toml);
    EXPECT_EQ(p->render(), expected);
    // The typed values reached the binding: the overlay's, with the defaults applied.
    const auto& sink = p->bindings.at("sink.kafka");
    EXPECT_EQ(sink.options.at("brokers").text, "broker-1:9092");
    EXPECT_EQ(sink.options.at("linger").integer, 20);
    EXPECT_EQ(sink.options.at("retries").integer, 3);  // the plugin's default
    EXPECT_EQ(p->config.pipelines.at("essays").direct_timeout_ms, 1500);
}

TEST(Config, DevelopmentIgnoresTheProductionOverlay) {
    const std::string toml = kDir + "/good/overlay.toml";
    auto p = prepare(toml, options({}, "development"));
    EXPECT_EQ(p->bindings.at("sink.kafka").options.at("brokers").text, "localhost:9092");
    EXPECT_EQ(p->bindings.at("store.outbox").options.at("path").text, "var/outbox.db");
}

TEST(Config, SecretsNeverAppearInPrintedOutput) {
    const std::string toml = kDir + "/good/overlay.toml";
    auto p = prepare(toml, options({{"OUTBOX_URL", "postgresql://app:hunter2@db/outbox"},
                                    {"KAFKA_BROKERS", "broker-1:9092"}},
                                   "production"));
    const std::string out = p->render();
    EXPECT_EQ(out.find("hunter2"), std::string::npos) << out;
    EXPECT_EQ(out.find("broker-1"), std::string::npos) << out;       // from the environment
    EXPECT_EQ(out.find("s3cr3t-literal"), std::string::npos) << out;  // a SECRET option
    EXPECT_NE(out.find("password = \"<secret>\""), std::string::npos) << out;
}

TEST(Config, DefaultValuesFromVariablesAreNotRedacted) {
    const std::string toml = kDir + "/good/overlay.toml";
    auto p = prepare(toml, options({}, "staging"));
    EXPECT_NE(p->render().find("brokers = \"localhost:9093\""), std::string::npos) << p->render();
}

TEST(Config, OverlayThatSwapsAPluginReplacesTheComponentsTable) {
    const std::string toml = kDir + "/good/swap.toml";
    auto dev = prepare(toml, options({}, "development"));
    EXPECT_EQ(dev->bindings.at("store.outbox").library->name, "fake");
    auto prod = prepare(toml, options({{"DB_URL", "postgresql://x"}}, "production"));
    const auto& store = prod->bindings.at("store.outbox");
    EXPECT_EQ(store.library->name, "fake-server");
    EXPECT_EQ(store.options.count("path"), 0u);  // sqlite's option did not leak into the swap
    EXPECT_EQ(store.options.at("url").text, "postgresql://x");
}

TEST(Interpolate, Forms) {
    auto env = [](const std::string& n) -> std::optional<std::string> {
        if (n == "A") return std::string("alpha");
        if (n == "EMPTY") return std::string();
        return std::nullopt;
    };
    bool used = false;
    EXPECT_EQ(config::interpolate("x${A}y", env, &used), "xalphay");
    EXPECT_TRUE(used);
    used = false;
    EXPECT_EQ(config::interpolate("${B:-beta}", env, &used), "beta");
    EXPECT_FALSE(used);
    EXPECT_EQ(config::interpolate("${EMPTY:-dflt}", env, nullptr), "dflt");
    EXPECT_EQ(config::interpolate("${EMPTY}", env, nullptr), "");
    EXPECT_EQ(config::interpolate("cost $$5 and $x", env, nullptr), "cost $5 and $x");
    EXPECT_THROW(config::interpolate("${B:?need B}", env, nullptr), std::invalid_argument);
    EXPECT_THROW(config::interpolate("${B:=x}", env, nullptr), std::invalid_argument);
}

// A pipeline on a kafka sink; `sink_extra` and `pipeline_extra` are appended to the two tables.
std::string kafka_pipeline(const std::string& sink_extra, const std::string& pipeline_extra) {
    return "[sink.kafka]\nplugin = \"kafka\"\n\"bootstrap.servers\" = \"broker:9092\"\n" + sink_extra +
           "\n[store.outbox]\nplugin = \"sqlite\"\n\n[notifier.bell]\nplugin = \"inproc\"\n\n"
           "[scheduler.poll]\nplugin = \"adaptive\"\n\n"
           "[pipeline.essays]\nsink = \"kafka\"\nstore = \"outbox\"\nnotifier = \"bell\"\nscheduler = \"poll\"\n" +
           pipeline_extra;
}

std::vector<std::string> warnings_of(const std::string& text) {
    std::vector<std::string> out;
    for (const auto& w : config::load_string(text, "pipes.toml", options()).warnings) out.push_back(w.str());
    return out;
}

TEST(ConfigWarnings, KafkaMessageTimeoutAboveDirectTimeoutIsNamedAtTheKey) {
    const auto w = warnings_of(kafka_pipeline("\"message.timeout.ms\" = 10000\n", ""));
    ASSERT_EQ(w.size(), 1u);
    EXPECT_EQ(w[0], "pipes.toml:4:24: sink.kafka.message.timeout.ms: 10000 ms is above the direct_timeout of pipeline "
                    "'essays' (2000 ms): an event spilled to the outbox at direct_timeout may still be delivered by "
                    "librdkafka until message.timeout.ms, a duplicate of the row the relay sends; keep "
                    "message.timeout.ms at or below direct_timeout");
}

TEST(ConfigWarnings, DirectTimeoutBelowTheKafkaDefaultIsNamedAtDirectTimeout) {
    const auto w = warnings_of(kafka_pipeline("", "direct_timeout = \"1s\"\n"));
    ASSERT_EQ(w.size(), 1u);
    EXPECT_EQ(w[0].rfind("pipes.toml:19:18: pipeline.essays.direct_timeout: 1000 ms is below the message.timeout.ms "
                         "of [sink.kafka] (2000 ms, the kafka plugin's default)", 0), 0u) << w[0];
    EXPECT_NE(w[0].find("set \"message.timeout.ms\" in [sink.kafka] at or below direct_timeout"), std::string::npos) << w[0];
}

TEST(ConfigWarnings, NoneWhenTheyAgree) {
    EXPECT_TRUE(warnings_of(kafka_pipeline("", "")).empty()) << "the defaults agree";
    EXPECT_TRUE(warnings_of(kafka_pipeline("\"message.timeout.ms\" = \"2000\"\n", "direct_timeout = \"2s\"\n")).empty());
    EXPECT_TRUE(warnings_of(kafka_pipeline("\"message.timeout.ms\" = 1000\n", "direct_timeout = \"1s\"\n")).empty());
    // Outbox-first publishes nothing direct; another sink plugin has no message.timeout.ms.
    EXPECT_TRUE(warnings_of(kafka_pipeline("\"message.timeout.ms\" = 10000\n", "mode = \"outbox-first\"\n")).empty());
    std::string other = kafka_pipeline("\"message.timeout.ms\" = 10000\n", "");
    other.replace(other.find("plugin = \"kafka\""), 16, "plugin = \"other\"");
    EXPECT_TRUE(warnings_of(other).empty());
}

TEST(ConfigWarnings, TheAliasAndAFloatAreReadToo) {
    // librdkafka takes delivery.timeout.ms for message.timeout.ms, and TOML may spell it 10000.0.
    auto w = warnings_of(kafka_pipeline("\"delivery.timeout.ms\" = 10000\n", ""));
    ASSERT_EQ(w.size(), 1u);
    EXPECT_NE(w[0].find("sink.kafka.delivery.timeout.ms: 10000 ms is above the direct_timeout"), std::string::npos) << w[0];
    w = warnings_of(kafka_pipeline("\"message.timeout.ms\" = 10000.0\n", ""));
    ASSERT_EQ(w.size(), 1u);
    EXPECT_NE(w[0].find("10000 ms is above the direct_timeout"), std::string::npos) << w[0];
}

TEST(ConfigWarnings, NoLimitIsAboveAnyDirectTimeout) {
    const auto w = warnings_of(kafka_pipeline("\"message.timeout.ms\" = 0\n", ""));
    ASSERT_EQ(w.size(), 1u);
    EXPECT_NE(w[0].find("0 (no limit) is above"), std::string::npos) << w[0];
}

TEST(ConfigWarnings, AListenerBeyondLoopbackWithoutATokenIsNamedAtHttpListen) {
    auto with_engine = [](const std::string& engine) {
        return "[engine]\n" + engine + kafka_pipeline("", "topic = \"essays.events\"\n");
    };
    auto w = warnings_of(with_engine("http_listen = \"0.0.0.0:8080\"\n"));
    ASSERT_EQ(w.size(), 1u);
    EXPECT_EQ(w[0].rfind("pipes.toml:2:15: engine.http_listen: \"0.0.0.0:8080\" accepts connections from other hosts "
                         "and no http_token is set", 0), 0u) << w[0];
    EXPECT_EQ(warnings_of(with_engine("http_listen = \"[::]:8080\"\n")).size(), 1u);
    EXPECT_EQ(warnings_of(with_engine("http_listen = \"orders-host:8080\"\n")).size(), 1u);
    EXPECT_TRUE(warnings_of(with_engine("http_listen = \"0.0.0.0:8080\"\nhttp_token = \"t0k3n\"\n")).empty());
    for (const char* loopback : {"127.0.0.1:8080", "127.0.0.2:0", "localhost:8080", "[::1]:8080"})
        EXPECT_TRUE(warnings_of(with_engine("http_listen = \"" + std::string(loopback) + "\"\n")).empty()) << loopback;
}

// Pass-through properties (librdkafka's) are in no option table: their names decide.
TEST(ConfigSecrets, TheNameRule) {
    for (const char* secret : {"sasl.password", "ssl.key.password", "ssl.keystore.password", "ssl.key.pem",
                               "ssl.key.location", "sasl.oauthbearer.client.secret", "sasl.oauthbearer.config",
                               "sasl.jaas.config", "password", "PASSWORD", "db_passwd", "api_key", "apiKey.x",
                               "http-token", "aws.credentials", "private.key.file",
                               "sasl.oauthbearer.assertion.private.key.passphrase", "signing_key", "key.pem"})
        EXPECT_TRUE(config::name_says_secret(secret)) << secret;
    for (const char* plain : {"columns.key", "key_prefix", "message.key", "key", "bootstrap.servers", "sasl.username",
                              "sasl.mechanisms", "ssl.certificate.pem", "ssl.ca.location", "tokenizer", "keystore",
                              "event_id_field", "max_pending", "security.protocol", "monkey.pem"})
        EXPECT_FALSE(config::name_says_secret(plain)) << plain;
}

TEST(ConfigSecrets, PassThroughCredentialsArePrintedRedacted) {
    const auto cfg = config::load_string(
        kafka_pipeline("\"sasl.password\" = \"hunter2-sasl\"\n\"ssl.key.password\" = \"hunter2-key\"\n"
                       "\"ssl.keystore.password\" = \"hunter2-store\"\n"
                       "\"sasl.oauthbearer.client.secret\" = \"hunter2-oauth\"\n\"sasl.username\" = \"alice\"\n",
                       ""),
        "pipes.toml", options());
    // No plugin predicate: the name rule alone hides them, in set options and in defaults.
    const std::string out = config::render_toml(cfg, {}, [](const config::Component& c) {
        std::vector<std::pair<std::string, std::string>> d;
        if (c.kind == "sink") d.emplace_back("ssl.key.pem", "\"hunter2-default\"");
        return d;
    });
    EXPECT_EQ(out.find("hunter2"), std::string::npos) << out;
    EXPECT_NE(out.find("\"sasl.password\" = \"<secret>\""), std::string::npos) << out;
    EXPECT_NE(out.find("\"ssl.key.pem\" = \"<secret>\"  # default"), std::string::npos) << out;
    EXPECT_NE(out.find("\"sasl.username\" = \"alice\""), std::string::npos) << out;
}

// The size and nesting limits hold before the parser runs; each answer names where it was crossed.
std::string load_error(const std::string& text) {
    try {
        config::load_string(text, "deep.toml", options());
    } catch (const config::ConfigError& e) {
        return e.what();
    }
    return "(no error)";
}

std::string dotted(size_t parts) {
    std::string key = "a";
    for (size_t i = 1; i < parts; ++i) key += ".a";
    return key;
}

const std::string kTooDeep =
    "nested deeper than 64 levels (table-header parts, dotted-key parts, arrays and inline tables together), "
    "the limit for a configuration file";

TEST(ConfigLimits, ADottedKeyOfFiftyThousandPartsIsRefusedWhereItCrossesTheLimit) {
    // In [sink.kafka] (2 levels), the 62nd dot makes level 65: column 124 of line 4. The old loader
    // recursed once per part there, building ever longer key strings.
    const std::string e = load_error(kafka_pipeline(dotted(50'000) + " = 1\n", ""));
    EXPECT_EQ(e, "deep.toml:4:124: " + kTooDeep) << e.substr(0, 300);
    // At the top level the parser itself ran out of stack (SIGSEGV) on a key this long.
    const std::string top = load_error(dotted(200'000) + " = 1\n");
    EXPECT_EQ(top, "deep.toml:1:128: " + kTooDeep) << top.substr(0, 300);
}

TEST(ConfigLimits, DeepArraysInlineTablesAndHeadersAreRefused) {
    EXPECT_EQ(load_error("a = " + std::string(100'000, '[') + std::string(100'000, ']') + "\n"), "deep.toml:1:69: " + kTooDeep);
    std::string tables = "a = ";
    for (int i = 0; i < 200; ++i) tables += "{" + dotted(200) + " = ";
    tables += "1" + std::string(200, '}') + "\n";
    EXPECT_EQ(load_error(tables), "deep.toml:1:131: " + kTooDeep);  // a = {a.a... : level 65 at the 63rd dot
    EXPECT_EQ(load_error("[" + dotted(70) + "]\n"), "deep.toml:1:129: " + kTooDeep);
    EXPECT_EQ(load_error("[[" + dotted(64) + "]]\n"), "deep.toml:1:128: " + kTooDeep);  // its array is a level too
    // Levels add up across a header, a dotted key and brackets.
    EXPECT_EQ(load_error("[" + dotted(30) + "]\n" + dotted(30) + " = [[[[[[1]]]]]]\n"), "deep.toml:2:68: " + kTooDeep);
}

TEST(ConfigLimits, ALargerFileIsRefusedAtTheByteThatCrossesTheLimit) {
    const std::string text = "# " + std::string(config::kMaxConfigBytes, 'x') + "\n";
    EXPECT_EQ(load_error(text),
              "deep.toml:1:1048577: the file is larger than 1048576 bytes (1 MiB), the limit for a configuration file");
}

TEST(ConfigLimits, WhatOnlyLooksDeepIsNotCounted) {
    // Brackets and dots in strings, quoted keys and comments count for nothing; 64 levels pass.
    const std::string brackets(200, '['), dots(200, '.');
    auto exactly = [](int arrays) {
        // [10 parts] 20 parts = [ arrays x [ {b = 1} ] ]: the outer array is at level 30, b at 32 + arrays.
        return "[" + dotted(10) + "]\n" + dotted(20) + " = [" + std::string(arrays, '[') + "{b = 1}" +
               std::string(arrays, ']') + "]\n";
    };
    const std::string text = "# " + brackets + dotted(100) + "\n"
                             "[x]\nlist = [\"" + brackets + dots + "\", '" + brackets + "']\n"
                             "basic = \"\"\"\n" + brackets + "\n\"\"\"  # \"\n"
                             "literal = '''" + brackets + "\n'''\n"
                             "escaped = \"\\\"" + brackets + "\"\n"
                             "[\"" + dots + "\".\"x\"]\n\"" + dots + "\" = 1\n" + exactly(32);
    EXPECT_EQ(load_error(text).find("deep.toml:1:"), std::string::npos) << load_error(text).substr(0, 400);
    EXPECT_EQ(load_error(text).find("nested deeper"), std::string::npos) << load_error(text).substr(0, 400);
    EXPECT_EQ(load_error(exactly(33)), "deep.toml:2:80: " + kTooDeep);  // the = of b
}

TEST(Config, AnUnknownTopLevelTableHidesNoOtherError) {
    // The loader collects; prepare goes on to the plugins' option checks and their own validate.
    const std::string toml = kDir + "/bad/39-every-error-reported.toml";
    try {
        prepare(toml, options());
        FAIL() << "no error";
    } catch (const config::ConfigError& e) {
        std::vector<std::string> keys;
        for (const auto& d : e.diagnostics()) keys.push_back(d.key_path);
        EXPECT_EQ(keys, (std::vector<std::string>{"sink.kafka.bad.acks", "store.outbox.pathh",
                                                  "pipeline.essays.direct_timeout", "sinks"}));
    }
}

// The [engine] http_* keys are declared once (kHttpLimitKeys); the operator's reference must name
// each, with the default the struct holds.
TEST(HttpLimits, EveryKeyIsDocumentedInConfigsReadmeWithItsDefault) {
    const std::string doc = slurp(kDir + "/../../../configs/README.md");
    const config::HttpLimits defaults;
    for (size_t i = 0; i < config::kHttpLimitKeyCount; ++i) {
        const config::HttpLimitKey& k = config::kHttpLimitKeys[i];
        std::string value = k.kind == config::HttpLimitKey::Flag ? (defaults.gzip ? "`true`" : "`false`")
                            : k.kind == config::HttpLimitKey::Duration
                                ? "`\"" + std::to_string(defaults.*k.value / 1000) + "s\"`"
                                : std::to_string(defaults.*k.value);
        const std::string row = "| `" + std::string(k.key) + "` | " + value + " |";
        EXPECT_NE(doc.find(row), std::string::npos) << "configs/README.md lacks the row start: " << row;
    }
}

// configs/README.md's [engine] and [pipeline] tables are made from the loader's key tables (the
// only lists of keys, with their defaults and meanings): the committed text must be what
// `tools/dev reference` makes of them.
TEST(ConfigKeys, ConfigsReadmeTablesAreTheLoadersKeyTables) {
    const std::string readme = slurp(kDir + "/../../../configs/README.md");
    EXPECT_EQ(config::with_key_tables(readme), readme) << "configs/README.md is stale: run tools/dev reference";
}

TEST(ConfigKeys, EveryKeyIsDeclaredOnce) {
    for (const auto& names : {config::engine_key_names(), config::pipeline_key_names()}) {
        const std::set<std::string> unique(names.begin(), names.end());
        EXPECT_EQ(unique.size(), names.size());
    }
    EXPECT_EQ(config::pipeline_key_names().front(), "sink");
}

TEST(ConfigKeys, ATableWithoutItsMarkersIsRefused) {
    EXPECT_THROW(config::with_key_tables("# no markers\n"), std::runtime_error);
}

TEST(Duration, Parses) {
    EXPECT_EQ(spillway::detail::parse_duration_ms("250ms"), 250);
    EXPECT_EQ(spillway::detail::parse_duration_ms("1.5s"), 1500);
    EXPECT_EQ(spillway::detail::parse_duration_ms("2m"), 120000);
    EXPECT_EQ(spillway::detail::parse_duration_ms("1h"), 3600000);
    EXPECT_EQ(spillway::detail::parse_duration_ms("40"), 40);
    EXPECT_EQ(spillway::detail::parse_duration_ms("500us"), 1);
    EXPECT_FALSE(spillway::detail::parse_duration_ms("1.5"));
    EXPECT_FALSE(spillway::detail::parse_duration_ms("fast"));
    EXPECT_FALSE(spillway::detail::parse_duration_ms("5 s"));
    EXPECT_FALSE(spillway::detail::parse_duration_ms("-1s"));
    EXPECT_FALSE(spillway::detail::parse_duration_ms(""));
}

}  // namespace
}  // namespace spillway
