// coordination = "shards": N engines relay one pipeline of one PostgreSQL outbox, each the rows of
// the shards it owns (../shared/design/SCALE-OUT.md §3).
//
// A row's shard is spillway_shard(key, id): the first byte of md5(key), or id % 256 for a keyless
// row, stored in the row's spillway_shard column (the engine's INSERT writes it, a trigger fills it
// for the rows applications insert). Each shard of a pipeline is a row of
// <table>_shards with an owner, an epoch that rises with every new owner (the fencing token) and
// an expiry on the database's clock. Only a conditional UPDATE gives a shard an owner: one that is
// free or expired. Each engine is a row of <table>_members, renewed by a heartbeat, and holds a
// session advisory lock on its own dedicated connection: another member that can take that lock
// knows the engine's session is gone (a crash), and expires its shards at once instead of waiting
// out the lease.
//
// Every heartbeat: renew the member, the owned shards (by epoch) and this engine's row leases;
// find the live members; take over the shards of members whose session is gone; compute the target
// owner of every shard by rendezvous hashing over the live members whose sink works; give away
// what is no longer ours once its rows in flight are settled (drain, then release); take what is
// ours and free. Disagreement about membership only delays convergence: the UPDATE decides.
//
// A claim may use a shard only while its local deadline (the renewal's send time + ttl - epsilon,
// on the monotonic clock) is more than claim_guard away, and the claim's SQL checks the same on
// the database clock. A paused engine whose shards expired sends what it had in flight, which
// the next owner sends again: duplicates, never a reorder of a key (SCALE-OUT.md §3.5).
#ifndef SPILLWAY_PLUGINS_POSTGRES_SHARD_COORDINATOR_HPP
#define SPILLWAY_PLUGINS_POSTGRES_SHARD_COORDINATOR_HPP

#include "peer_wake.hpp"

