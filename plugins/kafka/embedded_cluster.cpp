#include "embedded_cluster.hpp"

#include <array>
#include <stdexcept>

namespace spillway::plugins::kafka {

EmbeddedCluster::EmbeddedCluster(int brokers) {
    std::array<char, 512> errstr{};
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    // The hosting handle never talks to anything; keep it quiet.
    rd_kafka_conf_set(conf, "log_level", "3", errstr.data(), errstr.size());
    // The brokers' accepted sockets take their options from this handle (TCP_NODELAY: no 40 ms
    // delayed-ACK stall on loopback responses).
    rd_kafka_conf_set(conf, "socket.nagle.disable", "true", errstr.data(), errstr.size());
    host_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr.data(), errstr.size());
    if (!host_) {
        rd_kafka_conf_destroy(conf);
        throw std::runtime_error(std::string("embedded Kafka: cannot create the hosting handle: ") + errstr.data());
    }
    cluster_ = rd_kafka_mock_cluster_new(host_, brokers);
    if (!cluster_) {
        rd_kafka_destroy(host_);
        throw std::runtime_error("embedded Kafka: rd_kafka_mock_cluster_new failed");
    }
    bootstraps_ = rd_kafka_mock_cluster_bootstraps(cluster_);
}

EmbeddedCluster::~EmbeddedCluster() {
    rd_kafka_mock_cluster_destroy(cluster_);
    rd_kafka_destroy(host_);
}

}  // namespace spillway::plugins::kafka
