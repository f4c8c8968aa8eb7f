// What the coordination = "shards" tests share: a cluster of `spillway run` engines on one
// throwaway PostgreSQL database and one mock Kafka, each engine with its own member id, HTTP port
// and database role (so one can be cut off the database); the paced load that runs through a
// fault; rows an application inserts into the outbox by SQL; and a network namespace of its own
// for an engine that must lose Kafka while the others keep it.
#pragma once

#include "causal_load.hpp"

#include <atomic>
#include <chrono>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace spillway::e2e {

inline constexpr int kShards = 256;

struct Cluster {
    // A database "shards_<name>_<pid>" owned by a role that every member's login role acts as, so
    // each member can run the schema's DDL on tables another created.
    Cluster(const std::string& name, const std::string& mode);

    // `bootstraps`: where this engine looks for Kafka (default: the cluster everyone uses). Creates
    // the member's login role; the engine connects as it.
    EngineProcess& add(const std::string& member, const std::string& bootstraps = {});
    // r1, r2 and r3 started, and every shard owned by one of them.
    bool start_three();
    std::vector<std::string> urls();
    // Live owners and how many shards each holds now (the database's view).
    std::map<std::string, int> owners();
    // Every shard owned, by exactly the members in `want`.
    bool owned_by(std::initializer_list<std::string> want);
    std::string log_tails();

    // The database role `member` logs in as.
    std::string role(const std::string& member) const { return db + "_" + member; }
    // Revokes the member's login and ends its sessions: it can neither stay nor come back.
    void cut_off_database(const std::string& member);
    void restore_database(const std::string& member);  // LOGIN again
    int sessions_of(const std::string& member);         // its connections the server has now
    // The pgnotify trigger, so rows inserted by SQL ring the relays' doorbell (run once the engines
    // have created the table).
    void install_ring_trigger();

    std::string db;
    std::string owner_role;
    HarnessOptions options;
    test_support::MockKafka kafka{1};
    std::string topic = "orders.events";
    std::vector<std::unique_ptr<test_support::TempDir>> dirs;
    std::map<std::string, std::unique_ptr<EngineProcess>> engines;
};

// Keys over six threads, a key's events 5 ms apart at least: a load that goes on through a fault.
CausalLoad::Options paced_load(int keys, int events_per_key);

// An application's outbox-first writes: one row per transaction, INSERTed by SQL from a session of
// its own into the pipeline's outbox table, keys "<prefix><i>" in turn, each key's rows in insert
// order (the order Kafka owes them).
class SqlOutboxWriter {
public:
    SqlOutboxWriter(const Cluster& cluster, int keys, std::chrono::milliseconds pause, std::string prefix = "sql");
    ~SqlOutboxWriter();
    void start();
    void stop();
    // (event_id, key) of the committed rows, in commit order.
    std::vector<std::pair<std::string, std::string>> inserted() const;
    size_t inserted_count() const;

private:
    void run();

    std::string db_, topic_, prefix_;
    int keys_;
    std::chrono::milliseconds pause_;
    std::atomic<bool> stopping_{false};
    std::thread thread_;
    mutable std::mutex mutex_;
    std::vector<std::pair<std::string, std::string>> inserted_;
    std::string error_;
};

// A network namespace of its own for one engine, joined to the test's loopback only by TCP relays
// the test runs: ports forwarded into it (the engine's HTTP listener) and out of it (PostgreSQL,
// the Kafka brokers). Cutting a group of relays closes their listeners and connections, so the
// engine's connects there are refused (what an iptables REJECT with tcp-reset does) while its
// other relays keep working. Needs CAP_SYS_ADMIN; available() says whether it could be made.
class IsolatedNetwork {
public:
    IsolatedNetwork();
    ~IsolatedNetwork();
    IsolatedNetwork(const IsolatedNetwork&) = delete;
    IsolatedNetwork& operator=(const IsolatedNetwork&) = delete;

    bool available() const { return ns_fd_ >= 0; }
    const std::string& why_unavailable() const { return error_; }

    // An executable in `dir` that runs spillway with its arguments inside the namespace.
    std::string launcher(const std::string& dir) const;
    // 127.0.0.1:port of the test's network to 127.0.0.1:port inside (for the engine's listener).
    bool forward_in(int port, const std::string& group);
    // 127.0.0.1:port inside to 127.0.0.1:port of the test's network (for its servers).
    bool forward_out(int port, const std::string& group);
    void cut(const std::string& group);      // listeners closed, connections shut down
    bool restore(const std::string& group);  // listening again
    size_t connections(const std::string& group);

private:
    struct Relay;
    struct Pair;
    bool open_relay(const std::shared_ptr<Relay>& relay);
    void accept_loop(std::shared_ptr<Relay> relay);
    void pump(std::shared_ptr<Pair> pair, bool forward);

    int host_fd_ = -1, ns_fd_ = -1;
    std::string error_;
    std::mutex mutex_;
    std::vector<std::shared_ptr<Relay>> relays_, cut_relays_;
    std::vector<std::shared_ptr<Pair>> pairs_;
    std::vector<std::thread> threads_;
};

// The ports in a "host:port,host:port" bootstrap list.
std::vector<int> bootstrap_ports(const std::string& bootstraps);

}  // namespace spillway::e2e
