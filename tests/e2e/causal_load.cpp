#include "causal_load.hpp"

#include <spillway/test_support/ports.hpp>
#include <spillway/test_support/spillway_run.hpp>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <fstream>

namespace spillway::e2e {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

EngineProcess::EngineProcess(const std::string& dir, const HarnessOptions& options, const std::string& bootstraps,
                             const std::string& topic, const std::string& sqlite_path, std::vector<std::string> env)
    : config_path_(dir + "/pipeline.toml"), log_path_(dir + "/run.log"), env_(std::move(env)) {
    port_ = test_support::free_port();
    base_url_ = "http://127.0.0.1:" + std::to_string(port_);
    HarnessOptions o = options;
    o.extra_engine += "http_listen = \"127.0.0.1:" + std::to_string(port_) + "\"\n";
    std::ofstream(config_path_) << pipeline_toml(o, bootstraps, sqlite_path.empty() ? dir + "/outbox.db" : sqlite_path,
                                                 topic);
}

EngineProcess::~EngineProcess() { kill(); }

bool EngineProcess::start(std::chrono::milliseconds deadline) {
    child_.emplace(test_support::spawn_spillway_run(
        {.binary = binary_, .config_path = config_path_, .log_path = log_path_, .env = env_}));
    return test_support::wait_ready(*child_, "127.0.0.1", port_, deadline);
}

std::string EngineProcess::start_refused(std::chrono::milliseconds deadline) {
    child_.emplace(test_support::spawn_spillway_run(
        {.binary = binary_, .config_path = config_path_, .log_path = log_path_, .env = env_}));
    child_->wait_exit(deadline);
    const std::string how = child_->describe_exit();
    kill();
    return how;
}

void EngineProcess::kill() {
    if (!child_) return;
    child_->signal(SIGKILL);
    child_->wait_exit(10s);
    child_.reset();
}

bool EngineProcess::stop() {
    if (!child_) return true;
    const bool clean = child_->stop(SIGTERM, 20s) && child_->exited_ok();
    child_.reset();
    return clean;
}

std::string EngineProcess::log_tail(size_t lines) const { return test_support::file_tail(log_path_, lines); }

CausalLoad::CausalLoad(std::string base_url, Options options)
    : base_urls_{std::move(base_url)}, options_(options), refused_(1), unanswered_(1), paths_(1) {}

CausalLoad::CausalLoad(std::vector<std::string> base_urls, Options options)
    : base_urls_(std::move(base_urls)), options_(options), refused_(base_urls_.size()), unanswered_(base_urls_.size()),
      paths_(base_urls_.size()) {}

CausalLoad::~CausalLoad() { stop(); }

void CausalLoad::start() {
    for (int t = 0; t < options_.threads; ++t) threads_.emplace_back([this, t] { run(t); });
}

void CausalLoad::stop() {
    stopping_ = true;
    wait_done();
}

void CausalLoad::wait_done() {
    for (auto& t : threads_)
        if (t.joinable()) t.join();
    threads_.clear();
}

void CausalLoad::run(int thread) {
    // This thread's keys, each with the sequence number of its next event.
    std::vector<std::pair<std::string, int>> keys;
    for (int k = thread; k < options_.keys; k += options_.threads) keys.emplace_back(options_.prefix + std::to_string(k), 0);
    std::vector<std::unique_ptr<httplib::Client>> clients(base_urls_.size());  // one per replica
    std::vector<size_t> attempts(keys.size());                                  // per key
    size_t turn = 0;
    size_t publishes = 0;  // this thread's, for the share of keyless events
    while (!stopping_) {
        if (options_.keyless_every > 0 && ++publishes % options_.keyless_every == 0) {
            publish_keyless(clients, publishes);
            continue;
        }
        // The next key that still has events to publish, round robin.
        size_t left = 0;
        for (const auto& [_, seq] : keys) left += seq < options_.events_per_key;
        if (left == 0) break;
        while (keys[turn % keys.size()].second >= options_.events_per_key) ++turn;
        const size_t k = turn++ % keys.size();
        auto& [key, seq] = keys[k];
        // Each attempt goes to the next replica: a key's next event never where its previous went.
        const size_t replica = (k + attempts[k]++) % base_urls_.size();
        auto& client = clients[replica];
        client_for(clients, replica);
        const std::string body = nlohmann::json{{"key", key}, {"payload", {{"key", key}, {"seq", seq}}}}.dump();
        const auto started = Clock::now();
        auto res = client->Post("/v1/pipelines/orders/events", body, "application/json");
        const auto took = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - started);
        std::string path;
        const std::optional<std::string> event_id = accepted_id(res ? res->status : 0, res ? res->body : "", path);
        {
            std::lock_guard lock(mutex_);
            if (res) calls_.push_back({started, took});
            if (event_id && !event_id->empty()) {
                accepted_.emplace_back(*event_id, key);
                ++paths_[replica][path];
            } else if (res) {
                ++refused_[replica];
            } else {
                ++unanswered_[replica];
            }
        }
        if (event_id && !event_id->empty()) {
            ++seq;
            ++n_accepted_;
            if (options_.pause.count()) std::this_thread::sleep_for(options_.pause);  // pacing, not waiting for state
        } else {
            // Down, restarting or refusing: not accepted, so the same key goes again later.
            ++n_failed_;
            if (!res) client.reset();
            std::this_thread::sleep_for(5ms);  // pacing the retries of a client with nothing to do
        }
    }
    ++finished_;
}

