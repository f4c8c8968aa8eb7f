// The kafka sink when Kafka misbehaves: outages, injected broker errors, slow brokers. Every
// status comes from a delivery report or the send deadline, never from produce() returning.
#include "sink_test_support.hpp"

#include <spillway/test_support/mock_kafka.hpp>
#include <spillway/test_support/wait.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <thread>
#include <vector>

namespace spillway::kafka_test {
namespace {

using namespace std::chrono_literals;
using test_support::MockKafka;
using test_support::wait_until;
using Clock = std::chrono::steady_clock;

EventBatch& fill(EventBatch& batch, const std::string& topic, size_t n, const std::string& prefix = "evt",
                 const std::string& key = "k") {
    for (size_t i = 0; i < n; ++i)
        batch.add({prefix + "-" + std::to_string(i), topic, key, "payload-" + std::to_string(i), {}, {}, {}});
    return batch;
}

// One event; returns its result.
sw_result send_one(testkit::SinkInstance& sink, const std::string& topic, int64_t timeout_ms,
                   const std::string& payload = "p") {
    EventBatch batch;
    batch.add({"evt-one", topic, "k", payload, {}, {}, {}});
    std::vector<sw_result> results;
    send(sink, batch, results, timeout_ms);
    return results[0];
}

TEST(KafkaSinkFailure, AllBrokersDownRetriesEveryEventThenRecovers) {
    MockKafka kafka(3);
    auto config = config_for(kafka);
    config.set("message.timeout.ms", "3000");
    testkit::SinkInstance sink(kafka_plugin(), config);
    ASSERT_EQ(send_one(sink, "outage", 20000).status, SW_OK);
    EXPECT_EQ(health(sink).state, SW_HEALTH_UP);
    // librdkafka's statistics (every second) count the brokers it is connected to.
    const auto brokers_up = [&] { return sink.host().metric("kafka_brokers_up"); };
    EXPECT_TRUE(wait_until([&] { return brokers_up() >= 1; }, 10s)) << brokers_up();

    kafka.all_down();
    EventBatch batch;
    fill(batch, "outage", 25);
    std::vector<sw_result> results;
    const auto started = Clock::now();
    ASSERT_EQ(send(sink, batch, results, 15000), SW_OK);
    EXPECT_LT(Clock::now() - started, 16s) << "send overran its deadline";
    for (size_t i = 0; i < results.size(); ++i) {
        EXPECT_EQ(results[i].status, SW_RETRY) << "event " << i << " " << status_name(results[i].status) << ": "
                                               << results[i].message;
        EXPECT_NE(results[i].message[0], '\0');
    }
    EXPECT_EQ(sink.host().metric("kafka_delivery_total", "result=retry"), 25.0);
    EXPECT_TRUE(wait_until([&] { return health(sink).state == SW_HEALTH_DOWN; }, 20s))
        << "health: " << health(sink).message;
    const sw_health down = health(sink);
    EXPECT_NE(std::string(down.message).find("down"), std::string::npos) << down.message;
    EXPECT_GT(down.since_us, 0);
    EXPECT_TRUE(wait_until([&] { return brokers_up() == 0; }, 10s)) << brokers_up();
    EXPECT_TRUE(wait_until([&] { return sink.host().metric("kafka_client_errors_total", "error=_ALL_BROKERS_DOWN") >= 1; },
                           10s));

    kafka.all_up();
    const sw_result next = send_one(sink, "outage", 15000);
    EXPECT_EQ(next.status, SW_OK) << status_name(next.status) << ": " << next.message;
    EXPECT_TRUE(wait_until([&] { return health(sink).state == SW_HEALTH_UP; }, 10s));
    EXPECT_TRUE(wait_until([&] { return brokers_up() >= 1; }, 10s)) << brokers_up();
}

TEST(KafkaSinkFailure, AllBrokersDownSettlesTheSendsWaitingAtThatMomentAtOnce) {
    // Sends whose reports are pending (the brokers sit on every request) when every broker goes
    // down return as soon as librdkafka says so, not at their deadline nor at message.timeout.ms.
    MockKafka kafka(3);
    auto config = config_for(kafka);
    config.set("message.timeout.ms", "60000");
    config.set("statistics.interval.ms", "100");  // kafka_queue_messages says when all are produced
    testkit::SinkInstance sink(kafka_plugin(), config);
    ASSERT_EQ(send_one(sink, "onset", 20000).status, SW_OK);  // warm: metadata, producer id, health UP
    for (int id = 1; id <= kafka.brokers(); ++id) kafka.set_rtt(id, 60000);

    constexpr size_t kSenders = 4, kPerSend = 5;
    constexpr int64_t kSendTimeoutMs = 20000;
    struct Outcome {
        sw_status status = SW_OK;
        std::vector<sw_result> results;
        Clock::time_point returned;
    };
    std::vector<Outcome> outcomes(kSenders);
    std::vector<std::thread> senders;
    for (size_t s = 0; s < kSenders; ++s)
        senders.emplace_back([&, s] {
            EventBatch batch;
            fill(batch, "onset", kPerSend, "s" + std::to_string(s));
            outcomes[s].status = send(sink, batch, outcomes[s].results, kSendTimeoutMs);
            outcomes[s].returned = Clock::now();
        });
    // Every sender has produced (so has read the outage epoch) once librdkafka holds all events.
    const bool in_flight = wait_until(
        [&] { return sink.host().metric("kafka_queue_messages") >= static_cast<double>(kSenders * kPerSend); }, 15s);
    const auto down_at = Clock::now();
    kafka.all_down();
    for (auto& t : senders) t.join();
    ASSERT_TRUE(in_flight) << "the events never all reached librdkafka's queue";

    ASSERT_TRUE(wait_until([&] { return health(sink).state == SW_HEALTH_DOWN; }, 1s)) << health(sink).message;
    const Clock::time_point detected{std::chrono::microseconds(health(sink).since_us)};
    auto ms = [](Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); };
    double slowest_after_detection = 0, slowest_after_down = 0;
    for (size_t s = 0; s < kSenders; ++s) {
        const Outcome& o = outcomes[s];
        EXPECT_EQ(o.status, SW_OK) << "sender " << s;
        slowest_after_detection = std::max(slowest_after_detection, ms(o.returned - detected));
        slowest_after_down = std::max(slowest_after_down, ms(o.returned - down_at));
        for (size_t i = 0; i < o.results.size(); ++i) {
            const sw_result& r = o.results[i];
            EXPECT_EQ(r.status, SW_RETRY) << "sender " << s << " event " << i << " " << status_name(r.status) << ": "
                                          << r.message;
            EXPECT_TRUE(r.flags & SW_RESULT_POSSIBLY_DELIVERED) << "sender " << s << " event " << i;
            EXPECT_NE(std::string(r.message).find("all brokers went down"), std::string::npos) << r.message;
        }
    }
    std::printf("[ figures  ] all brokers down reported %.0f ms after the outage; slowest waiting send returned "
                "%.1f ms after that report (%.0f ms after the outage; send timeout %lld ms)\n",
                ms(detected - down_at), slowest_after_detection, slowest_after_down,
                static_cast<long long>(kSendTimeoutMs));
    // Tight in practice (a few ms after the report); generous here for a loaded 2-core machine.
    EXPECT_LT(slowest_after_detection, 2000.0);
    EXPECT_LT(slowest_after_down, 8000.0) << "far below the send timeout";
    EXPECT_EQ(sink.host().metric("kafka_delivery_outage_unreported_total"), static_cast<double>(kSenders * kPerSend));
    EXPECT_EQ(sink.host().metric("kafka_delivery_deadline_exceeded_total"), 0.0);

