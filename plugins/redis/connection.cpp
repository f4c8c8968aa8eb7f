#include "connection.hpp"

#include <hiredis/hiredis.h>
#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string_view>
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

// Subscribe mode: how long a connection may stay silent before a PING checks it, and how many
// socket reads one take_replies() makes at most (16 KiB each), so that a flood of messages cannot
// keep a wait from returning.
constexpr std::chrono::milliseconds kSilenceBeforePing{1000};
constexpr int kMostReadsAtOnce = 64;

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

void Connection::send(int argc, const char** argv, const size_t* lens, const char* name) {
    if (redisAppendCommandArgv(ctx_, argc, argv, lens) != REDIS_OK) broken(std::string("queueing ") + name);
    for (int done = 0; !done;)
        if (redisBufferWrite(ctx_, &done) != REDIS_OK) broken(std::string("sending ") + name);
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
    send(blocking ? 3 : 2, argv, lens, "BLPOP");

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

void Connection::publish(const std::string& key) {
    const char* argv[] = {"PUBLISH", key.c_str(), "1"};
    const size_t lens[] = {7, key.size(), 1};
    Reply r(static_cast<redisReply*>(redisCommandArgv(ctx_, 3, argv, lens)));
    if (!r) broken("PUBLISH " + key);
    if (r->type == REDIS_REPLY_ERROR) throw std::runtime_error("PUBLISH " + key + ": " + r->str);
}

bool Connection::subscribe(const std::string& key, std::set<std::string>& rung, int interrupt_fd) {
    if (subscribed_.count(key)) return true;
    const char* argv[] = {"SUBSCRIBE", key.c_str()};
    const size_t lens[] = {9, key.size()};
    send(2, argv, lens, "SUBSCRIBE");
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms_);
    for (;;) {
        take_replies(rung);
        if (subscribed_.count(key)) return true;
        if (std::chrono::steady_clock::now() >= deadline)
            throw Unreachable("no answer to SUBSCRIBE " + key + " within " + std::to_string(timeout_ms_) + "ms",
                              /*timed_out=*/true);
        if (poll_until(deadline, interrupt_fd)) return false;
    }
}

Connection::Heard Connection::listen(const std::string& key, std::set<std::string>& rung, Deadline deadline,
                                     int interrupt_fd) {
    const auto pong_bound = kSilenceBeforePing + std::chrono::milliseconds(timeout_ms_);
    for (;;) {
        take_replies(rung);
        if (rung.erase(key)) return Heard::ring;
        const auto now = std::chrono::steady_clock::now();
        if (pong_due_ && now >= *pong_due_)
            throw Unreachable("no answer to PING within " + std::to_string(pong_bound.count()) + "ms",
                              /*timed_out=*/true);
        if (now >= deadline) return Heard::timeout;
        if (!pong_due_ && now - last_heard_ >= kSilenceBeforePing) {
            const char* argv[] = {"PING"};
            const size_t lens[] = {4};
            send(1, argv, lens, "PING");
            pong_due_ = now + pong_bound;
        }
        const Deadline check = pong_due_ ? *pong_due_ : last_heard_ + kSilenceBeforePing;
        if (poll_until(std::min(deadline, check), interrupt_fd)) return Heard::interrupted;
    }
}

void Connection::take_replies(std::set<std::string>& rung) {
    for (int reads = 0; reads < kMostReadsAtOnce; ++reads) {
        pollfd readable{ctx_->fd, POLLIN, 0};
        const int n = ::poll(&readable, 1, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) throw Unreachable(std::string("poll: ") + std::strerror(errno));
        if (n == 0) break;
        // Readable, or hung up: a closed connection reads as an error here.
        if (redisBufferRead(ctx_) != REDIS_OK) broken("reading messages");
    }
    for (;;) {
        void* raw = nullptr;
        if (redisGetReplyFromReader(ctx_, &raw) != REDIS_OK) broken("reading messages");
        if (!raw) return;
        Reply r(static_cast<redisReply*>(raw));
        last_heard_ = std::chrono::steady_clock::now();
        if (r->type == REDIS_REPLY_ERROR) throw Unreachable(std::string("error reply in subscribe mode: ") + r->str);
        const bool shaped = r->type == REDIS_REPLY_ARRAY && r->elements >= 2 &&
                            r->element[0]->type == REDIS_REPLY_STRING && r->element[1]->type == REDIS_REPLY_STRING;
        if (!shaped)
            throw Unreachable("unexpected reply in subscribe mode (type " + std::to_string(r->type) + ")");
        const std::string_view kind(r->element[0]->str, r->element[0]->len);
        std::string name(r->element[1]->str, r->element[1]->len);
        if (kind == "message") rung.insert(std::move(name));
        else if (kind == "subscribe") subscribed_.insert(std::move(name));
        else if (kind == "pong") pong_due_.reset();
        else throw Unreachable("unexpected '" + std::string(kind) + "' reply in subscribe mode");
    }
}

bool Connection::poll_until(Deadline until, int interrupt_fd) const {
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
    pollfd fds[2] = {{ctx_->fd, POLLIN, 0}, {interrupt_fd, POLLIN, 0}};
    if (::poll(fds, 2, static_cast<int>(std::max<int64_t>(0, left.count()))) < 0 && errno != EINTR)
        throw Unreachable(std::string("poll: ") + std::strerror(errno));
    return fds[1].revents != 0;
}

}  // namespace spillway::plugins::redis
