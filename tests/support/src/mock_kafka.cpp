#include "spillway/test_support/mock_kafka.hpp"

#include <algorithm>
#include <array>
#include <memory>
#include <stdexcept>
#include <thread>

namespace spillway::test_support {

namespace {

constexpr int16_t kProduceApiKey = 0;  // RD_KAFKAP_Produce (rdkafka_protocol.h is not installed)

void conf_set(rd_kafka_conf_t* conf, const char* key, const char* value) {
  std::array<char, 512> errstr{};
  if (rd_kafka_conf_set(conf, key, value, errstr.data(), errstr.size()) != RD_KAFKA_CONF_OK)
    throw std::runtime_error(std::string("MockKafka: ") + key + ": " + errstr.data());
}

rd_kafka_t* new_handle(rd_kafka_type_t type, rd_kafka_conf_t* conf) {
  std::array<char, 512> errstr{};
  rd_kafka_t* rk = rd_kafka_new(type, conf, errstr.data(), errstr.size());
  if (!rk) {
    rd_kafka_conf_destroy(conf);
    throw std::runtime_error(std::string("MockKafka: rd_kafka_new: ") + errstr.data());
  }
  return rk;
}

struct HandleDeleter {
  void operator()(rd_kafka_t* rk) const { rd_kafka_destroy(rk); }
};
struct TopicDeleter {
  void operator()(rd_kafka_topic_t* t) const { rd_kafka_topic_destroy(t); }
};
struct PartitionsDeleter {
  void operator()(rd_kafka_topic_partition_list_t* l) const { rd_kafka_topic_partition_list_destroy(l); }
};

// Partition count of `topic` from the cluster's metadata, retried until it exists or time is up.
int partition_count(rd_kafka_t* rk, const std::string& topic, std::chrono::steady_clock::time_point until) {
  std::unique_ptr<rd_kafka_topic_t, TopicDeleter> rkt(rd_kafka_topic_new(rk, topic.c_str(), nullptr));
  std::string last = "no answer";
  do {
    const rd_kafka_metadata_t* md = nullptr;
    const rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 0, rkt.get(), &md, 2000);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      int n = 0;
      if (md->topic_cnt == 1 && md->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR) n = md->topics[0].partition_cnt;
      else if (md->topic_cnt == 1) last = rd_kafka_err2str(md->topics[0].err);
      rd_kafka_metadata_destroy(md);
      if (n > 0) return n;
    } else {
      last = rd_kafka_err2str(err);
    }
  } while (std::chrono::steady_clock::now() < until);
  throw std::runtime_error("MockKafka: topic '" + topic + "' not available: " + last);
}

}  // namespace

std::optional<std::string> KafkaRecord::header(const std::string& name) const {
  for (const auto& [k, v] : headers)
    if (k == name) return v;
  return std::nullopt;
}

MockKafka::MockKafka(int brokers) : brokers_(brokers) {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  conf_set(conf, "log_level", "3");
  // The mock brokers' accepted sockets take their options from this handle: without TCP_NODELAY
  // a response can wait out the client's 40 ms delayed ACK on loopback.
  conf_set(conf, "socket.nagle.disable", "true");
  handle_ = new_handle(RD_KAFKA_PRODUCER, conf);
  cluster_ = rd_kafka_mock_cluster_new(handle_, brokers);
  if (!cluster_) {
    rd_kafka_destroy(handle_);
    throw std::runtime_error("MockKafka: rd_kafka_mock_cluster_new failed");
  }
}

MockKafka::~MockKafka() {
  rd_kafka_mock_cluster_destroy(cluster_);
  rd_kafka_destroy(handle_);
}

std::string MockKafka::bootstraps() const { return rd_kafka_mock_cluster_bootstraps(cluster_); }

void MockKafka::broker_down(int id) { rd_kafka_mock_broker_set_down(cluster_, id); }
void MockKafka::broker_up(int id) { rd_kafka_mock_broker_set_up(cluster_, id); }
void MockKafka::all_down() {
  for (int id = 1; id <= brokers_; ++id) broker_down(id);
}
void MockKafka::all_up() {
  for (int id = 1; id <= brokers_; ++id) broker_up(id);
}
void MockKafka::set_rtt(int id, int ms) { rd_kafka_mock_broker_set_rtt(cluster_, id, ms); }

