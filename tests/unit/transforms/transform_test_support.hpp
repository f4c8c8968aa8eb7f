// What the transform tests share: the plugins, loaded once, and a configuration's verdict.
#ifndef SPILLWAY_TESTS_UNIT_TRANSFORMS_SUPPORT_HPP
#define SPILLWAY_TESTS_UNIT_TRANSFORMS_SUPPORT_HPP

#define SPILLWAY_TRANSFORM_SUITE_HELPERS_ONLY
#include <spillway/testkit/transform_suite.hpp>

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <string>
#include <utility>

namespace spillway::testkit::transforms {

using transform_suite::Batch;
using transform_suite::EventSpec;
using transform_suite::Record;

// The testkit's one cache of loaded plugins (never unloaded), by the plugin's name.
inline Plugin& plugin(const std::string& name) { return checks::loaded_plugin(plugin_file(name)); }

// How validate answers a configuration: the status and the (key, message) it blamed first.
struct Verdict {
    sw_status status;
    std::string key;
    std::string message;
};

inline Verdict validate_config(const std::string& name, Config config) {
    HostContext host(plugin(name), std::move(config));
    const sw_status st = validate(plugin(name), host);
    const auto errors = host.config_errors();
    if (errors.empty()) return {st, "", host.last_error()};
    return {st, errors.front().first, errors.front().second};
}

}  // namespace spillway::testkit::transforms

#endif
