// spillway/options.hpp: one declaration per option gives the sw_option row, the reading into the
// settings struct, and the bounds. The host here is a table of already-typed values, as the
// engine hands them over after validating the TOML (defaults applied).
#include <spillway/options.hpp>

#include <gtest/gtest.h>

#include <cmath>

#include <map>
#include <string>
#include <vector>

namespace {

namespace sdk = spillway::sdk;

struct Values {
    std::map<std::string, std::string> strings;
    std::map<std::string, int64_t> integers;  // SW_OPT_INT and SW_OPT_DURATION (ms)
    std::map<std::string, double> reals;
    std::map<std::string, bool> flags;
    std::map<std::string, std::vector<std::string>> lists;
};

Values& of(sw_host_ctx* ctx) { return *reinterpret_cast<Values*>(ctx); }

template <class Map, class T>
sw_status lookup(const Map& m, const char* key, T* out) {
    const auto it = m.find(key);
    if (it == m.end()) return SW_UNSUPPORTED;
    *out = it->second;
    return SW_OK;
}

const sw_host_api* table_host() {
    static const sw_host_api api = [] {
        sw_host_api a{};
        a.struct_size = sizeof a;
        a.config_string = [](sw_host_ctx* c, const char* k, const char** out) {
            const auto it = of(c).strings.find(k);
            if (it == of(c).strings.end()) return SW_UNSUPPORTED;
            *out = it->second.c_str();
            return SW_OK;
        };
        a.config_int = [](sw_host_ctx* c, const char* k, int64_t* out) { return lookup(of(c).integers, k, out); };
        a.config_duration_ms = [](sw_host_ctx* c, const char* k, int64_t* out) { return lookup(of(c).integers, k, out); };
        a.config_double = [](sw_host_ctx* c, const char* k, double* out) { return lookup(of(c).reals, k, out); };
        a.config_bool = [](sw_host_ctx* c, const char* k, int* out) {
            const auto it = of(c).flags.find(k);
            if (it == of(c).flags.end()) return SW_UNSUPPORTED;
            *out = it->second ? 1 : 0;
            return SW_OK;
        };
        a.config_list_size = [](sw_host_ctx* c, const char* k, size_t* out) {
            const auto it = of(c).lists.find(k);
            if (it == of(c).lists.end()) return SW_UNSUPPORTED;
            *out = it->second.size();
            return SW_OK;
        };
        a.config_list_item = [](sw_host_ctx* c, const char* k, size_t i, const char** out) {
            *out = of(c).lists.at(k).at(i).c_str();
            return SW_OK;
        };
        return a;
    }();
    return &api;
}

struct Settings {
    std::string host;
    int port;
    int64_t timeout_ms;
    double ratio;
    bool tls;
    std::string mode;
    std::vector<std::string> levels;
    std::string password;
};

const sdk::Options<Settings>& options() {
    static const sdk::Options<Settings> table{
        sdk::option<&Settings::host>("host", nullptr, "where").required(),
        sdk::option<&Settings::port>("port", "6379", "TCP port").range(1, 65535),
        sdk::duration<&Settings::timeout_ms>("timeout", "200ms", "bound on a call").at_least(1),
        sdk::option<&Settings::ratio>("ratio", "0.5", "a share").range(0, 1),
        sdk::option<&Settings::tls>("tls", "false", "encrypt"),
        sdk::option<&Settings::mode>("mode", "fast", "how").one_of({"fast", "safe"}),
        sdk::option<&Settings::levels>("levels", "info", "which").one_of({"info", "warn"}),
        sdk::option<&Settings::password>("password", nullptr, "secret").secret(),
    };
    return table;
}

Values defaults() {
    Values v;
    v.strings = {{"host", "h"}, {"mode", "fast"}};
    v.integers = {{"port", 6379}, {"timeout", 200}};
    v.reals = {{"ratio", 0.5}};
    v.flags = {{"tls", false}};
    v.lists = {{"levels", {"info"}}};
    return v;
}

Settings read(Values v) { return options().read(sdk::Host(table_host(), reinterpret_cast<sw_host_ctx*>(&v))); }

std::string refusal(Values v, std::string* key = nullptr) {
    try {
        read(std::move(v));
    } catch (const sdk::ConfigError& e) {
        if (key) *key = e.key();
        return e.what();
    }
    return "accepted";
}

TEST(SdkOptions, TheRowsComeFromTheDeclarations) {
    const auto& t = options();
    ASSERT_EQ(t.size(), 8u);
    const sw_option* rows = spillway::sdk::detail::rows_of(t);
    EXPECT_EQ(spillway::sdk::detail::count_of(t), 8u);
    EXPECT_STREQ(rows[0].name, "host");
    EXPECT_EQ(rows[0].type, SW_OPT_STRING);
    EXPECT_EQ(rows[0].flags, SW_OPT_REQUIRED);
    EXPECT_EQ(rows[0].default_value, nullptr);
    EXPECT_EQ(rows[1].type, SW_OPT_INT);
    EXPECT_STREQ(rows[1].default_value, "6379");
    EXPECT_STREQ(rows[1].description, "TCP port; from 1 to 65535");
    EXPECT_EQ(rows[2].type, SW_OPT_DURATION);
    EXPECT_STREQ(rows[2].description, "bound on a call; at least 1ms");
    EXPECT_EQ(rows[3].type, SW_OPT_DOUBLE);
    EXPECT_EQ(rows[4].type, SW_OPT_BOOL);
    EXPECT_STREQ(rows[5].description, "how; one of: fast, safe");
    EXPECT_EQ(rows[6].type, SW_OPT_STRING_LIST);
    EXPECT_EQ(rows[7].flags, SW_OPT_SECRET);
}

TEST(SdkOptions, ValuesLandInTheirMembers) {
    Values v = defaults();
    v.strings["password"] = "pw";
    v.integers["port"] = 7000;
    v.flags["tls"] = true;
    v.lists["levels"] = {"warn", "info"};
    const Settings s = read(v);
    EXPECT_EQ(s.host, "h");
    EXPECT_EQ(s.port, 7000);
    EXPECT_EQ(s.timeout_ms, 200);
    EXPECT_DOUBLE_EQ(s.ratio, 0.5);
    EXPECT_TRUE(s.tls);
    EXPECT_EQ(s.mode, "fast");
    EXPECT_EQ(s.levels, (std::vector<std::string>{"warn", "info"}));
    EXPECT_EQ(s.password, "pw");
}

TEST(SdkOptions, AnAbsentOptionWithoutDefaultLeavesTheMemberEmpty) {
    EXPECT_EQ(read(defaults()).password, "");
}

TEST(SdkOptions, BoundsAndChoicesAreRefusedNamingTheKey) {
    std::string key;
    Values v = defaults();
    v.integers["port"] = 70000;
    EXPECT_EQ(refusal(v, &key), "port must be between 1 and 65535, not 70000");
    EXPECT_EQ(key, "port");
    v = defaults();
    v.integers["timeout"] = 0;
    EXPECT_EQ(refusal(v, &key), "timeout must be at least 1ms, not 0ms");
    EXPECT_EQ(key, "timeout");
    v = defaults();
    v.reals["ratio"] = 1.5;
    EXPECT_EQ(refusal(v, &key), "ratio must be between 0 and 1, not 1.5");
    v = defaults();
    v.strings["mode"] = "slow";
    EXPECT_EQ(refusal(v, &key), "mode must be one of: fast, safe (not 'slow')");
    EXPECT_EQ(key, "mode");
    v = defaults();
    v.lists["levels"] = {"info", "debug"};
    EXPECT_EQ(refusal(v, &key), "levels must be one of: info, warn (not 'debug')");
    v = defaults();
    v.reals["ratio"] = std::nan("");
    EXPECT_EQ(refusal(v, &key), "ratio must be a number, not nan");
    v = defaults();
    v.strings.erase("host");
    EXPECT_EQ(refusal(v, &key), "missing required option 'host'");
    EXPECT_EQ(key, "host");
    v = defaults();
    v.integers["port"] = 1;
    EXPECT_EQ(refusal(v), "accepted");
    v.integers["port"] = 65535;
    EXPECT_EQ(refusal(v), "accepted");
}

}  // namespace
