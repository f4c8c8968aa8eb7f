// Spans of JSON text that nlohmann has already accepted: the elements of an array, the text of an
// object's member, and that text made compact. They let the ingress send a payload as the bytes
// the client wrote (key order, number spelling and escapes kept, only whitespace dropped) without
// building its tree and serialising it again. Nothing here validates: on text that is not valid
// JSON the results are unspecified.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace spillway::http::json_text {

// The elements of a JSON array, each without surrounding whitespace.
std::vector<std::string_view> array_elements(std::string_view array);

// The value of the last member called `name` in a JSON object (the one a parser keeps), or
// nullopt. Member names written with escapes are compared unescaped.
std::optional<std::string_view> member(std::string_view object, std::string_view name);

// `value` with the whitespace outside its strings removed.
std::string compact(std::string_view value);

}  // namespace spillway::http::json_text
