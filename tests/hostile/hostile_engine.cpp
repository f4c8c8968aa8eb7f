#include "hostile_engine.hpp"

#include <spillway/test_support/ports.hpp>
#include <spillway/test_support/wait.hpp>

#include <httplib.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

namespace spillway::hostile {

using namespace std::chrono_literals;

HostileEngine::HostileEngine(std::string extra_engine, std::string extra_pipeline)
    : config_path_(dir_.path() + "/pipeline.toml"), log_path_(dir_.path() + "/run.log") {
    port_ = test_support::free_port();
    kafka_.create_topic(topic_, 2, 1);
    std::ofstream(config_path_)
        << "[engine]\nplugin_path = [\"" SPILLWAY_PLUGIN_DIR "\"]\nlog_level = \"warn\"\nhttp_listen = \"" << host_ << ":"
        << port_ << "\"\n" << extra_engine << "\n"
        << "[sink.kafka]\nplugin = \"kafka\"\n\"bootstrap.servers\" = \"" << kafka_.bootstraps() << "\"\n\n"
        << "[store.outbox]\nplugin = \"sqlite\"\npath = \"" << dir_.path() << "/outbox.db\"\n\n"
        << "[notifier.bell]\nplugin = \"inproc\"\n\n[scheduler.poll]\nplugin = \"adaptive\"\n\n"
        << "[pipeline.orders]\nsink = \"kafka\"\nstore = \"outbox\"\nnotifier = \"bell\"\nscheduler = \"poll\"\n"
        << "topic = \"" << topic_ << "\"\n" << extra_pipeline << "\n";
}

HostileEngine::~HostileEngine() {
    if (child_) child_->stop(SIGKILL, 10s);
}

bool HostileEngine::start(std::chrono::milliseconds deadline) {
    child_.emplace(test_support::ChildSpec{{SPILLWAY_BIN, "run", config_path_, "--env", "testing"}, log_path_, "/", {}, SIGKILL, {}});
    httplib::Client probe(base_url());
    probe.set_connection_timeout(1s);
    probe.set_read_timeout(5s);
    return test_support::wait_until(
        [&] {
            if (!child_->running()) return false;
            auto res = probe.Get("/readyz");
            return res && res->status == 200;
        },
        deadline, 20ms);
}

bool HostileEngine::stop(std::chrono::milliseconds grace) {
    if (!child_) return true;
    const bool clean = child_->stop(SIGTERM, grace) && child_->exited_ok();
    child_.reset();
    return clean;
}

bool HostileEngine::alive() { return child_ && child_->running(); }

long HostileEngine::rss_kb() const {
    if (!child_) return -1;
    std::ifstream status("/proc/" + std::to_string(child_->pid()) + "/status");
    std::string line;
    while (std::getline(status, line))
        if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
    return -1;
}

std::string HostileEngine::raw(const std::string& bytes, std::chrono::milliseconds deadline) const {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return {};
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port_));
    inet_pton(AF_INET, host_.c_str(), &addr.sin_addr);
    std::string out;
    if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
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
