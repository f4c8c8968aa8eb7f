// One hiredis connection (sync API), ready for use: connected, authenticated, database selected.
#ifndef SPILLWAY_PLUGINS_REDIS_CONNECTION_HPP
#define SPILLWAY_PLUGINS_REDIS_CONNECTION_HPP

#include "settings.hpp"

#include "doorbell-common/unreachable.hpp"

#include <chrono>
#include <memory>
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

private:
    Connection(redisContext* ctx, std::string where, int64_t timeout_ms)
        : ctx_(ctx), where_(std::move(where)), timeout_ms_(timeout_ms) {}
    [[noreturn]] void broken(const std::string& doing) const;

    redisContext* ctx_;
    std::string where_;
    int64_t timeout_ms_;
};

}  // namespace spillway::plugins::redis

#endif
