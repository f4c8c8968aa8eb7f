// The topic-name rule every published event meets (engine/pipeline/topic_name.hpp).
#include "engine/pipeline/topic_name.hpp"

#include <gtest/gtest.h>

namespace spillway::pipeline {
namespace {

TEST(TopicName, LegalKafkaNamesPass) {
    for (const char* ok : {"orders", "orders.events", "a", "A-b_c.9", ".x", "_single"})
        EXPECT_EQ(topic_name_problem(ok), "") << ok;
    EXPECT_EQ(topic_name_problem(std::string(249, 'x')), "");
}

TEST(TopicName, IllegalNamesSayWhyAndShowTheNameEscaped) {
    EXPECT_NE(topic_name_problem(std::string("orders\0x", 8)).find("\"orders\\x00x\" is not a legal"), std::string::npos);
    EXPECT_NE(topic_name_problem("a b").find("not a legal Kafka topic name"), std::string::npos);
    EXPECT_NE(topic_name_problem("caf\xc3\xa9").find("\"caf\\xc3\\xa9\""), std::string::npos);
    EXPECT_NE(topic_name_problem(".").find("not a legal"), std::string::npos);
    EXPECT_NE(topic_name_problem("..").find("not a legal"), std::string::npos);
    EXPECT_NE(topic_name_problem("").find("empty"), std::string::npos);
    const std::string too_long = topic_name_problem(std::string(250, 'x'));
    EXPECT_NE(too_long.find("longer than 249"), std::string::npos);
    EXPECT_LT(topic_name_problem(std::string(1 << 20, 'x')).size(), 200u) << "the message shows a bounded prefix";
}

TEST(TopicName, InternalTopicsAreRefused) {
    for (const char* internal : {"__consumer_offsets", "__transaction_state", "__x"})
        EXPECT_NE(topic_name_problem(internal).find("internal to Kafka"), std::string::npos) << internal;
}

TEST(TopicName, PatternsMatchWithStarAsAnyRun) {
    EXPECT_TRUE(topic_matches("orders.events", "orders.events"));
    EXPECT_FALSE(topic_matches("orders.events", "orders.events2"));
    EXPECT_TRUE(topic_matches("orders.*", "orders.created"));
    EXPECT_TRUE(topic_matches("orders.*", "orders."));
    EXPECT_FALSE(topic_matches("orders.*", "orders"));
    EXPECT_TRUE(topic_matches("*.events", "billing.events"));
    EXPECT_TRUE(topic_matches("a*b*c", "axxbyyc"));
    EXPECT_FALSE(topic_matches("a*b*c", "axxbyy"));
    EXPECT_TRUE(topic_matches("*", "anything"));
    // Linear on a pathological pattern, not exponential.
    EXPECT_FALSE(topic_matches("*a*a*a*a*a*a*a*b", std::string(249, 'a')));
}

TEST(TopicName, AnEmptyListAllowsAnyAndAListOnlyWhatItMatches) {
    EXPECT_TRUE(topic_allowed({}, "whatever"));
    const std::vector<std::string> list{"orders.events", "audit.*"};
    EXPECT_TRUE(topic_allowed(list, "orders.events"));
    EXPECT_TRUE(topic_allowed(list, "audit.2024"));
    EXPECT_FALSE(topic_allowed(list, "payments"));
}

TEST(TopicName, PatternEntriesAreChecked) {
    EXPECT_EQ(topic_pattern_problem("orders.*"), "");
    EXPECT_NE(topic_pattern_problem("orders events"), "");
    EXPECT_NE(topic_pattern_problem("__*"), "");
    EXPECT_NE(topic_pattern_problem(""), "");
}

}  // namespace
}  // namespace spillway::pipeline
