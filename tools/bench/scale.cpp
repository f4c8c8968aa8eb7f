// scale: several `spillway run` engines on one PostgreSQL outbox with coordination = "shards"
// (issue 21), at the store's default timings (heartbeat 1 s, shard lease 10 s, claim guard 6 s).
//
// 1. Failover. Three engines r1..r3 relay an outbox-first load the bench inserts by SQL (rows over
//    4,096 keys, so every shard has rows every second; the pgnotify trigger rings the engines). One
//    engine is SIGKILLed, SIGSTOPped or SIGTERMed; from that moment: (a) every shard it owned has
//    another live owner (spillway_outbox_shards, expires_at on the database's clock), (b) the first
//    row of those shards inserted after the fault reaches Kafka, (c) the rows of those shards it
//    left undelivered have all reached Kafka. A consumer of the bench's own reads the topic as it is
//    written (no group), so (b) and (c) are Kafka's view, not an engine's. Then the victim comes
//    back under the same member id and the next round waits until the three own all 256 shards.
// 2. Direct publish, single vs shards: the `direct` scenario's synchronous keyed publish on two
//    in-process engines, one per mode, in alternating rounds; the shards one probes the outbox for
//    pending rows of the key on every call.
// 3. Drain: a backlog committed at once, drained by 1, 2 and 3 shards-mode engines and by one
//    single-mode engine, with the CPU each process and the PostgreSQL server spent per event.
#include "context.hpp"
#include "cpu.hpp"
#include "events.hpp"
#include "raw_store.hpp"
#include "rig.hpp"

#include <spillway/test_support/pipeline_toml.hpp>
#include <spillway/test_support/ports.hpp>
#include <spillway/test_support/spillway_run.hpp>
#include <spillway/test_support/temp_dir.hpp>
#include <spillway/test_support/wait.hpp>

#include <librdkafka/rdkafka.h>
#include <soci/postgresql/soci-postgresql.h>
#include <soci/soci.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string_view>
#include <thread>

#include <unistd.h>

namespace spillway::bench {

using namespace std::chrono_literals;

namespace {

constexpr int kShards = 256;
constexpr int kScaleKeys = 4096;  // 16 keys a shard: at a few hundred rows/s every shard has rows each second
constexpr int kPartitions = 4;    // Context::fresh_topic's
const std::vector<std::string> kMembers = {"r1", "r2", "r3"};

std::string fixed(double v, int digits = 2) {
    char b[32];
    std::snprintf(b, sizeof b, "%.*f", digits, v);
    return b;
}

// `spillway run` engines on one outbox database, each with its own HTTP port and member id
// (SPILLWAY_MEMBER_ID, what a pod name would be), so a restarted engine is the same member again.
class Cluster {
public:
    Cluster(Context& ctx, const std::string& db, const std::string& topic, const std::string& coordination)
        : ctx_(ctx), db_(db), dir_("bench-scale-" + db) {
        o_.store_url = ctx.database(db);
        o_.topic = topic;
        o_.mode = "outbox-first";
        o_.probe = false;  // the probe reports to a bench process; these engines are processes of their own
        o_.log_level = "info";
        // pgnotify: a doorbell every engine hears (inproc is refused in shards mode), rung by the
        // trigger the bench installs, as an application inserting outbox rows would.
        o_.notifier = "pgnotify";
        o_.notifier_toml = "url = " + test_support::toml_string(o_.store_url) + "\n";
        o_.pipeline_toml = "coordination = " + test_support::toml_string(coordination) + "\n";
    }

    const std::string& conninfo() const { return o_.store_url; }
    const std::string& db() const { return db_; }

    // Spawns `member` (again) and waits for its readiness; throws with its log's tail.
    void start(const std::string& member) {
        auto& m = members_[member];
        if (m.port == 0) {
            m.port = test_support::free_port();
            m.log = dir_.path() + "/" + member + ".log";
            m.toml = dir_.path() + "/" + member + ".toml";
            RigOptions o = o_;
            o.engine_toml = "http_listen = \"127.0.0.1:" + std::to_string(m.port) + "\"\n";
            std::ofstream(m.toml) << rig_toml(o, ctx_.kafka().bootstraps());
        }
        m.process = test_support::spawn_spillway_run({.binary = SPILLWAY_BIN,
                                                      .config_path = m.toml,
                                                      .environment = o_.environment,
                                                      .log_path = m.log,
                                                      .env = {"SPILLWAY_MEMBER_ID=" + member}});
        if (!test_support::wait_ready(m.process, "127.0.0.1", m.port, 30s))
            throw std::runtime_error("scale: " + member + " did not become ready (" + m.process.describe_exit() +
                                     "): " + test_support::file_tail(m.log, 20));
    }
    test_support::ChildProcess& process(const std::string& member) { return members_.at(member).process; }
    std::string log_tail(const std::string& member, size_t lines = 15) {
        return test_support::file_tail(members_.at(member).log, lines);
    }
    void stop_all() {
        for (auto& [name, m] : members_) m.process.stop(SIGTERM, 20s);
    }

