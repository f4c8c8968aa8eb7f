// Which topic names an event may carry: a legal Kafka name that is not internal, and, when the
// pipeline restricts them (its `topics` option), one its list allows. Checked where every event
// enters (Pipeline::publish), so HTTP, the CLI and the C++ API refuse the same names.
//
// Header-only so engine/config can check the `topic` and `topics` keys with the same rule.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace spillway::pipeline {

// Kafka's own limit (kafka.common.internals.Topic): 249 characters.
inline constexpr size_t kMaxTopicLength = 249;

inline bool topic_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
           c == '-';
}

// `name` as printable ASCII for a message: other bytes as \xNN, cut after 80 characters, so a
// client's NUL or escape sequence never reaches a log or a response as it is.
inline std::string printable_topic(std::string_view name) {
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out = "\"";
    size_t shown = 0;
    for (char ch : name) {
        if (shown++ == 80) {
            out += "...";
            break;
        }
        const auto c = static_cast<unsigned char>(ch);
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
            out += ch;
        } else {
            out += "\\x";
            out += kHex[c >> 4];
            out += kHex[c & 0xf];
        }
    }
    out += "\"";
    if (name.size() > 80) out += " (" + std::to_string(name.size()) + " bytes)";
    return out;
}

// Empty when `name` is a topic a client may name; otherwise why not, naming the topic safely.
// Internal topics (`__consumer_offsets`, `__transaction_state`, any `__` name) are refused: a
// producer has no business writing them.
inline std::string topic_name_problem(std::string_view name) {
    if (name.empty()) return "the topic name is empty";
    const std::string shown = printable_topic(name);
    if (name.size() > kMaxTopicLength)
        return "topic " + shown + " is longer than " + std::to_string(kMaxTopicLength) + " characters";
    if (name == "." || name == "..") return "topic " + shown + " is not a legal Kafka topic name";
    for (char c : name)
        if (!topic_char(c))
            return "topic " + shown + " is not a legal Kafka topic name (letters, digits, '.', '_' and '-' only)";
    if (name.size() >= 2 && name[0] == '_' && name[1] == '_')
        return "topic " + shown + " is internal to Kafka (names starting with \"__\" are refused)";
    return {};
}

// Does `name` match `pattern`: `*` stands for any run of characters (none included), every other
// character for itself. "orders.*" allows orders.created and orders.x.y; "*.events" and
// "orders.*.v1" work too.
inline bool topic_matches(std::string_view pattern, std::string_view name) {
    // Iterative glob with one backtrack point: linear in practice, never recursive.
    size_t p = 0, n = 0, star = std::string_view::npos, resume = 0;
    while (n < name.size()) {
        if (p < pattern.size() && pattern[p] == '*') {
            star = p++;
            resume = n;
        } else if (p < pattern.size() && pattern[p] == name[n]) {
            ++p;
            ++n;
        } else if (star != std::string_view::npos) {
            p = star + 1;
            n = ++resume;
        } else {
            return false;
        }
    }
    while (p < pattern.size() && pattern[p] == '*') ++p;
    return p == pattern.size();
}

// Empty when `pattern` can be a `topics` entry: legal topic characters and `*`, 1..249 long.
inline std::string topic_pattern_problem(std::string_view pattern) {
    if (pattern.empty()) return "an empty entry";
    if (pattern.size() > kMaxTopicLength) return "longer than " + std::to_string(kMaxTopicLength) + " characters";
    for (char c : pattern)
        if (!topic_char(c) && c != '*')
            return printable_topic(pattern) + " has a character a topic name cannot have (letters, digits, '.', '_', '-' and the wildcard '*' only)";
    if (pattern.size() >= 2 && pattern[0] == '_' && pattern[1] == '_')
        return printable_topic(pattern) + " names internal topics (\"__\"...), which are refused whatever this list says";
    return {};
}

// The `topics` list as the publish path checks it; empty allows every legal name.
inline bool topic_allowed(const std::vector<std::string>& patterns, std::string_view name) {
    if (patterns.empty()) return true;
    for (const std::string& p : patterns)
        if (topic_matches(p, name)) return true;
    return false;
}

}  // namespace spillway::pipeline
