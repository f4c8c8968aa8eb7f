// The outbox store both database plugins share: every operation written once, in SQL both
// PostgreSQL and SQLite accept, with the few places where they differ (transactions, how a lease
// is written and read back, id lists, schema DDL, connections) left to a small subclass per database.
//
// Claiming is by state and next_attempt_at, never by an `id > cursor` scan, so a row whose
// transaction commits after a higher id was already claimed is still found. A row is handed out
// only while no earlier pending row of its key is waiting for a retry or leased (to anyone).
#ifndef SPILLWAY_OUTBOX_COMMON_OUTBOX_STORE_HPP
#define SPILLWAY_OUTBOX_COMMON_OUTBOX_STORE_HPP

#include "options.hpp"
#include "statements.hpp"

#include <spillway/sdk.hpp>

#include <soci/soci.h>

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <variant>
#include <vector>

namespace spillway::plugins::outbox {

// `member` with this process's host and pid: how a hold names its engine to another one.
std::string engine_name(std::string_view member);

// A session borrowed for one operation: from a pool, or a single session behind a mutex.
struct Conn {
    soci::session* session = nullptr;
    std::unique_ptr<soci::session> pooled;
    std::unique_lock<std::mutex> lock;
    soci::session& operator*() const { return *session; }
};

// What a claim saw, for the claim_next after it: whether it saw every row up to where it stopped
// that can ever be there. A claim_next after two such claims need not read again the ids between
// their rows, the batches out; after a chain of them, not the ids below either (look_back).
struct ClaimSeen {
    bool whole = false;      // the id horizon was past its cursor, and it held back no row
    long long returned = 0;  // OutboxStore::returned_ when it began
    std::string shards;      // the claimable shards it read (shards mode)
    // The chain this claim ends: the claims since one that read everything below the batches out
    // (or began a drain). Whole, all of them, with the same shards: nothing below can be pending.
    bool chain_whole = false;
    long long chain_returned = 0;  // returned_ when the chain's first claim began
    int64_t chain_from_us = 0;     // when it began (monotonic): the read below comes back each second
};

class OutboxStore : public sdk::Store {
public:
    // `own_options`: the plugin's own option rows (the shared ones are Options'), so that a key
    // neither declares is refused (the stores take undeclared keys for columns.headers.<name>).
    OutboxStore(sdk::Host host, const char* db_name, bool allow_schema, std::span<const sw_option> own_options);

    void start() override;
    void stop(int64_t timeout_ms) override;
    void health(sw_health& out) override;

    void migrate() override;
    void append(std::span<const sw_event> events, std::span<sw_result> out) override;
    std::unique_ptr<sdk::Batch> claim(std::string_view pipeline, size_t limit, int64_t lease_ms) override;
    std::unique_ptr<sdk::Batch> claim_next(const sdk::Batch& prev, size_t limit, int64_t lease_ms) override;
    void complete(std::span<const int64_t> row_ids, std::span<const sw_result> results) override;
    void release_leases(std::span<const int64_t> row_ids) override;
    sdk::Stats stats(std::string_view pipeline) override;
    void pending_keys(std::string_view pipeline, sw_key_visit_fn visit, void* user) override;
    // probe.cpp: one statement over the partial index of pending keys (schema 5 on PostgreSQL).
    void pending_among(std::string_view pipeline, std::span<const sw_bytes> keys, std::span<uint8_t> found) override;
    std::unique_ptr<sdk::Batch> list_dead(std::string_view pipeline, int64_t after_row_id, size_t limit) override;
    int64_t replay_dead(std::string_view pipeline, std::span<const sw_bytes> event_ids) override;
    int64_t purge_dead(std::string_view pipeline, std::span<const sw_bytes> event_ids) override;

