#include "spillway/test_support/redis.hpp"

#include <filesystem>
#include <hiredis/hiredis.h>
#include <stdexcept>
#include <sys/time.h>

#include "exit_hooks.hpp"
#include "spillway/test_support/ports.hpp"
#include "spillway/test_support/wait.hpp"

namespace spillway::test_support {
namespace {

using namespace std::chrono_literals;

constexpr const char* kServer = "/usr/bin/redis-server";
constexpr auto kReadyDeadline = 30s;
constexpr auto kStopGrace = 10s;
constexpr int kPortAttempts = 5;  // fresh ports to try when another process took ours

using Context = std::unique_ptr<redisContext, decltype(&redisFree)>;
using Reply = std::unique_ptr<redisReply, decltype(&freeReplyObject)>;

std::size_t file_size(const std::string& path) {
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  return ec ? 0 : static_cast<std::size_t>(size);
}

// Connects (and authenticates when a password is given); throws with hiredis' message otherwise.
Context connect(int port, const std::string& password) {
  const timeval connect_timeout{2, 0};
  Context ctx(redisConnectWithTimeout("127.0.0.1", port, connect_timeout), &redisFree);
  if (!ctx) throw std::runtime_error("Redis: out of memory");
  if (ctx->err) throw std::runtime_error("Redis: connect 127.0.0.1:" + std::to_string(port) + ": " + ctx->errstr);
  const timeval io_timeout{10, 0};
  redisSetTimeout(ctx.get(), io_timeout);
  if (!password.empty()) {
    Reply reply(static_cast<redisReply*>(redisCommand(ctx.get(), "AUTH %b", password.data(), password.size())),
                &freeReplyObject);
    if (!reply) throw std::runtime_error(std::string("Redis: AUTH: ") + ctx->errstr);
    if (reply->type == REDIS_REPLY_ERROR) throw std::runtime_error("Redis: AUTH: " + std::string(reply->str, reply->len));
  }
  return ctx;
}

std::string render(const redisReply* reply) {
  switch (reply->type) {
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
      return std::string(reply->str, reply->len);
    case REDIS_REPLY_INTEGER:
      return std::to_string(reply->integer);
    case REDIS_REPLY_NIL:
      return "(nil)";
    case REDIS_REPLY_ARRAY: {
      std::string out;
      for (std::size_t i = 0; i < reply->elements; ++i) {
        if (i > 0) out += '\n';
        out += render(reply->element[i]);
      }
      return out;
    }
    case REDIS_REPLY_ERROR:
    default:
      throw std::runtime_error("Redis: " + std::string(reply->str ? reply->str : "error reply", reply->len));
  }
}

}  // namespace

Redis& Redis::shared() {
  static Redis* instance = new Redis();  // leaked: the exit hook stops it (see exit_hooks.hpp)
  return *instance;
}

Redis::Redis(RedisOptions options) : options_(std::move(options)) {
  dir_ = std::make_unique<TempDir>("redis");
  log_path_ = dir_->path() + "/server.log";
  launch(true);
  detail::on_exit_shutdown(this, [this] { shutdown(); });
}

Redis::~Redis() {
  detail::forget_exit_shutdown(this);
  shutdown();
}

void Redis::shutdown() {
  std::lock_guard lock(mutex_);
  server_.stop(SIGTERM, kStopGrace);
  dir_.reset();
}

void Redis::launch(bool may_change_port) {
  if (!dir_) throw std::logic_error("Redis: used after its files were removed at exit");
  for (int attempt = 0;; ++attempt) {
    if (port_ == 0 || (may_change_port && attempt > 0)) port_ = free_port();
    std::vector<std::string> argv{kServer,      "--port", std::to_string(port_), "--bind", "127.0.0.1", "--save",
                                  "",           "--appendonly", "no",          "--daemonize", "no", "--dir",
                                  dir_->path()};
    if (!options_.password.empty()) {
      argv.push_back("--requirepass");
      argv.push_back(options_.password);
    }
    const std::size_t log_start = file_size(log_path_);
    server_ = ChildProcess(ChildSpec{argv, log_path_, dir_->path(), "", SIGTERM});

    const bool settled = wait_until(
        [&] {
          if (!server_.running()) return true;
          try {
            auto ctx = connect(port_, options_.password);
            Reply reply(static_cast<redisReply*>(redisCommand(ctx.get(), "PING")), &freeReplyObject);
            return reply && reply->type == REDIS_REPLY_STATUS && std::string(reply->str, reply->len) == "PONG";
          } catch (const std::runtime_error&) {
            return false;
          }
        },
        kReadyDeadline, 5ms);
    if (settled && server_.running()) return;
    if (!settled) {
      server_.stop(SIGKILL, 10s);
      throw std::runtime_error("Redis: no PONG on port " + std::to_string(port_) + " within " +
                               std::to_string(kReadyDeadline.count()) + " s; log tail:\n" +
                               file_tail(log_path_, 30, log_start));
    }
    const std::string tail = file_tail(log_path_, 30, log_start);
    const bool port_taken = tail.find("Address already in use") != std::string::npos;
    if (!(port_taken && may_change_port && attempt + 1 < kPortAttempts))
      throw std::runtime_error("Redis: server " + server_.describe_exit() + " during startup on port " +
                               std::to_string(port_) + "; log tail:\n" + tail);
  }
}

void Redis::stop() {
  std::lock_guard lock(mutex_);
  server_.stop(SIGTERM, kStopGrace);
}

void Redis::kill() {
  std::lock_guard lock(mutex_);
  server_.stop(SIGKILL, 10s);
}

void Redis::start() {
  std::lock_guard lock(mutex_);
  if (!server_.running()) launch(false);
}

bool Redis::running() {
  std::lock_guard lock(mutex_);
  return server_.running();
}

std::string Redis::cli(const std::vector<std::string>& args) {
  if (args.empty()) throw std::invalid_argument("Redis::cli: no command");
  auto ctx = connect(port_, options_.password);
  std::vector<const char*> argv;
  std::vector<std::size_t> lengths;
  for (const auto& a : args) {
    argv.push_back(a.data());
    lengths.push_back(a.size());
  }
  Reply reply(static_cast<redisReply*>(redisCommandArgv(ctx.get(), static_cast<int>(argv.size()), argv.data(),
                                                        lengths.data())),
              &freeReplyObject);
  if (!reply) throw std::runtime_error("Redis: " + args.front() + ": " + ctx->errstr);
  return render(reply.get());
}

}  // namespace spillway::test_support
