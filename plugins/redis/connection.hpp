// One hiredis connection (sync API), ready for use: connected, authenticated, database selected.
#ifndef SPILLWAY_PLUGINS_REDIS_CONNECTION_HPP
#define SPILLWAY_PLUGINS_REDIS_CONNECTION_HPP

#include "settings.hpp"

#include "doorbell-common/unreachable.hpp"

#include <chrono>
#include <memory>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>

struct redisContext;

namespace spillway::plugins::redis {

using doorbell::Unreachable;

// The server answered but refused our settings (AUTH, SELECT): retrying will not help.
class Refused : public std::runtime_error {
public:
    Refused(std::string key, const std::string& message) : std::runtime_error(message), key_(std::move(key)) {}
    const std::string& key() const noexcept { return key_; }

private:
    std::string key_;  // the option to blame
};

class Connection {
public:
    // Connects within connect_timeout, then AUTH, SELECT and PING. Throws Unreachable or Refused.
    static std::unique_ptr<Connection> open(const Settings& settings);
    ~Connection();
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;

    // LPUSH key then LTRIM key 0 0, pipelined in one round trip: the list holds at most one token,
    // so any burst of rings coalesces into one wake. Throws Unreachable (the connection is then
    // unusable) or std::runtime_error for an error reply.
    void ring(const std::string& key);

    enum class Popped { token, timeout, interrupted };
    // BLPOP key with a timeout of timeout_ms, waiting on the socket and on interrupt_fd (readable
    // = interrupted). The client-side bound is the BLPOP timeout plus a grace, so a reply that
    // never comes (server hung) ends as Unreachable rather than a stuck relay. After anything but
    // `token` or `timeout` the connection must be dropped.
    Popped pop(const std::string& key, int64_t timeout_ms, int interrupt_fd);

    // fan_out = "all". PUBLISH key: every connection subscribed to key gets one message; nobody
    // subscribed is not an error. Throws as ring() does.
    void publish(const std::string& key);

    // fan_out = "all", on the wait connection, which stays in subscribe mode from its first
    // subscribe() on: messages that arrive between two waits queue on the socket for the next.
    using Deadline = std::chrono::steady_clock::time_point;
    // SUBSCRIBE key unless this connection already is, and waits for the confirmation within
    // connect_timeout; messages read meanwhile go into `rung`. False when interrupt_fd became
    // readable first: the connection must then be dropped (the confirmation is still due).
    bool subscribe(const std::string& key, std::set<std::string>& rung, int interrupt_fd);
    enum class Heard { ring, timeout, interrupted };
    // Reads every message already received into `rung` (a burst is taken whole), then, until one
    // for `key` is there, waits for more until `deadline` or until interrupt_fd is readable. A
    // message for `key` is taken out of `rung`. The connection stays usable after `interrupted`.
    // Silence is checked: after a second with nothing heard, a PING goes out, and one unanswered
    // for a second plus connect_timeout throws Unreachable (a hung server, or a peer gone without
    // closing the connection), as BLPOP's client-side bound does.
    Heard listen(const std::string& key, std::set<std::string>& rung, Deadline deadline, int interrupt_fd);

private:
    Connection(redisContext* ctx, std::string where, int64_t timeout_ms)
        : ctx_(ctx), where_(std::move(where)), timeout_ms_(timeout_ms) {}
    [[noreturn]] void broken(const std::string& doing) const;
    void send(int argc, const char** argv, const size_t* lens, const char* name);
    // Reads what the socket holds without blocking and takes every complete reply in subscribe
    // mode: messages into `rung`, confirmations into subscribed_, a pong ends the PING's wait.
    void take_replies(std::set<std::string>& rung);
    // Polls the socket and interrupt_fd until `until`; true when interrupt_fd is readable.
    bool poll_until(Deadline until, int interrupt_fd) const;

    redisContext* ctx_;
    std::string where_;
    int64_t timeout_ms_;

    // Subscribe mode only.
    std::set<std::string> subscribed_;
    Deadline last_heard_ = std::chrono::steady_clock::now();
    std::optional<Deadline> pong_due_;  // a PING is unanswered
};

}  // namespace spillway::plugins::redis

#endif
