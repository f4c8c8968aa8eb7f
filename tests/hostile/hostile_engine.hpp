// The engine a hostile client meets: the real `spillway run` (librdkafka's mock cluster in the
// test process, a SQLite outbox), its HTTP listener on a free loopback port, and what a test
// watches of it: alive or not, its resident memory, and what reached Kafka.
#pragma once

#include <spillway/test_support/child_process.hpp>
#include <spillway/test_support/mock_kafka.hpp>
#include <spillway/test_support/temp_dir.hpp>

#include <chrono>
#include <optional>
#include <string>

namespace spillway::hostile {

// A test's bound on the engine's resident memory. Under AddressSanitizer the same engine keeps
// shadow memory and a quarantine of freed blocks (256 MB by default) on top: the bound holds in
// the plain build, and the sanitizer stage only checks that the process survives and stays finite.
constexpr long rss_bound_kb(long plain_kb) {
#if defined(__SANITIZE_ADDRESS__)
    return plain_kb + 512 * 1024;
#else
    return plain_kb;
#endif
}

class HostileEngine {
public:
    // `extra_engine`: more lines for [engine] (e.g. http_token); `extra_pipeline`: for [pipeline.orders].
    explicit HostileEngine(std::string extra_engine = "", std::string extra_pipeline = "");
    ~HostileEngine();

    // Spawns and waits until /readyz answers 200 (false, with the log in log_tail(), otherwise).
    bool start(std::chrono::milliseconds deadline = std::chrono::seconds(30));
    bool stop(std::chrono::milliseconds grace = std::chrono::seconds(20));  // SIGTERM; true on exit 0
    bool alive();
    long rss_kb() const;  // VmRSS of the engine process, from /proc; -1 when it is gone

    // Sends `bytes` as they are on a fresh connection and returns what came back before the server
    // closed it or `deadline` passed (empty when nothing did).
    std::string raw(const std::string& bytes, std::chrono::milliseconds deadline = std::chrono::seconds(10)) const;

    const std::string& host() const { return host_; }
    int port() const { return port_; }
    std::string base_url() const { return "http://" + host_ + ":" + std::to_string(port_); }
    const std::string& config_path() const { return config_path_; }
    const std::string& topic() const { return topic_; }
    test_support::MockKafka& kafka() { return kafka_; }
    std::string log_tail(size_t lines = 40) const;

private:
    test_support::TempDir dir_{"hostile"};
    test_support::MockKafka kafka_{1};
    std::string host_ = "127.0.0.1";
    int port_ = 0;
    std::string topic_ = "orders.events";
    std::string config_path_, log_path_;
    std::optional<test_support::ChildProcess> child_;
};

}  // namespace spillway::hostile
