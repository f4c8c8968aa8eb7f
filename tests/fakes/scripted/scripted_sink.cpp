// The "scripted" fake sink: a Kafka stand-in without librdkafka, so the pipeline machinery can run
// under ThreadSanitizer. A test steers it through scripted::Control (OK, RETRY, poison REJECT,
// health DOWN/UP, FATAL) and reads back what it took. It is loaded through the C ABI like any
// plugin; only the control block is shared with the test, through a library both link.
#include "scripted/control.hpp"

#include <spillway/sdk.hpp>

#include <atomic>
#include <chrono>
#include <set>
#include <string>
#include <string_view>

namespace spillway::fakes::scripted {

class ScriptedSink final : public sdk::Sink {
public:
    explicit ScriptedSink(sdk::Host h)
        : Sink(h), control_(Control::get()), number_(control_.instance_created()), kills_at_birth_(control_.kills()) {}
    ~ScriptedSink() override { control_.instance_destroyed(); }
    // Nothing to check; declared so that validation does not construct an instance, which the
    // control block would count as one the engine built.
    static void validate(sdk::Host) {}

    void health(sw_health& out) override {
        Inside inside(control_);
        if (fatal()) {
            out.state = SW_HEALTH_DOWN;
            sdk::set_message(out, "scripted: fatal, needs a rebuild");
            return;
        }
        out.state = control_.health();
        sdk::set_message(out, out.state == SW_HEALTH_DOWN ? "scripted: down" : "");
    }

    void send(std::span<const sw_event> events, std::span<sw_result> out, int64_t) override {
        Inside inside(control_);
        control_.sent(events.size());
        for (auto& r : out) {
            r.partition = -1;
            r.offset = -1;
        }
        if (!fatal() && !events.empty() && control_.take_fatal()) fatal_.store(true, std::memory_order_relaxed);
        if (fatal()) {
            // As the kafka sink does: every result FATAL and the call FATAL, so the engine rebuilds.
            for (auto& r : out) sdk::set_result(r, SW_FATAL, "scripted: fatal");
            if (!events.empty()) control_.fatal_reported();
            throw sdk::Error(SW_FATAL, "scripted: the instance is fatal");
        }
        const Mode mode = control_.mode();
        // A failure holds back the rest of its key within the call, as one Kafka partition would:
        // a later event of the key is never acknowledged past an earlier one that was not.
        std::set<std::string_view> failed_keys;
        for (size_t i = 0; i < events.size(); ++i) {
            const sw_event& e = events[i];
            const std::string_view key = sdk::view(e.key);
            if (sdk::view(e.payload).find(kPoisonMarker) != std::string_view::npos) {
                sdk::set_result(out[i], SW_REJECT, "scripted: poison");
                continue;
            }
            bool ok = mode == Mode::Ok ||
                      (mode == Mode::Flaky && flaky_.fetch_add(1, std::memory_order_relaxed) % 3 != 2);
            if (sdk::present(e.key) && failed_keys.count(key)) ok = false;
            if (ok) {
                control_.record(e, number_, true);
                sdk::set_result(out[i], SW_OK);
                continue;
            }
            if (sdk::present(e.key)) failed_keys.insert(key);
            if (mode == Mode::RetryPossiblyDelivered) {
                control_.record(e, number_, false);
                sdk::set_result(out[i], SW_RETRY, "scripted: no delivery report in time",
                                SW_RESULT_POSSIBLY_DELIVERED);
            } else {
                sdk::set_result(out[i], SW_RETRY, "scripted: brokers unreachable");
            }
        }
    }

private:
    // Marks a call; the serial build stays inside a little longer, so that calls the host failed
    // to serialise would be caught overlapping.
    struct Inside {
        explicit Inside(Control& c) : c_(c) {
            c_.enter();
#if defined(SCRIPTED_SERIAL)
            const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(50);
            while (std::chrono::steady_clock::now() < until) {
            }
#endif
        }
        ~Inside() { c_.leave(); }
        Control& c_;
    };

    bool fatal() const {
        return fatal_.load(std::memory_order_relaxed) || control_.kills() != kills_at_birth_;
    }

    Control& control_;
    const uint64_t number_;
    const uint64_t kills_at_birth_;
    std::atomic<bool> fatal_{false};
    std::atomic<uint64_t> flaky_{0};
};

}  // namespace spillway::fakes::scripted

#if defined(SCRIPTED_SERIAL)
// The same sink, not declaring SW_PLUGIN_THREAD_SAFE: the host must call it from one thread at a time.
SW_EXPORT_SINK(spillway::fakes::scripted::ScriptedSink, "scripted-serial", "1.0.0",
               "the scripted fake sink, not thread safe", SW_NO_OPTIONS, 0)
#else
SW_EXPORT_SINK(spillway::fakes::scripted::ScriptedSink, "scripted", "1.0.0",
               "fake sink a test steers at run time (tests/fakes/scripted/control.hpp)", SW_NO_OPTIONS,
               SW_PLUGIN_THREAD_SAFE)
#endif
