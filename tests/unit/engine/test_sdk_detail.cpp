// The SDK's shared detail headers that both the engine (HTTP ingress) and the outbox plugins use:
// the base64 codec and the JSON nesting-depth pre-scan. Each caller wraps them in its own error
// type; these tests pin the behaviour both callers rely on.
#include <spillway/detail/base64.hpp>
#include <spillway/detail/json_depth.hpp>

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace spillway::detail {
namespace {

std::optional<std::string> decoded(std::string_view text) {
    std::string out;
    if (!base64_decode(text, out)) return std::nullopt;
    return out;
}

TEST(SdkBase64, MatchesTheRfc4648TestVectors) {
    const std::pair<const char*, const char*> vectors[] = {
        {"", ""},         {"f", "Zg=="},         {"fo", "Zm8="},        {"foo", "Zm9v"},
        {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"},
    };
    for (const auto& [plain, encoded] : vectors) {
        EXPECT_EQ(base64_encode(plain), encoded) << plain;
        EXPECT_EQ(decoded(encoded), plain) << encoded;
    }
}

TEST(SdkBase64, EveryByteValueSurvivesARoundTripAtEveryLengthAndPosition) {
    // Lengths 0..5 cover no padding, one '=' and two, in the first and a later quad; each byte value
    // appears in each position of each length.
    for (size_t length = 0; length <= 5; ++length) {
        for (unsigned first = 0; first < 256; ++first) {
            std::string bytes(length, '\0');
            for (size_t k = 0; k < length; ++k) bytes[k] = static_cast<char>((first + 97 * k) & 255);
            const std::string text = base64_encode(bytes);
            ASSERT_EQ(text.size(), (length + 2) / 3 * 4);
            ASSERT_EQ(decoded(text), bytes) << "length " << length << ", first byte " << first << ": " << text;
        }
    }
    std::string all;
    for (unsigned b = 0; b < 256; ++b) all += static_cast<char>(b);
    EXPECT_EQ(decoded(base64_encode(all)), all);
}

TEST(SdkBase64, RefusesAnythingButThePaddedRfc4648Alphabet) {
    const std::string_view refused[] = {
        "QUJ*",   "QU-D",     "QU_D",  // outside the alphabet, the URL-safe one included
        "QU JD",  "QUJD\n",   " QUJD", std::string_view("QU\0D", 4), "QU\xff" "D",
        "QUJ",    "QUJDQ",    "Q",     // not a multiple of four
        "QQ=",    "Q===",     "====",  "QQ=A", "=QUJ", "QQ==QUJD",  // padding anywhere but the end, or too much
    };
    for (const auto text : refused) EXPECT_EQ(decoded(text), std::nullopt) << text;
    EXPECT_EQ(decoded("QQ=="), "A");
    EXPECT_EQ(decoded("QUI="), "AB");
    EXPECT_EQ(decoded("+/+/"), "\xfb\xff\xbf");
}

TEST(SdkJsonDepth, AcceptsTheLimitAndPointsAtTheBracketOneLevelPastIt) {
    EXPECT_EQ(first_bracket_deeper_than("", 0), std::nullopt);
    EXPECT_EQ(first_bracket_deeper_than("1", 0), std::nullopt);
    EXPECT_EQ(first_bracket_deeper_than("{}", 0), 0u);
    EXPECT_EQ(first_bracket_deeper_than("{\"a\":[[1]]}", 3), std::nullopt);
    EXPECT_EQ(first_bracket_deeper_than("{\"a\":[[[1]]]}", 3), 7u);
    const std::string at_limit = std::string(64, '[') + std::string(64, ']');
    const std::string over = "[" + at_limit + "]";
    EXPECT_EQ(first_bracket_deeper_than(at_limit, 64), std::nullopt);
    EXPECT_EQ(first_bracket_deeper_than(over, 64), 64u);
    // Siblings do not add up: closing brackets bring the level back down.
    EXPECT_EQ(first_bracket_deeper_than("[[1],[2],{\"x\":[3]}]", 2), 14u);
    EXPECT_EQ(first_bracket_deeper_than("[[1],[2],[3]]", 2), std::nullopt);
    // Stray closers (invalid JSON, the parser's to refuse) do not buy depth for later brackets.
    EXPECT_EQ(first_bracket_deeper_than("]]]][[", 1), 5u);
}

TEST(SdkJsonDepth, CountsNoBracketInsideAStringEscapedQuotesIncluded) {
    EXPECT_EQ(first_bracket_deeper_than(R"(["[[[{{{"])", 1), std::nullopt);
    EXPECT_EQ(first_bracket_deeper_than(R"({"k[[":"]]{{"})", 1), std::nullopt);
    // \" does not end the string, so the brackets after it are still inside it.
    EXPECT_EQ(first_bracket_deeper_than(R"(["a\"[[[\"b"])", 1), std::nullopt);
    // \\ is a whole escape: the quote after it ends the string, and the brackets after that count.
    EXPECT_EQ(first_bracket_deeper_than(R"(["a\\",[[1]]])", 2), 8u);
    // An unterminated string hides the rest of the text (the parser refuses it anyway).
    EXPECT_EQ(first_bracket_deeper_than(R"(["[[[[)", 1), std::nullopt);
}

}  // namespace
}  // namespace spillway::detail
