// spillway/detail/duration.hpp — the one parser for duration values ("250ms", "1.5s", "2m", "1h",
// or a bare integer of milliseconds), shared by the engine's config validator and the testkit host.
#ifndef SPILLWAY_DETAIL_DURATION_HPP
#define SPILLWAY_DETAIL_DURATION_HPP

#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>

namespace spillway::detail {

// Returns milliseconds, or nullopt for anything malformed or negative.
inline std::optional<int64_t> parse_duration_ms(std::string_view text) {
    if (text.empty()) return std::nullopt;
    size_t i = 0;
    while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.')) ++i;
    if (i == 0) return std::nullopt;
    const std::string number(text.substr(0, i));
    if (number.find('.') != number.rfind('.')) return std::nullopt;
    char* end = nullptr;
    const double value = std::strtod(number.c_str(), &end);
    if (end != number.c_str() + number.size() || !std::isfinite(value) || value < 0) return std::nullopt;
    const std::string_view unit = text.substr(i);
    double factor = 0;
    if (unit.empty() || unit == "ms") factor = 1;
    else if (unit == "us") factor = 0.001;
    else if (unit == "s") factor = 1000;
    else if (unit == "m") factor = 60'000;
    else if (unit == "h") factor = 3'600'000;
    else return std::nullopt;
    if (unit.empty() && number.find('.') != std::string::npos) return std::nullopt;  // bare ms are whole
    const double ms = value * factor;
    if (ms > 9.0e15) return std::nullopt;
    return static_cast<int64_t>(std::llround(ms));
}

}  // namespace spillway::detail

#endif
