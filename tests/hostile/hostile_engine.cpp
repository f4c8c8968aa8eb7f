#include "hostile_engine.hpp"

#include <spillway/test_support/pipeline_toml.hpp>
#include <spillway/test_support/ports.hpp>
#include <spillway/test_support/spillway_run.hpp>

#include <nlohmann/json.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <sstream>

namespace spillway::hostile {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
        return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
    });
}

std::chrono::milliseconds left_until(Clock::time_point until) {
    return std::max(0ms, std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now()));
}

// One response from the front of `in`, and how many bytes it took; nullopt while incomplete. A
// body with neither length nor chunking runs to the close, so it is complete once `closed`.
std::optional<HttpResponse> parse_response(const std::string& in, bool closed, size_t& used) {
    const size_t head_end = in.find("\r\n\r\n");
    if (head_end == std::string::npos) return std::nullopt;
    HttpResponse r;
    std::istringstream head(in.substr(0, head_end));
    std::string line;
    std::getline(head, line);
    if (line.rfind("HTTP/1.", 0) != 0 || line.size() < 12) return std::nullopt;
    r.status = std::atoi(line.c_str() + 9);
    while (std::getline(head, line)) {
        if (!line.empty() && line.back() == '\r') line.pop_back();
        const size_t colon = line.find(':');
        if (colon == std::string::npos) continue;
        const size_t value = line.find_first_not_of(" \t", colon + 1);
        r.headers.emplace_back(line.substr(0, colon), value == std::string::npos ? "" : line.substr(value));
    }
    size_t at = head_end + 4;
    if (r.status / 100 == 1 || r.status == 204 || r.status == 304) {
        used = at;
        return r;
    }
    if (r.header("Transfer-Encoding").find("chunked") != std::string::npos) {
        for (;;) {
            const size_t eol = in.find("\r\n", at);
            if (eol == std::string::npos) return std::nullopt;
            const size_t size = std::strtoul(in.c_str() + at, nullptr, 16);
            if (size == 0) {
                const size_t trailer_end = in.find("\r\n\r\n", eol);  // the last chunk, then trailers
                if (trailer_end == std::string::npos) return std::nullopt;
                used = trailer_end + 4;
                return r;
            }
            if (in.size() < eol + 2 + size + 2) return std::nullopt;
            r.body.append(in, eol + 2, size);
            at = eol + 2 + size + 2;
        }
    }
    if (const std::string length = r.header("Content-Length"); !length.empty()) {
        const size_t n = std::strtoull(length.c_str(), nullptr, 10);
        if (in.size() < at + n) return std::nullopt;
        r.body = in.substr(at, n);
        used = at + n;
        return r;
    }
    if (!closed) return std::nullopt;
    r.body = in.substr(at);
    used = in.size();
    return r;
}

}  // namespace

std::string HttpResponse::header(std::string_view name) const {
    for (const auto& [n, v] : headers)
        if (iequals(n, name)) return v;
    return {};
}

std::string HttpResponse::error() const {
    const auto j = nlohmann::json::parse(body, nullptr, false);
    if (j.is_object() && j.contains("error") && j["error"].is_string()) return j["error"].get<std::string>();
    return {};
}

Connection::Connection(const std::string& host, int port) {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) return;
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    inet_pton(AF_INET, host.c_str(), &addr.sin_addr);
    // Blocking connect (loopback answers at once), then non-blocking so no call can hang a test.
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        fcntl(fd_, F_SETFL, fcntl(fd_, F_GETFL) | O_NONBLOCK) != 0) {
        ::close(fd_);
        fd_ = -1;
    }
}

Connection::~Connection() { close(); }

Connection::Connection(Connection&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)), in_(std::move(other.in_)), sent_(other.sent_),
      received_total_(other.received_total_), peer_closed_(other.peer_closed_) {}

void Connection::pump(std::chrono::milliseconds wait) {
    if (fd_ < 0 || peer_closed_) return;
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(wait.count())) <= 0) return;
    char buf[65536];
    for (;;) {
        const ssize_t n = recv(fd_, buf, sizeof buf, 0);
        if (n > 0) {
            in_.append(buf, static_cast<size_t>(n));
            received_total_ += static_cast<size_t>(n);
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
        peer_closed_ = true;  // EOF, or a reset
        return;
    }
}

Connection::Sent Connection::send(std::string_view bytes, std::chrono::milliseconds deadline, bool stop_when_answered) {
    if (fd_ < 0) return Sent::Closed;
    const auto until = Clock::now() + deadline;
    size_t off = 0;
    while (off < bytes.size()) {
        pump();
        if (peer_closed_) return Sent::Closed;
        if (stop_when_answered && answered()) return Sent::Answered;
        const ssize_t n = ::send(fd_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
        if (n > 0) {
            off += static_cast<size_t>(n);
            sent_ += static_cast<size_t>(n);
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            const auto left = left_until(until);
            if (left.count() == 0) return Sent::TimedOut;
            pollfd p{fd_, POLLIN | POLLOUT, 0};
            poll(&p, 1, static_cast<int>(std::min(left, 100ms).count()));
            continue;
        }
        pump();  // what the server said before it reset the connection
        peer_closed_ = true;
        return Sent::Closed;
    }
    pump();
    return Sent::All;
}

void Connection::shutdown_write() {
    if (fd_ >= 0) ::shutdown(fd_, SHUT_WR);
}

void Connection::close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
}

