// bootstrap.servers = "embedded": librdkafka's in-process mock cluster, for the quickstart and
// demos. It lives on a handle of its own and must outlive every client that talks to it.
#ifndef SPILLWAY_PLUGINS_KAFKA_EMBEDDED_CLUSTER_HPP
#define SPILLWAY_PLUGINS_KAFKA_EMBEDDED_CLUSTER_HPP

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <string>

namespace spillway::plugins::kafka {

class EmbeddedCluster {
public:
    // Throws std::runtime_error when librdkafka cannot create it.
    explicit EmbeddedCluster(int brokers);
    ~EmbeddedCluster();
    EmbeddedCluster(const EmbeddedCluster&) = delete;
    EmbeddedCluster& operator=(const EmbeddedCluster&) = delete;

    const std::string& bootstraps() const { return bootstraps_; }

private:
    rd_kafka_t* host_ = nullptr;  // the handle whose threads run the cluster
    rd_kafka_mock_cluster_t* cluster_ = nullptr;
    std::string bootstraps_;
};

}  // namespace spillway::plugins::kafka

#endif
