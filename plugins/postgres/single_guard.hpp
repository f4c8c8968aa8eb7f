// coordination = "single": one engine per direct-first pipeline of an outbox table.
//
// Two engines sending one pipeline's events directly reorder a key: the first spills e1(K) to the
// outbox, the second sends e2(K) straight to Kafka, and e2 lands first (SCALE-OUT.md §1, S1-S4).
// So a direct-first engine holds a session advisory lock per (table, pipeline) in exclusive mode,
// an outbox-first one (safe in any number) in shared mode, and a conflicting start is refused
// with the other holder's name. The locks live on one dedicated session outside the pool: a
// pooled session may be closed and reopened at any time, and its locks would go with it.
//
// The guard session asks the server to drop it within about 15 s of its host going silent (TCP
// keepalives and tcp_user_timeout are session settings), so a replacement for a lost host is not
// refused for hours. A session the guard loses (database restart, network cut) is reopened and
// its holds taken again; a hold another engine took meanwhile is reported by trouble(), which the
// store's health shows.
#ifndef SPILLWAY_PLUGINS_POSTGRES_SINGLE_GUARD_HPP
#define SPILLWAY_PLUGINS_POSTGRES_SINGLE_GUARD_HPP

#include <pg-common/conninfo.hpp>
#include <spillway/sdk.hpp>

#include <condition_variable>
#include <map>
#include <mutex>
#include <string>
#include <thread>

namespace spillway::plugins::postgres {

class SingleGuard {
public:
    SingleGuard(const pg::Conninfo& conninfo, std::string table, sdk::Host host);
    ~SingleGuard();  // closes the session, which frees every hold
    SingleGuard(const SingleGuard&) = delete;
    SingleGuard& operator=(const SingleGuard&) = delete;

    // Throws sdk::Error: SW_REJECT naming the engine that holds `pipeline` in a conflicting mode,
    // SW_RETRY when the database cannot be reached.
    void hold(const std::string& pipeline, sw_hold_mode mode, const std::string& holder);
    // "" while every hold is in place; else which were lost and to whom.
    std::string trouble() const;

private:
    struct Hold {
        sw_hold_mode mode;
        std::string holder;
        bool taken = false;  // on the session open now
    };
    // (Re)opens the session when it is not open; throws sdk::Error(SW_RETRY).
    void open_session(const std::string& holder);
    // Takes one hold on the open session: "" when taken, else who holds it.
    std::string take(const std::string& pipeline, sw_hold_mode mode);
    std::string holders_of(int space, int key) const;
    void watch();  // every 2 s: is the session alive? if not, reopen it and take the holds again

    const pg::Conninfo& conninfo_;
    const std::string table_;
    sdk::Host host_;
    mutable std::mutex mutex_;
    std::condition_variable wake_;
    bool stopping_ = false;
    PGconn* session_ = nullptr;
    std::map<std::string, Hold> holds_;  // by pipeline
    std::string trouble_;
    std::thread watcher_;
};

}  // namespace spillway::plugins::postgres

#endif
