// Fuzzes the outbox row codec (plugins/outbox-common/codec: the headers column and base64
// payloads), which reads text from the database: rows this engine wrote, and the headers an adopted
// application table carries in its own JSON.
//
// Each input is read three ways:
// - as a headers column: decode_headers throws nothing but std::runtime_error, and what it decodes
//   survives encode_headers and decode_headers again unchanged (in order);
// - as headers to store: fields of one length byte and that many bytes, taken in (name, value)
//   pairs; decode_headers(encode_headers(h)) == h, and is_utf8 agrees with nlohmann's UTF-8 check
//   on every field (encode_headers trusts it to keep invalid UTF-8 away from the JSON writer);
// - as a payload: base64_decode(base64_encode(x)) == x, and base64_decode of any text either
//   throws std::runtime_error or returns 3 bytes per 4 characters less the padding.
#include "plugins/outbox-common/codec.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace {

namespace codec = spillway::plugins::outbox;
using Headers = std::vector<std::pair<std::string, std::string>>;

std::string g_input;  // for failure messages

[[noreturn]] void fail(const char* what, const std::string& detail) {
    std::fprintf(stderr, "fuzz_row_codec: %s\n%s\n--- input (%zu bytes) ---\n%s\n", what, detail.c_str(), g_input.size(),
                 g_input.c_str());
    std::abort();
}

std::string encode(const Headers& headers) {
    std::vector<sw_header> spans;
    for (const auto& [name, value] : headers)
        spans.push_back({{name.data(), name.size()}, {value.data(), value.size()}});
    return codec::encode_headers(spans.data(), spans.size());
}

void check_round_trip(const Headers& headers, const char* what) {
    const std::string text = encode(headers);
    Headers again;
    try {
        again = codec::decode_headers(text);
    } catch (const std::runtime_error& e) {
        fail(what, std::string("decode_headers refused what encode_headers wrote: ") + e.what() + "\n" + text);
    }
    if (again != headers) fail(what, "decode_headers(encode_headers(h)) != h\n" + text);
}

bool nlohmann_says_utf8(const std::string& s) {
    try {
        (void)nlohmann::json(s).dump();
        return true;
    } catch (const nlohmann::json::type_error&) {
        return false;
    }
}

void check_headers_column(std::string_view text) {
    Headers decoded;
    try {
        decoded = codec::decode_headers(text);
    } catch (const std::runtime_error&) {
        return;  // a row the store reports as malformed
    }
    check_round_trip(decoded, "decoded headers do not survive encoding");
}

void check_headers_to_store(std::string_view bytes) {
    std::vector<std::string> fields;
    for (size_t i = 0; i < bytes.size();) {
        const size_t n = static_cast<unsigned char>(bytes[i++]);
        fields.emplace_back(bytes.substr(i, n));
        i += std::min(n, bytes.size() - i);
    }
    Headers headers;
    for (size_t i = 0; i + 1 < fields.size(); i += 2) headers.emplace_back(fields[i], fields[i + 1]);
    for (const auto& f : fields)
        if (codec::is_utf8(f) != nlohmann_says_utf8(f))
            fail("is_utf8 disagrees with nlohmann's UTF-8 check", "is_utf8 says " + std::string(codec::is_utf8(f) ? "yes" : "no"));
    check_round_trip(headers, "headers do not survive encoding");
}

void check_base64(std::string_view bytes) {
    std::string decoded;
    try {
        decoded = codec::base64_decode(codec::base64_encode(bytes));
    } catch (const std::runtime_error& e) {
        fail("base64_decode refused what base64_encode wrote", e.what());
    }
    if (decoded != bytes) fail("base64_decode(base64_encode(x)) != x", "");
    try {
        decoded = codec::base64_decode(bytes);
    } catch (const std::runtime_error&) {
        return;
    }
    size_t pad = 0;
    while (pad < 2 && pad < bytes.size() && bytes[bytes.size() - 1 - pad] == '=') ++pad;
    if (decoded.size() != bytes.size() / 4 * 3 - pad) fail("base64_decode returned the wrong number of bytes", "");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    g_input.assign(reinterpret_cast<const char*>(data), size);
    const std::string_view bytes(g_input);
    check_headers_column(bytes);
    check_headers_to_store(bytes);
    check_base64(bytes);
    return 0;
}
