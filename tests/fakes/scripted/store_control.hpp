// The control block of the "scripted-store" fake store: which keys its pending-key probe
// (pending_among) reports as waiting in the outbox, whether the probe fails, and the record of
// what the engine asked and appended. Like the scripted sink's block it lives in the control
// library that the plugin and the test both link, so the plugin loaded through the C ABI and the
// test share one block.
//
// The store holds no rows: an append is recorded and answered OK, a claim finds nothing. That is
// enough to run a direct-first pipeline with coordination = "shards" and watch the publisher's
// choice per event. The block's lock orders the engine's threads more than a real store's would;
// these tests look at the publisher's decisions, not at races.
#pragma once

#include <spillway/plugin.h>

#include <cstdint>
#include <mutex>
#include <set>
#include <string>
#include <vector>

namespace spillway::fakes::scripted {

// One event the store took.
struct Appended {
    std::string event_id;
    std::string key;
    bool has_key = false;
};

class StoreControl {
public:
    static StoreControl& get();

    // No pending keys, probes succeed, nothing recorded. Only while no engine runs.
    void reset();

    // --- the script ---
    // The keys pending_among reports found from now on.
    void set_pending(std::set<std::string> keys);
    // pending_among fails with RETRY (the database unreachable) while true.
    void fail_probes(bool fail);

    // --- used by the store ---
    // Fills found[i] for keys[i]; false when the probe is to fail. Records the call.
    bool answer(const sw_bytes* keys, size_t n, uint8_t* found);
    void held(const std::string& pipeline, uint32_t mode);
    void appended(const sw_event& e);

    // --- what the test reads ---
    // Every pending_among call, with the keys it asked about, in call order.
    std::vector<std::vector<std::string>> probes() const;
    // Every hold: (pipeline, mode).
    std::vector<std::pair<std::string, uint32_t>> holds() const;
    std::vector<Appended> appends() const;

private:
    StoreControl() = default;

    mutable std::mutex mutex_;
    std::set<std::string> pending_;
    bool fail_ = false;
    std::vector<std::vector<std::string>> probes_;
    std::vector<std::pair<std::string, uint32_t>> holds_;
    std::vector<Appended> appends_;
};

}  // namespace spillway::fakes::scripted