// The event id of a 202 for one event, and how it was made durable ("direct", "outbox/sticky").
std::optional<std::string> CausalLoad::accepted_id(int status, const std::string& body, std::string& path) {
    if (status != 202) return std::nullopt;
    const auto j = nlohmann::json::parse(body, nullptr, false);
    if (j.is_discarded() || !j.contains("results") || j["results"].size() != 1) return std::nullopt;
    const auto& r = j["results"][0];
    path = r.value("path", std::string("?"));
    if (r.contains("reason")) path += "/" + r.value("reason", std::string());
    return r.value("event_id", std::string());
}

std::vector<std::map<std::string, size_t>> CausalLoad::accepted_paths() const {
    std::lock_guard lock(mutex_);
    return paths_;
}

httplib::Client& CausalLoad::client_for(std::vector<std::unique_ptr<httplib::Client>>& clients, size_t replica) {
    auto& client = clients[replica];
    if (!client) {
        client = std::make_unique<httplib::Client>(base_urls_[replica]);
        client->set_connection_timeout(1s);
        client->set_read_timeout(60s);
        client->set_keep_alive(true);
    }
    return *client;
}

void CausalLoad::publish_keyless(std::vector<std::unique_ptr<httplib::Client>>& clients, size_t n) {
    // Owed delivery, not order: a refused one is not tried again.
    const size_t replica = n % base_urls_.size();
    const std::string body = nlohmann::json{{"payload", {{"keyless", n}}}}.dump();
    auto res = client_for(clients, replica).Post("/v1/pipelines/orders/events", body, "application/json");
    std::string path;
    const std::optional<std::string> event_id = accepted_id(res ? res->status : 0, res ? res->body : "", path);
    std::lock_guard lock(mutex_);
    if (event_id && !event_id->empty()) {
        accepted_.emplace_back(*event_id, "");
        ++paths_[replica]["keyless " + path];
        ++n_accepted_;
        ++n_keyless_;
        return;
    }
    ++n_failed_;
    if (res) ++refused_[replica];
    else {
        ++unanswered_[replica];
        clients[replica].reset();
    }
}

std::vector<size_t> CausalLoad::refused_by_replica() const {
    std::lock_guard lock(mutex_);
    return refused_;
}

std::vector<size_t> CausalLoad::unanswered_by_replica() const {
    std::lock_guard lock(mutex_);
    return unanswered_;
}

std::vector<std::pair<std::string, std::string>> CausalLoad::accepted() const {
    std::lock_guard lock(mutex_);
    return accepted_;
}

std::chrono::microseconds CausalLoad::slowest_call() const {
    return slowest_call_between(Clock::time_point::min(), Clock::time_point::max());
}

std::chrono::microseconds CausalLoad::slowest_call_between(Clock::time_point from, Clock::time_point until) const {
    std::lock_guard lock(mutex_);
    std::chrono::microseconds most{0};
    for (const Call& c : calls_)
        if (c.started >= from && c.started <= until) most = std::max(most, c.took);
    return most;
}

}  // namespace spillway::e2e
