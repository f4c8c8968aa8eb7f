// cloudevents: the binary mode's headers exactly, ce_time's formatting, the structured envelope
// read back as JSON, binary payloads, the type default and the configuration errors.
#include "transform_test_support.hpp"

#include <spillway/detail/base64.hpp>

#include <nlohmann/json.hpp>

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

namespace spillway::testkit::transforms {
namespace {

using Headers = std::vector<std::pair<std::optional<std::string>, std::optional<std::string>>>;

TransformInstance cloudevents(Config config) { return TransformInstance(plugin("cloudevents"), std::move(config)); }

// 2026-12-06T07:30:00.123456Z
constexpr int64_t kAcceptedAtUs = 1'796'542'200'123'456;

EventSpec order_created() {
    EventSpec e;
    e.event_id = "4d47e190-0402-4048-bc2c-89dd54343cdc";
    e.topic = "orders";
    e.key = "order-1";
    e.event_type = "com.acme.order.created";
    e.payload = R"({"id": 1, "total": 39.98000, "lines": [{"sku": "B-1"}]})";
    e.headers = {{"tenant", "acme"}};
    e.created_at_us = kAcceptedAtUs;
    return e;
}

std::string time_of(int64_t created_at_us) {
    auto t = cloudevents({{"source", "\"/orders\""}});
    EventSpec e = order_created();
    e.created_at_us = created_at_us;
    const Record r = transform_suite::apply_one(t, e);
    return r.header("ce_time").value_or("(none)");
}

TEST(CloudEvents, BinaryModeAddsExactlyTheAttributeHeadersAndKeepsTheRest) {
    auto t = cloudevents({{"source", "\"/services/orders\""}});
    const Record r = transform_suite::apply_one(t, order_created());
    ASSERT_TRUE(r.ok()) << r.message;
    const Headers expected = {
        {"tenant", "acme"},
        {"ce_specversion", "1.0"},
        {"ce_id", "4d47e190-0402-4048-bc2c-89dd54343cdc"},
        {"ce_source", "/services/orders"},
        {"ce_type", "com.acme.order.created"},
        {"ce_time", "2026-12-06T07:30:00.123456Z"},
        {"ce_partitionkey", "order-1"},
        {"content-type", "application/json"},
    };
    EXPECT_EQ(r.headers, expected);
    EXPECT_EQ(r.payload, order_created().payload) << "binary mode: the payload is the value as it is";
    EXPECT_EQ(r.key, "order-1") << "the key stays the Kafka key";
    EXPECT_EQ(r.topic, "orders");
    EXPECT_FALSE(r.header("ce_subject")) << "the key is the partition key, not the subject";
}

TEST(CloudEvents, BinaryModeReplacesAttributeHeadersTheEventBrought) {
    auto t = cloudevents({{"source", "\"/orders\""}});
    EventSpec e = order_created();
    e.key.reset();
    e.headers = {{"ce_id", "stale"}, {"ce_partitionkey", "stale"}, {"content-type", "text/plain"}, {"ce_id", "stale-2"}};
    const Record r = transform_suite::apply_one(t, e);
    ASSERT_TRUE(r.ok()) << r.message;
    EXPECT_EQ(r.count_headers("ce_id"), 1u);
    EXPECT_EQ(r.header("ce_id"), e.event_id);
    EXPECT_EQ(r.count_headers("ce_partitionkey"), 0u) << "no key: no partitionkey, and not a stale one";
    EXPECT_EQ(r.count_headers("content-type"), 1u);
    EXPECT_EQ(r.header("content-type"), "application/json");
}

TEST(CloudEvents, CeTimeIsRfc3339UtcWithMicroseconds) {
    EXPECT_EQ(time_of(kAcceptedAtUs), "2026-12-06T07:30:00.123456Z");
    EXPECT_EQ(time_of(1'796'542'200'000'000), "2026-12-06T07:30:00.000000Z") << "a whole second keeps its six digits";
    EXPECT_EQ(time_of(1'796'542'199'999'999), "2026-12-06T07:29:59.999999Z");
    EXPECT_EQ(time_of(951'782'400'000'001), "2000-02-29T00:00:00.000001Z");
    EXPECT_EQ(time_of(-1), "1969-12-31T23:59:59.999999Z");
    EXPECT_EQ(time_of(0), "(none)") << "created_at 0 is unknown: no time attribute";
}

TEST(CloudEvents, TheTypeOptionIsTheDefaultForEventsWithoutOne) {
    EventSpec untyped = order_created();
    untyped.event_type.reset();

    auto with_default = cloudevents({{"source", "\"/orders\""}, {"type", "\"com.acme.generic\""}});
    EXPECT_EQ(transform_suite::apply_one(with_default, untyped).header("ce_type"), "com.acme.generic");
    EXPECT_EQ(transform_suite::apply_one(with_default, order_created()).header("ce_type"), "com.acme.order.created")
        << "the event's own type wins";

    auto without = cloudevents({{"source", "\"/orders\""}});
    const Record r = transform_suite::apply_one(without, untyped);
    EXPECT_TRUE(r.rejected());
    EXPECT_EQ(r.message, "cloudevents: the event has no event_type and the option 'type' gives no default");
}

TEST(CloudEvents, BinaryPayloadsAreOctetStreamUnlessTheContentTypeIsSet) {
    EventSpec e = order_created();
    e.payload = std::string("\x00\xff\x10", 3);
    e.flags = SW_EVENT_PAYLOAD_BINARY;
    auto by_default = cloudevents({{"source", "\"/orders\""}});
    const Record r = transform_suite::apply_one(by_default, e);
    EXPECT_EQ(r.header("content-type"), "application/octet-stream");
    EXPECT_EQ(r.payload, e.payload);
    EXPECT_EQ(r.flags & SW_EVENT_PAYLOAD_BINARY, SW_EVENT_PAYLOAD_BINARY);

    auto avro = cloudevents({{"source", "\"/orders\""}, {"content_type", "\"application/avro\""}});
    EXPECT_EQ(transform_suite::apply_one(avro, e).header("content-type"), "application/avro");
}

TEST(CloudEvents, AnEventWithoutPayloadHasNoContentType) {
    auto t = cloudevents({{"source", "\"/orders\""}});
    EventSpec e = order_created();
    e.payload.reset();
    const Record r = transform_suite::apply_one(t, e);
    ASSERT_TRUE(r.ok()) << r.message;
    EXPECT_FALSE(r.header("content-type"));
    EXPECT_FALSE(r.payload) << "no data stays no value (a tombstone in binary mode)";
}

TEST(CloudEvents, StructuredModeWritesTheJsonEnvelope) {
    auto t = cloudevents({{"source", "\"/services/orders\""}, {"mode", "\"structured\""}});
    const Record r = transform_suite::apply_one(t, order_created());
    ASSERT_TRUE(r.ok()) << r.message;
    ASSERT_TRUE(r.payload);
    const auto envelope = nlohmann::json::parse(*r.payload);
    const auto expected = nlohmann::json::parse(R"({
        "specversion": "1.0",
        "id": "4d47e190-0402-4048-bc2c-89dd54343cdc",
        "source": "/services/orders",
        "type": "com.acme.order.created",
        "time": "2026-12-06T07:30:00.123456Z",
        "datacontenttype": "application/json",
        "partitionkey": "order-1",
        "data": {"id": 1, "total": 39.98, "lines": [{"sku": "B-1"}]}
    })");
    EXPECT_EQ(envelope, expected);
    EXPECT_NE(r.payload->find(R"("data":{"id": 1, "total": 39.98000,)"), std::string::npos)
        << "the payload's JSON goes in as written: " << *r.payload;
    EXPECT_TRUE(r.payload->starts_with(R"({"specversion":"1.0",)")) << *r.payload;
    EXPECT_EQ(r.header("content-type"), "application/cloudevents+json");
    EXPECT_EQ(r.header("tenant"), "acme") << "other headers are kept";
    EXPECT_FALSE(r.header("ce_id")) << "structured mode carries the attributes in the value";
    EXPECT_EQ(r.key, "order-1") << "the key is unchanged";
    EXPECT_EQ(r.flags & SW_EVENT_PAYLOAD_BINARY, 0u);
}

TEST(CloudEvents, StructuredModeCarriesBinaryPayloadsAsDataBase64) {
    auto t = cloudevents({{"source", "\"/orders\""}, {"mode", "\"structured\""}});
    EventSpec e = order_created();
    e.payload = std::string("\x00\xff\x01\n\"", 5);
    e.flags = SW_EVENT_PAYLOAD_BINARY;
    const Record r = transform_suite::apply_one(t, e);
    ASSERT_TRUE(r.ok()) << r.message;
    const auto envelope = nlohmann::json::parse(r.payload.value());
    EXPECT_EQ(envelope.at("datacontenttype"), "application/octet-stream");
    EXPECT_EQ(envelope.at("data_base64"), spillway::detail::base64_encode(*e.payload));
    EXPECT_EQ(envelope.at("data_base64"), "AP8BCiI=");
    EXPECT_FALSE(envelope.contains("data"));
    EXPECT_EQ(r.flags & SW_EVENT_PAYLOAD_BINARY, 0u) << "the envelope is JSON text";
}

TEST(CloudEvents, StructuredModeWritesTextOfOtherContentTypesAsAString) {
    auto t = cloudevents({{"source", "\"/orders\""}, {"mode", "\"structured\""}, {"content_type", "\"text/plain\""}});
    EventSpec e = order_created();
    e.payload = "hello \"world\"";
    const auto envelope = nlohmann::json::parse(transform_suite::apply_one(t, e).payload.value());
    EXPECT_EQ(envelope.at("data"), "hello \"world\"");
    EXPECT_EQ(envelope.at("datacontenttype"), "text/plain");
}

TEST(CloudEvents, StructuredModeRejectsAPayloadThatIsNotTheJsonItsTypeSays) {
    auto t = cloudevents({{"source", "\"/orders\""}, {"mode", "\"structured\""}});
    EventSpec e = order_created();
    e.payload = "{not json";
    const Record r = transform_suite::apply_one(t, e);
    EXPECT_TRUE(r.rejected());
    EXPECT_EQ(r.message, "cloudevents: the payload is not JSON, as its content type application/json says");
}

TEST(CloudEventsConfig, SourceIsRequiredAndModeIsBinaryOrStructured) {
    Verdict v = validate_config("cloudevents", {});
    EXPECT_EQ(v.status, SW_INVALID_CONFIG);
    EXPECT_EQ(v.key, "source");

    v = validate_config("cloudevents", {{"source", "\"\""}});
    EXPECT_EQ(v.status, SW_INVALID_CONFIG);
    EXPECT_EQ(v.key, "source");

    v = validate_config("cloudevents", {{"source", "\"/x\""}, {"mode", "\"batch\""}});
    EXPECT_EQ(v.status, SW_INVALID_CONFIG);
    EXPECT_EQ(v.key, "mode");
    EXPECT_NE(v.message.find("binary, structured"), std::string::npos) << v.message;

    v = validate_config("cloudevents", {{"source", "\"/x\""}, {"type", "\"\""}});
    EXPECT_EQ(v.status, SW_INVALID_CONFIG);
    EXPECT_EQ(v.key, "type");

    EXPECT_EQ(validate_config("cloudevents", {{"source", "\"/x\""}}).status, SW_OK);
}

}  // namespace
}  // namespace spillway::testkit::transforms
