#include "engine/pipeline/trace_context.hpp"

#include <set>
#include <vector>

namespace spillway::pipeline {
namespace {

bool lower_hex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }

// `n` lowercase hex digits at `at`; `what` names them in the message.
std::string hex_problem(std::string_view v, size_t at, size_t n, const char* what, bool zero_allowed) {
    bool all_zero = true;
    for (size_t i = at; i < at + n; ++i) {
        if (!lower_hex(v[i]))
            return std::string(what) + " must be " + std::to_string(n) + " lowercase hex digits, found '" +
                   std::string(v.substr(at, n)) + "'";
        all_zero = all_zero && v[i] == '0';
    }
    if (all_zero && !zero_allowed) return std::string(what) + " must not be all zeros";
    return {};
}

bool lcalpha(char c) { return c >= 'a' && c <= 'z'; }
bool digit(char c) { return c >= '0' && c <= '9'; }
bool key_char(char c) { return lcalpha(c) || digit(c) || c == '_' || c == '-' || c == '*' || c == '/'; }

// simple-key = lcalpha 0*255(...); multi-tenant-key = tenant-id "@" system-id, where tenant-id =
// (lcalpha / DIGIT) 0*240(...) and system-id = lcalpha 0*13(...).
std::string key_problem(std::string_view key) {
    const size_t at = key.find('@');
    auto part = [](std::string_view p, size_t max, bool digit_first) {
        if (p.empty() || p.size() > max) return false;
        if (!lcalpha(p[0]) && !(digit_first && digit(p[0]))) return false;
        for (char c : p)
            if (!key_char(c)) return false;
        return true;
    };
    const bool ok = at == std::string_view::npos
                        ? part(key, 256, false)
                        : part(key.substr(0, at), 241, true) && part(key.substr(at + 1), 14, false);
    if (ok) return {};
    return "key '" + std::string(key) +
           "' is not a tracestate key (lowercase letters, digits, _ - * /, starting with a letter; or tenant@system)";
}

std::string_view trimmed(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

}  // namespace

std::string traceparent_problem(std::string_view v) {
    constexpr size_t kLength = 55;  // "00-" 32 "-" 16 "-" 2
    if (v.size() < kLength)
        return "expected version-traceid-parentid-flags (55 characters for version 00), got " +
               std::to_string(v.size()) + " characters";
    if (v[2] != '-' || v[35] != '-' || v[52] != '-')
        return "expected version-traceid-parentid-flags separated by '-' at characters 3, 36 and 53";
    if (std::string p = hex_problem(v, 0, 2, "version", true); !p.empty()) return p;
    if (v.substr(0, 2) == "ff") return "version ff is not a version";
    if (v.substr(0, 2) == "00" && v.size() != kLength) return "version 00 is exactly 55 characters, got " + std::to_string(v.size());
    if (v.size() > kLength && v[kLength] != '-') return "a later version's extra fields must follow a '-'";
    if (std::string p = hex_problem(v, 3, 32, "trace-id", false); !p.empty()) return p;
    if (std::string p = hex_problem(v, 36, 16, "parent-id", false); !p.empty()) return p;
    return hex_problem(v, 53, 2, "trace-flags", true);
}

std::string tracestate_problem(std::string_view v) {
    if (v.size() > 512) return "longer than 512 characters (" + std::to_string(v.size()) + ")";
    std::set<std::string_view> keys;
    size_t members = 0, start = 0;
    while (start <= v.size()) {
        size_t end = v.find(',', start);
        if (end == std::string_view::npos) end = v.size();
        const std::string_view member = trimmed(v.substr(start, end - start));
        start = end + 1;
        if (member.empty()) continue;
        if (++members > 32) return "more than 32 list members";
        const size_t eq = member.find('=');
        if (eq == std::string_view::npos) return "member '" + std::string(member) + "' is not key=value";
        const std::string_view key = member.substr(0, eq), value = member.substr(eq + 1);
        if (std::string p = key_problem(key); !p.empty()) return p;
        if (!keys.insert(key).second) return "key '" + std::string(key) + "' appears twice";
        if (value.empty() || value.size() > 256) return "the value of '" + std::string(key) + "' must be 1 to 256 characters";
        for (char c : value)
            if (c < 0x20 || c > 0x7e || c == ',' || c == '=')
                return "the value of '" + std::string(key) + "' may hold printable ASCII only, without ',' and '='";
        if (value.back() == ' ') return "the value of '" + std::string(key) + "' must not end in a space";
    }
    return {};
}

}  // namespace spillway::pipeline
