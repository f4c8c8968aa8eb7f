// The Kafka sink: one idempotent librdkafka producer per instance, shared by every caller thread.
//
// send() produces the batch, then waits — at most its deadline — for each message's delivery
// report (served by the ReportPump: the waiting sender itself when it can). The status of an event always comes from its
// delivery report, never from produce() returning. All brokers down or a fatal error, reported
// while it waits, ends the wait at once: what is unreported then is RETRY (FATAL), possibly delivered.
#ifndef SPILLWAY_PLUGINS_KAFKA_KAFKA_SINK_HPP
#define SPILLWAY_PLUGINS_KAFKA_KAFKA_SINK_HPP

#include "broker_watch.hpp"
#include "delivery.hpp"
#include "embedded_cluster.hpp"
#include "health.hpp"
#include "producer_config.hpp"
#include "report_pump.hpp"
#include "topic_handles.hpp"

#include <spillway/sdk.hpp>

#include <librdkafka/rdkafka.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <span>
#include <string>

namespace spillway::plugins::kafka {

class KafkaSink final : public sdk::Sink {
public:
    explicit KafkaSink(sdk::Host host);
    ~KafkaSink() override;

    // `spillway validate`: the plugin's keys, then every other key through librdkafka.
    static void validate(sdk::Host host);

    void start() override;
    void stop(int64_t timeout_ms) override;
    void health(sw_health& out) override;
    void send(std::span<const sw_event> events, std::span<sw_result> out, int64_t timeout_ms) override;
    void flush(int64_t timeout_ms) override;

private:
    static void on_delivery(rd_kafka_t* rk, const rd_kafka_message_t* msg, void* opaque);
    static void on_error(rd_kafka_t* rk, int err, const char* reason, void* opaque);
    static int on_stats(rd_kafka_t* rk, char* json, size_t len, void* opaque);
    static void on_log(const rd_kafka_t* rk, int level, const char* facility, const char* message);

    rd_kafka_resp_err_t produce(const sw_event& event, Slot& slot, rd_kafka_topic_t* topic);
    // Flushes within timeout_ms, purges what is left (reported RETRY), destroys the producer.
    // Returns the number of messages that were still unacknowledged at the deadline.
    int shutdown(int64_t timeout_ms);
    void warm_up(const std::string& bootstrap);
    rd_kafka_t* make_checking_client(const std::string& bootstrap);
    static constexpr int kWarmUpTimeoutMs = 3000;

    ProducerSettings settings_;
    std::string client_id_;
    std::unique_ptr<EmbeddedCluster> embedded_;  // outlives producer_ (declared first, destroyed last)
    rd_kafka_t* producer_ = nullptr;
    ReportPump pump_;
    TopicHandles topics_;  // released before producer_ is destroyed
    Health health_;
    BrokerWatch watch_;  // asks for metadata while health_ is down
};

}  // namespace spillway::plugins::kafka

#endif