    const std::string& lease_owner() const { return owner_; }

protected:
    // --- what each database supplies ---
    virtual void connect() = 0;      // open sessions (start); throw on failure
    virtual void disconnect() = 0;   // close them (stop)
    virtual Conn acquire() = 0;
    virtual const char* begin_write_sql() const = 0;     // "BEGIN" / "BEGIN IMMEDIATE"
    // Whether the session's connection still works, asked before every use. SOCI's is_connected()
    // sends a query to find out (a round trip per store call); a backend that can tell locally
    // overrides this, and a connection that broke since fails its next statement with RETRY and
    // is reconnected on the call after.
    virtual bool alive(soci::session& s) { return s.is_connected(); }
    // A session was just opened or reopened, outside any transaction: session settings go here,
    // where no rollback can undo them.
    virtual void opened(soci::session& s) { (void)s; }
    // `<column> <in_ids(param)>` tests membership in an id list bound as encode_ids().
    virtual std::string in_ids(const std::string& param) const = 0;
    virtual std::string encode_ids(std::span<const long long> ids) const = 0;
    // Begins every transaction that changes leases or settles rows, serialized so that a claim
    // never reads a lease change another transaction is still making.
    virtual std::string begin_lease_change_sql() const = 0;
    // Begins a completion. It need not wait for claims: it only ends leases and settles rows, in
    // one commit, and a claim reading the leases before that commit and the rows after it finds
    // them gone or backed off, never free too early. So a relay's next claim and its last
    // completion can run at once.
    virtual std::string begin_settle_sql() const { return begin_lease_change_sql(); }
    // The same for a completion that takes more than kOneTripRows rows out of the pending state
    // (a backlog's), committed with a flush: see the PostgreSQL store's.
    virtual std::string begin_flushed_settle_sql() const { return begin_settle_sql(); }
    // The statements every claim runs, and their parameters by name.
    // The reads of coordination = "shards" (their rows filtered by the claimable shards) come
    // after kCount: prepared apart, on the connections of sharded claims only.
    enum class Hot {
        kDue, kHead, kLeaseInsert, kLeases, kClaim, kSettle, kCount,
        kShardedHead = kCount, kShardedScan, kShardedScanByShard, kEnd
    };
    using HotArgs = std::vector<std::pair<const char*, std::variant<long long, std::string>>>;
    const std::string& hot_sql(Hot h) const;
    const Statements& statements() const { return statements_; }
    // The text to run `h` by with `args` in it, or "" to run hot_sql(h) with them bound. The
    // PostgreSQL store prepares the hot statements once per connection and answers an EXECUTE:
    // the server neither parses nor plans them again (that was most of a claim's server time).
    virtual std::string statement(soci::session& s, Hot h, const HotArgs& args) {
        (void)s, (void)h, (void)args;
        return {};
    }
    // A claim() in one round trip (PostgreSQL): BEGIN, the claim lock (taken only when a row is
    // due), Hot::kClaim with `args` and COMMIT as one query. Each row of its answer, every column
    // text or null (nullopt). False when this database cannot (then the claim runs statement by
    // statement).
    using TextRows = std::vector<std::vector<std::optional<std::string>>>;
    virtual bool run_one_trip_claim(soci::session& s, const HotArgs& args, TextRows& rows) {
        (void)s, (void)args, (void)rows;
        return false;
    }
    // Whether run_one_trip_claim asks in the same statement whether a row is due, so that an idle
    // poll through it costs no more statements than the due probe: then no probe goes first.
    virtual bool one_trip_claim_gated() const { return false; }
    // Told of every database error a call ends in, before it is answered as RETRY.
    virtual void failed(const std::exception& e) { (void)e; }
    // The time, unix microseconds, that leases, backoffs and published_at are written and compared
    // in. The engine's clock by default; a store whose engines share the rows (coordination =
    // "shards") reads the database's, so that one engine's clock running ahead cannot end another
    // engine's row lease early (SCALE-OUT.md §3.5).
    virtual long long clock_us() const { return host().now_unix_us(); }
    // coordination = "shards" (PostgreSQL): which rows of a pipeline a claim may take. None: all
    // of them (coordination = "single").
    struct ShardFilter {
        std::string shards;          // smallint[] literal of the shards claimable now; "" for none
        std::string member;          // who the claim's SQL checks owns them,
        long long guard_ms = 0;      // and by how much their lease must outlast the database's now
        long long lease_cap_ms = 0;  // row leases last at most this (the heartbeat renews them)
        int fenced = 0;              // owned shards left out: their lease ends too soon for a claim
        // Bounded ranges are read shard by shard (scan_by_shard): worth it while the other members'
        // rows are most of a range, not when this member owns most shards (one index range each).
        bool ranges_by_shard = false;
    };
    virtual std::optional<ShardFilter> shard_filter(const std::string& pipeline) const {
        (void)pipeline;
        return std::nullopt;
    }
    // A backlog's claim of `pipeline` (more than a trickle's rows asked) filled its batch: the
    // backlog drains.
    virtual void draining(const std::string& pipeline) { (void)pipeline; }
    // The SQL condition "this row's shard is claimable" (binding :sp, :sm, :ss, :sg as in
    // ShardFilter), over columns qualified by `q` ("r." or ""); "" when the store has no shards.
    virtual std::string shard_condition(const std::string& q) const {
        (void)q;
        return {};
    }
    // The shards a claim may read (binding :sp, :sm, :ss, :sg), as a query of one column `shard`,
    // and a row's shard over columns qualified by `q`: for reads that go shard by shard.
    virtual std::string claimable_shards_query() const { return {}; }
    // The id horizon: an id up to which every row that will ever be in the table is there now
    // (committed) or never will be (rolled back), at least `want` when the database can tell; 0
    // when it cannot. Asked before a backlog's claim reads. The PostgreSQL store follows the
    // table's sequence and the transactions running when it read it (postgres_store.cpp).
    virtual long long id_horizon(soci::session& s, long long want) {
        (void)s, (void)want;
        return 0;
    }
    virtual std::string shard_of_row(const std::string& q) const {
        (void)q;
        return {};
    }
    // Begins a claim of `pipeline` in shards mode: no table lock (owners claim disjoint rows), but a
    // shared lock that a handoff of the pipeline's shards takes exclusively, so a shard is never
    // released while a claim of its rows has not committed its lease yet.
    virtual std::string begin_sharded_claim_sql(const std::string& pipeline) const {
        (void)pipeline;
        return begin_settle_sql();
    }
    // Whether begin_lease_change_sql() and a statement after it may travel as one query (one
    // round trip; the result is the last statement's): a claim's BEGIN, lock and live-lease read.
    virtual bool begin_takes_a_statement() const { return false; }
    // DDL of schema version 1 (inside the migration transaction): create the table, or add the
    // bookkeeping columns to an adopted one, and the indexes.
    virtual void create_schema(soci::session& s) = 0;
    virtual void lock_migrations(soci::session& s) = 0;
    // Schema versions after 1, each run once, in order, inside the migration transaction.
    // 2: the per-key index goes (claims no longer probe it; appends no longer pay for it), and on
    // PostgreSQL pages keep room for every row's lease update to be HOT.
    // 3: leases move to <table>_leases, one row per claimed batch (create_leases_v3), instead of
    // an UPDATE of every claimed row.
    // 4: <table>_meta with the table's adoption token (create_meta_v4), part of derived event ids.
    // 5: PostgreSQL: coordination = "shards" (<table>_shards, <table>_members, spillway_shard()).
    // 6: PostgreSQL: every row stores its shard (Sql::shard_column), so that a claim reads it
    // instead of computing it.
    static constexpr int kSchemaVersion = 6;
    virtual void upgrade_schema(soci::session& s, int version) = 0;
    // Run by every migration after the versioned steps, for the options that adopt a table
    // (adopt_pipeline, event_id_field, headers_field), which may change between runs: rows the
    // application inserts from now on get adopt_pipeline; the JSON helper exists.
    virtual void adopt(soci::session& s) { (void)s; }
    // With auto_migrate = false, asked at start: what adopt() would still have to create for the
    // options as they are ("" when nothing), for the start to report it at once.
    virtual std::string adoption_missing(soci::session& s) {
        (void)s;
        return {};
    }
    // Whether the table has `column` (its exact name, as a quoted identifier finds it).
    virtual bool has_column(soci::session& s, const std::string& column) = 0;
    // One line of what this migration did, for `spillway outbox migrate` (logged too).
    void note(const std::string& step);
    // The lease table's row id column: "BIGSERIAL PRIMARY KEY" / "INTEGER PRIMARY KEY".
    virtual const char* serial_key_ddl() const = 0;
    // A point in time as the published_at column takes it, bound as text so the database converts
    // it to the column's type: epoch microseconds by default.
    virtual std::string published_time(int64_t unix_us) const { return std::to_string(unix_us); }

