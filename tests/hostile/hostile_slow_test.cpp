// Slow clients against the real `spillway run` (issue 19, class 3): connections that trickle a
// request a byte at a time took every worker of the old server's fixed pool, so /healthz timed
// out, and SIGTERM waited for as long as they trickled. With a connection cap of 8, nine
// tricklers must leave a probe answered within a second, a publish beyond the cap a 503 that
// says so, and every trickler closed by the request deadline; SIGTERM must exit within the
// shutdown deadline; an idle keep-alive connection must be closed after the idle timeout.
//
// Every test prints a "[ figures  ]" line: run with SPILLWAY_HOSTILE_BIN set to an older build to
// see what it did there.
#include "hostile_engine.hpp"

#include <spillway/test_support/wait.hpp>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <iostream>
#include <memory>
#include <mutex>
#include <regex>
#include <thread>

namespace spillway::hostile {
namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using test_support::wait_until;

// Trickling connections cost the server a socket and a small buffer each: the engine's idle
// peak (about 25 MB) plus little. A thread or a big buffer per connection would not pass 80 MB
// at these counts, but a server that is not bounded in other ways would.
constexpr long kRssBoundKb = rss_bound_kb(80 * 1024);
constexpr int kCap = 8;
const std::string kCapped = "http_max_connections = " + std::to_string(kCap) + "\n";

long ms(Clock::duration d) { return static_cast<long>(std::chrono::duration_cast<std::chrono::milliseconds>(d).count()); }

std::string head(const std::string& method_and_path, const std::vector<std::string>& fields = {}) {
    std::string h = method_and_path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n";
    for (const auto& f : fields) h += f + "\r\n";
    return h + "\r\n";
}

std::string publish_request(const std::string& id) {
    const std::string body = R"({"event_id":")" + id + R"(","key":"k","payload":1})";
    return head("POST /v1/pipelines/orders/events",
                {"Content-Type: application/json", "Content-Length: " + std::to_string(body.size())}) + body;
}

// A publish whose header would take minutes to arrive at one byte every 200 ms.
const std::string kTrickled = "POST /v1/pipelines/orders/events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nX-Pad: " +
                              std::string(4000, 'p') + "\r\n\r\n";

::testing::AssertionResult started(HostileEngine& engine) {
    if (engine.start()) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "engine not ready; alive " << engine.alive() << "\nlog:\n" << engine.log_tail();
}

// `count` connections, each sending kTrickled one byte every `pause` from one thread, which also
// reads what the server sends and notes when it closed each. The first byte of each goes out in
// the constructor, so the requests are in progress when it returns.
class Tricklers {
public:
    Tricklers(const HostileEngine& engine, int count, std::chrono::milliseconds pause) : pause_(pause) {
        for (int i = 0; i < count; ++i) {
            conns_.push_back(engine.connect());
            conns_.back().send(kTrickled.substr(0, 1));
            states_.push_back({Clock::now(), Clock::now() + pause_, 1, std::nullopt});
        }
        thread_ = std::thread([this] { run(); });
    }
    ~Tricklers() {
        stop_ = true;
        thread_.join();
    }
    Tricklers(const Tricklers&) = delete;
    Tricklers& operator=(const Tricklers&) = delete;

    bool all_connected() const {
        for (const auto& c : conns_)
            if (!c.connected()) return false;
        return true;
    }
    int closed() const {
        std::lock_guard lock(mutex_);
        int n = 0;
        for (const auto& s : states_) n += s.closed_at.has_value();
        return n;
    }
    // Per connection: ms from its first byte to the server's close (-1 while open), and what it got.
    std::vector<long> closed_after() const {
        std::lock_guard lock(mutex_);
        std::vector<long> out;
        for (const auto& s : states_) out.push_back(s.closed_at ? ms(*s.closed_at - s.first_byte) : -1);
        return out;
    }
    std::vector<std::string> received() const {
        std::lock_guard lock(mutex_);
        std::vector<std::string> out;
        for (const auto& c : conns_) out.push_back(c.unparsed());
        return out;
    }
    size_t bytes_sent() const {
        std::lock_guard lock(mutex_);
        size_t n = 0;
        for (const auto& c : conns_) n += c.bytes_sent();
        return n;
    }

private:
    struct State {
        Clock::time_point first_byte, next_byte;
        size_t offset;
        std::optional<Clock::time_point> closed_at;
    };

    void run() {
        while (!stop_) {
            {
                std::lock_guard lock(mutex_);
                const auto now = Clock::now();
                for (size_t i = 0; i < conns_.size(); ++i) {
                    State& s = states_[i];
                    Connection& c = conns_[i];
                    if (s.closed_at) continue;
                    c.pump();
                    if (!c.closed_by_peer() && now >= s.next_byte && s.offset < kTrickled.size()) {
                        c.send(kTrickled.substr(s.offset++, 1), 100ms);
                        s.next_byte = now + pause_;
                    }
                    if (c.closed_by_peer()) {
                        s.closed_at = Clock::now();
                        c.close();  // as a client does: the server's slot is free once it sees this
                    }
                }
            }
            // The pace of the attack (and how closely a close is timed), not a wait for a condition.
            std::this_thread::sleep_for(10ms);
        }
    }

