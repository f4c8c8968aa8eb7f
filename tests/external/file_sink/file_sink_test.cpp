// The example sinks (C++ and C) pass the testkit's sink suite, and their files say what was sent;
// the C transform passes the transform suite.
#include <spillway/testkit/sink_suite.hpp>
#include <spillway/testkit/transform_suite.hpp>

#include <gtest/gtest.h>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace {

using spillway::testkit::Config;

// A fresh file path per configuration, under one folder per process.
std::string fresh_file() {
    static const auto dir = std::filesystem::temp_directory_path() / ("file-sink-test-" + std::to_string(::getpid()));
    static std::atomic<int> n{0};
    std::filesystem::create_directories(dir);
    return (dir / ("events-" + std::to_string(n++) + ".jsonl")).string();
}

// The event_ids written to `topic`: each line is {"event_id":"...","topic":"...",...}.
std::vector<std::string> delivered(const Config& config, const std::string& topic, size_t) {
    std::vector<std::string> ids;
    std::ifstream in(config.values.at("path"));
    const std::string topic_field = "\"topic\":\"" + topic + "\"";
    for (std::string line; std::getline(in, line);) {
        if (line.find(topic_field) == std::string::npos) continue;
        const size_t start = line.find("\"event_id\":\"") + 12;
        ids.push_back(line.substr(start, line.find('"', start) - start));
    }
    return ids;
}

spillway::testkit::SinkFactory factory(std::string name, std::string plugin) {
    // A file in a folder that does not exist: start cannot open it.
    return {std::move(name), std::move(plugin), [] { return Config{{"path", fresh_file()}}; }, delivered,
            [] { return Config{{"path", "/nonexistent-folder/events.jsonl"}}; }, nullptr};
}

// The webhook sink's destination: a loopback HTTP server that answers 200 to every POST and
// keeps each request's X-Topic and X-Event-Id.
class Destination {
public:
    explicit Destination(int port = 0) {
        fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
        const int on = 1;
        ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a.sin_port = htons(static_cast<uint16_t>(port));
        if (::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd_, 64) != 0) std::abort();
        socklen_t len = sizeof a;
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
        port_ = ntohs(a.sin_port);
        std::thread([this] { serve(); }).detach();  // lives as long as the test process
    }
    std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/events"; }
    std::vector<std::string> ids(const std::string& topic, size_t expected) {
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        for (;;) {
            std::vector<std::string> out;
            {
                std::lock_guard lock(mutex_);
                for (const auto& [t, id] : seen_)
                    if (t == topic) out.push_back(id);
            }
            if (out.size() >= expected || std::chrono::steady_clock::now() > deadline) return out;
            std::this_thread::sleep_for(std::chrono::milliseconds(5));  // polling a condition with a deadline
        }
    }

private:
    static std::string header(const std::string& request, const std::string& name) {
        const size_t at = request.find("\r\n" + name + ": ");
        if (at == std::string::npos) return {};
        const size_t start = at + name.size() + 4;
        return request.substr(start, request.find("\r\n", start) - start);
    }
    void serve() {
        for (;;) {
            const int c = ::accept(fd_, nullptr, nullptr);
            if (c < 0) continue;
            std::string request;
            char buf[4096];
            size_t body_at = std::string::npos, length = 0;
            for (;;) {
                const ssize_t n = ::recv(c, buf, sizeof buf, 0);
                if (n <= 0) break;
                request.append(buf, static_cast<size_t>(n));
                if (body_at == std::string::npos && (body_at = request.find("\r\n\r\n")) != std::string::npos) {
                    body_at += 4;
                    length = std::stoul(header(request, "Content-Length").empty() ? "0" : header(request, "Content-Length"));
                }
                if (body_at != std::string::npos && request.size() >= body_at + length) break;
            }
            {
                std::lock_guard lock(mutex_);
                seen_.emplace_back(header(request, "X-Topic"), header(request, "X-Event-Id"));
            }
            const std::string ok = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
            (void)::send(c, ok.data(), ok.size(), MSG_NOSIGNAL);
            ::close(c);
        }
    }
    int fd_ = -1;
    int port_ = 0;
    std::mutex mutex_;
    std::vector<std::pair<std::string, std::string>> seen_;
};

Destination& destination() {
    static Destination* d = new Destination;  // never destroyed: its thread outlives main's return
    return *d;
}

// A loopback port nobody listens on (yet): bound once to learn a free number, then closed.
int free_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) std::abort();
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    ::close(fd);
    return ntohs(a.sin_port);
}

spillway::testkit::SinkFactory webhook() {
    return {"webhook", WEBHOOK_SINK_PLUGIN, [] { return Config{{"url", destination().url()}}; },
            [](const Config&, const std::string& topic, size_t expected) { return destination().ids(topic, expected); },
            // Nobody listens there: the connection is refused at once.
            [] { return Config{{"url", "http://127.0.0.1:" + std::to_string(free_port()) + "/events"}}; },
            // The destination comes up on that port (and stays for the rest of the process).
            [](const Config& away) {
                const std::string url = away.values.at("url");
                const size_t colon = url.rfind(':');
                static std::vector<Destination*> kept;  // never destroyed, as destination()'s
                kept.push_back(new Destination(std::stoi(url.substr(colon + 1, url.find('/', colon) - colon - 1))));
            }};
}

}  // namespace

SPILLWAY_SINK_CONFORMANCE(Cxx, factory("file", FILE_SINK_PLUGIN));
SPILLWAY_SINK_CONFORMANCE(C, factory("cfile", CFILE_SINK_PLUGIN));
SPILLWAY_SINK_CONFORMANCE(Webhook, webhook());
SPILLWAY_TRANSFORM_CONFORMANCE(Stamp, (spillway::testkit::TransformFactory{
                                          "stamp", STAMP_TRANSFORM_PLUGIN, [] { return Config{{"value", "\"seen\""}}; }, {}}));

TEST(FileSink, WritesOneEscapedJsonLinePerEvent) {
    spillway::testkit::Plugin plugin(FILE_SINK_PLUGIN);
    const std::string path = fresh_file();
    spillway::testkit::SinkInstance sink(plugin, Config{{"path", path}});
    spillway::testkit::sink_suite::Batch batch;
    batch.add("e-1", "orders", "", "{\"quote\":\"\\\"\"}\n");
    std::vector<sw_result> results;
    ASSERT_EQ(spillway::testkit::sink_suite::send(sink, batch, results), SW_OK);
    ASSERT_EQ(results[0].status, SW_OK);
    std::ifstream in(path);
    std::string line;
    ASSERT_TRUE(std::getline(in, line));
    EXPECT_EQ(line, R"({"event_id":"e-1","topic":"orders","key":null,"payload":"{\"quote\":\"\\\"\"}\u000a","headers":[["suite","sink"],["seq","0"]]})");
    EXPECT_EQ(sink.host().metric("file_sink_events_total", "result=ok"), 1.0);
}
