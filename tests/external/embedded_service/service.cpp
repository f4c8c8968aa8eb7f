// order-service: a C++ service that publishes its events through the embedded engine.
//
//   order-service <pipeline file> <pipeline name>
//
// It reads commands on stdin and answers each with one line on stdout, so a test can drive it:
//   publish N   N rounds of one event for each of 5 customers, one publish() at a time (a key's
//               next event only after its previous one was accepted)
//   batch N     one publish() of N events, customers in turn
//   drain       wait (at most 60 s) until the outbox holds nothing
//   quit        stop the engine and exit
// Every event carries {"customer": ..., "seq": n} with n counting up per customer from 1.
#include <spillway/engine.hpp>

#include <algorithm>
#include <chrono>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

constexpr int kCustomers = 5;

struct Counts {
    int direct = 0, outbox = 0, refused = 0, retried = 0;
    void add(const spillway::embed::Outcome& o) {
        if (o.path == spillway::embed::Path::direct) ++direct;
        else if (o.path == spillway::embed::Path::outbox) ++outbox;
        else ++refused;
    }
    std::string line() const {
        std::ostringstream s;
        s << "direct=" << direct << " outbox=" << outbox << " refused=" << refused << " retried=" << retried;
        return s.str();
    }
};

class Orders {
public:
    explicit Orders(spillway::embed::Pipeline& pipeline) : pipeline_(pipeline) {}

    spillway::embed::Event next(int customer) {
        const std::string key = "customer-" + std::to_string(customer);
        spillway::embed::Event e;
        e.key = key;
        e.payload = R"({"customer":")" + key + R"(","seq":)" + std::to_string(++seq_[key]) + "}";
        e.event_type = "OrderPlaced";
        e.headers = {{"service", "order-service"}};
        return e;
    }

    // One event at a time. A refusal that passes (the outbox unreachable for a moment) is retried
    // with the same event_id, so a consumer can tell a retry from a new event.
    void publish(int rounds, Counts& counts) {
        for (int r = 0; r < rounds; ++r) {
            for (int c = 0; c < kCustomers; ++c) {
                spillway::embed::Event e = next(c);
                for (int attempt = 0;; ++attempt) {
                    spillway::embed::Event copy = e;
                    spillway::embed::Outcome o = pipeline_.publish(std::move(copy));
                    if (o.retryable() && attempt < 20) {
                        e.event_id = o.event_id;
                        ++counts.retried;
                        std::this_thread::sleep_for(std::chrono::milliseconds(50 << std::min(attempt, 4)));
                        continue;
                    }
                    if (!o.accepted())
                        std::cerr << "refused: " << spillway::embed::to_string(o.reason) << ": " << o.message << "\n";
                    counts.add(o);
                    break;
                }
            }
        }
    }

    void batch(int n, Counts& counts) {
        std::vector<spillway::embed::Event> events;
        for (int i = 0; i < n; ++i) events.push_back(next(i % kCustomers));
        for (const auto& o : pipeline_.publish(std::move(events))) {
            if (!o.accepted())
                std::cerr << "refused: " << spillway::embed::to_string(o.reason) << ": " << o.message << "\n";
            counts.add(o);
        }
    }

private:
    spillway::embed::Pipeline& pipeline_;
    std::map<std::string, int> seq_;
};

}  // namespace

int main(int argc, char** argv) {
    if (argc != 3) {
        std::cerr << "usage: order-service <pipeline file> <pipeline name>\n";
        return 2;
    }
    try {
        spillway::embed::Options options;
        options.environment = "testing";
        spillway::embed::Engine engine(argv[1], options);
        spillway::embed::Pipeline& pipeline = engine.pipeline(argv[2]);
        std::cout << "ready spillway=" << spillway::embed::Engine::version() << " pipeline=" << pipeline.name()
                  << " http_port=" << engine.http_port() << std::endl;
        Orders orders(pipeline);
        for (std::string line; std::getline(std::cin, line);) {
            std::istringstream words(line);
            std::string command;
            int n = 0;
            words >> command >> n;
            Counts counts;
            if (command == "publish") {
                orders.publish(n, counts);
                std::cout << "published " << counts.line() << std::endl;
            } else if (command == "batch") {
                orders.batch(n, counts);
                std::cout << "published " << counts.line() << std::endl;
            } else if (command == "drain") {
                const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
                int64_t pending = pipeline.pending();
                while (pending != 0 && std::chrono::steady_clock::now() < deadline) {
                    std::this_thread::sleep_for(std::chrono::milliseconds(50));
                    pending = pipeline.pending();
                }
                std::cout << (pending == 0 ? "drained" : "pending " + std::to_string(pending)) << std::endl;
            } else if (command == "quit") {
                engine.stop();
                // After stop() the pipeline still answers, with a refusal that says why.
                spillway::embed::Outcome late = pipeline.publish(orders.next(0));
                std::cout << "stopped late=" << spillway::embed::to_string(late.reason) << std::endl;
                return 0;
            } else {
                std::cout << "unknown command: " << line << std::endl;
            }
        }
        return 0;
    } catch (const spillway::embed::Error& e) {
        std::cerr << "order-service: " << e.what() << "\n";
        return 1;
    }
}