    // Adopting an existing table: adds the bookkeeping columns it lacks (has(k): column k was
    // there), typed by `type`; notes what was added (after `added`, what the caller added itself);
    // marks published the rows with published_at set when the table had no state column; makes
    // the indexes.
    void adopt_columns(soci::session& s, const std::function<bool(size_t)>& has, const char* (*type)(Col),
                       std::string added);
    // Index DDL both databases spell alike. `qualifier` is the index's schema with its dot ("" for
    // the default).
    void create_indexes_v1(soci::session& s);
    void drop_key_index_v2(soci::session& s, const std::string& qualifier);
    void create_leases_v3(soci::session& s);
    void create_meta_v4(soci::session& s);

    const Options& options() const { return opts_; }
    const Sql& sql() const { return sql_; }
    const char* db_name() const { return db_name_; }

private:
    // Runs f(session) with reconnect-with-backoff, mapping database errors to SW_RETRY with the
    // database's message.
    template <class F>
    auto with_session(const char* what, F&& f) -> decltype(f(std::declval<soci::session&>()));

    class Tx;
    struct RowSet;
    // Claimed rows that cannot be decoded (row id, why) go to the dead letters.
    void park_malformed(const std::vector<std::pair<long long, std::string>>& malformed);
    struct NarrowRows;

