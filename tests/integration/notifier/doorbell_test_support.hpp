// Calls on a doorbell through the C ABI that the network doorbells' tests share.
#pragma once

#include <spillway/plugin.h>
#include <spillway/testkit/host.hpp>

#include <chrono>
#include <cstdint>
#include <string>

namespace spillway::doorbell_test {

// One wait's answer and how long it took.
struct Waited {
    sw_status status;
    bool woken;
    std::chrono::milliseconds elapsed;
};

inline Waited wait(testkit::NotifierInstance& n, const std::string& channel, int64_t timeout_ms) {
    using Clock = std::chrono::steady_clock;
    int woken = -1;
    const auto t0 = Clock::now();
    const sw_status st = n.vt().wait(n.get(), channel.c_str(), timeout_ms, &woken);
    return {st, woken == 1, std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0)};
}

inline sw_health health(testkit::NotifierInstance& n) {
    sw_health h{};
    h.struct_size = sizeof(h);
    n.vt().health(n.get(), &h);
    return h;
}

}  // namespace spillway::doorbell_test
