// A throwaway PostgreSQL 15 server on a free loopback port, owned by the test process.
//
//   auto& pg = spillway::test_support::Postgres::shared();
//   std::string conn = pg.create_database("outbox_test");   // fresh DB, libpq keyword conninfo
//   pg.psql("outbox_test", "CREATE TABLE t (id int)");
//   pg.stop(); ... pg.start();                               // same port, same data
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "spillway/test_support/child_process.hpp"
#include "spillway/test_support/temp_dir.hpp"

namespace spillway::test_support {

struct PostgresOptions {
  // fsync and full_page_writes off: right for tests, wrong for measuring durable commits, so the
  // benchmark turns it off to get PostgreSQL's default durability. synchronous_commit stays on
  // either way, so a committed transaction survives kill() (the OS still has the WAL write).
  bool fast = true;
  // Extra server settings, each "name=value", passed as -c (e.g. "max_connections=300").
  std::vector<std::string> settings{};
};

class Postgres {
 public:
  // One server per test process, started on first use, stopped at process exit.
  static Postgres& shared();

  // An own server (initdb + start); the destructor stops it and removes its files.
  explicit Postgres(PostgresOptions options = {});
  ~Postgres();
  Postgres(const Postgres&) = delete;
  Postgres& operator=(const Postgres&) = delete;

  int port() const { return port_; }
  std::string host() const { return "127.0.0.1"; }
  // libpq keyword form: "host=127.0.0.1 port=N dbname=<db> user=postgres".
  std::string conninfo(const std::string& db = "postgres") const;

  // Drops `name` if it exists (terminating its sessions), creates it empty, returns its conninfo.
  // `name` must be a plain identifier: [a-z_][a-z0-9_]*.
  std::string create_database(const std::string& name);
  // Runs SQL (one or more statements) through libpq; throws std::runtime_error carrying the
  // server's message on error. NOTICEs are swallowed.
  void psql(const std::string& db, const std::string& sql);
  void psql(const std::string& sql) { psql("postgres", sql); }
  // Rows of a query, each value as text; SQL NULL becomes "(null)".
  std::vector<std::vector<std::string>> query(const std::string& db, const std::string& sql);
  // The first column of the first row (throws if there is no row).
  std::string scalar(const std::string& db, const std::string& sql);
  // pg_terminate_backend() for every other session connected to `db`.
  void terminate_backends(const std::string& db);

  void stop();   // fast shutdown (SIGINT), SIGKILL if it takes longer than 30 s; no-op if stopped
  void kill();   // SIGKILL the postmaster: a crash; start() then runs crash recovery
  void start();  // same port, same data dir; returns once a connection succeeds
  bool running();
  int pid() const { return server_.pid(); }  // the server process (the postmaster for PostgreSQL)

  const std::string& data_dir() const { return data_dir_; }
  const std::string& log_path() const { return log_path_; }

 private:
  void launch(bool may_change_port);
  void shutdown();  // stop and remove the files; the destructor and the exit hook call it

  PostgresOptions options_;
  std::unique_ptr<TempDir> dir_;
  std::string data_dir_;
  std::string log_path_;
  int port_ = 0;
  std::mutex mutex_;
  ChildProcess server_;
};

}  // namespace spillway::test_support
