// debezium: the outbox event router's documented example and each supported option.
//
// The example is the one in Debezium's documentation (outbox-event-router.adoc, "Example outbox
// message"): an outbox row with id 406c07f3-…, aggregatetype "Order", aggregateid "1", type
// "OrderCreated" and an order as payload becomes, under the default configuration, a record on
// outbox.event.Order keyed "1" with the header id = the row's id and the payload as its value.
// (The page's record shows another uuid and a lower-case "order": its two snippets were not taken
// from the same row. The expected record here follows the rules the page states.)
#include "transform_test_support.hpp"

#include <nlohmann/json.hpp>

#include <gtest/gtest.h>

#include <string>

namespace spillway::testkit::transforms {
namespace {

TransformInstance debezium(Config config = {}) { return TransformInstance(plugin("debezium"), std::move(config)); }

constexpr const char* kOrderPayload =
    R"({"id": 1, "lineItems": [{"id": 1, "item": "Debezium in Action", "status": "ENTERED", "quantity": 2, )"
    R"("totalPrice": 39.98}, {"id": 2, "item": "Debezium for Dummies", "status": "ENTERED", "quantity": 1, )"
    R"("totalPrice": 29.99}], "orderDate": "2019-01-31T12:13:01", "customerId": 123})";

// The documentation's outbox row as the store hands it over: id -> event_id, aggregateid -> key,
// type -> event_type, payload -> payload, aggregatetype -> a header of its name.
EventSpec documented_row() {
    EventSpec e;
    e.event_id = "406c07f3-26f0-4eea-a50c-109940064b8f";
    e.topic = "outbox";
    e.key = "1";
    e.event_type = "OrderCreated";
    e.payload = kOrderPayload;
    e.headers = {{"aggregatetype", "Order"}};
    return e;
}

TEST(Debezium, TheDocumentedOutboxRowBecomesTheDocumentedRecord) {
    auto t = debezium();
    const Record r = transform_suite::apply_one(t, documented_row());
    ASSERT_TRUE(r.ok()) << r.message;
    EXPECT_EQ(r.topic, "outbox.event.Order");
    EXPECT_EQ(r.key, "1");
    EXPECT_EQ(r.header("id"), "406c07f3-26f0-4eea-a50c-109940064b8f");
    EXPECT_EQ(r.payload, kOrderPayload);
    EXPECT_FALSE(r.header("aggregatetype")) << "Debezium emits the routing column as the topic, not as a header";
}

TEST(Debezium, ColumnsCarriedAsHeadersWinOverTheEventFields) {
    auto t = debezium();
    EventSpec e = documented_row();
    e.headers = {{"aggregatetype", "Customer"}, {"id", "row-7"}, {"aggregateid", "c-5"}, {"tenant", "acme"}};
    const Record r = transform_suite::apply_one(t, e);
    ASSERT_TRUE(r.ok()) << r.message;
    EXPECT_EQ(r.topic, "outbox.event.Customer");
    EXPECT_EQ(r.key, "c-5");
    EXPECT_EQ(r.count_headers("id"), 1u);
    EXPECT_EQ(r.header("id"), "row-7");
    EXPECT_FALSE(r.header("aggregateid"));
    EXPECT_EQ(r.header("tenant"), "acme") << "headers that are no column the router reads are kept";
}

TEST(Debezium, AnEventWithoutTheRoutingColumnIsRejectedNamingIt) {
    auto t = debezium();
    EventSpec e = documented_row();
    e.headers.clear();
    const Record r = transform_suite::apply_one(t, e);
    EXPECT_TRUE(r.rejected());
    EXPECT_EQ(r.message, "debezium: route.by.field 'aggregatetype': the event has no header 'aggregatetype'");
}

TEST(Debezium, RouteByTypeReadsTheEventType) {
    auto t = debezium({{"route.by.field", "\"type\""}});
    const Record r = transform_suite::apply_one(t, documented_row());
    ASSERT_TRUE(r.ok()) << r.message;
    EXPECT_EQ(r.topic, "outbox.event.OrderCreated");
}

TEST(Debezium, RegexGroupsNamedAndNumberedFillTheReplacement) {
    auto t = debezium({{"route.topic.regex", R"x("(?<kind>[a-z]+)\\.(?<region>[a-z]+)")x"},
                       {"route.topic.replacement", R"("${region}.outbox.$1.\\$")"}});
    EventSpec e = documented_row();
    e.headers = {{"aggregatetype", "orders.eu"}};
    EXPECT_EQ(transform_suite::apply_one(t, e).topic, "eu.outbox.orders.$");
    e.headers = {{"aggregatetype", "Orders-EU"}};
    EXPECT_EQ(transform_suite::apply_one(t, e).topic, "Orders-EU")
        << "RegexRouter leaves a value the regex does not match as it is";
}

TEST(Debezium, TheKeyColumnIsConfigurableAndAnAbsentKeyStaysAbsent) {
    auto t = debezium({{"table.field.event.key", "\"customer\""}});
    EventSpec e = documented_row();
    e.headers.emplace_back("customer", "c-5");
    EXPECT_EQ(transform_suite::apply_one(t, e).key, "c-5");

    EventSpec keyless = documented_row();
    keyless.key.reset();
    auto defaults = debezium();
    const Record r = transform_suite::apply_one(defaults, keyless);
    ASSERT_TRUE(r.ok()) << r.message;
    EXPECT_FALSE(r.key);
}

TEST(Debezium, AdditionalFieldsGoToHeadersUnderTheirAlias) {
    auto t = debezium({{"table.fields.additional.placement", "\"type:header:eventType, tenant:header\""}});
    EventSpec e = documented_row();
    e.headers.emplace_back("tenant", "acme");
    const Record r = transform_suite::apply_one(t, e);
    ASSERT_TRUE(r.ok()) << r.message;
    EXPECT_EQ(r.header("eventType"), "OrderCreated");
    EXPECT_EQ(r.header("tenant"), "acme");
    EXPECT_EQ(r.payload, kOrderPayload) << "header placements leave the value alone";
}

TEST(Debezium, AnEnvelopePlacementWrapsThePayload) {
    auto t = debezium({{"table.fields.additional.placement", "\"type:envelope:eventType\""}});
    const Record r = transform_suite::apply_one(t, documented_row());
    ASSERT_TRUE(r.ok()) << r.message;
    ASSERT_TRUE(r.payload);
    const auto value = nlohmann::json::parse(*r.payload);
    EXPECT_EQ(value.at("payload"), nlohmann::json::parse(kOrderPayload));
    EXPECT_EQ(value.at("eventType"), "OrderCreated");
    EXPECT_TRUE(r.payload->starts_with(std::string("{\"payload\":") + kOrderPayload)) << *r.payload;
}

TEST(Debezium, AMissingAdditionalColumnIsRejectedNamingIt) {
    auto t = debezium({{"table.fields.additional.placement", "\"eventVersion:header\""}});
    const Record r = transform_suite::apply_one(t, documented_row());
    EXPECT_TRUE(r.rejected());
    EXPECT_EQ(r.message,
              "debezium: table.fields.additional.placement 'eventVersion:header': the event has no header 'eventVersion'");
}

TEST(Debezium, ExpandJsonPayloadTurnsAJsonStringHoldingJsonIntoThatJson) {
    const std::string escaped = nlohmann::json(std::string(kOrderPayload)).dump();  // "{\"id\": 1, ...}"
    EventSpec e = documented_row();
    e.payload = escaped;

    auto plain = debezium();
    EXPECT_EQ(transform_suite::apply_one(plain, e).payload, escaped) << "off by default: the string is kept";

    auto expand = debezium({{"table.expand.json.payload", "true"}});
    EXPECT_EQ(transform_suite::apply_one(expand, e).payload, kOrderPayload);
    e.payload = R"("just text")";
    EXPECT_EQ(transform_suite::apply_one(expand, e).payload, R"("just text")") << "not JSON inside: kept as it is";
    e.payload = kOrderPayload;
    EXPECT_EQ(transform_suite::apply_one(expand, e).payload, kOrderPayload) << "not a string: kept as it is";
}

TEST(Debezium, AnAbsentPayloadIsATombstoneAndInTheEnvelopeOnlyWhenAsked) {
    EventSpec e = documented_row();
    e.payload.reset();

    auto plain = debezium();
    EXPECT_FALSE(transform_suite::apply_one(plain, e).payload);

    auto envelope = debezium({{"table.fields.additional.placement", "\"type:envelope\""}});
    const Record wrapped = transform_suite::apply_one(envelope, e);
    ASSERT_TRUE(wrapped.payload);
    EXPECT_EQ(nlohmann::json::parse(*wrapped.payload), nlohmann::json::parse(R"({"payload":null,"type":"OrderCreated"})"));

    auto tombstone = debezium({{"table.fields.additional.placement", "\"type:envelope\""},
                               {"route.tombstone.on.empty.payload", "true"}});
    const Record r = transform_suite::apply_one(tombstone, e);
    ASSERT_TRUE(r.ok()) << r.message;
    EXPECT_FALSE(r.payload);
}

TEST(DebeziumConfig, MalformedOptionsAreRefusedNamingTheKey) {
    Verdict v = validate_config("debezium", {{"table.fields.additional.placement", "\"part:partition\""}});
    EXPECT_EQ(v.status, SW_INVALID_CONFIG);
    EXPECT_EQ(v.key, "table.fields.additional.placement");
    EXPECT_NE(v.message.find("partition placement is not supported"), std::string::npos) << v.message;

    v = validate_config("debezium", {{"table.fields.additional.placement", "\"type\""}});
    EXPECT_EQ(v.status, SW_INVALID_CONFIG);
    EXPECT_EQ(v.key, "table.fields.additional.placement");

    v = validate_config("debezium", {{"table.fields.additional.placement", "\"type:body\""}});
    EXPECT_EQ(v.status, SW_INVALID_CONFIG);
    EXPECT_EQ(v.key, "table.fields.additional.placement");

    v = validate_config("debezium", {{"route.topic.regex", "\"(unclosed\""}});
    EXPECT_EQ(v.status, SW_INVALID_CONFIG);
    EXPECT_EQ(v.key, "route.topic.regex");

    v = validate_config("debezium", {{"route.topic.replacement", "\"outbox.${nope}\""}});
    EXPECT_EQ(v.status, SW_INVALID_CONFIG);
    EXPECT_EQ(v.key, "route.topic.replacement");
    EXPECT_NE(v.message.find("no group named 'nope'"), std::string::npos) << v.message;

    v = validate_config("debezium", {{"route.topic.replacement", "\"outbox.$2\""}});
    EXPECT_EQ(v.status, SW_INVALID_CONFIG);
    EXPECT_EQ(v.key, "route.topic.replacement");

    v = validate_config("debezium", {{"table.field.event.timestamp", "\"ts\""}});
    EXPECT_EQ(v.status, SW_INVALID_CONFIG) << "an option Debezium has but this router does not is refused, not ignored";
    EXPECT_EQ(v.key, "table.field.event.timestamp");

    EXPECT_EQ(validate_config("debezium", {}).status, SW_OK);
}

}  // namespace
}  // namespace spillway::testkit::transforms
