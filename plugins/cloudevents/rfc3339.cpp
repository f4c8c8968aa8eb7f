#include "rfc3339.hpp"

#include <chrono>
#include <cstdio>

namespace spillway::plugins::cloudevents {

std::optional<std::string> rfc3339_utc(int64_t unix_us) {
    using namespace std::chrono;
    const sys_time<microseconds> instant{microseconds{unix_us}};
    const sys_days day = floor<days>(instant);  // floor, not truncation: instants before 1970 too
    const year_month_day date{day};
    if (date.year() < year{0} || date.year() > year{9999}) return std::nullopt;
    const hh_mm_ss<microseconds> clock{instant - day};
    char text[32];
    std::snprintf(text, sizeof text, "%04d-%02u-%02uT%02d:%02d:%02d.%06dZ", static_cast<int>(date.year()),
                  static_cast<unsigned>(date.month()), static_cast<unsigned>(date.day()),
                  static_cast<int>(clock.hours().count()), static_cast<int>(clock.minutes().count()),
                  static_cast<int>(clock.seconds().count()), static_cast<int>(clock.subseconds().count()));
    return std::string(text);
}

}  // namespace spillway::plugins::cloudevents
