// tools/mock-kafka as other processes see it: kcat round trip, down/up commands seen by a
// producer, clean exit on SIGTERM and quit.
#include "sink_test_support.hpp"

#include <spillway/test_support/wait.hpp>

#include <gtest/gtest.h>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

extern char** environ;

namespace spillway::kafka_test {
namespace {

using namespace std::chrono_literals;
using test_support::wait_until;
using Clock = std::chrono::steady_clock;

// A child process with its stdin and stdout connected to pipes (stderr inherited).
class Spawned {
public:
    explicit Spawned(std::vector<std::string> argv) {
        int in[2], out[2];
        if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
        posix_spawn_file_actions_t actions;
        posix_spawn_file_actions_init(&actions);
        posix_spawn_file_actions_adddup2(&actions, in[0], STDIN_FILENO);
        posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
        std::vector<char*> args;
        for (auto& a : argv) args.push_back(a.data());
        args.push_back(nullptr);
        const int rc = posix_spawn(&pid_, args[0], &actions, nullptr, args.data(), environ);
        posix_spawn_file_actions_destroy(&actions);
        close(in[0]);
        close(out[1]);
        stdin_ = in[1];
        stdout_ = out[0];
        if (rc != 0) throw std::runtime_error("spawn " + argv[0] + ": " + std::strerror(rc));
    }
    ~Spawned() {
        close_stdin();
        if (stdout_ >= 0) close(stdout_);
        if (!status_) {
            kill(pid_, SIGKILL);
            waitpid(pid_, nullptr, 0);
        }
    }
    Spawned(const Spawned&) = delete;
    Spawned& operator=(const Spawned&) = delete;

    void write_stdin(const std::string& s) {
        ASSERT_EQ(::write(stdin_, s.data(), s.size()), static_cast<ssize_t>(s.size()));
    }
    void close_stdin() {
        if (stdin_ >= 0) close(stdin_);
        stdin_ = -1;
    }
    // The next line of stdout, or "" when none came within the deadline or at EOF.
    std::string read_line(std::chrono::milliseconds deadline) {
        const auto until = Clock::now() + deadline;
        for (;;) {
            if (auto eol = buffer_.find('\n'); eol != std::string::npos) {
                std::string line = buffer_.substr(0, eol);
                buffer_.erase(0, eol + 1);
                return line;
            }
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now()).count();
            if (left <= 0) return "";
            pollfd pfd{stdout_, POLLIN, 0};
            if (poll(&pfd, 1, static_cast<int>(left)) <= 0) continue;
            char buf[4096];
            const ssize_t n = read(stdout_, buf, sizeof buf);
            if (n <= 0) return "";
            buffer_.append(buf, static_cast<size_t>(n));
        }
    }
    // Every line until EOF (or the deadline).
    std::vector<std::string> read_all_lines(std::chrono::milliseconds deadline) {
        const auto until = Clock::now() + deadline;
        while (Clock::now() < until) {
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now()).count();
            pollfd pfd{stdout_, POLLIN, 0};
            if (poll(&pfd, 1, static_cast<int>(std::max<long>(left, 1))) <= 0) continue;
            char buf[4096];
            const ssize_t n = read(stdout_, buf, sizeof buf);
            if (n <= 0) break;  // EOF
            buffer_.append(buf, static_cast<size_t>(n));
        }
        std::vector<std::string> lines;
        std::istringstream in(buffer_);
        for (std::string line; std::getline(in, line);) lines.push_back(line);
        buffer_.clear();
        return lines;
    }
    // Waits for the exit; returns the raw wait status, or nullopt on timeout.
    std::optional<int> wait_exit(std::chrono::milliseconds deadline) {
        wait_until(
            [&] {
                int st = 0;
                if (!status_ && waitpid(pid_, &st, WNOHANG) == pid_) status_ = st;
                return status_.has_value();
            },
            deadline, 10ms);
        return status_;
    }
    void signal(int sig) { kill(pid_, sig); }

private:
    pid_t pid_ = -1;
    int stdin_ = -1, stdout_ = -1;
    std::string buffer_;
    std::optional<int> status_;
};

bool exited_ok(std::optional<int> status) { return status && WIFEXITED(*status) && WEXITSTATUS(*status) == 0; }

std::string bootstrap_of(Spawned& mock) {
    const std::string line = mock.read_line(15s);
    const std::string prefix = "bootstrap.servers=";
    if (line.rfind(prefix, 0) != 0) return "";
    return line.substr(prefix.size());
}

