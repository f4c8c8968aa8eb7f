// A throwaway Redis 7 server on a free loopback port, owned by the test process.
//
//   auto& redis = spillway::test_support::Redis::shared();
//   redis.cli({"SET", "k", "v"});          // "OK"
//   redis.kill(); ... redis.start();        // crash and come back on the same port
//   Redis locked(RedisOptions{.password = "s3cret"});   // an own instance with requirepass
#pragma once

#include <mutex>
#include <string>
#include <vector>
#include <memory>

#include "spillway/test_support/child_process.hpp"
#include "spillway/test_support/temp_dir.hpp"

namespace spillway::test_support {

struct RedisOptions {
  std::string password{};  // non-empty: --requirepass
};

class Redis {
 public:
  // One server per test process, started on first use, stopped at process exit.
  static Redis& shared();

  // An own server, started by the constructor; the destructor stops it.
  explicit Redis(RedisOptions options = {});
  ~Redis();
  Redis(const Redis&) = delete;
  Redis& operator=(const Redis&) = delete;

  int port() const { return port_; }
  std::string host() const { return "127.0.0.1"; }
  const std::string& password() const { return options_.password; }

  // Runs one command through hiredis (authenticating when a password is set) and renders the
  // reply: strings and statuses as-is, integers in decimal, nil as "(nil)", arrays as their
  // elements rendered the same way and joined by '\n'. An error reply throws std::runtime_error.
  std::string cli(const std::vector<std::string>& args);

  void stop();   // SIGTERM and wait (SIGKILL after 10 s); no-op if stopped
  void kill();   // SIGKILL: a crash
  void start();  // same port; returns once PING answers
  bool running();
  int pid() const { return server_.pid(); }  // the redis-server process

  const std::string& log_path() const { return log_path_; }

 private:
  void launch(bool may_change_port);
  void shutdown();  // stop and remove the files; the destructor and the exit hook call it

  RedisOptions options_;
  std::unique_ptr<TempDir> dir_;
  std::string log_path_;
  int port_ = 0;
  std::mutex mutex_;
  ChildProcess server_;
};

}  // namespace spillway::test_support
