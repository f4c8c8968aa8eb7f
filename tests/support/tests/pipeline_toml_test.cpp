#include <gtest/gtest.h>

#include <toml++/toml.h>

#include <string>

#include "spillway/test_support/pipeline_toml.hpp"

namespace spillway::test_support {
namespace {

// The layout the e2e harness wrote by hand before the builder: the same text, byte for byte.
TEST(PipelineToml, WritesTheTablesInOrderWithABlankLineBetween) {
  PipelineToml toml("/plugins");
  toml.engine().set("log_level", "warn").add_lines("http_listen = \"127.0.0.1:8080\"\n");
  toml.kafka_sink("127.0.0.1:9092").set_integer("message.timeout.ms", 1000).add_lines("\"acks\" = \"all\"");
  toml.sqlite_store("/tmp/outbox.db");
  toml.notifier("inproc");
  toml.adaptive_scheduler();
  toml.pipeline("orders").set("topic", "orders.events").set_bool("claim_ahead", true);
  EXPECT_EQ(toml.text(),
            "[engine]\nplugin_path = [\"/plugins\"]\nlog_level = \"warn\"\nhttp_listen = \"127.0.0.1:8080\"\n\n"
            "[sink.kafka]\nplugin = \"kafka\"\n\"bootstrap.servers\" = \"127.0.0.1:9092\"\n\"message.timeout.ms\" = 1000\n"
            "\"acks\" = \"all\"\n\n"
            "[store.outbox]\nplugin = \"sqlite\"\npath = \"/tmp/outbox.db\"\n\n"
            "[notifier.bell]\nplugin = \"inproc\"\n\n"
            "[scheduler.poll]\nplugin = \"adaptive\"\n\n"
            "[pipeline.orders]\nsink = \"kafka\"\nstore = \"outbox\"\nnotifier = \"bell\"\nscheduler = \"poll\"\n"
            "topic = \"orders.events\"\nclaim_ahead = true\n");
}

TEST(PipelineToml, QuotesAndEscapesWhatTomlRequires) {
  PipelineToml toml("/plugins");
  const std::string conninfo = "host=127.0.0.1 password='a\"b\\c' options=\x01";
  toml.postgres_store(conninfo);
  toml.pipeline("p0").set("topic", "t").set_strings("topics", {"t", "u.*"});
  const auto parsed = toml::parse(toml.text());
  EXPECT_EQ(parsed["store"]["outbox"]["url"].value_or(std::string()), conninfo);
  EXPECT_EQ(parsed["store"]["outbox"]["plugin"].value_or(std::string()), "postgres");
  EXPECT_EQ(parsed["engine"]["plugin_path"][0].value_or(std::string()), "/plugins");
  EXPECT_EQ(parsed["pipeline"]["p0"]["topics"][1].value_or(std::string()), "u.*");
  EXPECT_EQ(toml_string("a\"b\\c\n"), "\"a\\\"b\\\\c\\n\"");
}

TEST(PipelineToml, WriteThrowsWhenTheFileCannotBeWritten) {
  EXPECT_THROW(PipelineToml("/plugins").write("/nonexistent-dir/pipeline.toml"), std::runtime_error);
}

}  // namespace
}  // namespace spillway::test_support
