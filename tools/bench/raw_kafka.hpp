// The raw baseline for Kafka: a plain librdkafka C producer with the settings the kafka sink uses
// (idempotent, acks=all, linger.ms=0, statistics every second), producing the same records
// (key, payload, event_id header), then polling until their delivery reports arrived.
#pragma once

#include <librdkafka/rdkafka.h>

#include <atomic>
#include <string>
#include <vector>

namespace spillway::bench {

struct RawRecord {
    std::string event_id;
    std::string key;
    std::string payload;
};

class RawProducer {
public:
    // `ack_probe`: load the bench's ack probe, so its acks are timed where the engine's are.
    RawProducer(const std::string& bootstraps, std::string topic, bool ack_probe = false);
    ~RawProducer();
    RawProducer(const RawProducer&) = delete;
    RawProducer& operator=(const RawProducer&) = delete;

    // Produces every record and returns once all were acknowledged; throws on a failed delivery.
    void send(const std::vector<RawRecord>& records);

private:
    static void on_delivery(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque);
    rd_kafka_t* rk_ = nullptr;
    std::string topic_;
    std::atomic<uint64_t> reported_{0}, failed_{0};
};

}  // namespace spillway::bench
