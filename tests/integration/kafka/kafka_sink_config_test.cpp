// The kafka sink's configuration: librdkafka validates every pass-through property, and its own
// words reach the user, blamed on the key.
#include "sink_test_support.hpp"

#include "engine/config/config.hpp"
#include "producer_config.hpp"

#include <spillway/test_support/pipeline_toml.hpp>
#include <spillway/test_support/run_command.hpp>
#include <spillway/test_support/temp_dir.hpp>

#include <gtest/gtest.h>

namespace spillway::kafka_test {
namespace {

struct Validation {
    sw_status status;
    std::vector<std::pair<std::string, std::string>> errors;
};

Validation validate(testkit::Config config, const std::string& environment = "testing") {
    testkit::HostContext host(kafka_plugin(), std::move(config), "sink.kafka", environment);
    const sw_status st = testkit::validate(kafka_plugin(), host);
    return {st, host.config_errors()};
}

// Refused for `key` alone, with a message containing `says`.
::testing::AssertionResult refused_for(const Validation& v, const std::string& key, const std::string& says = "") {
    auto failure = [&] {
        auto f = ::testing::AssertionFailure() << "status " << v.status << ", errors:";
        for (const auto& [k, message] : v.errors) f << " [" << k << ": " << message << "]";
        return f;
    };
    if (v.status != SW_INVALID_CONFIG) return failure() << "; SW_INVALID_CONFIG expected";
    if (v.errors.size() != 1 || v.errors[0].first != key) return failure() << "; one error, for " << key << ", expected";
    if (v.errors[0].second.find(says) == std::string::npos) return failure() << "; the message should say: " << says;
    return ::testing::AssertionSuccess();
}

TEST(KafkaSinkConfig, DescriptorDeclaresItsOwnOptionsAndPassesTheRestThrough) {
    const auto& d = kafka_plugin().descriptor();
    EXPECT_EQ(d.kind, static_cast<uint32_t>(SW_KIND_SINK));
    EXPECT_STREQ(d.name, "kafka");
    EXPECT_TRUE(d.flags & SW_PLUGIN_OPEN_OPTIONS);
    EXPECT_TRUE(d.flags & SW_PLUGIN_THREAD_SAFE);
    ASSERT_NE(kafka_plugin().option("bootstrap.servers"), nullptr);
    EXPECT_STREQ(kafka_plugin().option("bootstrap.servers")->default_value, "embedded");
    EXPECT_NE(kafka_plugin().option("embedded.brokers"), nullptr);
}

TEST(KafkaSinkConfig, ValidPassThroughPropertiesAreAccepted) {
    const auto v = validate({{"bootstrap.servers", "127.0.0.1:9092"},
                             {"linger.ms", "5"},
                             {"compression.type", "lz4"},
                             {"message.timeout.ms", "5000"},
                             {"acks", "all"}});
    EXPECT_EQ(v.status, SW_OK);
    EXPECT_TRUE(v.errors.empty());
}

TEST(KafkaSinkConfig, UnknownPropertyFailsWithLibrdkafkasMessage) {
    EXPECT_TRUE(refused_for(validate({{"bootstrap.servers", "127.0.0.1:9092"}, {"linger.msec", "5"}}), "linger.msec",
                            "No such configuration property"));
}

TEST(KafkaSinkConfig, BadValueFailsWithLibrdkafkasMessage) {
    EXPECT_TRUE(refused_for(validate({{"bootstrap.servers", "127.0.0.1:9092"}, {"compression.type", "zipzap"}}),
                            "compression.type", "Invalid value"));
}

TEST(KafkaSinkConfig, CreateRefusesWhatValidateRefuses) {
    testkit::HostContext host(kafka_plugin(), {{"bootstrap.servers", "127.0.0.1:9092"}, {"linger.ms", "soon"}});
    const auto* vt = static_cast<const sw_sink_vtable*>(kafka_plugin().descriptor().vtable);
    sw_instance* self = nullptr;
    EXPECT_EQ(vt->create(testkit::HostContext::api(), host.ctx(), &self), SW_INVALID_CONFIG);
    EXPECT_EQ(self, nullptr);
    ASSERT_FALSE(host.config_errors().empty());
    EXPECT_EQ(host.config_errors()[0].first, "linger.ms");
}

TEST(KafkaSinkConfig, DeliveryGuaranteesCannotBeWeakened) {
    EXPECT_TRUE(refused_for(validate({{"bootstrap.servers", "127.0.0.1:9092"}, {"enable.idempotence", "false"}}),
                            "enable.idempotence"));
    EXPECT_TRUE(refused_for(validate({{"bootstrap.servers", "127.0.0.1:9092"}, {"acks", "1"}}), "acks"));
    EXPECT_TRUE(refused_for(validate({{"bootstrap.servers", "127.0.0.1:9092"}, {"transactional.id", "tx-1"}}),
                            "transactional.id"));
}

TEST(KafkaSinkConfig, EmbeddedIsRefusedInProduction) {
    EXPECT_TRUE(refused_for(validate({}, "production"), "bootstrap.servers"));
    EXPECT_EQ(validate({}, "development").status, SW_OK);
    EXPECT_TRUE(refused_for(validate({{"embedded.brokers", "0"}}), "embedded.brokers"));
}

TEST(KafkaSinkConfig, TimestampIsAnOwnOptionAcceptedOrSent) {
    const sw_option* o = kafka_plugin().option("timestamp");
    ASSERT_NE(o, nullptr) << "declared in the option table, not passed through to librdkafka";
    EXPECT_EQ(o->type, static_cast<uint32_t>(SW_OPT_STRING));
    EXPECT_STREQ(o->default_value, "accepted");
    const std::string description = o->description;
    for (const char* says : {"accepted", "sent", "LogAppendTime", "message.timestamp.before.max.ms",
                             "message.timestamp.difference.max.ms", "retention.ms", "one of: accepted, sent"})
        EXPECT_NE(description.find(says), std::string::npos) << "the description should mention " << says;
    EXPECT_EQ(validate({{"bootstrap.servers", "127.0.0.1:9092"}, {"timestamp", "accepted"}}).status, SW_OK);
    EXPECT_EQ(validate({{"bootstrap.servers", "127.0.0.1:9092"}, {"timestamp", "sent"}}).status, SW_OK);
}

TEST(KafkaSinkConfig, BadTimestampValueIsRefusedNamingTheKey) {
    EXPECT_TRUE(refused_for(validate({{"bootstrap.servers", "127.0.0.1:9092"}, {"timestamp", "LogAppendTime"}}),
                            "timestamp", "timestamp must be one of: accepted, sent (not 'LogAppendTime')"));
    EXPECT_TRUE(refused_for(validate({{"bootstrap.servers", "127.0.0.1:9092"}, {"timestamp", "Accepted"}}),
                            "timestamp", "must be one of: accepted, sent"));
    // create refuses it as validate does.
    testkit::HostContext host(kafka_plugin(), {{"bootstrap.servers", "127.0.0.1:9092"}, {"timestamp", "now"}});
    const auto* vt = static_cast<const sw_sink_vtable*>(kafka_plugin().descriptor().vtable);
    sw_instance* self = nullptr;
    EXPECT_EQ(vt->create(testkit::HostContext::api(), host.ctx(), &self), SW_INVALID_CONFIG);
    EXPECT_EQ(self, nullptr);
    ASSERT_EQ(host.config_errors().size(), 1u);
    EXPECT_EQ(host.config_errors()[0].first, "timestamp");
}

TEST(KafkaSinkConfig, DefaultMessageTimeoutIsThePipelinesDefaultDirectTimeout) {
    // A direct publish gets a definite answer within direct_timeout, and validate's cross-check
    // assumes the plugin's real default.
    const int64_t plugin_default = std::stoll(plugins::kafka::kDefaultMessageTimeoutMs);
    EXPECT_EQ(plugin_default, config::Pipeline{}.direct_timeout_ms);
    EXPECT_EQ(plugin_default, config::kKafkaDefaultMessageTimeoutMs);
    EXPECT_NE(std::string(kafka_plugin().descriptor().description).find("message.timeout.ms=" + std::to_string(plugin_default)),
              std::string::npos);
}

TEST(KafkaSinkConfig, ValidateWarnsWhenMessageTimeoutIsAboveDirectTimeout) {
    test_support::TempDir dir("kafka-validate");
    const std::string file = dir.path() + "/pipes.toml";
    test_support::PipelineToml toml(SPILLWAY_PLUGIN_DIR);
    toml.kafka_sink("127.0.0.1:9092").set_integer("message.timeout.ms", 5000);  // the file's 7:24, named below
    toml.sqlite_store(dir.path() + "/outbox.db");
    toml.notifier("inproc");
    toml.adaptive_scheduler();
    toml.pipeline("essays").set("direct_timeout", "1s");
    toml.write(file);
    const auto r = test_support::run_command({SPILLWAY_BIN, "validate", file}, "", {},
                                             {"SPILLWAY_ENV", "ENVIRONMENT", "SPILLWAY_PLUGIN_PATH"});
    EXPECT_EQ(r.code, 0) << r.err;  // a warning, not an error
    EXPECT_NE(r.err.find("warning: " + file + ":7:24: sink.kafka.message.timeout.ms: 5000 ms is above the "
                         "direct_timeout of pipeline 'essays' (1000 ms)"),
              std::string::npos)
        << r.err;
    EXPECT_NE(r.err.find(": OK ("), std::string::npos) << r.err;
}

}  // namespace
}  // namespace spillway::kafka_test
