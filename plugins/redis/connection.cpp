#include "connection.hpp"

#include <hiredis/hiredis.h>
#include <poll.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <vector>

namespace spillway::plugins::redis {

namespace {

struct ReplyDeleter {
    void operator()(redisReply* r) const { freeReplyObject(r); }
};
using Reply = std::unique_ptr<redisReply, ReplyDeleter>;

timeval to_timeval(int64_t ms) {
    timeval tv{};
    tv.tv_sec = static_cast<time_t>(ms / 1000);
    tv.tv_usec = static_cast<suseconds_t>((ms % 1000) * 1000);
    return tv;
}

// BLPOP takes fractional seconds (Redis >= 6): "0.250".
std::string seconds_arg(int64_t ms) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%lld.%03lld", static_cast<long long>(ms / 1000), static_cast<long long>(ms % 1000));
    return buf;
}

bool starts_with(const char* s, const char* prefix) { return s && std::strncmp(s, prefix, std::strlen(prefix)) == 0; }

}  // namespace

std::unique_ptr<Connection> Connection::open(const Settings& s) {
    const timeval tv = to_timeval(s.connect_timeout_ms);
    redisContext* ctx = s.unix_socket.empty() ? redisConnectWithTimeout(s.host.c_str(), s.port, tv)
                                              : redisConnectUnixWithTimeout(s.unix_socket.c_str(), tv);
    if (!ctx) throw Unreachable("cannot allocate a connection");
    std::unique_ptr<Connection> c(new Connection(ctx, s.where(), s.connect_timeout_ms));
    if (ctx->err) throw Unreachable(std::string("cannot connect: ") + ctx->errstr);
    // Bounds every synchronous command on this connection (the handshake, and notify's ring).
    if (redisSetTimeout(ctx, tv) != REDIS_OK) c->broken("setting the socket timeout");

    const auto command = [&](std::vector<std::string> args, const char* doing) {
        std::vector<const char*> argv;
        std::vector<size_t> lens;
        for (const auto& a : args) {
            argv.push_back(a.data());
            lens.push_back(a.size());
        }
        void* raw = redisCommandArgv(ctx, static_cast<int>(argv.size()), argv.data(), lens.data());
        Reply r(static_cast<redisReply*>(raw));
        if (!r) c->broken(doing);
        return r;
    };

    if (!s.password.empty()) {
        std::vector<std::string> auth{"AUTH"};
        if (!s.username.empty()) auth.push_back(s.username);
        auth.push_back(s.password);
        Reply r = command(std::move(auth), "AUTH");
        if (r->type == REDIS_REPLY_ERROR)
            throw Refused("password", "redis " + s.where() + " rejected AUTH" +
                                          (s.username.empty() ? "" : " for user '" + s.username + "'") + ": " + r->str);
    }
    if (s.db != 0) {
        Reply r = command({"SELECT", std::to_string(s.db)}, "SELECT");
        if (r->type == REDIS_REPLY_ERROR) {
            if (starts_with(r->str, "NOAUTH"))
                throw Refused("password", "redis " + s.where() + " requires a password (set 'password'): " + r->str);
            throw Refused("db", "redis " + s.where() + " rejected SELECT " + std::to_string(s.db) + ": " + r->str);
        }
    }
    Reply pong = command({"PING"}, "PING");
    if (pong->type == REDIS_REPLY_ERROR) {
        if (starts_with(pong->str, "NOAUTH"))
            throw Refused("password", "redis " + s.where() + " requires a password (set 'password'): " + pong->str);
        throw Unreachable(std::string("PING: ") + pong->str);  // e.g. LOADING after a restart
    }
    return c;
}

Connection::~Connection() { redisFree(ctx_); }

void Connection::broken(const std::string& doing) const {
    const int error = errno;  // hiredis leaves the socket's errno in place
    const bool timed_out = ctx_->err == REDIS_ERR_IO && (error == EAGAIN || error == EWOULDBLOCK || error == ETIMEDOUT);
    const std::string why = timed_out ? "no answer within the timeout" : ctx_->err ? ctx_->errstr : "no reply";
    throw Unreachable(doing + ": " + why, timed_out);
}

