#include "spillway/test_support/postgres.hpp"

#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <libpq-fe.h>
#include <pwd.h>
#include <stdexcept>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>

#include "exit_hooks.hpp"
#include "spillway/test_support/ports.hpp"
#include "spillway/test_support/wait.hpp"

namespace spillway::test_support {
namespace {

using namespace std::chrono_literals;

constexpr const char* kBinDir = "/usr/lib/postgresql/15/bin";
constexpr auto kReadyDeadline = 60s;   // generous: an ASan build on a busy 2-core machine
constexpr auto kStopGrace = 30s;
constexpr int kPortAttempts = 5;  // fresh ports to try when another process took ours

// initdb and postgres refuse to run as root.
std::string server_user() { return ::geteuid() == 0 ? "postgres" : ""; }

std::size_t file_size(const std::string& path) {
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  return ec ? 0 : static_cast<std::size_t>(size);
}

using Connection = std::unique_ptr<PGconn, decltype(&PQfinish)>;
using Result = std::unique_ptr<PGresult, decltype(&PQclear)>;

Connection connect(const std::string& conninfo) {
  Connection conn(PQconnectdb(conninfo.c_str()), &PQfinish);
  if (!conn || PQstatus(conn.get()) != CONNECTION_OK)
    throw std::runtime_error("Postgres: connect '" + conninfo +
                             "': " + (conn ? PQerrorMessage(conn.get()) : "out of memory"));
  PQsetNoticeProcessor(conn.get(), [](void*, const char*) {}, nullptr);
  return conn;
}

Result exec(PGconn* conn, const std::string& sql, const std::vector<std::string>& params = {}) {
  std::vector<const char*> values;
  for (const auto& p : params) values.push_back(p.c_str());
  Result res(params.empty() ? PQexec(conn, sql.c_str())
                            : PQexecParams(conn, sql.c_str(), static_cast<int>(values.size()), nullptr,
                                           values.data(), nullptr, nullptr, 0),
             &PQclear);
  const auto status = res ? PQresultStatus(res.get()) : PGRES_FATAL_ERROR;
  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK && status != PGRES_EMPTY_QUERY) {
    std::string message = res ? PQresultErrorMessage(res.get()) : PQerrorMessage(conn);
    while (!message.empty() && std::isspace(static_cast<unsigned char>(message.back()))) message.pop_back();
    throw std::runtime_error("Postgres: " + message + " (in: " + sql.substr(0, 200) + ")");
  }
  return res;
}

bool plain_identifier(const std::string& name) {
  if (name.empty() || name.size() > 63 || std::isdigit(static_cast<unsigned char>(name[0]))) return false;
  for (char c : name)
    if (!(std::islower(static_cast<unsigned char>(c)) || std::isdigit(static_cast<unsigned char>(c)) || c == '_'))
      return false;
  return true;
}

// Runs a short tool as the server's user and waits for it; throws with its output on failure.
void run_as_server(std::vector<std::string> argv, const std::string& log, const std::string& what) {
  ChildProcess tool(ChildSpec{std::move(argv), log, "/", server_user(), SIGKILL});
  if (!tool.wait_exit(120s)) tool.stop(SIGKILL, 0ms);
  if (!tool.exited_ok())
    throw std::runtime_error("Postgres: " + what + " " + tool.describe_exit() + "; output:\n" + file_tail(log));
}

// An initdb'd cluster, made once per machine (and PostgreSQL major version, and user) and kept in
// /tmp; every server starts from a copy. initdb runs in a private staging dir and the result is
// renamed into place, so concurrent test processes never see a half-made template.
std::string cluster_template() {
  uid_t uid = ::geteuid();
  if (uid == 0) {
    const passwd* pw = ::getpwnam("postgres");
    if (pw == nullptr) throw std::runtime_error("Postgres: running as root needs the 'postgres' user (postgresql-15 package)");
    uid = pw->pw_uid;
  }
  std::string path = "/tmp/spillway-pg-template-15";
  if (::geteuid() != 0) path += "-" + std::to_string(uid);
  struct stat st {};
  if (::stat((path + "/global/pg_control").c_str(), &st) == 0 && st.st_uid == uid) return path;

  TempDir staging("pgtemplate");
  staging.give_to(server_user());
  const std::string data = staging.path() + "/data";
  run_as_server({std::string(kBinDir) + "/initdb", "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8",
                 "--locale=C.UTF-8", "--no-sync"},
                staging.path() + "/initdb.log", "initdb");
  if (::rename(data.c_str(), path.c_str()) != 0 && errno != EEXIST && errno != ENOTEMPTY)
    throw std::runtime_error("Postgres: rename " + data + " to " + path + ": " + std::strerror(errno));
  if (::stat((path + "/global/pg_control").c_str(), &st) != 0 || st.st_uid != uid)
    throw std::runtime_error("Postgres: " + path + " is not a cluster owned by the server's user; remove it");
  return path;
}

}  // namespace

Postgres& Postgres::shared() {
  static Postgres* instance = new Postgres();  // leaked: the exit hook stops it (see exit_hooks.hpp)
  return *instance;
}

Postgres::Postgres(PostgresOptions options) : options_(std::move(options)) {
  dir_ = std::make_unique<TempDir>("pg");
  dir_->give_to(server_user());
  data_dir_ = dir_->path() + "/data";
  log_path_ = dir_->path() + "/server.log";

  // Copying a ready cluster takes a fraction of initdb's time, and with one process per test
  // (gtest_discover_tests) every test pays for its server start.
  run_as_server({"/bin/cp", "-a", cluster_template(), data_dir_}, dir_->path() + "/copy.log", "copy template cluster");
  launch(true);
  detail::on_exit_shutdown(this, [this] { shutdown(); });
}

