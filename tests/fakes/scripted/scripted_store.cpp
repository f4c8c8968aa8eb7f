// The "scripted-store" fake store: no rows, a pending-key probe a test steers through
// scripted::StoreControl, and the hold every coordination asks for. With the scripted sink it runs
// a direct-first pipeline with coordination = "shards" without a database, so a test can see which
// way the publisher sends each event and how often it asks the store.
#include "scripted/store_control.hpp"

#include <spillway/sdk.hpp>

#include <algorithm>

namespace spillway::fakes::scripted {

class ScriptedStore final : public sdk::Store {
public:
    explicit ScriptedStore(sdk::Host h) : Store(h), control_(StoreControl::get()) {}
    static void validate(sdk::Host) {}

    void append(std::span<const sw_event> events, std::span<sw_result> out) override {
        for (size_t i = 0; i < events.size(); ++i) {
            control_.appended(events[i]);
            sdk::set_result(out[i], SW_OK);
        }
    }
    std::unique_ptr<sdk::Batch> claim(std::string_view, size_t, int64_t) override { return std::make_unique<sdk::Batch>(); }
    void complete(std::span<const int64_t>, std::span<const sw_result>) override {}
    void release_leases(std::span<const int64_t>) override {}
    sdk::Stats stats(std::string_view) override { return {}; }
    void pending_keys(std::string_view, sw_key_visit_fn, void*) override {}  // nothing waits at start
    void hold(std::string_view pipeline, sw_hold_mode mode, std::string_view) override {
        control_.held(std::string(pipeline), static_cast<uint32_t>(mode));
    }
    void pending_among(std::string_view, std::span<const sw_bytes> keys, std::span<uint8_t> found) override {
        if (!control_.answer(keys.data(), std::min(keys.size(), found.size()), found.data()))
            throw sdk::Error(SW_RETRY, "scripted-store: the database cannot be reached");
    }

private:
    StoreControl& control_;
};

}  // namespace spillway::fakes::scripted

SW_EXPORT_STORE(spillway::fakes::scripted::ScriptedStore, "scripted-store", "1.0.0",
                "fake store with a scripted pending-key probe (tests/fakes/scripted/store_control.hpp)", SW_NO_OPTIONS,
                SW_PLUGIN_THREAD_SAFE)
