// route: every field a template can name, `$$`, the reject reasons for what an event lacks, and the
// configuration errors for malformed templates (naming the option and the column).
#include "transform_test_support.hpp"

#include <gtest/gtest.h>

#include <string>

namespace spillway::testkit::transforms {
namespace {

TransformInstance route(Config config) { return TransformInstance(plugin("route"), std::move(config)); }

// An event carrying every field a template can name.
EventSpec full_event() {
    EventSpec e;
    e.event_id = "4d47e190-0402-4048-bc2c-89dd54343cdc";
    e.topic = "orders.in";
    e.key = "order-1";
    e.event_type = "OrderCreated";
    e.correlation_id = "corr-9";
    e.pipeline = "orders";
    e.headers = {{"aggregatetype", "Order"}, {"tenant", "acme"}};
    e.payload = R"({"order":{"id":17,"paid":true,"customer":"c-5","lines":[1,2],"note":null},"ratio":0.5})";
    return e;
}

TEST(Route, EachPlainFieldIsRendered) {
    auto t = route({{"topic", R"("${event_id}|${event_type}|${correlation_id}|${topic}|${key}|${pipeline}")"}});
    const Record r = transform_suite::apply_one(t, full_event());
    ASSERT_TRUE(r.ok()) << r.message;
    EXPECT_EQ(r.topic, "4d47e190-0402-4048-bc2c-89dd54343cdc|OrderCreated|corr-9|orders.in|order-1|orders");
    EXPECT_EQ(r.key, "order-1") << "an unset key template keeps the key";
}

TEST(Route, HeaderAndPayloadFieldsAreRendered) {
    auto t = route({{"topic", R"("outbox.event.${header.aggregatetype}")"}, {"key", R"("${payload.order.id}")"}});
    const Record r = transform_suite::apply_one(t, full_event());
    ASSERT_TRUE(r.ok()) << r.message;
    EXPECT_EQ(r.topic, "outbox.event.Order");
    EXPECT_EQ(r.key, "17");
    EXPECT_EQ(r.payload, full_event().payload) << "route never touches the payload";
}

TEST(Route, PayloadStringsAreUnquotedAndOtherValuesAreJsonText) {
    auto t = route({{"topic", R"("${payload.order.customer}/${payload.order.paid}/${payload.ratio}/${payload.order.lines}")"}});
    const Record r = transform_suite::apply_one(t, full_event());
    ASSERT_TRUE(r.ok()) << r.message;
    EXPECT_EQ(r.topic, "c-5/true/0.5/[1,2]");
}

TEST(Route, DoubleDollarIsALiteralDollarAndALoneDollarIsKept) {
    auto t = route({{"topic", R"("price$$${key}$${key}$x")"}});
    const Record r = transform_suite::apply_one(t, full_event());
    ASSERT_TRUE(r.ok()) << r.message;
    EXPECT_EQ(r.topic, "price$order-1${key}$x");
}

TEST(Route, HeadersAreSetAndReplaceOnesOfTheSameName) {
    auto t = route(Config{}.set_list("headers", {"tenant=${header.tenant}-eu", "x-type=${event_type}", "empty="}));
    EventSpec e = full_event();
    e.headers.emplace_back("tenant", "second");
    const Record r = transform_suite::apply_one(t, e);
    ASSERT_TRUE(r.ok()) << r.message;
    EXPECT_EQ(r.count_headers("tenant"), 1u);
    EXPECT_EQ(r.header("tenant"), "acme-eu") << "the first header of the name is the one read";
    EXPECT_EQ(r.header("x-type"), "OrderCreated");
    EXPECT_EQ(r.header("empty"), "");
    EXPECT_EQ(r.header("aggregatetype"), "Order") << "other headers are kept";
    EXPECT_EQ(r.topic, "orders.in") << "an unset topic template keeps the topic";
}

TEST(Route, AnEmptyKeyIsAKeyButAnEmptyTopicIsRejected) {
    auto t = route({{"topic", R"("${header.blank}")"}, {"key", R"("${header.blank}")"}});
    EventSpec e = full_event();
    e.headers.emplace_back("blank", "");
    const Record r = transform_suite::apply_one(t, e);
    EXPECT_TRUE(r.rejected());
    EXPECT_EQ(r.message, R"(route: topic "${header.blank}": renders an empty topic)");

    auto key_only = route({{"key", R"("${header.blank}")"}});
    const Record k = transform_suite::apply_one(key_only, e);
    ASSERT_TRUE(k.ok()) << k.message;
    EXPECT_EQ(k.key, "");
}

TEST(Route, AMissingHeaderRejectsNamingTheOptionTemplateAndField) {
    auto t = route({{"topic", R"("outbox.event.${header.aggregatetype}")"}});
    EventSpec e = full_event();
    e.headers.clear();
    const Record r = transform_suite::apply_one(t, e);
    EXPECT_TRUE(r.rejected());
    EXPECT_EQ(r.message, R"(route: topic "outbox.event.${header.aggregatetype}": the event has no header 'aggregatetype')");
}

TEST(Route, MissingFieldsOfEveryKindRejectWithTheirReason) {
    struct Case {
        const char* option;
        std::string template_text;
        EventSpec event;
        std::string reason;
    };
    EventSpec no_key = full_event();
    no_key.key.reset();
    EventSpec no_type = full_event();
    no_type.event_type.reset();
    EventSpec not_json = full_event();
    not_json.payload = "order 17";
    EventSpec binary = full_event();
    binary.flags = SW_EVENT_PAYLOAD_BINARY;
    EventSpec no_payload = full_event();
    no_payload.payload.reset();
    const Case cases[] = {
        {"key", "${key}", no_key, "the event has no key"},
        {"topic", "t.${event_type}", no_type, "the event has no event_type"},
        {"key", "${payload.order.id}", not_json, "the event's payload is not JSON"},
        {"key", "${payload.order.id}", binary, "the event's payload is binary, not JSON"},
        {"key", "${payload.order.id}", no_payload, "the event has no payload"},
        {"key", "${payload.order.missing}", full_event(), "the payload has no 'order.missing'"},
        {"key", "${payload.order.id.deeper}", full_event(), "the payload has no 'order.id.deeper'"},
        {"key", "${payload.order.note}", full_event(), "the payload's 'order.note' is null"},
    };
    for (const Case& c : cases) {
        auto t = route({{c.option, "\"" + c.template_text + "\""}});
        const Record r = transform_suite::apply_one(t, c.event);
        EXPECT_TRUE(r.rejected()) << c.template_text;
        EXPECT_EQ(r.message, "route: " + std::string(c.option) + " \"" + c.template_text + "\": " + c.reason);
    }
}

TEST(Route, AMissingFieldInAHeaderTemplateNamesTheHeadersItem) {
    auto t = route(Config{}.set_list("headers", {"x-tenant=${header.tenant}"}));
    EventSpec e = full_event();
    e.headers.clear();
    const Record r = transform_suite::apply_one(t, e);
    EXPECT_TRUE(r.rejected());
    EXPECT_EQ(r.message, R"(route: headers "x-tenant=${header.tenant}": the event has no header 'tenant')");
}

TEST(Route, APayloadThatNoTemplateReadsNeedNotBeJson) {
    auto t = route({{"topic", R"("t.${key}")"}});
    EventSpec e = full_event();
    e.payload = "not json at all";
    const Record r = transform_suite::apply_one(t, e);
    ASSERT_TRUE(r.ok()) << r.message;
    EXPECT_EQ(r.topic, "t.order-1");
}

TEST(Route, OneBatchMixesAcceptedAndRejectedEvents) {
    auto t = route({{"topic", R"("outbox.event.${header.aggregatetype}")"}});
    EventSpec without = full_event();
    without.headers.clear();
    const Batch in{full_event(), without, full_event()};
    const auto records = transform_suite::apply(t, in);
    ASSERT_EQ(records.size(), 3u);
    EXPECT_TRUE(records[0].ok());
    EXPECT_TRUE(records[1].rejected());
    EXPECT_TRUE(records[2].ok());
    EXPECT_EQ(records[2].topic, "outbox.event.Order");
}

TEST(RouteConfig, AtLeastOneOptionIsRequired) {
    const Verdict v = validate_config("route", {});
    EXPECT_EQ(v.status, SW_INVALID_CONFIG);
    EXPECT_EQ(v.key, "topic");
    EXPECT_EQ(v.message, "route needs at least one of topic, key or headers");
}

TEST(RouteConfig, MalformedTemplatesNameTheOptionAndTheColumn) {
    struct Case {
        const char* option;
        std::string text;
        std::string message;
    };
    const Case cases[] = {
        {"topic", "outbox.${header.x", R"(topic "outbox.${header.x": unclosed "${" at column 8)"},
        {"key", "k-${nope}", "key \"k-${nope}\": unknown field 'nope' (expected event_id, event_type, correlation_id, "
                             "topic, key, pipeline, header.<name> or payload.<path>) at column 5"},
        {"topic", "a${}", "topic \"a${}\": empty field \"${}\" (expected event_id, event_type, correlation_id, topic, "
                          "key, pipeline, header.<name> or payload.<path>) at column 4"},
        {"topic", "${header.}", R"(topic "${header.}": "${header.}" names no header (write ${header.<name>}) at column 3)"},
        {"key", "${payload.a..b}", R"(key "${payload.a..b}": payload path 'a..b' has an empty member at column 13)"},
    };
    for (const Case& c : cases) {
        const Verdict v = validate_config("route", {{c.option, "\"" + c.text + "\""}});
        EXPECT_EQ(v.status, SW_INVALID_CONFIG) << c.text;
        EXPECT_EQ(v.key, c.option) << c.text;
        EXPECT_EQ(v.message, c.message);
    }
}

TEST(RouteConfig, MalformedHeaderItemsNameTheItemAndTheColumnInIt) {
    Verdict v = validate_config("route", Config{}.set_list("headers", {"ok=${key}", "x-t=${header.t"}));
    EXPECT_EQ(v.status, SW_INVALID_CONFIG);
    EXPECT_EQ(v.key, "headers");
    EXPECT_EQ(v.message, R"(headers "x-t=${header.t": unclosed "${" at column 5)");

    v = validate_config("route", Config{}.set_list("headers", {"no-equals-sign"}));
    EXPECT_EQ(v.status, SW_INVALID_CONFIG);
    EXPECT_EQ(v.key, "headers");
    EXPECT_EQ(v.message, R"(headers "no-equals-sign": expected "name=template")");

    v = validate_config("route", Config{}.set_list("headers", {"=${key}"}));
    EXPECT_EQ(v.status, SW_INVALID_CONFIG);
    EXPECT_EQ(v.key, "headers");
}

}  // namespace
}  // namespace spillway::testkit::transforms
