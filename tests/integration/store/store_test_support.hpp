// What the store plugins' own tests share: the store suite's helpers (its TEST_Ps are defined once
// per binary, by the conformance file), the plugins loaded once per process, and a database of the
// shared PostgreSQL server.
#pragma once

#define SPILLWAY_STORE_SUITE_HELPERS_ONLY
#include <spillway/test_support/postgres.hpp>
#include <spillway/testkit/store_suite.hpp>

#include <mutex>
#include <string>
#include <utility>

namespace spillway::store_test {

inline testkit::Plugin& postgres_plugin() {
    static testkit::Plugin plugin(testkit::plugin_file("postgres"));
    return plugin;
}

inline testkit::Plugin& sqlite_plugin() {
    static testkit::Plugin plugin(testkit::plugin_file("sqlite"));
    return plugin;
}

// A database of the shared server for one test file, created (a leftover dropped) on first use:
// each test may run in its own process, so every test asks for it before touching the server.
class PostgresDatabase {
public:
    explicit PostgresDatabase(std::string name) : name_(std::move(name)) {}

    const std::string& name() const { return name_; }
    const std::string& conninfo() {
        std::call_once(created_, [this] { conninfo_ = test_support::Postgres::shared().create_database(name_); });
        return conninfo_;
    }
    // The shared server, with this database created.
    test_support::Postgres& server() {
        conninfo();
        return test_support::Postgres::shared();
    }

private:
    std::string name_;
    std::once_flag created_;
    std::string conninfo_;
};

}  // namespace spillway::store_test
