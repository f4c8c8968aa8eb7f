#include "ladder.hpp"

#include <spillway/detail/duration.hpp>
#include <spillway/sdk.hpp>

#include <algorithm>
#include <cctype>
#include <charconv>

namespace spillway::plugins::adaptive {

namespace {

std::string_view trim(std::string_view s) {
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
    return s;
}

[[noreturn]] void bad_rung(std::string_view text, size_t index, std::string_view why) {
    throw sdk::ConfigError("ladder", "ladder[" + std::to_string(index) + "] = \"" + std::string(text) +
                                         "\": " + std::string(why) +
                                         "; expected \"<duration> x<rounds>\", e.g. \"100ms x2\"");
}

}  // namespace

Rung parse_rung(std::string_view text, size_t index) {
    const size_t x = text.rfind('x');
    if (x == std::string_view::npos) bad_rung(text, index, "no 'x<rounds>'");
    const std::string_view duration = trim(text.substr(0, x));
    const std::string_view count = trim(text.substr(x + 1));

    const auto ms = spillway::detail::parse_duration_ms(duration);
    if (!ms) bad_rung(text, index, "'" + std::string(duration) + "' is not a duration");
    if (*ms < 1) bad_rung(text, index, "the interval must be at least 1ms (0 would spin)");

    uint64_t rounds = 0;
    const auto [end, ec] = std::from_chars(count.data(), count.data() + count.size(), rounds);
    if (count.empty() || ec != std::errc() || end != count.data() + count.size())
        bad_rung(text, index, "'" + std::string(count) + "' is not a whole number of rounds");
    if (rounds < 1) bad_rung(text, index, "rounds must be at least 1");
    return Rung{*ms, rounds};
}

Ladder::Ladder(std::vector<Rung> rungs, int64_t ceiling_ms) : rungs_(std::move(rungs)), ceiling_ms_(ceiling_ms) {
    for (Rung& r : rungs_) r.interval_ms = std::min(r.interval_ms, ceiling_ms_);
}

int64_t Ladder::interval_after(uint64_t idle_rounds) const {
    uint64_t covered = 0;
    for (const Rung& r : rungs_) {
        covered += r.rounds;
        if (idle_rounds <= covered) return r.interval_ms;
    }
    return ceiling_ms_;
}

std::string format_ms(int64_t ms) {
    if (ms < 1000) return std::to_string(ms) + "ms";
    if (ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
    std::string frac = std::to_string(ms % 1000);
    frac.insert(0, 3 - frac.size(), '0');
    while (frac.back() == '0') frac.pop_back();
    return std::to_string(ms / 1000) + "." + frac + "s";
}

}  // namespace spillway::plugins::adaptive