    void ensure_connected(soci::session& s, const char* what);
    // Inserts the events (ON CONFLICT DO NOTHING), their results into `out`; on_duplicate(pipeline)
    // for each event whose id was there already.
    template <class OnDuplicate>
    void insert(soci::session& s, std::span<const sw_event> events, std::span<sw_result> out,
                OnDuplicate&& on_duplicate);
    // The versioned steps and the adoption, noted; migrate() hands the notes to the host.
    void run_migrations();
    void adopt_rows_without_pipeline(soci::session& s);  // part of run_migrations
    // columns.headers.<name> naming a column the table lacks: a ConfigError naming that key (the
    // migration's and the start's, instead of a database error at every read of a row).
    void check_header_columns(soci::session& s);
    // auto_migrate = false: reports at start, as an error, a table the migration has not brought up
    // to this version's schema (or adoption options it has not acted on), instead of leaving every
    // call to fail with RETRY and the database's words.
    void check_migrated();
    [[noreturn]] void fail(const char* what, soci::session* s, const std::exception& e);
    int64_t backoff_ms(int attempts_after);
    void purge_published(soci::session& s, int64_t now_us);
    bool last_claim_found_rows(std::string_view pipeline);
    // A claim's choice, made in one pass over the pending rows in id order.
    struct Picker {
        std::unordered_set<long long> leased;       // rows of live leases, anyone's
        std::unordered_set<long long> assumed;      // claim_next: prev's rows, taken as settled OK
        std::unordered_set<std::string> blocked;    // keys held back by an earlier row
        std::vector<long long> picked;
        long long seen = 0;                         // the largest id looked at
        size_t held = 0;                            // rows looked at and held back (not prev's)
        const ShardFilter* shards = nullptr;        // coordination = "shards": the rows it may take
        bool take(long long id, const std::string* key, bool blocks);  // key: nullptr when none
    };
    // Where a claimed batch ends, for the claim_next after it.
    struct Continuation {
        std::string pipeline;
        long long cursor = 0;         // every pending row up to this id was looked at
        std::vector<long long> rows;  // taken as settled: prev's and those of the batch prev follows
        std::vector<long long> own;   // prev's
        ClaimSeen seen, after_seen;  // prev's, and that of the batch prev follows
    };
    std::unique_ptr<sdk::Batch> claim_rows(std::string_view pipeline, size_t limit, int64_t lease_ms,
                                           const Continuation* after);
    // Where a range read lies, which decides how shards mode reads it (pick_range).
    enum class Range {
        below,    // under the batches in flight: mostly the other members' rows, and dead ones
        between,  // among the batches in flight: this member's rows and the others', interleaved
        ahead,    // past the head, no end: mostly this member's rows
    };
    // Narrow reads (id, key, blocks; no payloads) of the pending rows in (after, upto], in chunks,
    // until `limit` rows are picked or the range ends.
    void pick_range(soci::session& s, const std::string& pipeline, size_t limit, long long now, long long after,
                    long long upto, Range where, Picker& picker);
    void pick_ids(soci::session& s, const std::string& pipeline, size_t limit, long long now,
                  std::span<const long long> ids, Picker& picker);
    // Returns whether it read everything below the batches out (a chain begins, ClaimSeen).
    bool look_back(soci::session& s, const std::string& pipeline, size_t limit, long long now,
                   const Continuation& prev, Picker& picker);
    bool saw_between(const Continuation& prev, const Picker& picker) const;
    bool saw_below(const Continuation& prev) const;
    // The live leases (until > now) of every instance.
    struct Lease {
        long long id = 0;
        std::vector<long long> rows;
    };
    // With `begin`: that begins the transaction in the same query (begin_takes_a_statement).
    std::vector<Lease> live_leases(soci::session& s, long long now, const std::string* begin = nullptr);
    // Deletes the live leases of engines on this host whose process is gone (a crashed
    // predecessor), so its rows go again now rather than when the lease runs out; drops them from
    // `leases` too. Returns how many lease rows went.
    size_t release_dead_owners(soci::session& s, long long now, std::vector<Lease>& leases);
    // The steps of a claim (claim.cpp), in the order claim_in runs them.
    struct Picked;
    std::unique_ptr<sdk::Batch> claim_in(soci::session& s, const std::string& pipeline, size_t limit, int64_t lease_ms,
                                         const Continuation* prev,
                                         std::vector<std::pair<long long, std::string>>& malformed);
    // claim() in one round trip where the database can; nullopt: go statement by statement.
    std::optional<std::unique_ptr<sdk::Batch>> claim_in_one_trip(
        soci::session& s, const std::string& pipeline, size_t limit, int64_t lease_ms, long long now,
        const Continuation* prev, std::vector<std::pair<long long, std::string>>& malformed);
    std::unique_ptr<sdk::Batch> batch_of(RowSet& rows, const std::string& pipeline, long long cursor,
                                         const Continuation* prev,
                                         std::vector<std::pair<long long, std::string>>& malformed);
    bool anything_due(soci::session& s, const std::string& pipeline, long long now, const ShardFilter* shards);
    void remember_found(const std::string& pipeline, size_t found);
    void sweep_leases_when_due(soci::session& s, long long now, std::vector<Lease>& leases);
    static Picker picker_for(const std::vector<Lease>& leases, const Continuation* prev);
    Picked pick(soci::session& s, const std::string& pipeline, size_t limit, long long now, const Continuation* prev,
                Picker& picker, bool& read_below);
    size_t read_head(soci::session& s, const std::string& pipeline, size_t limit, long long now, long long after,
                     Picker& picker, RowSet& rows);
    std::string insert_lease(soci::session& s, const std::string& pipeline, const std::vector<long long>& picked,
                             long long until_us);
    RowSet load_picked(soci::session& s, const std::vector<long long>& picked, Picked&& got);
    RowSet read_claimed(soci::session& s, const std::vector<long long>& ids);
    // Deletes published rows past retention_ms now and then, after a claim.
    void purge_published_when_due();
    // This instance's leases, kept in memory: which lease row holds a claimed row.
    struct MyLease {
        long long until = 0;
        std::vector<long long> rows;
        std::string pipeline;
    };
    struct Unlease {
        std::unordered_map<long long, MyLease> ended;  // by lease id
        std::vector<long long> forget;                 // rows no longer leased here
        struct Again {
            long long id, from, until;  // from: the lease it continues
            std::vector<long long> rows;
        };
        std::vector<Again> again;                      // the unsettled rest, leased anew
    };
    void remember_lease(long long lease_id, long long until, const std::vector<long long>& rows,
                        const std::string& pipeline);
    Unlease end_leases(soci::session& s, long long now, std::span<const long long> rows,
                       std::unordered_set<long long>& held);
    void commit_unlease(const Unlease& u);
    // complete() in one statement where it can: every row delivered, the rows exactly one lease of
    // this instance's, deleted (not kept as published), and a database that runs Hot::kSettle.
    bool complete_in_one_trip(std::span<const int64_t> row_ids, std::span<const sw_result> results);

