// inproc: the doorbell for a single process (the embedded quickstart, and direct-first fallbacks
// whose publisher and relay live in one engine). The engine makes one instance per pipeline and
// hands it to both, so a per-instance bell is all the sharing needed.
//
// Each channel has one token: notify sets it, wait takes it. A ring with nobody waiting is kept
// until the next wait (no lost wake-up), and any number of rings before a wait coalesce into one.
#include <spillway/sdk.hpp>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <set>
#include <string>

namespace spillway::plugins::inproc {

// Longer waits are cut to a day: the relay wakes up once in a while whatever it asked for.
inline constexpr int64_t kLongestWaitMs = 86'400'000;

class InprocNotifier final : public sdk::Notifier {
public:
    using Notifier::Notifier;

    void start() override {
        std::lock_guard lock(mutex_);
        interrupted_ = false;
    }

    void notify(std::string_view channel) override {
        {
            std::lock_guard lock(mutex_);
            if (!rung_.emplace(channel).second) return;  // already rung: coalesced
        }
        bell_.notify_all();
    }

    bool wait(std::string_view channel, int64_t timeout_ms) override {
        const auto deadline = std::chrono::steady_clock::now() +
                              std::chrono::milliseconds(std::clamp<int64_t>(timeout_ms, 0, kLongestWaitMs));
        std::unique_lock lock(mutex_);
        const auto token = [&] { return rung_.find(channel); };
        bell_.wait_until(lock, deadline, [&] { return interrupted_ || token() != rung_.end(); });
        if (interrupted_) return false;
        const auto it = token();
        if (it == rung_.end()) return false;
        rung_.erase(it);
        return true;
    }

    // Sticky until the next start(): every current and later wait returns false at once.
    void interrupt() override {
        {
            std::lock_guard lock(mutex_);
            interrupted_ = true;
        }
        bell_.notify_all();
    }

    void stop(int64_t) override { interrupt(); }

private:
    std::mutex mutex_;
    std::condition_variable bell_;
    std::set<std::string, std::less<>> rung_;  // channels with a pending token
    bool interrupted_ = false;
};

}  // namespace spillway::plugins::inproc

SW_EXPORT_NOTIFIER(spillway::plugins::inproc::InprocNotifier, "inproc", "1.0.0",
                   "in-process doorbell (condition variable) for one engine", SW_NO_OPTIONS, SW_PLUGIN_THREAD_SAFE)
