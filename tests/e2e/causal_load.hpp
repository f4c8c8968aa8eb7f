// The engine as a user runs it (`spillway run` as a child process, publishing over HTTP), and a
// causally sequenced load against it: each key's next event is published only once the previous
// one was accepted, which is what per-key order is owed to. Restarts and crashes happen under the
// load; whatever was accepted must reach Kafka, in order per key.
#pragma once

#include "pipeline_harness.hpp"

#include <spillway/test_support/child_process.hpp>

#include <atomic>
#include <memory>
#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace httplib {
class Client;
}

namespace spillway::e2e {

// `spillway run` on a pipeline file written by pipeline_toml(), with the HTTP listener on a fixed
// port so that a restarted engine answers where its predecessor did.
class EngineProcess {
public:
    // `sqlite_path`: the outbox file (default <dir>/outbox.db), for engines that share one.
    // `env`: "NAME=value" for the engine's environment (SPILLWAY_MEMBER_ID, ...).
    EngineProcess(const std::string& dir, const HarnessOptions& options, const std::string& bootstraps,
                  const std::string& topic, const std::string& sqlite_path = {}, std::vector<std::string> env = {});
    ~EngineProcess();

    // Spawns the engine and waits until /readyz answers 200; returns false (log in log_tail())
    // when it does not within the deadline.
    bool start(std::chrono::milliseconds deadline = std::chrono::seconds(30));
    // Spawns the engine expecting it to refuse to start: how it exited ("exited with status 3"),
    // or "running" when it was still up at the deadline (then it is killed).
    std::string start_refused(std::chrono::milliseconds deadline = std::chrono::seconds(30));
    void kill();                        // SIGKILL, reaped
    bool stop();                        // SIGTERM within 20 s; true on a clean exit
    bool running() { return child_ && child_->running(); }
    // Starts the engine through `launcher` (an executable that runs the program and arguments it is
    // given, e.g. in another network namespace) instead of running spillway directly.
    void set_launcher(std::string launcher) { binary_ = std::move(launcher); }
    pid_t pid() const { return child_ ? child_->pid() : -1; }
    const std::string& base_url() const { return base_url_; }
    int port() const { return port_; }
    std::string log_tail(size_t lines = 40) const;

private:
    std::string config_path_, log_path_, base_url_;
    std::string binary_ = SPILLWAY_BIN;
    std::vector<std::string> env_;
    int port_ = 0;
    std::optional<test_support::ChildProcess> child_;
};

// Publishes `events_per_key` events for each of `keys` keys (named "<prefix><i>") over HTTP, from
// `threads` threads that each own some keys; a key's next event goes out only after the previous
// one was accepted (202). A refused or unanswered publish (the engine down or restarting) is tried
// again as a new event after a short pause: it was not accepted, so nothing is owed for it.
class CausalLoad {
public:
    struct Options {
        std::string prefix = "k";
        int keys = 16;
        int events_per_key = 100;
        int threads = 4;
        std::chrono::milliseconds pause{0};  // between one key's events (0: as fast as accepted)
        // Every keyless_every-th publish of a thread is an event without a key (5: 20% keyless),
        // besides the keys' events; such events are owed delivery but no order. 0: none.
        int keyless_every = 0;
    };
    CausalLoad(std::string base_url, Options options);
    // Replicas: a key's next event always goes to another engine than its previous one (the next
    // in the list), as a load balancer without affinity may send it.
    CausalLoad(std::vector<std::string> base_urls, Options options);
    ~CausalLoad();

    void start();
    void stop();      // stops early (the events not yet published are not)
    void wait_done(); // until every key published all its events, or stop()
    bool done() const { return finished_.load() == options_.threads; }

    // (event_id, key) in accept order per key (keys interleave arbitrarily); key "" for keyless events.
    std::vector<std::pair<std::string, std::string>> accepted() const;
    size_t accepted_count() const { return n_accepted_.load(); }
    size_t failed_calls() const { return n_failed_.load(); }
    size_t keyless_accepted() const { return n_keyless_.load(); }
    // Refused calls (an answer other than 202) and calls without an answer (connection error or
    // timeout), per replica in the order of the constructor's list.
    std::vector<size_t> refused_by_replica() const;
    std::vector<size_t> unanswered_by_replica() const;
    // Accepted events per replica by how the engine made them durable: "direct", "outbox/sticky",
    // "outbox/circuit", ... (the answer's path and reason), "keyless direct", ... for keyless events.
    std::vector<std::map<std::string, size_t>> accepted_paths() const;
    // The longest publish call that got an answer, and when it started (steady clock).
    std::chrono::microseconds slowest_call() const;
    // The longest of the answered calls that started in [from, until].
    std::chrono::microseconds slowest_call_between(std::chrono::steady_clock::time_point from,
                                                   std::chrono::steady_clock::time_point until) const;

private:
    void run(int thread);
    httplib::Client& client_for(std::vector<std::unique_ptr<httplib::Client>>& clients, size_t replica);
    void publish_keyless(std::vector<std::unique_ptr<httplib::Client>>& clients, size_t n);
    static std::optional<std::string> accepted_id(int status, const std::string& body, std::string& path);

    std::vector<std::string> base_urls_;
    Options options_;
    std::vector<std::thread> threads_;
    std::atomic<bool> stopping_{false};
    std::atomic<int> finished_{0};
    std::atomic<size_t> n_accepted_{0}, n_failed_{0}, n_keyless_{0};
    std::vector<size_t> refused_, unanswered_;  // per replica, under mutex_
    std::vector<std::map<std::string, size_t>> paths_;
    mutable std::mutex mutex_;
    std::vector<std::pair<std::string, std::string>> accepted_;
    struct Call {
        std::chrono::steady_clock::time_point started;
        std::chrono::microseconds took;
    };
    std::vector<Call> calls_;  // answered calls
};

}  // namespace spillway::e2e
