// Request bodies sent with Content-Encoding gzip or deflate (engine.http_gzip = true), undone with
// a bound on what comes out: a few KB of gzip can expand to gigabytes.
#pragma once

#include <cstddef>
#include <stdexcept>
#include <string>
#include <string_view>

namespace spillway::http {

struct InflateTooLarge : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// Decompresses a gzip or zlib ("deflate" in HTTP) stream; the format is read from its header.
// Throws InflateTooLarge once the output would pass `max_bytes`, std::invalid_argument for data
// that is not a complete gzip/zlib stream.
std::string inflate_body(std::string_view compressed, size_t max_bytes);

}  // namespace spillway::http
