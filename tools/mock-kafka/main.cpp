// mock-kafka — a Kafka-protocol cluster on 127.0.0.1 for the quickstart, cross-process tests and
// benchmarks, built on librdkafka's mock cluster (rdkafka_mock.h). Any Kafka client (kcat,
// librdkafka, ...) can produce to and consume from it; topics are auto-created.
//
// It prints one line, "bootstrap.servers=<host:port,...>", on stdout, then obeys commands on
// stdin (one per line) until quit, SIGTERM or SIGINT. Acknowledgements and errors go to stderr.
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>

namespace {

constexpr const char* kUsage =
    "usage: mock-kafka [--brokers N] [--exit-on-eof] [--quiet]\n"
    "\n"
    "Runs a Kafka-protocol mock cluster (librdkafka's rdkafka_mock) of N brokers (default 3) on\n"
    "127.0.0.1 and prints its bootstrap servers on stdout as one line:\n"
    "  bootstrap.servers=127.0.0.1:PORT,127.0.0.1:PORT,...\n"
    "Ports are ephemeral: librdkafka 2.0.2 has no API to choose them, so --port is not supported.\n"
    "\n"
    "Commands on stdin, one per line (broker ids are 1..N):\n"
    "  down N          take broker N down (its listener closes: connection refused)\n"
    "  up N            bring broker N back up on the same port\n"
    "  downall         take every broker down\n"
    "  upall           bring every broker up\n"
    "  rtt N MS        add MS milliseconds of round-trip time to broker N's responses\n"
    "  error TOPIC CODE  make Metadata requests for TOPIC fail with CODE (number or name, e.g.\n"
    "                  TOPIC_AUTHORIZATION_FAILED; 0 or NO_ERROR clears it)\n"
    "  produce-error CODE [COUNT]  fail the next COUNT (default 1) Produce requests with CODE\n"
    "  quit            exit\n"
    "\n"
    "Exits cleanly on quit, SIGTERM or SIGINT. End of stdin is ignored (the cluster keeps running,\n"
    "so it can run in the background) unless --exit-on-eof is given.\n";

volatile std::sig_atomic_t g_signal = 0;

void on_signal(int sig) { g_signal = sig; }

struct Options {
    int brokers = 3;
    bool exit_on_eof = false;
    bool quiet = false;
};

std::optional<int> parse_int(const std::string& s) {
    if (s.empty()) return std::nullopt;
    char* end = nullptr;
    errno = 0;
    const long v = std::strtol(s.c_str(), &end, 10);
    if (*end || errno || v < INT32_MIN || v > INT32_MAX) return std::nullopt;
    return static_cast<int>(v);
}

// An error code by number or by librdkafka's name (with or without the ERR_ prefix).
std::optional<rd_kafka_resp_err_t> parse_error(const std::string& s) {
    if (auto n = parse_int(s)) return static_cast<rd_kafka_resp_err_t>(*n);
    const struct rd_kafka_err_desc* descs = nullptr;
    size_t count = 0;
    rd_kafka_get_err_descs(&descs, &count);
    const std::string name = s.rfind("ERR_", 0) == 0 ? s.substr(4) : s;
    for (size_t i = 0; i < count; ++i)
        if (descs[i].name && name == descs[i].name) return descs[i].code;
    return std::nullopt;
}

class Cluster {
public:
    explicit Cluster(int brokers) : brokers_(brokers) {
        char errstr[512];
        rd_kafka_conf_t* conf = rd_kafka_conf_new();
        rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof errstr);
        // The brokers' accepted sockets take their options from this handle (TCP_NODELAY: no
        // 40 ms delayed-ACK stall on loopback responses).
        rd_kafka_conf_set(conf, "socket.nagle.disable", "true", errstr, sizeof errstr);
        handle_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
        if (!handle_) {
            rd_kafka_conf_destroy(conf);
            throw std::runtime_error(std::string("cannot create the hosting handle: ") + errstr);
        }
        cluster_ = rd_kafka_mock_cluster_new(handle_, brokers);
        if (!cluster_) {
            rd_kafka_destroy(handle_);
            throw std::runtime_error("rd_kafka_mock_cluster_new failed");
        }
    }
    ~Cluster() {
        rd_kafka_mock_cluster_destroy(cluster_);
        rd_kafka_destroy(handle_);
    }
    Cluster(const Cluster&) = delete;
    Cluster& operator=(const Cluster&) = delete;

    std::string bootstraps() const { return rd_kafka_mock_cluster_bootstraps(cluster_); }
    int brokers() const { return brokers_; }
    rd_kafka_mock_cluster_t* get() const { return cluster_; }

private:
    int brokers_;
    rd_kafka_t* handle_ = nullptr;
    rd_kafka_mock_cluster_t* cluster_ = nullptr;
};

