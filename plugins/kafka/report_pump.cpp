#include "report_pump.hpp"

#include <algorithm>

namespace spillway::plugins::kafka {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::microseconds;
using std::chrono::milliseconds;

// Longest single rd_kafka_poll of a sender holding the role (it returns early on any event).
constexpr auto kSenderPollSlice = milliseconds(10);
// A sender without the role re-checks for it this often (it is woken at once by its own
// reports): briefly at first, when a report is most likely, then rarely, to spare the CPU when
// Kafka is slow.
constexpr auto kEarlyRetry = microseconds(250);
constexpr auto kLateRetry = milliseconds(5);
constexpr auto kEarlyPhase = milliseconds(5);
// The background thread's tick while senders wait (it picks up when a role holder leaves) and
// while none does.
constexpr auto kBusyTick = milliseconds(1);
constexpr auto kIdleTick = milliseconds(100);  // senders poll for their own reports; this only serves callbacks

int poll_timeout_ms(Clock::duration left) {
    const auto ms = std::chrono::ceil<milliseconds>(std::min<Clock::duration>(left, kSenderPollSlice)).count();
    return static_cast<int>(std::max<int64_t>(ms, 0));
}

}  // namespace

void ReportPump::start(rd_kafka_t* producer) {
    producer_ = producer;
    stopping_.store(false);
    thread_ = std::thread(&ReportPump::background, this);
}

void ReportPump::stop() {
    if (!thread_.joinable()) return;
    {
        std::lock_guard lock(idle_mutex_);
        stopping_.store(true);
    }
    idle_cv_.notify_all();
    thread_.join();
}

bool ReportPump::wait(Completion& completion, Clock::time_point until, uint64_t epoch) {
    waiters_.fetch_add(1, std::memory_order_relaxed);
    const auto started = Clock::now();
    bool cut_short = false;
    for (;;) {
        const auto now = Clock::now();
        if (completion.done() || now >= until) break;
        // After a report or a slice of polling, never later: the role holder that ran the error
        // callback itself stops here too, once its rd_kafka_poll returns.
        if (outage_epoch() != epoch) {
            cut_short = true;
            break;
        }
        if (std::unique_lock role(role_, std::try_to_lock); role) {
            rd_kafka_poll(producer_, poll_timeout_ms(until - now));
            continue;
        }
        const auto retry = now - started < kEarlyPhase ? Clock::duration(kEarlyRetry) : Clock::duration(kLateRetry);
        completion.wait_done_until(std::min(until, now + retry));
    }
    waiters_.fetch_sub(1, std::memory_order_relaxed);
    idle_cv_.notify_one();  // the others may be left without a poller: let the background step in
    return cut_short;
}

void ReportPump::make_room(Clock::time_point until) {
    const auto now = Clock::now();
    if (now >= until) return;
    if (std::unique_lock role(role_, std::try_to_lock); role) {
        rd_kafka_poll(producer_, poll_timeout_ms(until - now));  // returns once anything was served
        return;
    }
    std::this_thread::sleep_for(std::min<Clock::duration>(until - now, kEarlyRetry));
}

void ReportPump::background() {
    while (!stopping_.load()) {
        if (std::unique_lock role(role_, std::try_to_lock); role) rd_kafka_poll(producer_, 0);
        std::unique_lock lock(idle_mutex_);
        if (stopping_.load()) break;
        idle_cv_.wait_for(lock, waiters_.load(std::memory_order_relaxed) > 0 ? kBusyTick : kIdleTick);
    }
}

}  // namespace spillway::plugins::kafka