    // max_pending without a COUNT at every append (a COUNT walks up to max_pending index entries:
    // milliseconds per append at a backlog of 100,000, just when the outbox takes every event).
    // Per pipeline, an upper bound of its pending rows: the last count plus the rows this instance
    // has appended since, minus the rows it has settled since. While an append fits under
    // max_pending by that bound it is taken without counting; when it does not, the rows are
    // counted again (at most once per recount interval; FULL in between). The bound holds for this
    // instance's own appends: rows other writers insert (an application writing outbox-first,
    // another engine) count from the next count, which stats() also supplies (the engine asks
    // once a second while Kafka is down). Counts and appends or settlements that overlap in time
    // are taken in the direction that overstates the backlog, never the other.
    struct Backlog {
        bool known = false;                    // counted at least once
        long long counted = 0;                 // pending rows the last count found
        long long delta = 0;                   // since: + rows reserved by appends here, - rows settled here
        unsigned long long reserved = 0;       // rows appends here ever reserved (monotonic)
        unsigned long long finished = 0;       // of those, rows whose append has ended, committed or not
        unsigned long long epoch = 0;          // counts taken so far
        bool counting = false;                 // an append's count is under way
        int64_t next_count_us = 0;             // monotonic: an append finding no room counts again from then
        long long estimate() const { return counted + delta; }
    };
    enum class Room { kReserved, kCount, kFull };
    // Reserves `rows` of `pipeline` when the bound has room for them; else whether to count now
    // (kCount: the caller counts, then calls count_ended or count_abandoned). `may_wait`: for the
    // pipeline's first count, under way in another append.
    Room reserve_backlog(const std::string& pipeline, long long rows, bool may_wait);
    // Before a count: what count_ended needs to tell appends the count may not have seen.
    unsigned long long count_begins(const std::string& pipeline);
    // A count of `pending` rows begun at count_begins (`finished_before`) becomes the base; with
    // rows > 0 (an append's count) they are reserved if they fit, answering whether they did.
    // Appends count again no sooner than `recount_at_us` (monotonic).
    bool count_ended(const std::string& pipeline, long long pending, unsigned long long finished_before,
                     long long rows, int64_t recount_at_us);
    void count_abandoned(const std::string& pipeline);  // an append's count failed
    // An append that reserved `rows` ended: `not_added` of them were not stored (duplicates, or
    // all of them when it rolled back).
    void append_ended(const std::string& pipeline, long long rows, long long not_added);
    // Rows leaving the pending state here (published, dead): settle_begins before the commit,
    // settled after it with what settle_begins answered.
    unsigned long long settle_begins(const std::string& pipeline);
    void settled(const std::string& pipeline, long long rows, unsigned long long epoch);
    // Rows that became pending again here (replay_dead).
    void became_pending(const std::string& pipeline, long long rows);