// Runs one command line. Returns false on quit. Problems are reported on stderr.
bool run_command(Cluster& cluster, const std::string& line, bool quiet) {
    std::istringstream in(line);
    std::string cmd;
    if (!(in >> cmd)) return true;  // blank line
    std::string a, b, extra;
    in >> a >> b >> extra;
    // Reports a bad command and keeps the cluster running (returns run_command's "go on").
    auto fail = [&](const std::string& why) {
        std::cerr << "mock-kafka: " << cmd << ": " << why << std::endl;
        return true;
    };
    auto ack = [&](const std::string& what) {
        if (!quiet) std::cerr << "mock-kafka: " << what << std::endl;
    };
    auto broker = [&](const std::string& s) -> std::optional<int> {
        auto id = parse_int(s);
        if (!id || *id < 1 || *id > cluster.brokers()) {
            (void)fail("broker id must be 1.." + std::to_string(cluster.brokers()) + ", got '" + s + "'");
            return std::nullopt;
        }
        return id;
    };

    if (cmd == "quit" || cmd == "exit") return false;
    if (cmd == "down" || cmd == "up") {
        if (!b.empty()) return fail("expects one broker id");
        auto id = broker(a);
        if (!id) return true;
        const rd_kafka_resp_err_t err = cmd == "down" ? rd_kafka_mock_broker_set_down(cluster.get(), *id)
                                                      : rd_kafka_mock_broker_set_up(cluster.get(), *id);
        if (err) return fail(rd_kafka_err2str(err));
        ack("broker " + std::to_string(*id) + " " + cmd);
    } else if (cmd == "downall" || cmd == "upall") {
        if (!a.empty()) return fail("takes no argument");
        for (int id = 1; id <= cluster.brokers(); ++id) {
            if (cmd == "downall") rd_kafka_mock_broker_set_down(cluster.get(), id);
            else rd_kafka_mock_broker_set_up(cluster.get(), id);
        }
        ack(std::string("all brokers ") + (cmd == "downall" ? "down" : "up"));
    } else if (cmd == "rtt") {
        auto id = broker(a);
        if (!id) return true;
        auto ms = parse_int(b);
        if (!ms || *ms < 0 || !extra.empty()) return fail("usage: rtt BROKER MS");
        rd_kafka_mock_broker_set_rtt(cluster.get(), *id, *ms);
        ack("broker " + std::to_string(*id) + " rtt " + std::to_string(*ms) + " ms");
    } else if (cmd == "error") {
        auto code = parse_error(b);
        if (a.empty() || !code || !extra.empty()) return fail("usage: error TOPIC CODE (number or error name)");
        rd_kafka_mock_topic_set_error(cluster.get(), a.c_str(), *code);
        ack("topic " + a + " metadata error " + rd_kafka_err2name(*code));
    } else if (cmd == "produce-error") {
        auto code = parse_error(a);
        auto count = b.empty() ? std::optional<int>(1) : parse_int(b);
        if (!code || !count || *count < 1 || !extra.empty())
            return fail("usage: produce-error CODE [COUNT]");
        for (int i = 0; i < *count; ++i)
            rd_kafka_mock_push_request_errors(cluster.get(), 0 /* Produce */, 1, *code);
        ack("next " + std::to_string(*count) + " Produce request(s) fail with " + rd_kafka_err2name(*code));
    } else {
        return fail("unknown command (down N|up N|downall|upall|rtt N MS|error TOPIC CODE|produce-error CODE [COUNT]|quit)");
    }
    return true;
}

}  // namespace

int main(int argc, char** argv) {
    Options opt;
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        if (arg == "-h" || arg == "--help") {
            std::cout << kUsage;
            return 0;
        } else if (arg == "--brokers" && i + 1 < argc) {
            auto n = parse_int(argv[++i]);
            if (!n || *n < 1 || *n > 64) {
                std::cerr << "mock-kafka: --brokers must be 1..64, got '" << argv[i] << "'\n";
                return 2;
            }
            opt.brokers = *n;
        } else if (arg == "--port") {
            std::cerr << "mock-kafka: --port is not supported: librdkafka 2.0.2's mock cluster has no API to "
                         "choose listener ports (they are ephemeral; read the bootstrap.servers line)\n";
            return 2;
        } else if (arg == "--exit-on-eof") {
            opt.exit_on_eof = true;
        } else if (arg == "--quiet") {
            opt.quiet = true;
        } else {
            std::cerr << "mock-kafka: unknown argument '" << arg << "'\n" << kUsage;
            return 2;
        }
    }

    struct sigaction sa {};
    sa.sa_handler = on_signal;  // no SA_RESTART: poll() returns EINTR
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, nullptr);
    sigaction(SIGINT, &sa, nullptr);
    std::signal(SIGPIPE, SIG_IGN);

    try {
        Cluster cluster(opt.brokers);
        std::cout << "bootstrap.servers=" << cluster.bootstraps() << std::endl;

        bool stdin_open = true;
        std::string pending;
        while (!g_signal) {
            struct pollfd pfd {STDIN_FILENO, POLLIN, 0};
            // A bounded wait so a signal that lands between the check and poll() is seen soon.
            const int ready = poll(&pfd, stdin_open ? 1 : 0, 250);
            if (ready < 0 && errno != EINTR) {
                std::cerr << "mock-kafka: poll: " << std::strerror(errno) << "\n";
                return 1;
            }
            if (ready <= 0 || !stdin_open) continue;
            char buf[4096];
            const ssize_t n = read(STDIN_FILENO, buf, sizeof buf);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) {
                if (!pending.empty() && !run_command(cluster, pending, opt.quiet)) return 0;
                if (opt.exit_on_eof) return 0;
                stdin_open = false;
                continue;
            }
            pending.append(buf, static_cast<size_t>(n));
            for (size_t eol; (eol = pending.find('\n')) != std::string::npos;) {
                const std::string line = pending.substr(0, eol);
                pending.erase(0, eol + 1);
                if (!run_command(cluster, line, opt.quiet)) return 0;
            }
        }
        if (!opt.quiet) std::cerr << "mock-kafka: " << strsignal(g_signal) << ", shutting down" << std::endl;
    } catch (const std::exception& e) {
        std::cerr << "mock-kafka: " << e.what() << "\n";
        return 1;
    }
    return 0;
}
