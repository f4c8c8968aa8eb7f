// The engine a hostile client meets: the real `spillway run` (librdkafka's mock cluster in the
// test process, a SQLite outbox), its HTTP listener on a free loopback port, and what a test
// watches of it: alive or not, its resident memory, and what reached Kafka.
#pragma once

#include <spillway/test_support/child_process.hpp>
#include <spillway/test_support/mock_kafka.hpp>
#include <spillway/test_support/temp_dir.hpp>

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

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

// One HTTP response as it came off the wire (an interim 100 Continue is one too).
struct HttpResponse {
    int status = -1;
    std::vector<std::pair<std::string, std::string>> headers;
    std::string body;

    std::string header(std::string_view name) const;  // first value, case-insensitive; "" if absent
    std::string error() const;  // the "error" field of a JSON body, "" if there is none
};

// A client socket a test drives by hand: send parts, trickle, half-close, read responses with a
// deadline, see whether the server closed. Non-blocking underneath, and whatever the server sends
// is read while the test sends, so an answer is not lost to a reset when the server closes on
// bytes it never read.
class Connection {
public:
    Connection(const std::string& host, int port);  // connected() says whether it worked
    ~Connection();
    Connection(Connection&& other) noexcept;
    Connection& operator=(Connection&&) = delete;
    Connection(const Connection&) = delete;

    bool connected() const { return fd_ >= 0; }

    enum class Sent { All, Answered, Closed, TimedOut };
    // Sends `bytes`; stops early when the server closed or reset the connection, when `deadline`
    // passed with the server not reading, or (with stop_when_answered) when it sent anything.
    Sent send(std::string_view bytes, std::chrono::milliseconds deadline = std::chrono::seconds(10),
              bool stop_when_answered = false);
    void shutdown_write();
    void close();  // as a client does once the server closed; what was received stays readable

    // The next complete response within `deadline`; nullopt when the server closed first or time ran out.
    std::optional<HttpResponse> read_response(std::chrono::milliseconds deadline = std::chrono::seconds(10));
    // Reads until the server closes (EOF or reset) or `deadline` passes; true when it closed.
    bool wait_closed(std::chrono::milliseconds deadline);
    // Reads what has arrived, waiting at most `wait` for the first of it.
    void pump(std::chrono::milliseconds wait = std::chrono::milliseconds(0));

    bool closed_by_peer() const { return peer_closed_; }
    bool answered() const { return received_total_ > 0; }  // any byte came back
    size_t bytes_sent() const { return sent_; }
    const std::string& unparsed() const { return in_; }

private:
    int fd_ = -1;
    std::string in_;  // received, not yet taken by read_response
    size_t sent_ = 0, received_total_ = 0;
    bool peer_closed_ = false;
};

class HostileEngine {
public:
    // `extra_engine`: more lines for [engine] (e.g. http_token); `extra_pipeline`: for [pipeline.orders];
    // `extra_sink`: librdkafka properties for [sink.kafka].
    // The binary is the build's, or SPILLWAY_HOSTILE_BIN when set: the tests can be run against an
    // older build to see them fail there. SPILLWAY_HOSTILE_LEGACY_CONFIG=1 leaves out the [engine]
    // keys of the issue-19 HTTP limits, which an older config loader refuses as unknown.
    explicit HostileEngine(std::string extra_engine = "", std::string extra_pipeline = "", const std::string& extra_sink = "");
    ~HostileEngine();

    // Spawns and waits until /readyz answers 200 (false, with the log in log_tail(), otherwise).
    bool start(std::chrono::milliseconds deadline = std::chrono::seconds(30));
    bool stop(std::chrono::milliseconds grace = std::chrono::seconds(20));  // SIGTERM; true on exit 0
    bool alive();
    long rss_kb() const;  // VmRSS of the engine process, from /proc; -1 when it is gone
    // VmHWM: the most the engine was resident since it started, so an attack whose buffers were
    // freed again still shows; -1 when it is gone.
    long peak_rss_kb() const;

    // SIGTERM and how the exit went: within `deadline` or not (then SIGKILLed), with status 0 or not.
    struct Exit {
        bool exited = false;
        bool clean = false;
        std::chrono::milliseconds took{0};
        std::string how;
    };
    Exit terminate(std::chrono::milliseconds deadline);

    Connection connect() const { return Connection(host_, port_); }

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
    const std::string& log_path() const { return log_path_; }  // the engine's stderr

private:
    test_support::TempDir dir_{"hostile"};
    test_support::MockKafka kafka_{1};
    std::string host_ = "127.0.0.1";
    int port_ = 0;
    std::string topic_ = "orders.events";
    std::string config_path_, log_path_, binary_;
    std::optional<test_support::ChildProcess> child_;
};

}  // namespace spillway::hostile