    // Live owners (lease not run out on the database's clock) and how many shards each holds.
    std::map<std::string, int> owners() {
        std::map<std::string, int> out;
        for (const auto& r : ctx_.postgres().query(
                 db_, "SELECT owner, count(*) FROM spillway_outbox_shards WHERE pipeline = 'p0' AND owner IS NOT NULL "
                      "AND expires_at > clock_timestamp() GROUP BY owner"))
            out[r[0]] = std::stoi(r[1]);
        return out;
    }
    // Every shard owned, by exactly `want`.
    bool owned_by(const std::vector<std::string>& want) {
        const auto o = owners();
        int total = 0;
        for (const auto& [m, n] : o) total += n;
        if (total != kShards || o.size() != want.size()) return false;
        for (const auto& m : want)
            if (!o.count(m)) return false;
        return true;
    }
    std::vector<int> shards_of(const std::string& member) {
        std::vector<int> out;
        for (const auto& r : ctx_.postgres().query(db_, "SELECT shard FROM spillway_outbox_shards WHERE pipeline = 'p0' "
                                                        "AND owner = '" + member + "' AND expires_at > clock_timestamp()"))
            out.push_back(std::stoi(r[0]));
        return out;
    }
    // How many of `shards` have a live owner other than `victim`.
    int taken_over(const std::vector<int>& shards, const std::string& victim) {
        std::string list;
        for (int s : shards) list += (list.empty() ? "" : ",") + std::to_string(s);
        return std::stoi(ctx_.postgres().scalar(
            db_, "SELECT count(*) FROM spillway_outbox_shards WHERE pipeline = 'p0' AND shard IN (" + list +
                     ") AND owner IS NOT NULL AND owner <> '" + victim + "' AND expires_at > clock_timestamp()"));
    }
    // Rows left in the outbox, by state: for error messages.
    std::string pending() {
        std::string out;
        for (const auto& r : ctx_.postgres().query(db_, "SELECT state, count(*) FROM spillway_outbox GROUP BY state"))
            out += (out.empty() ? "" : ", ") + r[1] + " " + r[0];
        return out.empty() ? "empty" : out;
    }
    // Sessions of the database waiting on something, and on what: for error messages.
    std::string waits() {
        std::string out;
        for (const auto& r : ctx_.postgres().query(
                 db_, "SELECT application_name, state, wait_event_type || ':' || wait_event, left(query, 60) FROM pg_stat_activity "
                      "WHERE datname = current_database() AND pid <> pg_backend_pid() AND wait_event_type IN ('Lock', 'LWLock', 'IO')"))
            out += (out.empty() ? "" : " | ") + r[0] + " " + r[1] + " " + r[2] + " " + r[3];
        return out.empty() ? "no session waits" : out;
    }
    // The pgnotify trigger (plugins/pgnotify/trigger.sql), once the engines made the table.
    void install_ring_trigger() {
        std::ifstream in(SPILLWAY_SOURCE_DIR "/plugins/pgnotify/trigger.sql");
        const std::string sql((std::istreambuf_iterator<char>(in)), {});
        if (sql.empty()) throw std::runtime_error("scale: cannot read plugins/pgnotify/trigger.sql");
        ctx_.postgres().psql(db_, sql);
    }
    // key-<k> -> its shard, as the store computes it.
    std::vector<int> shard_of_keys(int keys) {
        std::vector<int> out(keys);
        for (const auto& r : ctx_.postgres().query(
                 db_, "SELECT g, spillway_shard('key-' || g, 0) FROM generate_series(0, " + std::to_string(keys - 1) + ") g"))
            out[std::stoi(r[0])] = std::stoi(r[1]);
        return out;
    }

private:
    struct Member {
        int port = 0;
        std::string toml, log;
        test_support::ChildProcess process;
    };
    Context& ctx_;
    std::string db_;
    RigOptions o_;
    test_support::TempDir dir_;
    std::map<std::string, Member> members_;
};

// The outbox-first application: rows of pipeline p0 inserted by SQL at a steady rate, numbered by
// a sequence the payload carries ({"seq": n}), keys key-<n mod 4096>. Ten commits a second per
// 100 rows/s: a round of the relay finds rows of many shards, as a busy application's would.
class RowLoad {
public:
    RowLoad(const std::string& conninfo, const std::string& topic, double rate) : sql_(soci::postgresql, conninfo) {
        thread_ = std::thread([this, topic, rate] { run(topic, rate); });
    }
    ~RowLoad() {
        stop_ = true;
        if (thread_.joinable()) thread_.join();
    }
    // Rows numbered below this were committed, or are being, before now; the rest come later.
    int64_t next_seq() const { return next_.load(); }
    void stop() {
        stop_ = true;
        if (thread_.joinable()) thread_.join();
        check();
    }
    // Throws once an insert failed: the waits on rows that were never inserted would only time out.
    void check() const {
        if (failed_) throw std::runtime_error("scale: the row load failed: " + error_);
    }

private:
    void run(const std::string& topic, double rate) {
        try {
            const auto t0 = Clock::now();
            auto tick = t0;
            while (!stop_) {
                tick += 10ms;
                std::this_thread::sleep_until(tick);
                const auto due = static_cast<int64_t>(seconds_since(t0) * rate);
                const int64_t from = next_.load();
                if (due <= from) continue;
                // Claimed before the insert: a row whose number is at or past next_seq() read at
                // some moment cannot have been committed before it.
                next_ = due;
                long long a = from, b = due - 1, keys = kScaleKeys, pad = kPayloadBytes - 40;
                std::string t = topic;
                sql_ << "INSERT INTO spillway_outbox (event_id, pipeline, topic, key, payload) "
                        "SELECT gen_random_uuid()::text, 'p0', :t, 'key-' || (g % :k), "
                        "'{\"seq\":' || g || ',\"pad\":\"' || repeat('x', :p) || '\"}' FROM generate_series(CAST(:a AS bigint), CAST(:b AS bigint)) g",
                    soci::use(t), soci::use(keys), soci::use(pad), soci::use(a), soci::use(b);
            }
        } catch (const std::exception& e) {
            error_ = e.what();
            failed_ = true;
        }
    }
    soci::session sql_;
    std::atomic<int64_t> next_{0};
    std::atomic<bool> stop_{false}, failed_{false};
    std::string error_;  // written before failed_ is set
    std::thread thread_;
};

// Reads the topic as it is written, with a consumer of its own (assigned every partition, no
// group): when each row first reached Kafka, and in how many copies.
class Arrivals {
public:
    Arrivals(const std::string& bootstraps, const std::string& topic) {
        char err[512];
        rd_kafka_conf_t* conf = rd_kafka_conf_new();
        const std::pair<const char*, std::string> props[] = {
            {"bootstrap.servers", bootstraps}, {"group.id", "spillway-bench-scale"}, {"enable.auto.commit", "false"},
            {"enable.partition.eof", "false"},
            // Fetches answer at once when there is something: the arrival time is Kafka's, give or
            // take a few ms.
            {"fetch.wait.max.ms", "5"}, {"log_level", "3"}};
        for (const auto& [k, v] : props)
            if (rd_kafka_conf_set(conf, k, v.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK) {
                rd_kafka_conf_destroy(conf);
                throw std::runtime_error(std::string("scale: consumer: ") + err);
            }
        rk_ = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
        if (!rk_) throw std::runtime_error(std::string("scale: consumer: ") + err);
        rd_kafka_poll_set_consumer(rk_);
        rd_kafka_topic_partition_list_t* parts = rd_kafka_topic_partition_list_new(kPartitions);
        for (int p = 0; p < kPartitions; ++p)
            rd_kafka_topic_partition_list_add(parts, topic.c_str(), p)->offset = RD_KAFKA_OFFSET_BEGINNING;
        const rd_kafka_resp_err_t e = rd_kafka_assign(rk_, parts);
        rd_kafka_topic_partition_list_destroy(parts);
        if (e) {
            rd_kafka_destroy(rk_);
            throw std::runtime_error(std::string("scale: consumer assign: ") + rd_kafka_err2str(e));
        }
        thread_ = std::thread([this] { run(); });
    }
    ~Arrivals() {
        stop_ = true;
        thread_.join();
        rd_kafka_consumer_close(rk_);
        rd_kafka_destroy(rk_);
    }
    Arrivals(const Arrivals&) = delete;
    Arrivals& operator=(const Arrivals&) = delete;

    // The first arrival of row `seq`, if it arrived.
    std::optional<Clock::time_point> first(int64_t seq) {
        std::lock_guard lock(mutex_);
        if (seq < 0 || static_cast<size_t>(seq) >= copies_.size() || copies_[seq] == 0) return std::nullopt;
        return first_[seq];
    }
    // Rows [from, to) that arrived, and how many records beyond one copy each.
    std::pair<size_t, size_t> delivered(int64_t from, int64_t to) {
        std::lock_guard lock(mutex_);
        size_t rows = 0, extra = 0;
        for (int64_t s = from; s < to && static_cast<size_t>(s) < copies_.size(); ++s)
            if (copies_[s]) ++rows, extra += copies_[s] - 1u;
        return {rows, extra};
    }
    size_t unparsed() const { return unparsed_.load(); }

private:
    void run() {
        while (!stop_) {
            rd_kafka_message_t* m = rd_kafka_consumer_poll(rk_, 50);
            if (!m) continue;
            const auto at = Clock::now();
            if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR && m->payload) {
                const int64_t seq = seq_of(std::string_view(static_cast<const char*>(m->payload), m->len));
                if (seq < 0) {
                    ++unparsed_;
                } else {
                    std::lock_guard lock(mutex_);
                    if (static_cast<size_t>(seq) >= copies_.size()) {
                        copies_.resize(seq + 100000);
                        first_.resize(seq + 100000);
                    }
                    if (copies_[seq]++ == 0) first_[seq] = at;
                }
            }
            rd_kafka_message_destroy(m);
        }
    }
    // The number after "seq": however the store's JSON column spelled it ("seq":1 or "seq": 1).
    static int64_t seq_of(std::string_view payload) {
        const auto at = payload.find("\"seq\"");
        if (at == std::string_view::npos) return -1;
        size_t i = at + 5;
        while (i < payload.size() && (payload[i] == ':' || payload[i] == ' ')) ++i;
        int64_t v = -1;
        for (; i < payload.size() && payload[i] >= '0' && payload[i] <= '9'; ++i) v = (v < 0 ? 0 : v * 10) + (payload[i] - '0');
        return v;
    }