std::optional<HttpResponse> Connection::read_response(std::chrono::milliseconds deadline) {
    const auto until = Clock::now() + deadline;
    for (;;) {
        size_t used = 0;
        if (auto r = parse_response(in_, peer_closed_, used)) {
            in_.erase(0, used);
            return r;
        }
        if (peer_closed_ || fd_ < 0) return std::nullopt;
        const auto left = left_until(until);
        if (left.count() == 0) return std::nullopt;
        pump(std::min(left, 100ms));
    }
}

bool Connection::wait_closed(std::chrono::milliseconds deadline) {
    const auto until = Clock::now() + deadline;
    while (!peer_closed_ && fd_ >= 0) {
        const auto left = left_until(until);
        if (left.count() == 0) break;
        pump(std::min(left, 100ms));
    }
    return peer_closed_;
}

namespace {
// Keys of the issue-19 HTTP limits; see the constructor's comment.
bool issue19_limit_line(const std::string& line) {
    for (const char* key : {"http_max_", "http_request_timeout", "http_idle_timeout", "http_shutdown_timeout", "http_gzip"})
        if (line.rfind(key, 0) == 0) return true;
    return false;
}
}  // namespace

HostileEngine::HostileEngine(std::string extra_engine, std::string extra_pipeline, const std::string& extra_sink)
    : config_path_(dir_.path() + "/pipeline.toml"), log_path_(dir_.path() + "/run.log") {
    const char* bin = std::getenv("SPILLWAY_HOSTILE_BIN");
    binary_ = bin && *bin ? bin : SPILLWAY_BIN;
    if (const char* legacy = std::getenv("SPILLWAY_HOSTILE_LEGACY_CONFIG"); legacy && std::string(legacy) == "1") {
        std::istringstream in(extra_engine);
        std::string kept;
        for (std::string line; std::getline(in, line);)
            if (!issue19_limit_line(line)) kept += line + "\n";
        extra_engine = kept;
    }
    port_ = test_support::free_port();
    kafka_.create_topic(topic_, 2, 1);
    test_support::PipelineToml toml(SPILLWAY_PLUGIN_DIR);
    // log_level "warn" unless the test sets its own (a key may appear once in a TOML table).
    if (extra_engine.find("log_level") == std::string::npos) toml.engine().set("log_level", "warn");
    toml.engine().set("http_listen", host_ + ":" + std::to_string(port_)).add_lines(extra_engine);
    toml.kafka_sink(kafka_.bootstraps()).add_lines(extra_sink);
    toml.sqlite_store(dir_.path() + "/outbox.db");
    toml.notifier("inproc");
    toml.adaptive_scheduler();
    toml.pipeline("orders").set("topic", topic_).add_lines(extra_pipeline);
    toml.write(config_path_);
}

HostileEngine::~HostileEngine() {
    if (child_) child_->stop(SIGKILL, 10s);
}

bool HostileEngine::start(std::chrono::milliseconds deadline) {
    child_.emplace(test_support::spawn_spillway_run({.binary = binary_, .config_path = config_path_, .log_path = log_path_}));
    return test_support::wait_ready(*child_, host_, port_, deadline);
}

bool HostileEngine::stop(std::chrono::milliseconds grace) {
    if (!child_) return true;
    const bool clean = child_->stop(SIGTERM, grace) && child_->exited_ok();
    child_.reset();
    return clean;
}

bool HostileEngine::alive() { return child_ && child_->running(); }

namespace {
long proc_status_kb(pid_t pid, const std::string& field) {
    std::ifstream status("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(status, line))
        if (line.rfind(field, 0) == 0) return std::stol(line.substr(field.size()));
    return -1;
}
}  // namespace

long HostileEngine::rss_kb() const { return child_ ? proc_status_kb(child_->pid(), "VmRSS:") : -1; }
long HostileEngine::peak_rss_kb() const { return child_ ? proc_status_kb(child_->pid(), "VmHWM:") : -1; }

HostileEngine::Exit HostileEngine::terminate(std::chrono::milliseconds deadline) {
    Exit e;
    if (!child_) return e;
    const auto t0 = Clock::now();
    child_->signal(SIGTERM);
    e.exited = child_->wait_exit(deadline);
    e.took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0);
    if (!e.exited) child_->stop(SIGKILL, 10s);
    e.clean = e.exited && child_->exited_ok();
    e.how = e.exited ? child_->describe_exit() : "still running after " + std::to_string(deadline.count()) + " ms (killed)";
    child_.reset();
    return e;
}

std::string HostileEngine::raw(const std::string& bytes, std::chrono::milliseconds deadline) const {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return {};
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port_));
    inet_pton(AF_INET, host_.c_str(), &addr.sin_addr);
    std::string out;
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
        size_t sent = 0;
        while (sent < bytes.size()) {
            const ssize_t n = send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
            if (n <= 0) break;
            sent += static_cast<size_t>(n);
        }
        const auto until = std::chrono::steady_clock::now() + deadline;
        char buf[65536];
        for (;;) {
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
            if (left.count() <= 0) break;
            pollfd p{fd, POLLIN, 0};
            if (poll(&p, 1, static_cast<int>(left.count())) <= 0) break;
            const ssize_t n = recv(fd, buf, sizeof buf, 0);
            if (n <= 0) break;
            out.append(buf, static_cast<size_t>(n));
        }
    }
    close(fd);
    return out;
}

std::string HostileEngine::log_tail(size_t lines) const { return test_support::file_tail(log_path_, lines); }

}  // namespace spillway::hostile
