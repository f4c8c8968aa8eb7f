#include "engine/http/inflate.hpp"

#include <zlib.h>

#include <memory>

namespace spillway::http {

std::string inflate_body(std::string_view compressed, size_t max_bytes) {
    z_stream z{};
    // 15 window bits + 32: zlib detects a gzip or a zlib header itself.
    if (inflateInit2(&z, 15 + 32) != Z_OK) throw std::runtime_error("inflate: out of memory");
    const std::unique_ptr<z_stream, int (*)(z_stream*)> guard(&z, inflateEnd);
    z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(compressed.data()));
    z.avail_in = static_cast<uInt>(compressed.size());
    std::string out;
    char chunk[16384];
    for (;;) {
        z.next_out = reinterpret_cast<Bytef*>(chunk);
        z.avail_out = sizeof chunk;
        const int rc = inflate(&z, Z_NO_FLUSH);
        const size_t produced = sizeof chunk - z.avail_out;
        if (out.size() + produced > max_bytes)
            throw InflateTooLarge("decompressed body larger than " + std::to_string(max_bytes) + " bytes");
        out.append(chunk, produced);
        if (rc == Z_STREAM_END) return out;
        if (rc == Z_BUF_ERROR && z.avail_in == 0) throw std::invalid_argument("the compressed body ends before its stream does");
        if (rc != Z_OK) throw std::invalid_argument(std::string("the compressed body is corrupt: ") + (z.msg ? z.msg : "inflate failed"));
    }
}

}  // namespace spillway::http
