#include "shards_cluster.hpp"

#include <spillway/test_support/wait.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <sstream>

namespace spillway::e2e {

using namespace std::chrono_literals;
using test_support::Postgres;
using test_support::wait_until;

namespace {

// Runs SQL that may create what an earlier test of this process (gtest_repeat) already created.
void create_role(const std::string& role, const std::string& attributes) {
    Postgres::shared().psql("DO $$ BEGIN CREATE ROLE " + role + " " + attributes +
                            "; EXCEPTION WHEN duplicate_object THEN NULL; END $$");
}

}  // namespace

Cluster::Cluster(const std::string& name, const std::string& mode)
    : db("shards_" + name + "_" + std::to_string(getpid())), owner_role(db + "_owner") {
    auto& pg = Postgres::shared();
    pg.create_database(db);
    // The tables belong to one role; every member acts as it (ALTER ROLE ... SET role), as one
    // application's engines would. A member's own login role is what can be revoked.
    create_role(owner_role, "NOLOGIN");
    pg.psql("ALTER DATABASE " + db + " OWNER TO " + owner_role);
    options.store = StoreKind::Postgres;
    options.pg_conninfo = pg.conninfo(db);
    options.mode = mode;
    options.notifier = "pgnotify";
    options.extra_pipeline = "coordination = \"shards\"\n";
    options.extra_store = "shard_heartbeat = \"250ms\"\nshard_ttl = \"2s\"\nclaim_guard = \"1200ms\"\n";
    options.lease = "5s";
    kafka.create_topic(topic, 8, 1);
}

EngineProcess& Cluster::add(const std::string& member, const std::string& bootstraps) {
    const std::string r = role(member);
    create_role(r, "LOGIN IN ROLE " + owner_role);
    Postgres::shared().psql("ALTER ROLE " + r + " LOGIN");
    Postgres::shared().psql("ALTER ROLE " + r + " SET role = '" + owner_role + "'");
    HarnessOptions o = options;
    o.pg_conninfo = "host=127.0.0.1 port=" + std::to_string(Postgres::shared().port()) + " dbname=" + db + " user=" + r;
    o.extra_notifier = "url = \"" + o.pg_conninfo + "\"\n";
    dirs.push_back(std::make_unique<test_support::TempDir>("shards-" + member));
    engines[member] = std::make_unique<EngineProcess>(dirs.back()->path(), o,
                                                      bootstraps.empty() ? kafka.bootstraps() : bootstraps, topic, "",
                                                      std::vector<std::string>{"SPILLWAY_MEMBER_ID=" + member});
    return *engines[member];
}

bool Cluster::start_three() {
    for (const char* m : {"r1", "r2", "r3"})
        if (!add(m).start()) return false;
    return wait_until([&] { return owned_by({"r1", "r2", "r3"}); }, 20s);
}

std::vector<std::string> Cluster::urls() {
    std::vector<std::string> out;
    for (auto& [m, e] : engines) out.push_back(e->base_url());
    return out;
}

std::map<std::string, int> Cluster::owners() {
    std::map<std::string, int> out;
    for (const auto& row : Postgres::shared().query(
             db, "SELECT owner, COUNT(*) FROM spillway_outbox_shards WHERE pipeline = 'orders' AND owner IS NOT NULL "
                 "AND expires_at > clock_timestamp() GROUP BY owner"))
        out[row[0]] = std::stoi(row[1]);
    return out;
}

bool Cluster::owned_by(std::initializer_list<std::string> want) {
    const auto o = owners();
    int total = 0;
    for (const auto& [m, n] : o) total += n;
    if (total != kShards || o.size() != want.size()) return false;
    for (const auto& m : want)
        if (!o.count(m)) return false;
    return true;
}

std::string Cluster::log_tails() {
    std::string out;
    for (auto& [m, e] : engines) out += "--- " + m + "\n" + e->log_tail(15);
    return out;
}

void Cluster::cut_off_database(const std::string& member) {
    Postgres::shared().psql("ALTER ROLE " + role(member) + " NOLOGIN");
    // By role, not application_name: every session the member has, whatever it named it.
    Postgres::shared().query("postgres", "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '" +
                                             role(member) + "'");
}

void Cluster::restore_database(const std::string& member) { Postgres::shared().psql("ALTER ROLE " + role(member) + " LOGIN"); }

int Cluster::sessions_of(const std::string& member) {
    return std::stoi(Postgres::shared().scalar(
        "postgres", "SELECT COUNT(*) FROM pg_stat_activity WHERE usename = '" + role(member) + "'"));
}

void Cluster::install_ring_trigger() {
    std::ifstream trig(std::string(SPILLWAY_SOURCE_DIR) + "/plugins/pgnotify/trigger.sql");
    std::stringstream sql;
    sql << trig.rdbuf();
    Postgres::shared().psql(db, sql.str());
}

CausalLoad::Options paced_load(int keys, int events_per_key) {
    CausalLoad::Options lo;
    lo.keys = keys;
    lo.events_per_key = events_per_key;
    lo.threads = 6;
    lo.pause = 5ms;
    return lo;
}

// --- SqlOutboxWriter

SqlOutboxWriter::SqlOutboxWriter(const Cluster& cluster, int keys, std::chrono::milliseconds pause, std::string prefix)
    : db_(cluster.db), topic_(cluster.topic), prefix_(std::move(prefix)), keys_(keys), pause_(pause) {}

SqlOutboxWriter::~SqlOutboxWriter() { stop(); }

void SqlOutboxWriter::start() { thread_ = std::thread([this] { run(); }); }

void SqlOutboxWriter::stop() {
    stopping_ = true;
    if (thread_.joinable()) thread_.join();
}

void SqlOutboxWriter::run() {
    for (int n = 0; !stopping_; ++n) {
        const std::string id = prefix_ + "-" + std::to_string(n);
        const std::string key = prefix_ + std::to_string(n % keys_);
        try {
            // Its own transaction, as an application's business write would be.
            Postgres::shared().psql(db_, "INSERT INTO spillway_outbox (event_id, pipeline, topic, key, payload) VALUES ('" +
                                             id + "', 'orders', '" + topic_ + "', '" + key + "', '{\"n\":" +
                                             std::to_string(n) + "}')");
            std::lock_guard lock(mutex_);
            inserted_.emplace_back(id, key);
        } catch (const std::exception& e) {
            std::lock_guard lock(mutex_);
            if (error_.empty()) error_ = e.what();
        }
        std::this_thread::sleep_for(pause_);  // the application's pace, not a wait for state
    }
}

std::vector<std::pair<std::string, std::string>> SqlOutboxWriter::inserted() const {
    std::lock_guard lock(mutex_);
    return inserted_;
}

size_t SqlOutboxWriter::inserted_count() const {
    std::lock_guard lock(mutex_);
    return inserted_.size();
}

// --- IsolatedNetwork

struct IsolatedNetwork::Relay {
    int port = 0;
    int listen_ns = -1, connect_ns = -1;  // not owned
    std::string group;
    std::mutex mutex;
    int listen_fd = -1;
};

// One relayed connection. Its fds are closed by whichever pump ends last, under the mutex, so a
// cut never shuts down a reused descriptor number.
struct IsolatedNetwork::Pair {
    int a = -1, b = -1;  // accepted, connected
    std::string group;
    std::mutex mutex;
    int pumping = 2;
    void shut() {
        std::lock_guard lock(mutex);
        if (pumping == 0) return;
        ::shutdown(a, SHUT_RDWR);
        ::shutdown(b, SHUT_RDWR);
    }
};

namespace {

int open_ns(const char* path) { return ::open(path, O_RDONLY | O_CLOEXEC); }

void no_delay(int fd) {
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

sockaddr_in loopback(int port) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return a;
}

}  // namespace

IsolatedNetwork::IsolatedNetwork() {
    if (!std::filesystem::exists("/usr/bin/nsenter")) {
        error_ = "/usr/bin/nsenter (util-linux) is missing";
        return;
    }
    host_fd_ = open_ns("/proc/thread-self/ns/net");
    if (host_fd_ < 0) {
        error_ = std::string("cannot open this thread's network namespace: ") + std::strerror(errno);
        return;
    }
    // unshare() moves only the calling thread: a thread of its own makes the namespace, and the
    // descriptor keeps it alive after the thread ends.
    std::thread([this] {
        if (::unshare(CLONE_NEWNET) != 0) {
            error_ = std::string("unshare(CLONE_NEWNET): ") + std::strerror(errno) + " (needs root / CAP_SYS_ADMIN)";
            return;
        }
        const int fd = open_ns("/proc/thread-self/ns/net");
        if (fd < 0) {
            error_ = std::string("cannot open the new network namespace: ") + std::strerror(errno);
            return;
        }
        // A new namespace's loopback is down.
        const int s = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        ifreq ifr{};
        std::strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
        const bool up = s >= 0 && ::ioctl(s, SIOCGIFFLAGS, &ifr) == 0 &&
                        (ifr.ifr_flags |= IFF_UP | IFF_RUNNING, ::ioctl(s, SIOCSIFFLAGS, &ifr) == 0);
        if (s >= 0) ::close(s);
        if (!up) {
            error_ = std::string("cannot bring up lo in the new namespace: ") + std::strerror(errno);
            ::close(fd);
            return;
        }
        ns_fd_ = fd;
    }).join();
}

IsolatedNetwork::~IsolatedNetwork() {
    std::vector<std::shared_ptr<Relay>> relays;
    std::vector<std::shared_ptr<Pair>> pairs;
    {
        std::lock_guard lock(mutex_);
        relays = relays_;
        pairs = pairs_;
    }
    for (auto& r : relays) {
        std::lock_guard lock(r->mutex);
        if (r->listen_fd >= 0) ::shutdown(r->listen_fd, SHUT_RDWR);
    }
    for (auto& p : pairs) p->shut();
    // Relays accept no more once their listener is shut, so the set of threads is final.
    for (;;) {
        std::vector<std::thread> threads;
        {
            std::lock_guard lock(mutex_);
            threads.swap(threads_);
            for (auto& p : pairs_) p->shut();
        }
        if (threads.empty()) break;
        for (auto& t : threads) t.join();
    }
    if (ns_fd_ >= 0) ::close(ns_fd_);
    if (host_fd_ >= 0) ::close(host_fd_);
}

std::string IsolatedNetwork::launcher(const std::string& dir) const {
    const std::string path = dir + "/spillway-in-netns";
    std::ofstream(path) << "#!/bin/sh\nexec /usr/bin/nsenter --net=/proc/" << getpid() << "/fd/" << ns_fd_ << " -- "
                        << SPILLWAY_BIN << " \"$@\"\n";
    ::chmod(path.c_str(), 0755);
    return path;
}

bool IsolatedNetwork::forward_in(int port, const std::string& group) {
    auto r = std::make_shared<Relay>();
    r->port = port;
    r->listen_ns = host_fd_;
    r->connect_ns = ns_fd_;
    r->group = group;
    return open_relay(r);
}

bool IsolatedNetwork::forward_out(int port, const std::string& group) {
    auto r = std::make_shared<Relay>();
    r->port = port;
    r->listen_ns = ns_fd_;
    r->connect_ns = host_fd_;
    r->group = group;
    return open_relay(r);
}

bool IsolatedNetwork::open_relay(const std::shared_ptr<Relay>& relay) {
    std::promise<bool> listening;
    auto ready = listening.get_future();
    {
        std::lock_guard lock(mutex_);
        threads_.emplace_back([this, relay, p = std::move(listening)]() mutable {
            // The listener is made in one namespace, then the thread moves to the other, where the
            // sockets it connects are made.
            int fd = -1;
            if (::setns(relay->listen_ns, CLONE_NEWNET) == 0) fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
            int one = 1;
            const sockaddr_in at = loopback(relay->port);
            const bool ok = fd >= 0 && ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == 0 &&
                            ::bind(fd, reinterpret_cast<const sockaddr*>(&at), sizeof at) == 0 && ::listen(fd, 64) == 0 &&
                            ::setns(relay->connect_ns, CLONE_NEWNET) == 0;
            if (!ok) {
                if (fd >= 0) ::close(fd);
                p.set_value(false);
                return;
            }
            {
                std::lock_guard l(relay->mutex);
                relay->listen_fd = fd;
            }
            p.set_value(true);
            accept_loop(relay);
        });
        relays_.push_back(relay);
    }
    return ready.get();
}

void IsolatedNetwork::accept_loop(std::shared_ptr<Relay> relay) {
    const int listen_fd = relay->listen_fd;
    for (;;) {
        const int a = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
        if (a < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            break;  // shut down by cut() or the destructor
        }
        const int b = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        const sockaddr_in to = loopback(relay->port);
        if (b < 0 || ::connect(b, reinterpret_cast<const sockaddr*>(&to), sizeof to) != 0) {
            // Nothing listens on the other side: reset the caller, as a refused connect would.
            linger hard{1, 0};
            ::setsockopt(a, SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
            ::close(a);
            if (b >= 0) ::close(b);
            continue;
        }
        no_delay(a);
        no_delay(b);
        auto pair = std::make_shared<Pair>();
        pair->a = a;
        pair->b = b;
        pair->group = relay->group;
        std::lock_guard lock(mutex_);
        pairs_.push_back(pair);
        threads_.emplace_back([this, pair] { pump(pair, true); });
        threads_.emplace_back([this, pair] { pump(pair, false); });
    }
    std::lock_guard l(relay->mutex);
    ::close(relay->listen_fd);
    relay->listen_fd = -1;
}

void IsolatedNetwork::pump(std::shared_ptr<Pair> pair, bool forward) {
    const int from = forward ? pair->a : pair->b, to = forward ? pair->b : pair->a;
    char buf[64 * 1024];
    for (;;) {
        const ssize_t n = ::read(from, buf, sizeof buf);
        if (n <= 0) {
            if (n < 0 && errno == EINTR) continue;
            break;
        }
        ssize_t off = 0;
        while (off < n) {
            const ssize_t w = ::send(to, buf + off, static_cast<size_t>(n - off), MSG_NOSIGNAL);
            if (w < 0 && errno == EINTR) continue;
            if (w <= 0) break;
            off += w;
        }
        if (off < n) break;
    }
    std::lock_guard lock(pair->mutex);
    if (--pair->pumping == 1) {
        // The other direction ends too: a relay has no half-open connections.
        ::shutdown(pair->a, SHUT_RDWR);
        ::shutdown(pair->b, SHUT_RDWR);
    } else {
        ::close(pair->a);
        ::close(pair->b);
    }
}

void IsolatedNetwork::cut(const std::string& group) {
    std::vector<std::shared_ptr<Relay>> relays;
    std::vector<std::shared_ptr<Pair>> pairs;
    {
        std::lock_guard lock(mutex_);
        for (auto& r : relays_)
            if (r->group == group) relays.push_back(r);
        std::erase_if(relays_, [&](const auto& r) { return r->group == group; });
    }
    for (auto& r : relays) {
        std::lock_guard l(r->mutex);
        if (r->listen_fd >= 0) ::shutdown(r->listen_fd, SHUT_RDWR);
    }
    // Then the connections, including any a relay registered while its listener was shut.
    for (auto& r : relays) {
        wait_until([&] {
            std::lock_guard l(r->mutex);
            return r->listen_fd < 0;
        }, 5s, 1ms);
    }
    {
        std::lock_guard lock(mutex_);
        for (auto& p : pairs_)
            if (p->group == group) pairs.push_back(p);
        std::erase_if(pairs_, [&](const auto& p) { return p->group == group; });
        for (auto& r : relays) cut_relays_.push_back(r);
    }
    for (auto& p : pairs) p->shut();
}

bool IsolatedNetwork::restore(const std::string& group) {
    std::vector<std::shared_ptr<Relay>> again;
    {
        std::lock_guard lock(mutex_);
        for (auto& r : cut_relays_)
            if (r->group == group) again.push_back(r);
        std::erase_if(cut_relays_, [&](const auto& r) { return r->group == group; });
    }
    bool ok = true;
    for (auto& r : again) {
        auto fresh = std::make_shared<Relay>();
        fresh->port = r->port;
        fresh->listen_ns = r->listen_ns;
        fresh->connect_ns = r->connect_ns;
        fresh->group = group;
        ok = open_relay(fresh) && ok;
    }
    return ok;
}

size_t IsolatedNetwork::connections(const std::string& group) {
    std::lock_guard lock(mutex_);
    size_t n = 0;
    for (auto& p : pairs_) {
        std::lock_guard l(p->mutex);
        n += p->group == group && p->pumping == 2;
    }
    return n;
}

std::vector<int> bootstrap_ports(const std::string& bootstraps) {
    std::vector<int> out;
    std::stringstream in(bootstraps);
    std::string one;
    while (std::getline(in, one, ','))
        if (const auto colon = one.rfind(':'); colon != std::string::npos) out.push_back(std::stoi(one.substr(colon + 1)));
    return out;
}

}  // namespace spillway::e2e
