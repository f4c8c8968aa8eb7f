// How event fields that SQL text columns cannot hold verbatim are stored.
//
// Payloads flagged SW_EVENT_PAYLOAD_BINARY are stored base64 (a text column cannot carry NUL or
// invalid UTF-8 on PostgreSQL); headers are a JSON array of [name, value] pairs, with
// [name, value, "base64"] (both base64) when either is not valid UTF-8.
#ifndef SPILLWAY_OUTBOX_COMMON_CODEC_HPP
#define SPILLWAY_OUTBOX_COMMON_CODEC_HPP

#include <spillway/detail/base64.hpp>
#include <spillway/plugin.h>

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace spillway::plugins::outbox {

// The SDK's codec (the HTTP ingress's too): RFC 4648 alphabet, padded.
using spillway::detail::base64_encode;
// Strict (see spillway/detail/base64.hpp); throws std::runtime_error on malformed input.
std::string base64_decode(std::string_view in);
bool is_utf8(std::string_view s);

std::string encode_headers(const sw_header* headers, size_t n);
// Decoded (name, value) pairs of the array encode_headers writes, or of a JSON object
// {"name": "value"} (headers an adopted table's payload carried); throws std::runtime_error
// naming the problem.
std::vector<std::pair<std::string, std::string>> decode_headers(std::string_view text);

// The headers column as Sql::headers reads it with columns.headers.<name> mapped: the row's own
// headers text, a line feed, and a JSON array of the mapped columns' values (strings, null for a
// NULL column), in the order of `names`. Appends (name, value) to `out` for each value that is
// not null and returns the row's own headers text (for decode_headers); throws
// std::runtime_error naming the problem.
std::string_view split_column_headers(std::string_view text, const std::vector<std::string>& names,
                                      std::vector<std::pair<std::string, std::string>>& out);

}  // namespace spillway::plugins::outbox

#endif