TEST(MockKafkaTool, PrintsBootstrapAndRoundTripsWithKcat) {
    if (std::string(SPILLWAY_KCAT_BIN).empty()) GTEST_SKIP() << "kcat is not installed";
    Spawned mock({SPILLWAY_MOCK_KAFKA_BIN, "--brokers", "3"});
    const std::string bootstrap = bootstrap_of(mock);
    ASSERT_FALSE(bootstrap.empty());
    EXPECT_EQ(std::count(bootstrap.begin(), bootstrap.end(), ','), 2) << bootstrap;

    {
        Spawned producer({SPILLWAY_KCAT_BIN, "-b", bootstrap, "-P", "-t", "roundtrip", "-K:"});
        producer.write_stdin("k1:first\nk2:second\nk1:third\n");
        producer.close_stdin();
        EXPECT_TRUE(exited_ok(producer.wait_exit(30s))) << "kcat -P failed";
    }
    Spawned consumer({SPILLWAY_KCAT_BIN, "-b", bootstrap, "-C", "-t", "roundtrip", "-o", "beginning", "-e", "-q",
                      "-f", "%k=%s\n"});
    auto lines = consumer.read_all_lines(30s);
    EXPECT_TRUE(exited_ok(consumer.wait_exit(30s))) << "kcat -C failed";
    // Per key (one partition each) the order holds; across keys it does not have to.
    std::vector<std::string> k1;
    for (const auto& l : lines)
        if (l.rfind("k1=", 0) == 0) k1.push_back(l);
    std::sort(lines.begin(), lines.end());
    EXPECT_EQ(lines, (std::vector<std::string>{"k1=first", "k1=third", "k2=second"}));
    EXPECT_EQ(k1, (std::vector<std::string>{"k1=first", "k1=third"}));

    mock.write_stdin("quit\n");
    EXPECT_TRUE(exited_ok(mock.wait_exit(20s))) << "mock-kafka did not exit cleanly on quit";
}

TEST(MockKafkaTool, DownAndUpCommandsAreSeenByAProducer) {
    Spawned mock({SPILLWAY_MOCK_KAFKA_BIN, "--brokers", "2"});
    const std::string bootstrap = bootstrap_of(mock);
    ASSERT_FALSE(bootstrap.empty());
    testkit::SinkInstance sink(kafka_plugin(), config_for(bootstrap).set("message.timeout.ms", "2000"));
    auto send_one = [&](int64_t timeout_ms) {
        EventBatch batch;
        batch.add({"evt", "tool", "k", "p", {}, {}, {}});
        std::vector<sw_result> results;
        send(sink, batch, results, timeout_ms);
        return results[0].status;
    };
    ASSERT_EQ(send_one(20000), SW_OK);

    mock.write_stdin("bogus command\n");  // reported on stderr; the cluster keeps running
    mock.write_stdin("downall\n");
    EXPECT_TRUE(wait_until([&] { return send_one(5000) == SW_RETRY; }, 30s, 0ms)) << "outage not observed";
    mock.write_stdin("upall\n");
    EXPECT_TRUE(wait_until([&] { return send_one(5000) == SW_OK; }, 30s, 0ms)) << "recovery not observed";

    mock.signal(SIGTERM);
    EXPECT_TRUE(exited_ok(mock.wait_exit(20s))) << "mock-kafka did not exit cleanly on SIGTERM";
}

TEST(MockKafkaTool, RttAndProduceErrorCommandsAreSeenByAProducer) {
    Spawned mock({SPILLWAY_MOCK_KAFKA_BIN, "--brokers", "1", "--quiet"});
    const std::string bootstrap = bootstrap_of(mock);
    ASSERT_FALSE(bootstrap.empty());
    testkit::SinkInstance sink(kafka_plugin(), testkit::Config{{"bootstrap.servers", bootstrap}});
    auto send_one = [&](int64_t timeout_ms) {
        EventBatch batch;
        batch.add({"evt", "tool", "k", "p", {}, {}, {}});
        std::vector<sw_result> results;
        send(sink, batch, results, timeout_ms);
        return results[0];
    };
    ASSERT_EQ(send_one(20000).status, SW_OK);

    mock.write_stdin("produce-error MSG_SIZE_TOO_LARGE\n");  // by name; the next Produce fails
    EXPECT_TRUE(wait_until([&] { return send_one(5000).status == SW_REJECT; }, 30s, 0ms));

    mock.write_stdin("rtt 1 3000\n");
    EXPECT_TRUE(wait_until(
        [&] {
            const sw_result r = send_one(300);
            return r.status == SW_RETRY && (r.flags & SW_RESULT_POSSIBLY_DELIVERED);
        },
        30s, 0ms))
        << "added round-trip time not observed";
    mock.write_stdin("rtt 1 0\n");
    EXPECT_TRUE(wait_until([&] { return send_one(5000).status == SW_OK; }, 30s, 0ms));

    mock.close_stdin();  // without --exit-on-eof the cluster keeps running
    EXPECT_FALSE(mock.wait_exit(300ms).has_value());
    mock.signal(SIGINT);
    EXPECT_TRUE(exited_ok(mock.wait_exit(20s))) << "mock-kafka did not exit cleanly on SIGINT";
}

TEST(MockKafkaTool, RefusesAFixedPortItCannotHonour) {
    Spawned mock({SPILLWAY_MOCK_KAFKA_BIN, "--port", "9092"});
    const auto status = mock.wait_exit(10s);
    ASSERT_TRUE(status.has_value());
    EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 2);
}

}  // namespace
}  // namespace spillway::kafka_test
