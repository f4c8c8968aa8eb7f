// kafka-sink-bench: the kafka sink (through the C ABI, via the testkit host) against a raw
// librdkafka producer doing the same work, on one in-process mock cluster. Not a test.
//
//   sync latency : one event per send, wait for its delivery report (direct publish)
//   throughput   : 256-byte events in batches of 1,000, each batch waited for (relay)
//
// Both sides use the same producer settings (idempotent, acks=all, linger.ms=0) and records with
// an event_id header; rounds alternate A/B so drift on a shared machine hits both sides alike.
#include "sink_test_support.hpp"

#include <spillway/test_support/mock_kafka.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using namespace spillway;
using Clock = std::chrono::steady_clock;

constexpr size_t kPayloadBytes = 256;
constexpr const char* kTopic = "bench";

// The raw side: the usual "produce, then poll until the report" loop of a librdkafka program.
class RawProducer {
public:
    explicit RawProducer(const std::string& bootstrap) {
        std::array<char, 512> errstr{};
        rd_kafka_conf_t* conf = rd_kafka_conf_new();
        for (auto [k, v] : std::initializer_list<std::pair<const char*, const char*>>{
                 {"bootstrap.servers", bootstrap.c_str()}, {"enable.idempotence", "true"}, {"acks", "all"},
                 {"linger.ms", "0"}, {"message.timeout.ms", "10000"}, {"statistics.interval.ms", "1000"}}) {
            if (rd_kafka_conf_set(conf, k, v, errstr.data(), errstr.size()) != RD_KAFKA_CONF_OK)
                throw std::runtime_error(errstr.data());
        }
        rd_kafka_conf_set_dr_msg_cb(conf, [](rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
            auto* self = static_cast<RawProducer*>(opaque);
            self->delivered_.fetch_add(1, std::memory_order_relaxed);
            if (m->err) self->failed_.fetch_add(1, std::memory_order_relaxed);
        });
        rd_kafka_conf_set_stats_cb(conf, [](rd_kafka_t*, char*, size_t, void*) { return 0; });
        rd_kafka_conf_set_opaque(conf, this);
        rk_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr.data(), errstr.size());
        if (!rk_) throw std::runtime_error(errstr.data());
    }
    ~RawProducer() {
        rd_kafka_flush(rk_, 10000);
        rd_kafka_destroy(rk_);
    }

    // Produces the events and polls until all of their reports arrived.
    void send(const kafka_test::EventBatch& batch) {
        const uint64_t target = delivered_.load() + batch.size();
        for (size_t i = 0; i < batch.size(); ++i) {
            const sw_event& ev = batch[i];
            rd_kafka_headers_t* h = rd_kafka_headers_new(1);
            rd_kafka_header_add(h, "event_id", 8, ev.event_id.ptr, static_cast<ssize_t>(ev.event_id.len));
            rd_kafka_resp_err_t err;
            while ((err = rd_kafka_producev(rk_, RD_KAFKA_V_TOPIC(kTopic), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                            RD_KAFKA_V_KEY(const_cast<char*>(ev.key.ptr), ev.key.len),
                                            RD_KAFKA_V_VALUE(const_cast<char*>(ev.payload.ptr), ev.payload.len),
                                            RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_END)) == RD_KAFKA_RESP_ERR__QUEUE_FULL)
                rd_kafka_poll(rk_, 1);
            if (err) throw std::runtime_error(rd_kafka_err2str(err));
        }
        while (delivered_.load(std::memory_order_relaxed) < target) rd_kafka_poll(rk_, 1000);
        if (failed_.load()) throw std::runtime_error("raw producer: delivery failed");
    }

private:
    rd_kafka_t* rk_ = nullptr;
    std::atomic<uint64_t> delivered_{0}, failed_{0};
};

