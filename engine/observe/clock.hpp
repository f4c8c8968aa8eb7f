// The two clocks the engine reads: wall time for what is stored or shown (created_at, delays),
// monotonic time for what is measured (latencies). Microseconds, as the ABI counts them.
#pragma once

#include <chrono>
#include <cstdint>

namespace spillway::observe {

inline int64_t unix_us() {
    return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

inline int64_t monotonic_us() {
    return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

}  // namespace spillway::observe
