#include "topic_router.hpp"

#include <cctype>
#include <map>
#include <utility>

namespace spillway::plugins::debezium {

namespace {

constexpr const char* kRegexOption = "route.topic.regex";
constexpr const char* kReplacementOption = "route.topic.replacement";

// Java's regex as ECMAScript: `(?<name>` becomes a plain group; its number is recorded.
struct Translated {
    std::string ecmascript;
    std::map<std::string, size_t, std::less<>> names;
    size_t groups = 0;
};

Translated translate(std::string_view java) {
    Translated t;
    bool in_class = false;
    for (size_t i = 0; i < java.size(); ++i) {
        const char c = java[i];
        if (c == '\\' && i + 1 < java.size()) {  // an escaped character is never syntax
            t.ecmascript += java.substr(i, 2);
            ++i;
            continue;
        }
        if (in_class) {
            in_class = c != ']';
        } else if (c == '[') {
            in_class = true;
            t.ecmascript += c;
            if (i + 1 < java.size() && java[i + 1] == '^') t.ecmascript += java[++i];
            if (i + 1 < java.size() && java[i + 1] == ']') t.ecmascript += java[++i];  // a leading ']' is literal
            continue;
        } else if (c == '(' && java.substr(i).starts_with("(?<") && i + 3 < java.size() && java[i + 3] != '=' &&
                   java[i + 3] != '!') {
            const size_t close = java.find('>', i + 3);
            if (close == std::string_view::npos)
                throw RouterError(kRegexOption, "route.topic.regex: unclosed group name at column " + std::to_string(i + 1));
            t.names.emplace(std::string(java.substr(i + 3, close - i - 3)), ++t.groups);
            t.ecmascript += '(';
            i = close;
            continue;
        } else if (c == '(' && (i + 1 >= java.size() || java[i + 1] != '?')) {
            ++t.groups;
        }
        t.ecmascript += c;
    }
    return t;
}

}  // namespace

TopicRouter::TopicRouter(std::string_view regex, std::string_view replacement) {
    const Translated t = translate(regex);
    try {
        regex_ = std::regex(t.ecmascript, std::regex::ECMAScript);
    } catch (const std::regex_error& e) {
        throw RouterError(kRegexOption, "route.topic.regex \"" + std::string(regex) + "\" is not a regular expression: " + e.what());
    }

    std::string literal;
    const auto group = [&](size_t n) {
        if (!literal.empty()) replacement_.emplace_back(std::exchange(literal, {}));
        replacement_.emplace_back(n);
    };
    for (size_t i = 0; i < replacement.size(); ++i) {
        const char c = replacement[i];
        const std::string where = " at column " + std::to_string(i + 1) + " of route.topic.replacement \"" +
                                  std::string(replacement) + "\"";
        if (c == '\\') {
            if (i + 1 >= replacement.size()) throw RouterError(kReplacementOption, "a trailing '\\'" + where);
            literal += replacement[++i];
        } else if (c != '$') {
            literal += c;
        } else if (i + 1 < replacement.size() && replacement[i + 1] == '{') {
            const size_t close = replacement.find('}', i + 2);
            if (close == std::string_view::npos) throw RouterError(kReplacementOption, "unclosed \"${\"" + where);
            const std::string_view name = replacement.substr(i + 2, close - i - 2);
            const auto it = t.names.find(name);
            if (it == t.names.end())
                throw RouterError(kReplacementOption, "route.topic.regex has no group named '" + std::string(name) + "'" + where);
            group(it->second);
            i = close;
        } else if (i + 1 < replacement.size() && std::isdigit(static_cast<unsigned char>(replacement[i + 1]))) {
            size_t n = static_cast<size_t>(replacement[++i] - '0');
            if (n > t.groups)
                throw RouterError(kReplacementOption, "route.topic.regex has no group " + std::to_string(n) + where);
            // As Java: further digits belong to the reference while they still name a group.
            while (i + 1 < replacement.size() && std::isdigit(static_cast<unsigned char>(replacement[i + 1])) &&
                   n * 10 + static_cast<size_t>(replacement[i + 1] - '0') <= t.groups)
                n = n * 10 + static_cast<size_t>(replacement[++i] - '0');
            group(n);
        } else {
            throw RouterError(kReplacementOption, "a '$' that names no group (write \\$ for a dollar)" + where);
        }
    }
    if (!literal.empty()) replacement_.emplace_back(std::move(literal));
}

std::string TopicRouter::route(std::string_view value) const {
    std::match_results<std::string_view::const_iterator> match;
    if (!std::regex_match(value.begin(), value.end(), match, regex_)) return std::string(value);
    std::string topic;
    for (const Piece& piece : replacement_) {
        if (const auto* literal = std::get_if<std::string>(&piece)) topic += *literal;
        else if (match[std::get<size_t>(piece)].matched) topic += match[std::get<size_t>(piece)].str();
    }
    return topic;
}

}  // namespace spillway::plugins::debezium
