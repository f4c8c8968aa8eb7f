// The control block of the "scripted" fake sink: what a test sets to make the sink succeed, fail
// or die, and the record of every event the sink took, which makes the test its independent
// consumer. It lives in a small shared library that the test and the plugin both link, so the
// plugin loaded through the C ABI (RTLD_LOCAL) and the test see one process-global block, and
// every instance the engine builds (the first and each rebuild after FATAL) shares it.
//
// Everything the sink reads on its hot path is a relaxed atomic and the record is sharded per
// calling thread: the fake must not add synchronisation between the engine's threads that the
// engine does not have itself, or ThreadSanitizer would miss races it should report.
#pragma once

#include <spillway/plugin.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace spillway::fakes::scripted {

// How the sink answers a send from now on.
enum class Mode : int {
    Ok,                       // every event acknowledged (and recorded)
    Retry,                    // every event RETRY, nothing recorded: Kafka unreachable
    RetryPossiblyDelivered,   // RETRY with SW_RESULT_POSSIBLY_DELIVERED, yet recorded: a timeout
                              // after the broker took it, so the engine will send it again
    Flaky,                    // every third event RETRY, the others acknowledged
};

// Any event whose payload contains this is refused with SW_REJECT (poison), in every mode.
inline constexpr std::string_view kPoisonMarker = "\"poison\":true";

// One event the sink took.
struct Delivery {
    std::string event_id;
    std::string key;
    bool has_key = false;
    uint64_t seq = 0;       // the order the sink took events in, across threads
    uint64_t instance = 0;  // which instance took it (1 = the first, 2 = the first rebuild, ...)
    bool acknowledged = true;  // false: recorded but answered RETRY (possibly delivered)
    std::string topic;
    std::vector<std::pair<std::string, std::string>> headers;  // as sent, in order
    int64_t created_at_us = 0;
};

class Control {
public:
    // The one block of the process.
    static Control& get();

    // Back to a healthy sink with an empty record. Only while no engine runs.
    void reset();

    // --- the script ---
    void set_mode(Mode m) { mode_.store(static_cast<int>(m), std::memory_order_relaxed); }
    Mode mode() const { return static_cast<Mode>(mode_.load(std::memory_order_relaxed)); }
    // What health() reports while the instance is not fatal (a fatal one always says DOWN).
    void set_health(sw_health_state s) { health_.store(s, std::memory_order_relaxed); }
    sw_health_state health() const { return static_cast<sw_health_state>(health_.load(std::memory_order_relaxed)); }
    // The next send with events fails FATAL, and its instance stays fatal (like a Kafka producer
    // that lost its producer id): health DOWN, every later call FATAL, until the engine rebuilds it.
    void fail_next_send_fatally() { fatal_armed_.store(true, std::memory_order_relaxed); }
    // Every instance that exists now turns fatal at once, without a send (like librdkafka's fatal
    // error callback): only the relay's look at a DOWN sink can find out.
    void kill_instances() { kills_.fetch_add(1, std::memory_order_relaxed); }

    // --- used by the sink ---
    bool take_fatal() { return fatal_armed_.exchange(false, std::memory_order_relaxed); }
    uint64_t kills() const { return kills_.load(std::memory_order_relaxed); }
    uint64_t instance_created() { return created_.fetch_add(1, std::memory_order_relaxed) + 1; }
    void instance_destroyed() { destroyed_.fetch_add(1, std::memory_order_relaxed); }
    void fatal_reported() { fatal_reports_.fetch_add(1, std::memory_order_relaxed); }
    void record(const sw_event& e, uint64_t instance, bool acknowledged);
    // Around every call into the sink: counts calls that began while another was still inside.
    void enter() {
        if (inside_.fetch_add(1, std::memory_order_acq_rel) != 0) overlaps_.fetch_add(1, std::memory_order_relaxed);
    }
    void leave() { inside_.fetch_sub(1, std::memory_order_acq_rel); }
    void sent(size_t n) {
        size_t seen = largest_send_.load(std::memory_order_relaxed);
        while (n > seen && !largest_send_.compare_exchange_weak(seen, n, std::memory_order_relaxed)) {
        }
    }

    // --- what the test reads ---
    uint64_t created() const { return created_.load(std::memory_order_relaxed); }
    uint64_t destroyed() const { return destroyed_.load(std::memory_order_relaxed); }
    uint64_t fatal_reports() const { return fatal_reports_.load(std::memory_order_relaxed); }
    uint64_t recorded() const { return recorded_.load(std::memory_order_relaxed); }  // to wait on
    // Calls into the sink that overlapped another (the thread-safe sink may; the serial one never).
    uint64_t overlaps() const { return overlaps_.load(std::memory_order_relaxed); }
    // The most events one send carried.
    size_t largest_send() const { return largest_send_.load(std::memory_order_relaxed); }
    // Every recorded event, in the order the sink took them.
    std::vector<Delivery> deliveries() const;

private:
    Control() = default;

    // One shard per calling thread (threads beyond kShards share): a thread's records need only
    // its own shard's lock, which nobody else takes except the test reading the record.
    static constexpr size_t kShards = 64;
    struct Shard {
        mutable std::mutex mutex;
        std::vector<Delivery> deliveries;
    };
    Shard& my_shard();

    std::atomic<int> mode_{static_cast<int>(Mode::Ok)};
    std::atomic<int> health_{SW_HEALTH_UP};
    std::atomic<bool> fatal_armed_{false};
    std::atomic<uint64_t> kills_{0};
    std::atomic<uint64_t> created_{0}, destroyed_{0}, fatal_reports_{0};
    std::atomic<uint64_t> seq_{0}, recorded_{0};
    std::atomic<int> inside_{0};
    std::atomic<uint64_t> overlaps_{0};
    std::atomic<size_t> largest_send_{0};
    std::atomic<size_t> next_shard_{0};
    std::array<Shard, kShards> shards_;
};

}  // namespace spillway::fakes::scripted