    // A send made while the brokers are down (a publisher that checked the health just before the
    // report) is not held until its deadline or message.timeout.ms: it waits half a second for a
    // real answer, then settles as RETRY, possibly delivered. A shorter deadline still applies.
    for (int id = 1; id <= kafka.brokers(); ++id) kafka.set_rtt(id, 0);
    const auto short_started = Clock::now();
    const sw_result short_send = send_one(sink, "onset", 300);
    EXPECT_GE(Clock::now() - short_started, 300ms);
    EXPECT_EQ(short_send.status, SW_RETRY) << short_send.message;
    EXPECT_NE(std::string(short_send.message).find("no delivery report within"), std::string::npos)
        << short_send.message;
    const auto late_started = Clock::now();
    const sw_result late = send_one(sink, "onset", 20000);
    const auto late_took = Clock::now() - late_started;
    EXPECT_GE(late_took, 500ms);
    EXPECT_LT(late_took, 5s) << "held towards the 20 s deadline";
    EXPECT_EQ(late.status, SW_RETRY) << late.message;
    EXPECT_TRUE(late.flags & SW_RESULT_POSSIBLY_DELIVERED);
    EXPECT_NE(std::string(late.message).find("all brokers were down when it was sent"), std::string::npos)
        << late.message;
    kafka.all_up();
}

TEST(KafkaSinkFailure, SaysUpAgainWithoutASendOnceABrokerAnswers) {
    // The pipeline sends nothing to a sink that says it is down, so the sink must notice the
    // brokers' return by itself. Statistics are turned off here: only the broker watch can tell.
    MockKafka kafka(1);
    auto config = config_for(kafka);
    config.set("statistics.interval.ms", "0");
    config.set("reconnect.backoff.ms", "10");
    config.set("reconnect.backoff.max.ms", "100");
    testkit::SinkInstance sink(kafka_plugin(), config);
    ASSERT_EQ(send_one(sink, "watched", 20000).status, SW_OK);
    kafka.all_down();
    ASSERT_TRUE(wait_until([&] { return health(sink).state == SW_HEALTH_DOWN; }, 20s)) << health(sink).message;
    kafka.all_up();
    EXPECT_TRUE(wait_until([&] { return health(sink).state == SW_HEALTH_UP; }, 10s)) << health(sink).message;
    EXPECT_NE(std::string(health(sink).message).find("metadata"), std::string::npos) << health(sink).message;
}

TEST(KafkaSinkFailure, RetriableProduceErrorsAreAbsorbedInOrder) {
    MockKafka kafka(3);
    kafka.create_topic("retried", 1, 3);
    // librdkafka 2.0.2's mock broker does not check idempotent sequence numbers, so a request that
    // succeeds while an earlier one is being retried is appended out of order (a real broker
    // refuses it with OUT_OF_ORDER_SEQUENCE). One request in flight keeps the mock honest.
    auto config = config_for(kafka);
    config.set("max.in.flight.requests.per.connection", "1");
    // Four retried requests of 200 events, one at a time, outlast the sink's 2 s message timeout on a
    // loaded 2-core machine ("Message timed out", seen in a parallel run): this test is about
    // order through retries, so the messages get the send's own 30 s.
    config.set("message.timeout.ms", "30000");
    testkit::SinkInstance sink(kafka_plugin(), config);
    ASSERT_EQ(send_one(sink, "retried", 20000).status, SW_OK);  // warm: metadata and producer id

    kafka.push_produce_errors({RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION, RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
                               RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
                               RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION});
    EventBatch batch;
    fill(batch, "retried", 200, "ord");
    std::vector<sw_result> results;
    ASSERT_EQ(send(sink, batch, results, 30000), SW_OK);
    for (size_t i = 0; i < results.size(); ++i)
        ASSERT_EQ(results[i].status, SW_OK) << "event " << i << ": " << results[i].message;

    const auto records = kafka.consume_all("retried", 201, 30s);
    std::string seen;
    for (const auto& r : records) seen += std::to_string(r.offset) + ":" + r.header("event_id").value_or("?") + " ";
    ASSERT_EQ(records.size(), 201u) << "no loss, no duplicates (idempotent producer): " << seen;
    for (size_t i = 0; i < 200; ++i)
        EXPECT_EQ(records[i + 1].header("event_id"), "ord-" + std::to_string(i)) << "at offset " << records[i + 1].offset;
}

TEST(KafkaSinkFailure, OversizedEventIsRejectedAlone) {
    MockKafka kafka(1);
    testkit::SinkInstance sink(kafka_plugin(), config_for(kafka));
    EventBatch batch;
    batch.add({"small-1", "sizes", "k", "a", {}, {}, {}});
    batch.add({"huge", "sizes", "k", std::string(2 * 1024 * 1024, 'x'), {}, {}, {}});  // > message.max.bytes
    batch.add({"small-2", "sizes", "k", "b", {}, {}, {}});
    std::vector<sw_result> results;
    ASSERT_EQ(send(sink, batch, results, 20000), SW_OK);
    EXPECT_EQ(results[0].status, SW_OK) << results[0].message;
    EXPECT_EQ(results[1].status, SW_REJECT) << status_name(results[1].status);
    EXPECT_NE(std::string(results[1].message).find("MSG_SIZE_TOO_LARGE"), std::string::npos) << results[1].message;
    EXPECT_EQ(results[2].status, SW_OK) << results[2].message;
}

TEST(KafkaSinkFailure, BrokerMessageTooLargeIsRejectedAndTheNextEventSucceeds) {
    MockKafka kafka(1);
    testkit::SinkInstance sink(kafka_plugin(), config_for(kafka));
    ASSERT_EQ(send_one(sink, "big", 20000).status, SW_OK);
    kafka.push_produce_errors({RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE});
    const sw_result rejected = send_one(sink, "big", 20000);
    EXPECT_EQ(rejected.status, SW_REJECT) << status_name(rejected.status) << ": " << rejected.message;
    EXPECT_NE(std::string(rejected.message).find("MSG_SIZE_TOO_LARGE"), std::string::npos) << rejected.message;
    EXPECT_EQ(sink.host().metric("kafka_delivery_total", "result=reject"), 1.0);
    const sw_result next = send_one(sink, "big", 20000);
    EXPECT_EQ(next.status, SW_OK) << status_name(next.status) << ": " << next.message;
}

TEST(KafkaSinkFailure, TopicAuthorizationFailureIsRejected) {
    MockKafka kafka(1);
    testkit::SinkInstance sink(kafka_plugin(), config_for(kafka));  // fresh producer: the error sticks to it
    ASSERT_EQ(send_one(sink, "secret", 20000).status, SW_OK);
    kafka.push_produce_errors({RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED});
    const sw_result r = send_one(sink, "secret", 20000);
    EXPECT_EQ(r.status, SW_REJECT) << status_name(r.status) << ": " << r.message;
    EXPECT_NE(std::string(r.message).find("TOPIC_AUTHORIZATION_FAILED"), std::string::npos) << r.message;
}

TEST(KafkaSinkFailure, DeadlineBeforeTheReportIsPossiblyDeliveredAndTheLateReportIsCounted) {
    MockKafka kafka(1);
    testkit::SinkInstance sink(kafka_plugin(), config_for(kafka));
    ASSERT_EQ(send_one(sink, "slow", 20000).status, SW_OK);
    kafka.set_rtt(1, 1500);
    const auto started = Clock::now();
    const sw_result r = send_one(sink, "slow", 200);
    EXPECT_LT(Clock::now() - started, 1s);
    EXPECT_EQ(r.status, SW_RETRY) << status_name(r.status) << ": " << r.message;
    EXPECT_TRUE(r.flags & SW_RESULT_POSSIBLY_DELIVERED);
    EXPECT_EQ(sink.host().metric("kafka_delivery_deadline_exceeded_total"), 1.0);
    kafka.set_rtt(1, 0);
    // The report still arrives after the sender left; it is counted, not written anywhere.
    EXPECT_TRUE(wait_until([&] { return sink.host().metric("kafka_late_delivery_total", "result=ok") == 1.0; }, 20s));
    EXPECT_EQ(kafka.consume_all("slow", 2, 30s).size(), 2u);
}

TEST(KafkaSinkFailure, FatalProducerErrorFailsTheSendAndSticks) {
    MockKafka kafka(1);
    // The idempotent producer cannot get a producer id: librdkafka raises a fatal error.
    constexpr int16_t kInitProducerIdApiKey = 22;
    kafka.push_request_errors(kInitProducerIdApiKey, {RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED});
    testkit::SinkInstance sink(kafka_plugin(), config_for(kafka));
    EventBatch batch;
    fill(batch, "fatal", 3);
    std::vector<sw_result> results;
    EXPECT_EQ(send(sink, batch, results, 20000), SW_FATAL);
    for (const auto& r : results) EXPECT_EQ(r.status, SW_FATAL) << status_name(r.status) << ": " << r.message;
    EXPECT_NE(sink.host().last_error().find("CLUSTER_AUTHORIZATION_FAILED"), std::string::npos)
        << sink.host().last_error();
    const sw_health h = health(sink);
    EXPECT_EQ(h.state, SW_HEALTH_DOWN);
    EXPECT_NE(std::string(h.message).find("fatal"), std::string::npos) << h.message;

    // The instance stays unusable until the host rebuilds it.
    const auto started = Clock::now();
    EXPECT_EQ(send(sink, batch, results, 20000), SW_FATAL);
    EXPECT_LT(Clock::now() - started, 1s);
    EXPECT_EQ(results[0].status, SW_FATAL);
}

}  // namespace
}  // namespace spillway::kafka_test