Postgres::~Postgres() {
  detail::forget_exit_shutdown(this);
  shutdown();
}

void Postgres::shutdown() {
  std::lock_guard lock(mutex_);
  server_.stop(SIGINT, kStopGrace);
  dir_.reset();
}

std::string Postgres::conninfo(const std::string& db) const {
  return "host=127.0.0.1 port=" + std::to_string(port_) + " dbname=" + db + " user=postgres";
}

void Postgres::launch(bool may_change_port) {
  if (!dir_) throw std::logic_error("Postgres: used after its files were removed at exit");
  const auto give_up = std::chrono::steady_clock::now() + kReadyDeadline;
  for (int attempt = 0;; ++attempt) {
    if (port_ == 0 || (may_change_port && attempt > 0)) port_ = free_port();
    std::vector<std::string> argv{std::string(kBinDir) + "/postgres", "-D", data_dir_, "-p", std::to_string(port_),
                                  "-k", dir_->path(), "-c", "listen_addresses=127.0.0.1"};
    if (options_.fast) {
      // synchronous_commit stays on: a commit is then at least written to the OS before it returns,
      // so it survives kill() (a process crash); only a machine crash could lose it.
      for (const char* s : {"fsync=off", "full_page_writes=off"}) {
        argv.push_back("-c");
        argv.push_back(s);
      }
    }
    for (const auto& s : options_.settings) {
      argv.push_back("-c");
      argv.push_back(s);
    }
    const std::size_t log_start = file_size(log_path_);
    // SIGINT is PostgreSQL's fast shutdown: it does not wait for clients of a dead test process.
    server_ = ChildProcess(ChildSpec{argv, log_path_, "/", server_user(), SIGINT});

    const std::string probe = conninfo("postgres") + " connect_timeout=5";
    const bool settled = wait_until(
        [&] {
          if (!server_.running()) return true;
          PGconn* conn = PQconnectdb(probe.c_str());
          const bool ok = conn && PQstatus(conn) == CONNECTION_OK;
          PQfinish(conn);
          return ok;
        },
        std::chrono::duration_cast<std::chrono::milliseconds>(give_up - std::chrono::steady_clock::now()),
        10ms);
    if (settled && server_.running()) return;
    if (!settled) {
      server_.stop(SIGKILL, 10s);
      throw std::runtime_error("Postgres: no connection on port " + std::to_string(port_) + " within " +
                               std::to_string(kReadyDeadline.count()) + " s; log tail:\n" +
                               file_tail(log_path_, 30, log_start));
    }
    const std::string tail = file_tail(log_path_, 30, log_start);
    const bool port_taken = tail.find("could not bind") != std::string::npos ||
                            tail.find("Address already in use") != std::string::npos;
    // After kill() the old backends may still hold the shared memory for a moment.
    const bool old_server_lingers = tail.find("already exists") != std::string::npos ||
                                    tail.find("still in use") != std::string::npos;
    const bool retry = (port_taken && may_change_port && attempt + 1 < kPortAttempts) ||
                       (old_server_lingers && std::chrono::steady_clock::now() < give_up);
    if (!retry)
      throw std::runtime_error("Postgres: server " + server_.describe_exit() + " during startup on port " +
                               std::to_string(port_) + "; log tail:\n" + tail);
    if (old_server_lingers) std::this_thread::sleep_for(100ms);  // backoff before the next try
  }
}

void Postgres::stop() {
  std::lock_guard lock(mutex_);
  server_.stop(SIGINT, kStopGrace);
}

void Postgres::kill() {
  std::lock_guard lock(mutex_);
  server_.stop(SIGKILL, 10s);
}

void Postgres::start() {
  std::lock_guard lock(mutex_);
  if (!server_.running()) launch(false);
}

bool Postgres::running() {
  std::lock_guard lock(mutex_);
  return server_.running();
}

void Postgres::psql(const std::string& db, const std::string& sql) {
  auto conn = connect(conninfo(db));
  exec(conn.get(), sql);
}

std::vector<std::vector<std::string>> Postgres::query(const std::string& db, const std::string& sql) {
  auto conn = connect(conninfo(db));
  auto res = exec(conn.get(), sql);
  std::vector<std::vector<std::string>> rows;
  for (int r = 0; r < PQntuples(res.get()); ++r) {
    auto& row = rows.emplace_back();
    for (int c = 0; c < PQnfields(res.get()); ++c)
      row.emplace_back(PQgetisnull(res.get(), r, c) ? "(null)" : PQgetvalue(res.get(), r, c));
  }
  return rows;
}

std::string Postgres::scalar(const std::string& db, const std::string& sql) {
  auto rows = query(db, sql);
  if (rows.empty() || rows.front().empty()) throw std::runtime_error("Postgres: no value from: " + sql);
  return rows.front().front();
}

void Postgres::terminate_backends(const std::string& db) {
  auto conn = connect(conninfo("postgres"));
  exec(conn.get(),
       "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
       {db});
}

std::string Postgres::create_database(const std::string& name) {
  if (!plain_identifier(name))
    throw std::invalid_argument("Postgres::create_database: '" + name + "' is not a plain identifier [a-z_][a-z0-9_]*");
  auto conn = connect(conninfo("postgres"));
  exec(conn.get(), "DROP DATABASE IF EXISTS " + name + " WITH (FORCE)");
  exec(conn.get(), "CREATE DATABASE " + name);
  return conninfo(name);
}

}  // namespace spillway::test_support
