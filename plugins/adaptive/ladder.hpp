// The idle ladder: how long the relay waits after its 1st, 2nd, ... consecutive idle round.
#ifndef SPILLWAY_PLUGINS_ADAPTIVE_LADDER_HPP
#define SPILLWAY_PLUGINS_ADAPTIVE_LADDER_HPP

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace spillway::plugins::adaptive {

struct Rung {
    int64_t interval_ms;
    uint64_t rounds;  // how many consecutive idle rounds wait this long
};

// Parses one rung, "<duration> x<rounds>" ("100ms x2", "1.5s x 3"). Throws sdk::ConfigError
// blaming `ladder[index]` with the offending text when it is malformed.
Rung parse_rung(std::string_view text, size_t index);

class Ladder {
public:
    Ladder() = default;
    // Rungs longer than the ceiling are clamped to it: the ceiling is the longest idle wait.
    Ladder(std::vector<Rung> rungs, int64_t ceiling_ms);

    // The wait after the n-th consecutive idle round (n >= 1).
    int64_t interval_after(uint64_t idle_rounds) const;
    // The shortest idle wait: where any work found resets the relay to.
    int64_t floor_ms() const { return rungs_.empty() ? ceiling_ms_ : rungs_.front().interval_ms; }
    int64_t ceiling_ms() const { return ceiling_ms_; }
    const std::vector<Rung>& rungs() const { return rungs_; }

private:
    std::vector<Rung> rungs_;
    int64_t ceiling_ms_ = 0;
};

// "100ms", "1s", "1.5s", "0ms": how durations appear in logs and metric labels.
std::string format_ms(int64_t ms);

}  // namespace spillway::plugins::adaptive

#endif