    std::chrono::milliseconds pause_;
    std::vector<Connection> conns_;
    std::vector<State> states_;
    mutable std::mutex mutex_;
    std::atomic<bool> stop_{false};
    std::thread thread_;
};

// Nine tricklers for a cap of eight: the probe on a tenth connection is answered within a second
// (beyond the cap a connection may send one probe, then it is closed), and a publish beyond the
// cap is a 503 naming the limit, with Retry-After, and the connection closed.
TEST(HostileSlow, TricklersFillingTheCapLeaveProbesAnsweredAndPublishesA503) {
    HostileEngine engine(kCapped + "http_request_timeout = \"3s\"\n");
    ASSERT_TRUE(started(engine));
    auto tricklers = std::make_unique<Tricklers>(engine, kCap + 1, 200ms);
    ASSERT_TRUE(tricklers->all_connected());

    Connection probe = engine.connect();
    const auto t0 = Clock::now();
    probe.send(head("GET /healthz"));
    const auto health = probe.read_response(5s);
    const auto took = Clock::now() - t0;
    std::cout << "[ figures  ] GET /healthz beside " << kCap + 1 << " tricklers (cap " << kCap << "): "
              << (health ? std::to_string(health->status) : std::string("no answer")) << " after " << ms(took) << " ms" << std::endl;
    EXPECT_TRUE(health) << "/healthz unanswered for 5 s";
    if (health) {  // and on to the publish either way, so an old server's answer to it is seen too
        EXPECT_EQ(health->status, 200);
        EXPECT_EQ(json::parse(health->body, nullptr, false), json({{"status", "ok"}}));
        EXPECT_LT(took, 1s);
        EXPECT_TRUE(probe.wait_closed(3s)) << "a probe beyond the cap: its connection is closed after the answer";
    }

    Connection publish = engine.connect();
    const auto t1 = Clock::now();
    publish.send(publish_request("beyond-cap"));
    const auto refused = publish.read_response(5s);
    std::cout << "[ figures  ] publish beside " << kCap + 1 << " tricklers: "
              << (refused ? std::to_string(refused->status) + " " + refused->error() : std::string("no answer")) << " after "
              << ms(Clock::now() - t1) << " ms; peak RSS " << engine.peak_rss_kb() << " kB" << std::endl;
    ASSERT_TRUE(refused) << "publish unanswered for 5 s";
    EXPECT_EQ(refused->status, 503) << refused->body;
    EXPECT_EQ(refused->error().rfind("connection limit (" + std::to_string(kCap) + ") reached", 0), 0u) << refused->body;
    EXPECT_EQ(refused->header("Retry-After"), "1");
    EXPECT_TRUE(publish.wait_closed(3s));
    EXPECT_TRUE(engine.alive()) << engine.log_tail();
    EXPECT_LT(engine.peak_rss_kb(), kRssBoundKb);

    // The metrics count the connections that came past the cap, by how they were let in: the
    // ninth trickler, the probe and the publish each got one probe's worth (none past twice it).
    tricklers.reset();
    std::string metrics;
    EXPECT_TRUE(wait_until(
        [&] {
            Connection scrape = engine.connect();
            scrape.send(head("GET /metrics"));
            const auto r = scrape.read_response(5s);
            if (r && r->status == 200) metrics = r->body;
            return !metrics.empty();
        },
        10s));
    const auto refused_by = [&](const std::string& how) {
        std::smatch m;
        const std::regex line("\nspillway_http_connections_refused_total\\{how=\"" + how + "\"\\} ([0-9.e+]+)\n");
        return std::regex_search(metrics, m, line) ? std::stod(m[1]) : 0.0;
    };
    EXPECT_GE(refused_by("probe_only"), 3) << metrics;
    EXPECT_EQ(refused_by("closed"), 0) << metrics;
}

// The request deadline (3 s from a request's first byte) closes every trickler, with a 408 first;
// then the slots are free and a publish is accepted and delivered.
TEST(HostileSlow, TricklersAreClosedByTheRequestDeadline) {
    HostileEngine engine(kCapped + "http_request_timeout = \"3s\"\n");
    ASSERT_TRUE(started(engine));
    Tricklers tricklers(engine, kCap + 1, 200ms);
    ASSERT_TRUE(tricklers.all_connected());
    const bool all_closed = wait_until([&] { return tricklers.closed() == kCap + 1; }, 8s, 20ms);
    std::cout << "[ figures  ] " << kCap + 1 << " tricklers, request timeout 3 s: closed after (ms)";
    for (const long t : tricklers.closed_after()) std::cout << ' ' << t;
    std::cout << "; " << tricklers.bytes_sent() << " bytes trickled; peak RSS " << engine.peak_rss_kb() << " kB" << std::endl;
    EXPECT_TRUE(all_closed) << tricklers.closed() << " of " << kCap + 1 << " closed within 8 s";
    for (const long t : tricklers.closed_after()) {
        EXPECT_GE(t, 0);
        EXPECT_LT(t, 5000) << "closed past the 3 s deadline and a 2 s margin";
    }
    for (const auto& got : tricklers.received()) EXPECT_EQ(got.rfind("HTTP/1.1 408", 0), 0u) << "before the close: " << got;

    // The server frees a slot when it has seen the client's close too: until then a publish may
    // still meet the cap, and a 503 with Retry-After tells the client to try again, which it does.
    std::optional<HttpResponse> r;
    int attempts = 0;
    const bool accepted = wait_until(
        [&] {
            ++attempts;
            Connection c = engine.connect();
            c.send(publish_request("after-tricklers"));
            r = c.read_response(10s);
            return r && r->status != 503;
        },
        5s, 50ms);
    std::cout << "[ figures  ] publish after the tricklers were closed: " << (r ? std::to_string(r->status) : std::string("no answer"))
              << " at attempt " << attempts << std::endl;
    ASSERT_TRUE(r) << "publish after the tricklers: no answer";
    EXPECT_TRUE(accepted) << "the cap still full 5 s after every trickler was closed: " << r->body;
    EXPECT_EQ(r->status, 202) << r->body << " (attempt " << attempts << ")";
    EXPECT_TRUE(engine.alive()) << engine.log_tail();
    EXPECT_LT(engine.peak_rss_kb(), kRssBoundKb);
    const auto records = engine.kafka().consume_all(engine.topic(), 1, 30s);
    ASSERT_EQ(records.size(), 1u);
    EXPECT_EQ(records[0].header("event_id").value_or(""), "after-tricklers");
}

// SIGTERM while requests trickle: they get the shutdown deadline (2 s) to finish, then every
// connection is closed and the process exits 0, within 3 s. The request deadline is long here,
// so only the shutdown deadline can end them.
TEST(HostileSlow, SigtermWhileClientsTrickleExitsWithinTheShutdownDeadline) {
    HostileEngine engine(kCapped + "http_request_timeout = \"60s\"\nhttp_shutdown_timeout = \"2s\"\n");
    ASSERT_TRUE(started(engine));
    Tricklers tricklers(engine, kCap + 1, 200ms);
    ASSERT_TRUE(tricklers.all_connected());
    // Connections are accepted in order: a probe answered after them means the server holds all
    // nine (an old server that cannot answer it gets SIGTERM all the same, 5 s later).
    Connection probe = engine.connect();
    probe.send(head("GET /healthz"));
    const auto health = probe.read_response(5s);
    EXPECT_TRUE(health && health->status == 200) << "probe beside the tricklers unanswered";
    EXPECT_EQ(tricklers.closed(), 0) << "a trickler was closed before SIGTERM";
    const auto exit = engine.terminate(15s);
    std::cout << "[ figures  ] SIGTERM with " << kCap + 1 << " tricklers, shutdown timeout 2 s: " << exit.how << " after "
              << exit.took.count() << " ms" << std::endl;
    EXPECT_TRUE(exit.exited) << exit.how;
    EXPECT_TRUE(exit.clean) << exit.how;
    EXPECT_LT(exit.took, 3s);
    EXPECT_TRUE(wait_until([&] { return tricklers.closed() == kCap + 1; }, 2s, 20ms));
}

// A keep-alive connection with no request in progress is closed after http_idle_timeout (1 s),
// not before; a connection that never sends a byte is closed too.
TEST(HostileSlow, IdleConnectionsAreClosedAfterTheIdleTimeout) {
    HostileEngine engine("http_idle_timeout = \"1s\"\nhttp_request_timeout = \"3s\"\n");
    ASSERT_TRUE(started(engine));
    Connection silent = engine.connect();
    const auto silent_since = Clock::now();

    Connection c = engine.connect();
    for (int i = 0; i < 2; ++i) {  // the second request proves keep-alive
        c.send(head("GET /healthz"));
        const auto r = c.read_response(5s);
        ASSERT_TRUE(r) << "request " << i + 1 << " on the keep-alive connection: no answer";
        EXPECT_EQ(r->status, 200);
    }
    const auto idle_since = Clock::now();
    const bool closed = c.wait_closed(6s);
    const auto idle_for = Clock::now() - idle_since;
    const bool silent_closed = silent.wait_closed(6s);
    const auto silent_for = Clock::now() - silent_since;
    std::cout << "[ figures  ] idle keep-alive (idle timeout 1 s): " << (closed ? "closed after " : "open after ") << ms(idle_for)
              << " ms; silent connection: " << (silent_closed ? "closed after " : "open after ") << ms(silent_for) << " ms"
              << std::endl;
    EXPECT_TRUE(closed) << "idle keep-alive connection open after 6 s";
    EXPECT_GE(idle_for, 900ms) << "closed before the idle timeout";
    EXPECT_LT(idle_for, 2500ms) << "closed past the 1 s idle timeout and a 1.5 s margin";
    EXPECT_TRUE(silent_closed) << "a connection that never sent a byte open after 6 s";
    EXPECT_LT(silent_for, 5s) << "silent connection: past both the idle and the request timeouts and a 2 s margin";
    EXPECT_TRUE(engine.alive()) << engine.log_tail();
}

}  // namespace
}  // namespace spillway::hostile