void MockKafka::push_produce_errors(const std::vector<rd_kafka_resp_err_t>& errors) {
  push_request_errors(kProduceApiKey, errors);
}
void MockKafka::push_request_errors(int16_t api_key, const std::vector<rd_kafka_resp_err_t>& errors) {
  rd_kafka_mock_push_request_errors_array(cluster_, api_key, errors.size(), errors.data());
}
void MockKafka::set_topic_error(const std::string& topic, rd_kafka_resp_err_t err) {
  rd_kafka_mock_topic_set_error(cluster_, topic.c_str(), err);
}
void MockKafka::set_unknown_topics(const std::vector<std::string>& topics) {
  constexpr size_t kCallers = 100;
  std::vector<std::thread> callers;
  for (size_t c = 0; c < kCallers && c < topics.size(); ++c)
    callers.emplace_back([&, c] {
      for (size_t i = c; i < topics.size(); i += kCallers) set_topic_error(topics[i], RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART);
    });
  for (auto& t : callers) t.join();
}
void MockKafka::create_topic(const std::string& name, int partitions, int replication) {
  const rd_kafka_resp_err_t err = rd_kafka_mock_topic_create(cluster_, name.c_str(), partitions, replication);
  if (err) throw std::runtime_error("MockKafka: create topic '" + name + "': " + rd_kafka_err2str(err));
}

std::vector<KafkaRecord> MockKafka::consume_all(const std::string& topic, size_t expected,
                                                std::chrono::milliseconds deadline) const {
  const auto until = std::chrono::steady_clock::now() + deadline;
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  conf_set(conf, "bootstrap.servers", bootstraps().c_str());
  // rd_kafka_consumer_poll needs a group; assign() never joins it, so there is no rebalance wait.
  conf_set(conf, "group.id", "spillway-test-reader");
  conf_set(conf, "enable.auto.commit", "false");
  conf_set(conf, "enable.partition.eof", "false");
  // The mock broker answers a fetch with one record batch per partition: do not idle between them.
  conf_set(conf, "fetch.wait.max.ms", "5");
  conf_set(conf, "log_level", "3");
  std::unique_ptr<rd_kafka_t, HandleDeleter> consumer(new_handle(RD_KAFKA_CONSUMER, conf));

  const int partitions = partition_count(consumer.get(), topic, until);
  std::unique_ptr<rd_kafka_topic_partition_list_t, PartitionsDeleter> assignment(
      rd_kafka_topic_partition_list_new(partitions));
  for (int p = 0; p < partitions; ++p)
    rd_kafka_topic_partition_list_add(assignment.get(), topic.c_str(), p)->offset = RD_KAFKA_OFFSET_BEGINNING;
  if (rd_kafka_resp_err_t err = rd_kafka_assign(consumer.get(), assignment.get()))
    throw std::runtime_error(std::string("MockKafka: assign: ") + rd_kafka_err2str(err));

  std::vector<KafkaRecord> records;
  while (records.size() < expected && std::chrono::steady_clock::now() < until) {
    rd_kafka_message_t* msg = rd_kafka_consumer_poll(consumer.get(), 100);
    if (!msg) continue;
    if (msg->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      KafkaRecord r;
      r.partition = msg->partition;
      r.offset = msg->offset;
      r.timestamp_ms = rd_kafka_message_timestamp(msg, &r.timestamp_type);
      if (msg->key) r.key.emplace(static_cast<const char*>(msg->key), msg->key_len);
      if (msg->payload) r.payload.emplace(static_cast<const char*>(msg->payload), msg->len);
      rd_kafka_headers_t* hdrs = nullptr;
      if (rd_kafka_message_headers(msg, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        const char* name = nullptr;
        const void* value = nullptr;
        size_t size = 0;
        for (size_t i = 0; rd_kafka_header_get_all(hdrs, i, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR; ++i)
          r.headers.emplace_back(name, value ? std::string(static_cast<const char*>(value), size) : std::string());
      }
      records.push_back(std::move(r));
    }
    rd_kafka_message_destroy(msg);
  }
  rd_kafka_consumer_close(consumer.get());
  std::stable_sort(records.begin(), records.end(), [](const KafkaRecord& a, const KafkaRecord& b) {
    return a.partition != b.partition ? a.partition < b.partition : a.offset < b.offset;
  });
  return records;
}

}  // namespace spillway::test_support
