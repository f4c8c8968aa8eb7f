// MockKafka: librdkafka's in-process mock cluster (rdkafka_mock.h) for tests, plus an independent
// consumer that reads a topic back. Brokers listen on ephemeral 127.0.0.1 ports; ids are 1..N.
//
//   test_support::MockKafka kafka(3);
//   config.set("bootstrap.servers", kafka.bootstraps());
//   kafka.all_down(); ... kafka.all_up();
//   auto records = kafka.consume_all("orders", 10000, 30s);
#pragma once

#include <librdkafka/rdkafka.h>  // must precede rdkafka_mock.h
#include <librdkafka/rdkafka_mock.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace spillway::test_support {

// One record read back from the cluster.
struct KafkaRecord {
  int32_t partition = -1;
  int64_t offset = -1;
  std::optional<std::string> key;      // nullopt: the record has no key
  std::optional<std::string> payload;  // nullopt: a null value (tombstone)
  std::vector<std::pair<std::string, std::string>> headers;  // in record order
  int64_t timestamp_ms = -1;  // unix milliseconds; -1 when the broker reports none
  rd_kafka_timestamp_type_t timestamp_type = RD_KAFKA_TIMESTAMP_NOT_AVAILABLE;  // CreateTime or LogAppendTime

  // The first header called `name`, nullopt if there is none.
  std::optional<std::string> header(const std::string& name) const;
};

class MockKafka {
 public:
  using Record = KafkaRecord;

  explicit MockKafka(int brokers = 3);  // throws std::runtime_error if librdkafka refuses
  ~MockKafka();
  MockKafka(const MockKafka&) = delete;
  MockKafka& operator=(const MockKafka&) = delete;

  int brokers() const { return brokers_; }
  std::string bootstraps() const;  // "127.0.0.1:P1,127.0.0.1:P2,..."
  rd_kafka_mock_cluster_t* cluster() const { return cluster_; }

  // A down broker closes its listener and connections (connection refused); up re-listens on the
  // same port.
  void broker_down(int id);
  void broker_up(int id);
  void all_down();
  void all_up();
  void set_rtt(int id, int ms);  // added round-trip time of the broker's responses

  // The next Produce requests (one per error, in order) fail with these errors.
  void push_produce_errors(const std::vector<rd_kafka_resp_err_t>& errors);
  // Same for any protocol request type (ApiKey: 0 Produce, 1 Fetch, 3 Metadata, ...).
  void push_request_errors(int16_t api_key, const std::vector<rd_kafka_resp_err_t>& errors);
  // Metadata requests for `topic` report `err` (clients with cached metadata are unaffected).
  void set_topic_error(const std::string& topic, rd_kafka_resp_err_t err);
  // Gives each name UNKNOWN_TOPIC_OR_PART, what a broker with auto.create.topics.enable=false
  // answers; without it the mock creates any topic a client's metadata request names. The mock
  // serves such calls on its own thread, one loop (up to its 1 s poll) at a time, about 0.4 s each
  // when made one by one: made from many threads at once, each loop serves them all.
  void set_unknown_topics(const std::vector<std::string>& topics);
  // Unknown topics are auto-created on first use (4 partitions); create one explicitly to choose.
  void create_topic(const std::string& name, int partitions, int replication = 1);

  // Reads `topic` from the beginning of every partition with an independent consumer (manual
  // assign, no group) until `expected` records arrived or `deadline` passed; returns what arrived,
  // partition by partition in offset order. Throws std::runtime_error if the topic never shows up.
  std::vector<Record> consume_all(const std::string& topic, size_t expected, std::chrono::milliseconds deadline) const;

 private:
  int brokers_;
  rd_kafka_t* handle_ = nullptr;  // hosts the cluster's threads
  rd_kafka_mock_cluster_t* cluster_ = nullptr;
};

}  // namespace spillway::test_support
