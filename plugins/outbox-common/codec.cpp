#include "codec.hpp"

#include <spillway/detail/json_depth.hpp>

#include <nlohmann/json.hpp>

#include <stdexcept>
#include <string>

namespace spillway::plugins::outbox {

namespace {

// nlohmann's parser keeps its own stack, but dump() (a non-string value of an adopted table's
// headers object) recurses once per nesting level: a value nested 100,000 deep (200 KB of
// brackets in a row an application wrote) overflowed the relay thread's stack, and the row,
// claimed again after the restart, crashed the engine again. Headers are flat; only brackets
// outside strings count.
constexpr size_t kMaxHeadersDepth = 64;

void check_depth(std::string_view text) {
    if (spillway::detail::first_bracket_deeper_than(text, kMaxHeadersDepth))
        throw std::runtime_error("headers column nested deeper than " + std::to_string(kMaxHeadersDepth) + " levels");
}
}  // namespace

std::string base64_decode(std::string_view in) {
    if (in.size() % 4 != 0) throw std::runtime_error("malformed base64 (length)");
    std::string out;
    if (!spillway::detail::base64_decode(in, out)) throw std::runtime_error("malformed base64");
    return out;
}

bool is_utf8(std::string_view s) {
    size_t i = 0;
    while (i < s.size()) {
        const unsigned char c = s[i];
        size_t n = 0;
        uint32_t cp = 0;
        if (c < 0x80) { ++i; continue; }
        if ((c & 0xE0) == 0xC0) { n = 1; cp = c & 0x1F; }
        else if ((c & 0xF0) == 0xE0) { n = 2; cp = c & 0x0F; }
        else if ((c & 0xF8) == 0xF0) { n = 3; cp = c & 0x07; }
        else return false;
        if (i + n >= s.size()) return false;
        for (size_t k = 1; k <= n; ++k) {
            const unsigned char cc = s[i + k];
            if ((cc & 0xC0) != 0x80) return false;
            cp = cp << 6 | (cc & 0x3F);
        }
        // Overlong forms, surrogates and out-of-range code points are not UTF-8.
        if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10FFFF ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += n + 1;
    }
    return true;
}

std::string encode_headers(const sw_header* headers, size_t n) {
    nlohmann::json arr = nlohmann::json::array();
    for (size_t i = 0; i < n; ++i) {
        const std::string_view name(headers[i].name.ptr ? headers[i].name.ptr : "", headers[i].name.len);
        const std::string_view value(headers[i].value.ptr ? headers[i].value.ptr : "", headers[i].value.len);
        if (is_utf8(name) && is_utf8(value)) arr.push_back({std::string(name), std::string(value)});
        else arr.push_back({base64_encode(name), base64_encode(value), "base64"});
    }
    return arr.dump();
}

std::vector<std::pair<std::string, std::string>> decode_headers(std::string_view text) {
    std::vector<std::pair<std::string, std::string>> out;
    if (text.empty()) return out;
    check_depth(text);
    // Ordered: headers keep the order the envelope wrote them in.
    const auto arr = nlohmann::ordered_json::parse(text, nullptr, false);
    if (arr.is_object()) {
        // Headers an application kept in its JSON envelope (headers_field): {"name": "value"}.
        // A value that is not a string travels as its JSON text; a null one is left out.
        for (const auto& [name, value] : arr.items()) {
            if (value.is_null()) continue;
            out.emplace_back(name, value.is_string() ? value.get<std::string>() : value.dump());
        }
        return out;
    }
    if (!arr.is_array()) throw std::runtime_error("headers column is not a JSON array");
    for (const auto& h : arr) {
        if (!h.is_array() || h.size() < 2 || !h[0].is_string() || !h[1].is_string())
            throw std::runtime_error("headers column holds an entry that is not [name, value]");
        if (h.size() > 2 && h[2] == "base64")
            out.emplace_back(base64_decode(h[0].get<std::string>()), base64_decode(h[1].get<std::string>()));
        else
            out.emplace_back(h[0].get<std::string>(), h[1].get<std::string>());
    }
    return out;
}

std::string_view split_column_headers(std::string_view text, const std::vector<std::string>& names,
                                      std::vector<std::pair<std::string, std::string>>& out) {
    // A JSON text built by the database holds no raw line feed (JSON escapes control
    // characters), so the last one is the separator whatever the row's own headers hold.
    const size_t nl = text.rfind('\n');
    if (nl == std::string_view::npos) throw std::runtime_error("headers column read without its columns.headers values");
    const auto values = nlohmann::json::parse(text.substr(nl + 1), nullptr, false);
    if (!values.is_array() || values.size() != names.size())
        throw std::runtime_error("columns.headers values are not an array of " + std::to_string(names.size()));
    for (size_t i = 0; i < names.size(); ++i) {
        if (values[i].is_null()) continue;  // a NULL column adds no header
        if (!values[i].is_string()) throw std::runtime_error("columns.headers value of '" + names[i] + "' is not text");
        out.emplace_back(names[i], values[i].get<std::string>());
    }
    return text.substr(0, nl);
}

}  // namespace spillway::plugins::outbox
