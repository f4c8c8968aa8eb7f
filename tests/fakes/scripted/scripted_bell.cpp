// The "scripted-bell" fake doorbell: rings wake the waiting relay of the same instance, and a wait
// with no ring sleeps out its timeout, as a real doorbell does (the fake notifier of
// fake_plugins.cpp returns at once, which would spin the relay). coordination = "shards" refuses
// the inproc doorbell, and the tests with the scripted store need one that it accepts.
#include <spillway/sdk.hpp>

#include <chrono>
#include <condition_variable>
#include <mutex>

namespace spillway::fakes::scripted {

class ScriptedBell final : public sdk::Notifier {
public:
    using Notifier::Notifier;
    static void validate(sdk::Host) {}

    void notify(std::string_view) override {
        {
            std::lock_guard lock(mutex_);
            rung_ = true;
        }
        cv_.notify_all();
    }
    bool wait(std::string_view, int64_t timeout_ms) override {
        std::unique_lock lock(mutex_);
        cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms), [&] { return rung_ || interrupted_; });
        const bool rung = rung_;
        rung_ = false;
        return rung;
    }
    void interrupt() override {
        {
            std::lock_guard lock(mutex_);
            interrupted_ = true;
        }
        cv_.notify_all();
    }

private:
    std::mutex mutex_;
    std::condition_variable cv_;
    bool rung_ = false;
    bool interrupted_ = false;
};

}  // namespace spillway::fakes::scripted

SW_EXPORT_NOTIFIER(spillway::fakes::scripted::ScriptedBell, "scripted-bell", "1.0.0",
                   "fake doorbell for engine tests: wakes its own relay only", SW_NO_OPTIONS, SW_PLUGIN_THREAD_SAFE)
