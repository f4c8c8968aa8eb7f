// The engine as a user runs it (`spillway run` as a child process, publishing over HTTP), and a
// causally sequenced load against it: each key's next event is published only once the previous
// one was accepted, which is what per-key order is owed to. Restarts and crashes happen under the
// load; whatever was accepted must reach Kafka, in order per key.
#pragma once

#include "pipeline_harness.hpp"

#include <spillway/test_support/child_process.hpp>

#include <atomic>
#include <chrono>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

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
    pid_t pid() const { return child_ ? child_->pid() : -1; }
    const std::string& base_url() const { return base_url_; }
    int port() const { return port_; }
    std::string log_tail(size_t lines = 40) const;

private:
    std::string config_path_, log_path_, base_url_;
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

    // (event_id, key) in accept order per key (keys interleave arbitrarily).
    std::vector<std::pair<std::string, std::string>> accepted() const;
    size_t accepted_count() const { return n_accepted_.load(); }
    size_t failed_calls() const { return n_failed_.load(); }
    // The longest publish call that got an answer, and when it started (steady clock).
    std::chrono::microseconds slowest_call() const;
    // The longest of the answered calls that started in [from, until].
    std::chrono::microseconds slowest_call_between(std::chrono::steady_clock::time_point from,
                                                   std::chrono::steady_clock::time_point until) const;

private:
    void run(int thread);

    std::vector<std::string> base_urls_;
    Options options_;
    std::vector<std::thread> threads_;
    std::atomic<bool> stopping_{false};
    std::atomic<int> finished_{0};
    std::atomic<size_t> n_accepted_{0}, n_failed_{0};
    mutable std::mutex mutex_;
    std::vector<std::pair<std::string, std::string>> accepted_;
    struct Call {
        std::chrono::steady_clock::time_point started;
        std::chrono::microseconds took;
    };
    std::vector<Call> calls_;  // answered calls
};

}  // namespace spillway::e2e
