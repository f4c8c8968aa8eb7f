// Fuzzes the config loader (engine/config: the size and depth pre-scan, toml++, the environment
// overlay, ${VAR} interpolation and every check) with arbitrary pipeline-file text.
//
// Properties, beyond "no crash, no leak, no undefined behaviour":
// - the loader throws nothing but ConfigError;
// - text the pre-scan lets through is never nested deeper than kMaxConfigDepth once parsed (the
//   bound is what keeps toml++'s recursion off the end of the stack, so an undercount is a bug
//   even at depths too small to crash);
// - a configuration that loads without errors renders (render_toml, what `spillway validate`
//   prints) to TOML that parses again.
#include "engine/config/config.hpp"

#include <toml++/toml.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace {

using spillway::config::ConfigError;
using spillway::config::Diagnostic;
using spillway::config::LoadOptions;

// A fixed environment, so runs are reproducible: set, empty and unset variables, and the names
// the example configs use.
std::optional<std::string> fake_getenv(const std::string& name) {
    static const std::map<std::string, std::string> env = {
        {"KAFKA_BROKERS", "localhost:9092"},
        {"SPILLWAY_PLUGIN_PATH", "/opt/spillway/plugins"},
        {"OUTBOX_DATABASE_URL", "postgresql://outbox@localhost/outbox"},
        {"SPILLWAY_HTTP", "0.0.0.0:8080"},
        {"TOKEN", "s3cr3t"},
        {"FAKE_PLUGINS", "/opt/spillway/fake-plugins"},
        {"EMPTY", ""},
        {"DOLLAR", "${KAFKA_BROKERS}"},
    };
    auto it = env.find(name);
    if (it == env.end()) return std::nullopt;
    return it->second;
}

[[noreturn]] void fail(const char* what, const std::string& detail, const std::string& text) {
    std::fprintf(stderr, "fuzz_config: %s\n%s\n--- input (%zu bytes) ---\n%s\n", what, detail.c_str(), text.size(),
                 text.c_str());
    std::abort();
}

bool mentions(const std::vector<Diagnostic>& ds, const char* words) {
    return std::any_of(ds.begin(), ds.end(), [&](const Diagnostic& d) { return d.message.find(words) != std::string::npos; });
}

// How many tables and arrays enclose the deepest value below `node` (the pre-scan's count: in
// `[a.b] c.d = [{e = 1}]`, e is at level 6). Stops one past the limit, so a tree the pre-scan
// undercounted is measured without recursing as deep as it goes.
int nesting(const toml::node& node, int level) {
    const auto* table = node.as_table();
    const auto* array = node.as_array();
    if (!table && !array) return level - 1;  // a value: its level is its container's
    if (level > spillway::config::kMaxConfigDepth) return level;
    int deepest = level;
    if (table)
        for (const auto& [key, child] : *table) deepest = std::max(deepest, nesting(child, level + 1));
    else
        for (const auto& child : *array) deepest = std::max(deepest, nesting(child, level + 1));
    return deepest;
}

// Loads `text` in one environment; ConfigError is an answer, anything else escapes and crashes.
std::optional<spillway::config::Config> load(const std::string& text, const char* environment,
                                             std::vector<Diagnostic>& errors) {
    LoadOptions options;
    options.environment = environment;
    options.getenv = fake_getenv;
    try {
        return spillway::config::load_string(text, "fuzz.toml", options, errors);
    } catch (const ConfigError& e) {
        errors = e.diagnostics();
        return std::nullopt;
    }
}

void check_depth_bound(const std::string& text, const std::vector<Diagnostic>& errors) {
    if (mentions(errors, "nested deeper than") || mentions(errors, "the limit for a configuration file") ||
        mentions(errors, "TOML syntax error"))
        return;
    toml::table root;
    try {
        root = toml::parse(std::string_view(text), std::string_view("fuzz.toml"));
    } catch (const toml::parse_error&) {
        return;  // the loader parsed it, or failed before parsing for a reason it reported
    }
    int deepest = 0;
    for (const auto& [key, child] : root) deepest = std::max(deepest, nesting(child, 1));
    if (deepest > spillway::config::kMaxConfigDepth)
        fail("the depth pre-scan let through text nested deeper than kMaxConfigDepth",
             "nesting " + std::to_string(deepest) + " > " + std::to_string(spillway::config::kMaxConfigDepth), text);
}

void check_render(const std::string& text, const spillway::config::Config& cfg, const char* environment) {
    const std::string rendered = spillway::config::render_toml(cfg);
    std::vector<Diagnostic> errors;
    load(rendered, environment, errors);
    if (mentions(errors, "TOML syntax error") || mentions(errors, "the limit for a configuration file")) {
        std::string why;
        for (const auto& d : errors) why += d.str() + "\n";
        fail("render_toml printed a configuration that does not load again", why + "--- rendered ---\n" + rendered, text);
    }
}

void load_and_check(const std::string& text, const char* environment, bool check_depth) {
    std::vector<Diagnostic> errors;
    const auto cfg = load(text, environment, errors);
    if (check_depth) check_depth_bound(text, errors);
    if (cfg && errors.empty()) check_render(text, *cfg, environment);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string text(reinterpret_cast<const char*>(data), size);
    load_and_check(text, "development", true);
    load_and_check(text, "production", false);  // with the overlay applied; the text's depth is checked once
    return 0;
}