    Options opts_;
    Sql sql_;
    const char* db_name_;
    std::string owner_;
    std::atomic<int64_t> reconnect_not_before_us_{0};
    std::atomic<int64_t> reconnect_delay_ms_{0};
    std::atomic<bool> down_{false};
    std::atomic<int64_t> next_purge_us_{0};
    std::mutex down_mutex_;
    std::mutex found_mutex_;
    std::unordered_map<std::string, size_t> last_found_;  // per pipeline, rows: the probe, the one-trip claim
    std::unordered_set<std::string> look_past_head_;    // pipelines whose next claim reads past a held-back head
    std::string down_message_;
    std::mutex notes_mutex_;
    std::vector<std::string> notes_;  // what migrations did since migrate() last reported

    Statements statements_;  // built once, by the constructor and start()
    // The claim's reads with the shard condition (coordination = "shards"), built by start().
    struct ShardedReads {
        std::string due, head, scan, scan_ids;
        std::string scan_by_shard;  // scan, one index range per claimable shard: for bounded ranges
    } sharded_;
    std::mutex leases_mutex_;
    std::unordered_map<long long, long long> lease_of_row_;  // claimed row -> its lease id
    std::unordered_map<long long, MyLease> my_leases_;       // lease id -> lease
    std::atomic<int64_t> next_lease_sweep_us_{0};
    // Rows a settlement or a release left pending (retried, given back, or not settled at all):
    // a claim_next does not skip re-reading the ids between the rows out (ClaimSeen) when
    // this moved since the claims that read them.
    std::atomic<long long> returned_{0};
    std::mutex backlog_mutex_;  // held for bookkeeping only, never across a database call
    std::condition_variable count_done_;  // an append's count ended (Backlog::counting)
    std::unordered_map<std::string, Backlog> backlog_;  // by pipeline
};

}  // namespace spillway::plugins::outbox

#endif
