#include "peer_wake.hpp"

#include <pg-common/query.hpp>

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <utility>

namespace spillway::plugins::postgres {

namespace {
constexpr auto kCallTimeout = std::chrono::seconds(5);
constexpr int kReopenMs = 1000;  // between attempts to open a lost listening session
}  // namespace

PeerWake::PeerWake(const pg::Conninfo& conninfo, std::string application_name, std::string channel,
                   std::function<void()> on_wake)
    : conninfo_(conninfo),
      application_name_(std::move(application_name)),
      channel_(std::move(channel)),
      on_wake_(std::move(on_wake)) {}

PeerWake::~PeerWake() { stop(); }

PGconn* PeerWake::listen() const {
    std::string error;
    PGconn* session = pg::open_dedicated_session(conninfo_, application_name_, kCallTimeout, error);
    if (!session) return nullptr;
    const std::string listen = "LISTEN \"" + channel_ + "\"";
    if (!pg::query(session, listen.c_str(), {}, kCallTimeout, error)) PQfinish(std::exchange(session, nullptr));
    return session;
}

void PeerWake::start() {
    if (thread_.joinable()) return;
    stop_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (stop_fd_ < 0) return;  // no wake: the heartbeat alone moves the shards
    // The first LISTEN is in place before start() returns, so a member that joins after it cannot
    // miss a stop rung after its join (a listener still connecting on its thread could).
    PGconn* first = listen();
    thread_ = std::thread([this, first] { run(first); });
}

void PeerWake::stop() {
    if (!thread_.joinable()) return;
    const uint64_t one = 1;
    [[maybe_unused]] const auto n = write(stop_fd_, &one, sizeof(one));
    thread_.join();
    close(std::exchange(stop_fd_, -1));
}

void PeerWake::ring(PGconn* session) const {
    std::string error;
    pg::query(session, "SELECT pg_notify($1, '')", {channel_}, kCallTimeout, error);
}

void PeerWake::run(PGconn* session) {
    for (;;) {
        int wait_ms = -1;
        if (!session) {
            session = listen();
            if (!session) wait_ms = kReopenMs;
            // A ring sent while no session listened is lost: wake once, as if it had been heard.
            else on_wake_();
        }
        pollfd fds[2] = {{stop_fd_, POLLIN, 0}, {session ? PQsocket(session) : -1, POLLIN, 0}};
        if (poll(fds, session ? 2 : 1, wait_ms) < 0) continue;  // EINTR
        if (fds[0].revents) break;
        if (!session || !fds[1].revents) continue;
        if (!PQconsumeInput(session)) {
            PQfinish(std::exchange(session, nullptr));
            continue;
        }
        bool woken = false;
        while (PGnotify* n = PQnotifies(session)) {
            PQfreemem(n);
            woken = true;
        }
        if (woken) on_wake_();
    }
    if (session) PQfinish(session);
}

}  // namespace spillway::plugins::postgres