class SinkSide {
public:
    explicit SinkSide(const std::string& bootstrap)
        : sink_(kafka_test::kafka_plugin(), testkit::Config{{"bootstrap.servers", bootstrap}}) {}
    void send(const kafka_test::EventBatch& batch) {
        if (kafka_test::send(sink_, batch, results_, 30000) != SW_OK) throw std::runtime_error("sink send failed");
        for (const auto& r : results_)
            if (r.status != SW_OK) throw std::runtime_error(std::string("sink: ") + r.message);
    }

private:
    testkit::SinkInstance sink_;
    std::vector<sw_result> results_;
};

void make_batch(kafka_test::EventBatch& batch, size_t n, size_t& seq) {
    const std::string payload(kPayloadBytes, 'x');
    for (size_t i = 0; i < n; ++i, ++seq)
        batch.add({"evt-" + std::to_string(seq), kTopic, "key-" + std::to_string(seq % 100), payload, {}, {}, {}});
}

double percentile(std::vector<double> v, double p) {
    std::sort(v.begin(), v.end());
    return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
}

template <class Side>
void latency_round(Side& side, size_t sends, size_t& seq, std::vector<double>& out_us) {
    for (size_t i = 0; i < sends; ++i) {
        kafka_test::EventBatch batch;
        make_batch(batch, 1, seq);
        const auto t0 = Clock::now();
        side.send(batch);
        out_us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
    }
}

template <class Side>
double throughput_round(Side& side, size_t events, size_t batch_size, size_t& seq) {
    std::vector<kafka_test::EventBatch> batches(events / batch_size);
    for (auto& b : batches) make_batch(b, batch_size, seq);  // built outside the timed part
    const auto t0 = Clock::now();
    for (auto& b : batches) side.send(b);
    return std::chrono::duration<double>(Clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
    const size_t latency_sends = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 5000;
    const size_t throughput_events = argc > 2 ? std::strtoul(argv[2], nullptr, 10) : 100000;
    constexpr size_t kRounds = 5, kBatch = 1000;
    try {
        test_support::MockKafka kafka(3);
        kafka.create_topic(kTopic, 4, 3);
        SinkSide sink(kafka.bootstraps());
        RawProducer raw(kafka.bootstraps());
        size_t seq = 0;

        // Warm up both: connections, metadata, producer ids.
        std::vector<double> ignored;
        latency_round(sink, 200, seq, ignored);
        latency_round(raw, 200, seq, ignored);

        std::vector<double> sink_us, raw_us;
        for (size_t r = 0; r < kRounds; ++r) {
            latency_round(raw, latency_sends / kRounds, seq, raw_us);
            latency_round(sink, latency_sends / kRounds, seq, sink_us);
        }
        double sink_s = 0, raw_s = 0;
        const size_t per_round = throughput_events / kRounds / kBatch * kBatch;
        for (size_t r = 0; r < kRounds; ++r) {
            raw_s += throughput_round(raw, per_round, kBatch, seq);
            sink_s += throughput_round(sink, per_round, kBatch, seq);
        }
        const double total = static_cast<double>(per_round * kRounds);

        std::printf("kafka sink vs raw librdkafka producer (mock cluster, 3 brokers, acks=all, idempotent, linger.ms=0)\n");
        std::printf("%-34s %12s %12s %8s\n", "measure", "sink", "raw", "ratio");
        std::printf("%-34s %12.1f %12.1f %8.2f\n", "sync single-event p50 (us)", percentile(sink_us, 0.50),
                    percentile(raw_us, 0.50), percentile(sink_us, 0.50) / percentile(raw_us, 0.50));
        std::printf("%-34s %12.1f %12.1f %8.2f\n", "sync single-event p99 (us)", percentile(sink_us, 0.99),
                    percentile(raw_us, 0.99), percentile(sink_us, 0.99) / percentile(raw_us, 0.99));
        std::printf("%-34s %12.0f %12.0f %8.2f\n", "batched 1000 x 256 B (events/s)", total / sink_s, total / raw_s,
                    (total / sink_s) / (total / raw_s));
        std::printf("(%zu sync sends and %.0f batched events per side, %zu alternating rounds)\n", sink_us.size(), total,
                    kRounds);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "kafka-sink-bench: %s\n", e.what());
        return 1;
    }
    return 0;
}
