#include "raw_kafka.hpp"

#include "ack_probe.hpp"
#include "context.hpp"

#include <array>
#include <stdexcept>
#include <utility>

namespace spillway::bench {

RawProducer::RawProducer(const std::string& bootstraps, std::string topic, bool ack_probe) : topic_(std::move(topic)) {
    std::array<char, 512> err{};
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    const std::pair<const char*, std::string> props[] = {
        {"bootstrap.servers", bootstraps}, {"enable.idempotence", "true"}, {"acks", "all"}, {"linger.ms", "0"},
        {"message.timeout.ms", "10000"},   {"statistics.interval.ms", "1000"}};
    std::vector<std::pair<const char*, std::string>> all(std::begin(props), std::end(props));
    if (ack_probe) all.emplace_back("plugin.library.paths", spillway_bench_probe_path());
    for (const auto& [k, v] : extra_kafka_properties()) all.emplace_back(k.c_str(), v);
    for (const auto& [k, v] : all)
        if (rd_kafka_conf_set(conf, k, v.c_str(), err.data(), err.size()) != RD_KAFKA_CONF_OK) {
            rd_kafka_conf_destroy(conf);
            throw std::runtime_error(std::string("raw producer: ") + err.data());
        }
    rd_kafka_conf_set_dr_msg_cb(conf, &RawProducer::on_delivery);
    rd_kafka_conf_set_stats_cb(conf, [](rd_kafka_t*, char*, size_t, void*) { return 0; });
    rd_kafka_conf_set_opaque(conf, this);
    rk_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err.data(), err.size());
    if (!rk_) throw std::runtime_error(std::string("raw producer: ") + err.data());
}

RawProducer::~RawProducer() {
    rd_kafka_flush(rk_, 10000);
    rd_kafka_destroy(rk_);
}

void RawProducer::on_delivery(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
    auto* self = static_cast<RawProducer*>(opaque);
    if (m->err) self->failed_.fetch_add(1);
    self->reported_.fetch_add(1);
}

void RawProducer::send(const std::vector<RawRecord>& records) {
    const uint64_t until = reported_.load() + records.size();
    for (const auto& r : records) {
        rd_kafka_headers_t* h = rd_kafka_headers_new(1);
        rd_kafka_header_add(h, "event_id", 8, r.event_id.data(), static_cast<ssize_t>(r.event_id.size()));
        for (;;) {
            const rd_kafka_resp_err_t e = rd_kafka_producev(
                rk_, RD_KAFKA_V_TOPIC(topic_.c_str()), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                RD_KAFKA_V_KEY(r.key.data(), r.key.size()), RD_KAFKA_V_VALUE(const_cast<char*>(r.payload.data()), r.payload.size()),
                RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_END);
            if (e == RD_KAFKA_RESP_ERR_NO_ERROR) break;
            if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
                rd_kafka_headers_destroy(h);
                throw std::runtime_error(std::string("raw producer: ") + rd_kafka_err2str(e));
            }
            rd_kafka_poll(rk_, 1);
        }
    }
    while (reported_.load() < until) rd_kafka_poll(rk_, 100);
    if (failed_.load()) throw std::runtime_error("raw producer: a delivery failed");
}

}  // namespace spillway::bench
