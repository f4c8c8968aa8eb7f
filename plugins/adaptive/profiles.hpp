// Environment profiles of the adaptive scheduler: data, not branches. The values are the original
// relay's (services' outbox/di.py): its poll_interval became the ceiling, its
// error_retry_interval_seconds the error interval. "staging" had no branch there and fell through
// to the production values; it is named here so that the choice is visible.
#ifndef SPILLWAY_PLUGINS_ADAPTIVE_PROFILES_HPP
#define SPILLWAY_PLUGINS_ADAPTIVE_PROFILES_HPP

#include <array>
#include <cstdint>
#include <string_view>

namespace spillway::plugins::adaptive {

struct Profile {
    std::string_view environment;
    int64_t ceiling_ms;         // the idle wait once the ladder is climbed
    int64_t error_interval_ms;  // the wait after a round that failed
};

inline constexpr std::array<Profile, 4> kProfiles{{
    {"testing", 100, 1'000},
    {"development", 1'000, 10'000},
    {"staging", 5'000, 30'000},
    {"production", 5'000, 30'000},
}};

// An unknown environment gets the production values, as in the original system.
inline constexpr const Profile& kFallbackProfile = kProfiles[3];

inline const Profile* find_profile(std::string_view environment) {
    for (const Profile& p : kProfiles)
        if (p.environment == environment) return &p;
    return nullptr;
}

}  // namespace spillway::plugins::adaptive

#endif