void Connection::ring(const std::string& key) {
    const char* lpush[] = {"LPUSH", key.c_str(), "1"};
    const size_t lpush_len[] = {5, key.size(), 1};
    const char* ltrim[] = {"LTRIM", key.c_str(), "0", "0"};
    const size_t ltrim_len[] = {5, key.size(), 1, 1};
    if (redisAppendCommandArgv(ctx_, 3, lpush, lpush_len) != REDIS_OK ||
        redisAppendCommandArgv(ctx_, 4, ltrim, ltrim_len) != REDIS_OK)
        broken("queueing LPUSH");
    void* raw = nullptr;
    if (redisGetReply(ctx_, &raw) != REDIS_OK) broken("LPUSH " + key);
    Reply pushed(static_cast<redisReply*>(raw));
    raw = nullptr;
    if (redisGetReply(ctx_, &raw) != REDIS_OK) broken("LTRIM " + key);
    Reply trimmed(static_cast<redisReply*>(raw));
    if (pushed->type == REDIS_REPLY_ERROR)
        throw std::runtime_error("LPUSH " + key + ": " + pushed->str);
    if (trimmed->type == REDIS_REPLY_ERROR)
        throw std::runtime_error("LTRIM " + key + ": " + trimmed->str);
}

Connection::Popped Connection::pop(const std::string& key, int64_t timeout_ms, int interrupt_fd) {
    // BLPOP with timeout 0 would block forever: a zero wait is a plain LPOP.
    const bool blocking = timeout_ms > 0;
    const std::string secs = seconds_arg(timeout_ms);
    const char* argv[] = {blocking ? "BLPOP" : "LPOP", key.c_str(), secs.c_str()};
    const size_t lens[] = {std::strlen(argv[0]), key.size(), secs.size()};
    if (redisAppendCommandArgv(ctx_, blocking ? 3 : 2, argv, lens) != REDIS_OK) broken("queueing BLPOP");
    for (int done = 0; !done;)
        if (redisBufferWrite(ctx_, &done) != REDIS_OK) broken("sending BLPOP");

    // The client-side bound sits well above the server's: Redis ends a BLPOP on its own clock,
    // in steps of its hz (100 ms by default), so a reply a little late is normal.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms + 1000 + timeout_ms_);
    for (;;) {
        void* raw = nullptr;
        if (redisGetReplyFromReader(ctx_, &raw) != REDIS_OK) broken("reading the BLPOP reply");
        if (raw) {
            Reply r(static_cast<redisReply*>(raw));
            switch (r->type) {
                case REDIS_REPLY_NIL: return Popped::timeout;
                case REDIS_REPLY_ARRAY:
                case REDIS_REPLY_STRING: return Popped::token;
                case REDIS_REPLY_ERROR: throw Unreachable("BLPOP " + key + ": " + r->str);
                default: throw Unreachable("BLPOP " + key + ": unexpected reply type " +
                                           std::to_string(r->type));
            }
        }
        const auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0)
            throw Unreachable("no reply to BLPOP within " + std::to_string(timeout_ms + 1000 + timeout_ms_) + "ms",
                              /*timed_out=*/true);
        pollfd fds[2] = {{ctx_->fd, POLLIN, 0}, {interrupt_fd, POLLIN, 0}};
        const int n = ::poll(fds, 2, static_cast<int>(left.count()));
        if (n < 0) {
            if (errno == EINTR) continue;
            throw Unreachable(std::string("poll: ") + std::strerror(errno));
        }
        if (fds[1].revents) return Popped::interrupted;
        if (fds[0].revents && redisBufferRead(ctx_) != REDIS_OK) broken("reading the BLPOP reply");
    }
}

}  // namespace spillway::plugins::redis