#include <pg-common/conninfo.hpp>
#include <spillway/sdk.hpp>

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace spillway::plugins::postgres {

struct ShardTables {
    std::string outbox;        // quoted, as the store's SQL names it
    std::string shards;        // <table>_shards
    std::string members;       // <table>_members
    std::string leases;        // <table>_leases
    std::string shard_of_row;  // the SQL of a row's shard, of alias r
    std::string row_id;        // the quoted id column
    std::string handoff_lock;  // the advisory lock key claims hold shared and a release exclusively
    std::string pending_rows;  // the SQL condition "row r is a pending row of pipeline $1"
};

struct ShardTimings {
    int64_t heartbeat_ms = 1000;
    int64_t ttl_ms = 10000;
    int64_t claim_guard_ms = 6000;
    int64_t epsilon_ms = 500;
};

class ShardCoordinator {
public:
    static constexpr int kShards = 256;

    // `db_clock_offset_us`: where each heartbeat writes the database clock minus this host's
    // (unix microseconds), measured around the renewal's round trip.
    ShardCoordinator(const pg::Conninfo& conninfo, ShardTables tables, std::string pipeline, std::string member,
                     std::string lease_owner, ShardTimings timings, sdk::Host host,
                     std::atomic<int64_t>& db_clock_offset_us);
    ~ShardCoordinator();
    ShardCoordinator(const ShardCoordinator&) = delete;
    ShardCoordinator& operator=(const ShardCoordinator&) = delete;

    // Connects, registers the member and runs the first heartbeat; then heartbeats on a thread of
    // its own. Throws sdk::Error: SW_REJECT when a live engine already uses this member id,
    // SW_RETRY when the database cannot be reached.
    void start();
    // Graceful: stops claiming, gives back every shard once its rows in flight are settled (at
    // most timeout_ms), and leaves the members.
    void stop(int64_t timeout_ms);

    // The shards a claim may read now, "{1,7,...}" (a smallint[] literal), or "" when none. Reads
    // the snapshot the heartbeat publishes, never waiting on a heartbeat's database calls.
    // `fenced`: how many owned shards were left out because their lease ends within claim_guard
    // (the heartbeats are late: the database is slow or out of reach).
    std::string claimable(int* fenced = nullptr) const;
    const std::string& member() const { return member_; }
    const std::string& pipeline() const { return pipeline_; }
    int64_t claim_guard_ms() const { return timings_.claim_guard_ms; }
    int64_t ttl_ms() const { return timings_.ttl_ms; }
    // The sink's health as the engine last told it. A sink down for longer than two shard leases
    // (a blip is not worth a rebalance) makes the heartbeat say sink_ok = false: then this member
    // gets no shards while another member's sink works, and gives back what it has.
    void sink_state(bool down);
    // A claim of this member filled its batch: a backlog drains. The owned-backlog count, a scan
    // of every pending row of the owned shards (1.5 s of the server's time at 300,000 rows while
    // three engines drain them), waits for the drain's end, or 30 s.
    void draining();

    // Members, owners, epochs and deadlines, as one JSON object (GET /v1/pipelines/{name}/shards).
    std::string json();

private:
    struct Owned {
        int64_t epoch = 0;
        int64_t deadline_us = 0;  // monotonic: the local end of the lease
        bool giving = false;      // being handed over: no more claims
    };
    struct Member {
        std::string id;
        bool sink_ok = true;
    };

    void connect();  // (re)opens the session, takes the member lock, registers
    void heartbeat_loop();
    void tick();
    bool sink_ok_now();
    void renew(int64_t sent_us);
    std::vector<Member> live_members();
    void take_over_dead(const std::vector<Member>& live);
    void free_dead_member(const std::string& member);  // its shards expire, its leases and row go
    std::array<int, kShards> targets(const std::vector<Member>& live) const;  // index into live, -1: none
    void give_away(const std::array<int, kShards>& target, const std::vector<Member>& live, bool all);
    void acquire(const std::array<int, kShards>& target, const std::vector<Member>& live);
    std::vector<int> busy_shards();
    void lose_everything(const std::string& why);
    void count_owned_backlog();  // the gauge outbox_pending{scope="owned"}, every few seconds
    void publish_claimable();  // owned_ as claims may see it; called with mutex_ held
    void metric(const char* name, double v, const char* extra = nullptr);

    const pg::Conninfo& conninfo_;
    const ShardTables t_;
    const std::string pipeline_, member_, lease_owner_;
    const ShardTimings timings_;
    sdk::Host host_;
    std::atomic<int64_t>& db_clock_offset_us_;
    std::string incarnation_;
    std::atomic<bool> sink_ok_{true};
    std::atomic<int64_t> sink_down_since_us_{0};  // monotonic; 0 while the sink works

    mutable std::mutex mutex_;  // owned_ and the session
    std::condition_variable wake_;
    bool stopping_ = false;
    bool poked_ = false;  // another member handed its shards back: a heartbeat now
    PGconn* session_ = nullptr;
    std::array<Owned, kShards> owned_{};  // epoch 0: not owned
    // Shards held when the session broke, until a reconnect tells which it took back (the rest
    // count as lost: coord_shard_lost_total).
    std::array<bool, kShards> held_when_broken_{};
    std::thread thread_;
    std::unique_ptr<PeerWake> peers_;  // pokes this member when another hands its shards back
    int64_t next_backlog_count_us_ = 0;  // monotonic
    int64_t last_backlog_count_us_ = 0;  // monotonic
    std::atomic<int64_t> drained_at_us_{0};  // monotonic: the last claim that filled its batch

    // What claimable() reads: each shard's local deadline, 0 when a claim may not use it (not
    // owned, or being given away). Its own mutex, held only to copy: a heartbeat holds mutex_ for
    // its database round trips, which must not stall the relay's claims.
    mutable std::mutex claimable_mutex_;
    std::array<int64_t, kShards> claimable_until_{};
};

}  // namespace spillway::plugins::postgres

#endif
