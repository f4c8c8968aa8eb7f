// spillway/detail/base64.hpp — the one base64 codec, shared by the HTTP ingress (binary payloads
// posted with "payload_encoding":"base64", dead letters shown the same way) and the outbox stores
// (binary payloads and non-UTF-8 headers in text columns).
#ifndef SPILLWAY_DETAIL_BASE64_HPP
#define SPILLWAY_DETAIL_BASE64_HPP

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace spillway::detail {

inline constexpr std::string_view kBase64Alphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

// The RFC 4648 alphabet, padded with '='.
inline std::string base64_encode(std::string_view bytes) {
    std::string out;
    out.reserve((bytes.size() + 2) / 3 * 4);
    size_t i = 0;
    for (; i + 2 < bytes.size(); i += 3) {
        const uint32_t v = uint32_t(uint8_t(bytes[i])) << 16 | uint32_t(uint8_t(bytes[i + 1])) << 8 |
                           uint32_t(uint8_t(bytes[i + 2]));
        out += kBase64Alphabet[v >> 18 & 63];
        out += kBase64Alphabet[v >> 12 & 63];
        out += kBase64Alphabet[v >> 6 & 63];
        out += kBase64Alphabet[v & 63];
    }
    if (const size_t rest = bytes.size() - i; rest > 0) {
        uint32_t v = uint32_t(uint8_t(bytes[i])) << 16;
        if (rest == 2) v |= uint32_t(uint8_t(bytes[i + 1])) << 8;
        out += kBase64Alphabet[v >> 18 & 63];
        out += kBase64Alphabet[v >> 12 & 63];
        out += rest == 2 ? kBase64Alphabet[v >> 6 & 63] : '=';
        out += '=';
    }
    return out;
}

namespace base64_internal {
// 0..63 for the alphabet's characters, -1 for every other byte ('=' included: the decoder places
// padding itself).
inline constexpr std::array<int8_t, 256> kDecodeTable = [] {
    std::array<int8_t, 256> table{};
    table.fill(-1);
    for (size_t k = 0; k < kBase64Alphabet.size(); ++k) table[uint8_t(kBase64Alphabet[k])] = int8_t(k);
    return table;
}();
}  // namespace base64_internal

// Strict: the RFC 4648 alphabet, a length that is a multiple of four, and one or two '=' only at
// the very end; no whitespace, no line breaks, no URL-safe alphabet. Text from a database column or
// a request body that is anything else is a fault to report, not to guess at. (The bits padding
// leaves unused are not required to be zero: neither decoder this one replaced required it.)
// Returns false on any other input; `out` is then unspecified.
inline bool base64_decode(std::string_view text, std::string& out) {
    out.clear();
    if (text.size() % 4 != 0) return false;
    size_t pad = 0;
    if (!text.empty() && text.back() == '=') pad = text[text.size() - 2] == '=' ? 2 : 1;
    out.reserve(text.size() / 4 * 3);
    for (size_t i = 0; i < text.size(); i += 4) {
        const bool last = i + 4 == text.size();
        const size_t digits = last ? 4 - pad : 4;
        uint32_t v = 0;
        for (size_t k = 0; k < 4; ++k) {
            int d = 0;
            if (k < digits) {
                d = base64_internal::kDecodeTable[uint8_t(text[i + k])];
                if (d < 0) return false;
            }
            v = v << 6 | uint32_t(d);
        }
        out += char(v >> 16 & 255);
        if (digits > 2) out += char(v >> 8 & 255);
        if (digits > 3) out += char(v & 255);
    }
    return true;
}

}  // namespace spillway::detail

#endif
