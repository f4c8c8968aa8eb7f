// spillway/detail/json_depth.hpp — the one nesting-depth pre-scan for JSON text, shared by the HTTP
// ingress (request bodies) and the outbox stores (headers columns). It runs before any parser:
// nlohmann's parser keeps its own stack, but a tree of millions of levels costs hundreds of bytes a
// level, and dump() and the tree's destructor recurse once per level, so text nested deeply enough
// exhausts memory or overflows the thread's stack.
#ifndef SPILLWAY_DETAIL_JSON_DEPTH_HPP
#define SPILLWAY_DETAIL_JSON_DEPTH_HPP

#include <cstddef>
#include <optional>
#include <string_view>

namespace spillway::detail {

// The offset (from 0) of the first '{' or '[' that opens a level deeper than `max_depth` (the outer
// value is level 1), or nullopt if `text` nests no deeper. Only brackets outside strings count;
// whether the text is otherwise valid JSON is the parser's business.
inline std::optional<size_t> first_bracket_deeper_than(std::string_view text, size_t max_depth) {
    size_t depth = 0;
    for (size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        if (c == '"') {
            for (++i; i < text.size() && text[i] != '"'; ++i)
                if (text[i] == '\\') ++i;  // the escaped character cannot end the string
        } else if (c == '{' || c == '[') {
            if (++depth > max_depth) return i;
        } else if ((c == '}' || c == ']') && depth > 0) {
            --depth;
        }
    }
    return std::nullopt;
}

}  // namespace spillway::detail

#endif
