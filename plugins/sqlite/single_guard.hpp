// coordination = "single" on SQLite: one engine per direct-first pipeline of a database file.
//
// Two engines sending one pipeline's events directly reorder a key (one spills e1(K), the other
// sends e2(K) straight to Kafka); see SCALE-OUT.md §1. Each pipeline held gets a lock file beside
// the database, `<path>-spillway-<pipeline>.lock`, locked with flock: exclusively by a
// direct-first engine, shared by an outbox-first one (safe in any number). An exclusive holder
// writes its name into the file, so a refused engine can name it. flock belongs to the open file:
// two engines in one process conflict as two processes do, and a process that dies lets go.
#ifndef SPILLWAY_PLUGINS_SQLITE_SINGLE_GUARD_HPP
#define SPILLWAY_PLUGINS_SQLITE_SINGLE_GUARD_HPP

#include <spillway/sdk.hpp>

#include <map>
#include <mutex>
#include <string>

namespace spillway::plugins::sqlite {

class SingleGuard {
public:
    explicit SingleGuard(std::string database_path) : path_(std::move(database_path)) {}
    ~SingleGuard();  // closes the lock files: the holds go
    SingleGuard(const SingleGuard&) = delete;
    SingleGuard& operator=(const SingleGuard&) = delete;

    // Throws sdk::Error: SW_REJECT naming the engine that holds `pipeline` in a conflicting mode,
    // SW_RETRY when the lock file cannot be opened.
    void hold(const std::string& pipeline, sw_hold_mode mode, const std::string& holder);

private:
    std::string lock_path(const std::string& pipeline) const;
    std::mutex mutex_;
    const std::string path_;
    std::map<std::string, std::pair<int, sw_hold_mode>> held_;  // pipeline -> (fd, mode)
};

}  // namespace spillway::plugins::sqlite

#endif
