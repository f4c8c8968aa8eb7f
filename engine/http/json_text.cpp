#include "engine/http/json_text.hpp"

#include <nlohmann/json.hpp>

namespace spillway::http::json_text {

namespace {

bool space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

size_t skip_space(std::string_view t, size_t i) {
    while (i < t.size() && space(t[i])) ++i;
    return i;
}

// t[i] is the opening quote; returns the index after the closing one.
size_t skip_string(std::string_view t, size_t i) {
    for (++i; i < t.size(); ++i) {
        if (t[i] == '\\') ++i;  // the escaped character cannot end the string
        else if (t[i] == '"') return i + 1;
    }
    return t.size();
}

// t[i] starts a value; returns the index after it.
size_t skip_value(std::string_view t, size_t i) {
    if (i >= t.size()) return i;
    if (t[i] == '"') return skip_string(t, i);
    if (t[i] == '{' || t[i] == '[') {
        int depth = 0;
        while (i < t.size()) {
            const char c = t[i];
            if (c == '"') {
                i = skip_string(t, i);
                continue;
            }
            if (c == '{' || c == '[') ++depth;
            else if ((c == '}' || c == ']') && --depth == 0) return i + 1;
            ++i;
        }
        return i;
    }
    while (i < t.size() && !space(t[i]) && t[i] != ',' && t[i] != '}' && t[i] != ']') ++i;  // a literal
    return i;
}

// The characters of a JSON string literal (quotes included), unescaped.
std::string string_value(std::string_view literal) {
    const std::string_view bare = literal.substr(1, literal.size() >= 2 ? literal.size() - 2 : 0);
    if (bare.find('\\') == std::string_view::npos) return std::string(bare);
    // Escapes (\uXXXX, surrogate pairs) are the parser's business.
    return nlohmann::json::parse(literal.begin(), literal.end()).get<std::string>();
}

}  // namespace

std::vector<std::string_view> array_elements(std::string_view array) {
    std::vector<std::string_view> out;
    size_t i = skip_space(array, 0);
    if (i >= array.size() || array[i] != '[') return out;
    i = skip_space(array, i + 1);
    while (i < array.size() && array[i] != ']') {
        const size_t end = skip_value(array, i);
        out.push_back(array.substr(i, end - i));
        i = skip_space(array, end);
        if (i < array.size() && array[i] == ',') i = skip_space(array, i + 1);
    }
    return out;
}

std::optional<std::string_view> member(std::string_view object, std::string_view name) {
    std::optional<std::string_view> found;
    size_t i = skip_space(object, 0);
    if (i >= object.size() || object[i] != '{') return found;
    i = skip_space(object, i + 1);
    while (i < object.size() && object[i] == '"') {
        const size_t key_end = skip_string(object, i);
        const std::string_view key = object.substr(i, key_end - i);
        const std::string_view bare = key.substr(1, key.size() >= 2 ? key.size() - 2 : 0);
        const bool match = bare.find('\\') == std::string_view::npos ? bare == name : string_value(key) == name;
        i = skip_space(object, key_end);
        if (i < object.size() && object[i] == ':') i = skip_space(object, i + 1);
        const size_t value_end = skip_value(object, i);
        if (match) found = object.substr(i, value_end - i);
        i = skip_space(object, value_end);
        if (i < object.size() && object[i] == ',') i = skip_space(object, i + 1);
    }
    return found;
}

std::string compact(std::string_view value) {
    std::string out;
    out.reserve(value.size());
    for (size_t i = 0; i < value.size();) {
        if (value[i] == '"') {
            const size_t end = skip_string(value, i);
            out.append(value.substr(i, end - i));
            i = end;
        } else {
            if (!space(value[i])) out.push_back(value[i]);
            ++i;
        }
    }
    return out;
}

}  // namespace spillway::http::json_text