    rd_kafka_t* rk_ = nullptr;
    std::thread thread_;
    std::atomic<bool> stop_{false};
    std::atomic<size_t> unparsed_{0};
    std::mutex mutex_;
    std::vector<uint16_t> copies_;  // by seq
    std::vector<Clock::time_point> first_;
};

struct Fault {
    const char* name;
    int signal;
    double target_s;
    const char* target;
    const char* what;
};

struct FaultResult {
    std::vector<double> owned_us, first_us, caught_up_us;  // (a), (b), (c) per round
    std::vector<size_t> victim_shards, left_rows;
    std::vector<double> rejoin_s;                          // victim back -> 3 owners of all 256 shards
    int64_t seq_from = 0, seq_to = 0;                      // the rows inserted while this fault's rounds ran
    size_t duplicates = 0, rows = 0, delivered = 0;
};

FaultResult run_fault(Cluster& c, RowLoad& load, Arrivals& seen, const std::vector<int>& shard_of_key, const Fault& f,
                      size_t rounds) {
    FaultResult out;
    out.seq_from = load.next_seq();
    for (size_t r = 0; r < rounds; ++r) {
        const std::string victim = kMembers[r % kMembers.size()];
        if (!test_support::wait_until([&] { return c.owned_by(kMembers); }, 60s, 50ms))
            throw std::runtime_error(std::string("scale: before ") + f.name + " round " + std::to_string(r) +
                                     ", the three engines did not own all 256 shards within 60 s");
        // No backlog from the previous round: what the victim leaves behind is this round's.
        const int64_t settled = load.next_seq();
        if (!test_support::wait_until(
                [&] {
                    load.check();
                    return seen.delivered(0, settled).first == static_cast<size_t>(settled);
                },
                60s, 20ms))
            throw std::runtime_error(std::string("scale: before ") + f.name + " round " + std::to_string(r) + ", " +
                                     std::to_string(settled - static_cast<int64_t>(seen.delivered(0, settled).first)) + " of " +
                                     std::to_string(settled) + " rows inserted earlier were still not in Kafka after 60 s (" +
                                     std::to_string(seen.unparsed()) + " records without a seq; outbox: " + c.pending() +
                                     ")\n" + c.log_tail(victim));
        const std::vector<int> theirs = c.shards_of(victim);
        if (theirs.empty()) throw std::runtime_error("scale: " + victim + " owns no shard");
        std::vector<bool> in_victims(kShards);
        for (int s : theirs) in_victims[s] = true;
        auto victims_row = [&](int64_t seq) { return in_victims[shard_of_key[seq % kScaleKeys]]; };

        const int64_t at_fault = load.next_seq();
        const auto t0 = Clock::now();
        c.process(victim).signal(f.signal);
        // What the victim left: rows of its shards inserted before the fault, not yet in Kafka.
        std::vector<int64_t> left;
        for (int64_t s = settled; s < at_fault; ++s)
            if (victims_row(s) && !seen.first(s)) left.push_back(s);

        // When the last of `left` arrived, once all did.
        auto all_left_in = [&]() -> std::optional<double> {
            Clock::time_point last = t0;
            for (int64_t s : left) {
                const auto at = seen.first(s);
                if (!at) return std::nullopt;
                last = std::max(last, *at);
            }
            return std::chrono::duration<double, std::micro>(last - t0).count();
        };
        double owned = -1, caught_up = -1;
        bool any_new = false;    // a row of its shards inserted after the fault is in Kafka
        int64_t scanned = at_fault;  // rows below this were looked at for that
        const bool done = test_support::wait_until(
            [&] {
                load.check();
                if (owned < 0 && c.taken_over(theirs, victim) == static_cast<int>(theirs.size())) owned = us_since(t0);
                for (const int64_t end = load.next_seq(); !any_new && scanned < end; ++scanned)
                    any_new = victims_row(scanned) && seen.first(scanned);
                if (caught_up < 0) caught_up = all_left_in().value_or(-1);
                return owned >= 0 && any_new && caught_up >= 0;
            },
            60s, 10ms);
        if (!done)
            throw std::runtime_error(std::string("scale: ") + f.name + " of " + victim + ": after 60 s, shards owned again " +
                                     (owned >= 0 ? "yes" : "no") + ", a new row of them in Kafka " + (any_new ? "yes" : "no") +
                                     ", the " + std::to_string(left.size()) + " rows it left " +
                                     (caught_up >= 0 ? "delivered" : "not all delivered") + "; rows inserted since the fault " +
                                     std::to_string(load.next_seq() - at_fault) + ", outbox: " + c.pending() + "; " + c.waits() +
                                     "\n" + c.log_tail(victim));
        // (b): the earliest arrival among all rows of its shards inserted since the fault; arrivals
        // are not in insert order, so the one the poll saw first need not be it.
        double first = -1;
        for (int64_t s = at_fault, end = load.next_seq(); s < end; ++s)
            if (victims_row(s))
                if (auto at = seen.first(s)) {
                    const double us = std::chrono::duration<double, std::micro>(*at - t0).count();
                    first = first < 0 ? us : std::min(first, us);
                }
        out.owned_us.push_back(owned);
        out.first_us.push_back(first);
        out.caught_up_us.push_back(caught_up);
        out.victim_shards.push_back(theirs.size());
        out.left_rows.push_back(left.size());

        // The victim comes back as the same member: resumed, or restarted as a pod would be.
        auto& proc = c.process(victim);
        if (f.signal == SIGSTOP) {
            proc.signal(SIGCONT);
        } else {
            if (!proc.wait_exit(f.signal == SIGTERM ? 20s : 10s))
                throw std::runtime_error(std::string("scale: ") + victim + " did not exit after " + f.name);
            if (f.signal == SIGTERM && !proc.exited_ok())
                throw std::runtime_error("scale: " + victim + " " + proc.describe_exit() + " after SIGTERM: " + c.log_tail(victim));
            c.start(victim);
        }
        const auto back = Clock::now();
        if (!test_support::wait_until([&] { return c.owned_by(kMembers); }, 60s, 20ms))
            throw std::runtime_error("scale: " + victim + " back after " + f.name +
                                     ", but the three did not own all 256 shards within 60 s: " + c.log_tail(victim));
        out.rejoin_s.push_back(seconds_since(back));
    }
    out.seq_to = load.next_seq();
    return out;
}

// The `direct` scenario's synchronous keyed publish, one event a call, timed at the caller.
void publish_sync(pipeline::Pipeline& p, size_t n, size_t& seq, std::vector<double>* out) {
    for (size_t i = 0; i < n; ++i) {
        auto e = engine_event(seq++);
        const auto t0 = Clock::now();
        const auto o = p.publish(std::move(e));
        if (out) out->push_back(us_since(t0));
        if (o.path != pipeline::Path::Direct)
            throw std::runtime_error("scale: a direct publish went " + std::string(pipeline::path_name(o.path)) + " (" +
                                     pipeline::reason_name(o.reason) + "): " + o.message);
    }
}

struct DrainRun {
    double seconds = 0;
    std::vector<double> engine_cpu;  // per engine, seconds
    double postgres_cpu = 0, bench_cpu = 0;
    size_t lock_samples = 0, samples = 0;  // pg_stat_activity samples with an engine session waiting on a lock
    std::map<std::string, size_t> lock_waits;  // "<lock> in <statement>": sessions seen waiting so
    std::string statements;
};

// What the sessions seen waiting on a lock waited on, most seen first: "; <n>x <lock> in <statement>".
std::string waits_seen(const std::map<std::string, size_t>& waits) {
    std::vector<std::pair<size_t, std::string>> by_count;
    for (const auto& [what, n] : waits) by_count.emplace_back(n, what);
    std::sort(by_count.rbegin(), by_count.rend());
    std::string out;
    for (size_t i = 0; i < by_count.size() && i < 3; ++i)
        out += "; " + std::to_string(by_count[i].first) + "x " + by_count[i].second;
    return out;
}

// `engines` engines (r1..) drain a backlog of `n` rows committed at once. The engines start first
// and settle who owns which shard, so the figure is the drain, not the start-up; the clock starts
// at the doorbell rung after the backlog's commit.
DrainRun drain(Context& ctx, const std::string& db, const std::string& topic, const std::string& coordination, size_t engines,
               size_t n) {
    Cluster c(ctx, db, topic, coordination);
    std::vector<std::string> names(kMembers.begin(), kMembers.begin() + static_cast<long>(engines));
    for (const auto& m : names) c.start(m);
    if (coordination == "shards" && !test_support::wait_until([&] { return c.owned_by(names); }, 60s, 50ms))
        throw std::runtime_error("scale: " + std::to_string(engines) + " engines did not come to own all 256 shards");
    RawStore app(c.conninfo(), "p0");
    app.backlog(n, topic, kPayloadBytes - 30, kScaleKeys);
    soci::session sql(soci::postgresql, c.conninfo());
    ctx.reset_statements();

    DrainRun d;
    std::vector<double> cpu0;
    for (const auto& m : names) cpu0.push_back(cpu_seconds(c.process(m).pid()));
    const double pg0 = tree_cpu_seconds(ctx.postgres().pid()), self0 = cpu_seconds(getpid());
    const auto t0 = Clock::now();
    sql << "SELECT pg_notify('spillway_wake_p0', '')";
    // The oldest pending row, looked up from the last one found on: each poll walks only the index
    // entries deleted since the one before, not every dead entry of the drain (EXISTS over the
    // table cost 3 ms a poll, and the server's CPU is what is measured). Every 20 ms, with a look
    // at whether a session of the engines waits on a lock.
    long long lowest = 0;
    const bool emptied = test_support::wait_until(
        [&] {
            long long oldest = -1;
            std::string waiting;
            soci::indicator ind = soci::i_null, wind = soci::i_null;
            // Who waits, on which lock, in which statement: a claim waiting on another engine's
            // claim would show here (the "no claim waits on another engine's claim").
            sql << "SELECT (SELECT id FROM spillway_outbox WHERE pipeline = 'p0' AND state = 'pending' AND id >= :lo "
                   "ORDER BY id LIMIT 1), (SELECT string_agg(wait_event || ' in ' || left(regexp_replace(query, "
                   "'\\s+', ' ', 'g'), 48), '|') FROM pg_stat_activity WHERE datname = current_database() AND "
                   "wait_event_type = 'Lock' AND pid <> pg_backend_pid())",
                soci::use(lowest), soci::into(oldest, ind), soci::into(waiting, wind);
            ++d.samples;
            if (wind == soci::i_ok && !waiting.empty()) {
                ++d.lock_samples;
                for (size_t at = 0, bar; at <= waiting.size(); at = bar + 1) {
                    bar = std::min(waiting.find('|', at), waiting.size());
                    ++d.lock_waits[waiting.substr(at, bar - at)];
                }
            }
            if (ind == soci::i_ok) lowest = oldest;
            return ind != soci::i_ok;
        },
        600s, 20ms);
    d.seconds = seconds_since(t0);
    for (size_t i = 0; i < names.size(); ++i) d.engine_cpu.push_back(cpu_seconds(c.process(names[i]).pid()) - cpu0[i]);
    d.postgres_cpu = tree_cpu_seconds(ctx.postgres().pid()) - pg0;
    d.bench_cpu = cpu_seconds(getpid()) - self0;
    // Where the server's time went: the statements by total time, not by calls.
    for (const auto& r : ctx.postgres().query(
             "postgres", "SELECT calls, round(total_exec_time::numeric, 0), round(mean_exec_time::numeric, 3), "
                         "left(regexp_replace(query, '\\s+', ' ', 'g'), 100) FROM pg_stat_statements s JOIN pg_database d "
                         "ON d.oid = s.dbid WHERE d.datname = '" + db + "' ORDER BY total_exec_time DESC LIMIT 4"))
        d.statements += (d.statements.empty() ? "" : " | ") + r[0] + "x, " + r[1] + " ms total, " + r[2] + " ms each: " + r[3];
    if (!emptied) throw std::runtime_error("scale: the outbox of " + db + " was not empty 600 s after the backlog's commit");
    c.stop_all();
    return d;
}

}  // namespace

Report run_scale(Context& ctx) {
    Report rep("scale");
    const auto& s = ctx.settings;
    const size_t rounds = s.quick ? 1 : s.scale_rounds;
    rep.setting("timings", "store defaults: shard_heartbeat 1s, shard_ttl 10s, claim_guard 6s");
    rep.setting("engines", "`spillway run` child processes, outbox-first, pgnotify doorbell, SPILLWAY_MEMBER_ID r1..r3");

    // 1. Failover under load.
    {
        const std::string topic = ctx.fresh_topic("scale");
        Cluster c(ctx, "bench_scale", topic, "shards");
        for (const auto& m : kMembers) c.start(m);
        if (!test_support::wait_until([&] { return c.owned_by(kMembers); }, 60s, 50ms))
            throw std::runtime_error("scale: r1..r3 did not come to own all 256 shards within 60 s");
        c.install_ring_trigger();
        const std::vector<int> shard_of_key = c.shard_of_keys(kScaleKeys);
        Arrivals seen(ctx.kafka().bootstraps(), topic);
        RowLoad load(c.conninfo(), topic, s.scale_rate);

        const Fault faults[] = {
            {"SIGKILL", SIGKILL, 3, "p99 <= 3 s", "process death: its session closes, a survivor finds its member lock free"},
            {"SIGSTOP", SIGSTOP, 12, "p99 <= ttl + 2 s = 12 s", "pause: its shard leases run out (ttl 10 s); SIGCONT afterwards"},
            {"SIGTERM", SIGTERM, 1, "p99 <= 1 s", "graceful: it settles what it holds and releases its shards"},
        };
        std::vector<std::pair<const Fault*, FaultResult>> results;
        for (const Fault& f : faults) results.emplace_back(&f, run_fault(c, load, seen, shard_of_key, f, rounds));
        const int64_t inserted = load.next_seq();
        load.stop();
        const bool all_in = test_support::wait_until(
            [&] { return seen.delivered(0, inserted).first == static_cast<size_t>(inserted); }, 120s, 50ms);
        const auto [rows_in, extra] = seen.delivered(0, inserted);

        for (auto& [f, r] : results) {
            const auto [rows, dups] = seen.delivered(r.seq_from, r.seq_to);
            r.rows = static_cast<size_t>(r.seq_to - r.seq_from);
            r.delivered = rows;
            r.duplicates = dups;
            const std::string name = f->name;
            auto& owned = rep.add(latency_row(name + ": its shards owned by others", r.owned_us));
            owned.targets.push_back(at_most(f->target, owned.latency->p99 / 1e6, f->target_s));
            std::string shards, left, rejoin;
            for (size_t i = 0; i < r.owned_us.size(); ++i) {
                shards += (i ? "," : "") + std::to_string(r.victim_shards[i]);
                left += (i ? "," : "") + std::to_string(r.left_rows[i]);
                rejoin += (i ? "," : "") + fixed(r.rejoin_s[i], 1);
            }
            owned.note = std::string(f->what) + ". Victims r1,r2,r3 in turn, owning " + shards +
                         " shards; polled every 10 ms on the database's clock. Victim back -> 3 owners of all 256 shards: " +
                         rejoin + " s";
            auto& first = rep.add(latency_row("  first new row of them in Kafka", r.first_us));
            first.targets.push_back(at_most(f->target, first.latency->p99 / 1e6, f->target_s));
            first.note = "the earliest arrival, at the bench's consumer, of a row of the victim's shards inserted after the "
                         "fault: the first of its shards at work again (the row above waits for the last to be owned)";
            auto& caught = rep.add(latency_row("  rows it left all in Kafka", r.caught_up_us));
            caught.note = "rows of its shards inserted before the fault and not in Kafka then, per round: " + left;
            auto& dup = rep.add(rate_row("  duplicates", "records", static_cast<double>(r.duplicates)));
            if (f->signal == SIGTERM) dup.targets.push_back(at_most("0 duplicates", dup.value, 0));
            dup.note = "records beyond the first of a row, over the " + std::to_string(r.rows) + " rows inserted while its " +
                       std::to_string(r.owned_us.size()) + " rounds ran (the victim's return included); " +
                       std::to_string(r.rows - r.delivered) + " of them not in Kafka";
        }
        rep.setting("load", fixed(s.scale_rate, 0) + " rows/s by SQL INSERT (100 commits/s) over " + std::to_string(kScaleKeys) +
                                " keys, the pgnotify trigger ringing");
        rep.setting("rounds_per_fault", rounds);
        rep.setting("rows_inserted", inserted);
        rep.setting("rows_in_kafka", rows_in);
        rep.setting("duplicate_records", extra);
        if (seen.unparsed()) rep.setting("records_without_seq", seen.unparsed());
        if (!all_in)
            rep.setting("lost", std::to_string(inserted - static_cast<int64_t>(rows_in)) + " rows not in Kafka 120 s after the load");
        c.stop_all();
    }

    // 2. Direct publish: coordination single vs shards (the probe), one in-process engine each,
    // same doorbell, same cluster, own databases.
    {
        RigOptions single = own_store_and_topic(ctx, "bench_scale_direct_single", "scale-direct");
        single.probe = false;
        single.notifier = "pgnotify";
        single.notifier_toml = "url = " + test_support::toml_string(single.store_url) + "\n";
        RigOptions shards = single;
        shards.store_url = ctx.database("bench_scale_direct_shards");
        shards.notifier_toml = "url = " + test_support::toml_string(shards.store_url) + "\n";
        shards.pipeline_toml = "coordination = \"shards\"\n";
        Rig a(ctx, single), b(ctx, shards);
        size_t seq = 0;
        publish_sync(a.pipeline(), 200, seq, nullptr);  // connections, metadata, producer ids
        publish_sync(b.pipeline(), 200, seq, nullptr);
        std::vector<double> single_us, shards_us;
        const size_t per_round = std::max<size_t>(1, s.samples / s.rounds);
        for (size_t r = 0; r < s.rounds; ++r) {
            publish_sync(a.pipeline(), per_round, seq, &single_us);
            publish_sync(b.pipeline(), per_round, seq, &shards_us);
        }
        auto& row = rep.add(latency_row("direct publish, shards (pending-key probe)", shards_us,
                                        "same, coordination = single", single_us));
        row.targets.push_back(at_most("p99 <= 1 ms", row.latency->p99, 1000));
        row.note = "synchronous, 1 keyed event a call (" + std::to_string(kKeys) +
                   " keys), in-process engines in rounds alternating single and shards; shards adds one SELECT of "
                   "pending rows of the key per call";
        rep.add(latency_row("  direct publish, single", single_us));
    }

    // 3. Drain by 1, 2, 3 engines in shards mode, and 1 in single mode.
    {
        const std::string topic = ctx.fresh_topic("scale-drain");
        const size_t n = s.quick ? std::min<size_t>(s.scale_drain_events, 100000) : s.scale_drain_events;
        const double cores = std::max(1.0, static_cast<double>(std::thread::hardware_concurrency()));
        double one_engine = 0;
        std::vector<nlohmann::json> runs;
        const std::pair<const char*, size_t> configs[] = {{"shards", 1}, {"shards", 2}, {"shards", 3}, {"single", 1}};
        for (const auto& [coordination, engines] : configs) {
            const std::string db = std::string("bench_scale_drain_") + coordination + "_" + std::to_string(engines);
            const DrainRun d = drain(ctx, db, topic, coordination, engines, n);
            const double rate = static_cast<double>(n) / d.seconds;
            if (std::string(coordination) == "shards" && engines == 1) one_engine = rate;
            auto& row = rep.add(rate_row("drain " + std::to_string(n) + " rows, " + coordination + ", " + std::to_string(engines) +
                                             " engine(s)",
                                         "events/s", rate, "1 engine, shards", one_engine));
            const double per_k = 1e6 / static_cast<double>(n);  // CPU seconds over n -> ms per 1,000 events
            double engines_cpu = 0;
            std::string each;
            for (double e : d.engine_cpu) {
                engines_cpu += e;
                each += (each.empty() ? "" : " + ") + fixed(e * per_k, 1);
            }
            const double busy = (engines_cpu + d.postgres_cpu + d.bench_cpu) / (d.seconds * cores);
            row.note = "CPU per 1,000 events: engines " + fixed(engines_cpu * per_k, 1) + " ms (" + each + "), PostgreSQL " +
                       fixed(d.postgres_cpu * per_k, 1) + " ms, bench process (mock Kafka) " + fixed(d.bench_cpu * per_k, 1) +
                       " ms; " + fixed(busy * 100, 0) + "% of " + fixed(cores, 0) + " cores busy. An engine session waited on a " +
                       "lock in " + std::to_string(d.lock_samples) + " of " + std::to_string(d.samples) +
                       " samples (pg_stat_activity every 20 ms" + waits_seen(d.lock_waits) +
                       "). Top statement by server time: " + d.statements.substr(0, d.statements.find(" | "));
            // The figure to beat, argued from these figures: what N times one engine's rate
            // would take in cores, on a machine that has them (each engine's part, and the server's).
            const double n_times = one_engine * static_cast<double>(engines);
            const double engines_cores = n_times * engines_cpu / static_cast<double>(n);
            const double postgres_cores = n_times * d.postgres_cpu / static_cast<double>(n);
            if (std::string(coordination) == "shards")
                row.note += ". At " + std::to_string(engines) + " x one engine's rate (" + fixed(n_times, 0) +
                            " events/s) these figures take " + fixed(engines_cores + postgres_cores, 1) + " cores: engines " +
                            fixed(engines_cores, 1) + " (" + fixed(engines_cores / static_cast<double>(engines), 1) +
                            " each), PostgreSQL " + fixed(postgres_cores, 1);
            runs.push_back({{"coordination", coordination}, {"engines", engines}, {"seconds", d.seconds},
                            {"engine_cpu_s", d.engine_cpu}, {"postgres_cpu_s", d.postgres_cpu}, {"bench_cpu_s", d.bench_cpu},
                            {"lock_wait_samples", d.lock_samples}, {"lock_waits", d.lock_waits}, {"samples", d.samples},
                            {"statements", d.statements},
                            {"cores_at_n_times_one_engine", engines_cores + postgres_cores}});
        }
        rep.setting("drain_backlog", std::to_string(n) + " rows over " + std::to_string(kScaleKeys) +
                                         " keys in one INSERT; engines up and shards settled first; the clock starts at "
                                         "the doorbell after the commit and stops when the outbox is empty");
        rep.setting("drain_runs", runs);
    }
    return rep;
}

}  // namespace spillway::bench
