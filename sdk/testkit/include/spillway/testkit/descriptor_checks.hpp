// spillway/testkit/descriptor_checks.hpp — the checks every conformance suite makes of any plugin.
//
// What does not depend on the kind: the plugin loaded once per process, the descriptor (ABI,
// name, version, the lifecycle slots, an option table every row of which is named once, typed,
// described, and not both required and defaulted), the lifecycle create/start/stop/destroy and
// create/destroy, validate of the working configuration and without each required option, and
// health. The suites (sink_suite.hpp, transform_suite.hpp, ...) call them from their TEST_Ps, and
// plugin authors may call them from their own tests.
//
// The checks use GoogleTest assertions. A check whose assertion is fatal (ASSERT_*) returns from
// the check only: a test that goes on after one does `if (HasFatalFailure()) return;`, as the
// suites do.
#ifndef SPILLWAY_TESTKIT_DESCRIPTOR_CHECKS_HPP
#define SPILLWAY_TESTKIT_DESCRIPTOR_CHECKS_HPP

#include <spillway/testkit/host.hpp>

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>

namespace spillway::testkit::checks {

// The plugin at `path`, loaded on first use and kept for the process (plugins are never unloaded,
// so instances and descriptors stay valid whatever test made them).
inline Plugin& loaded_plugin(const std::string& path) {
    static std::mutex m;
    static std::map<std::string, std::unique_ptr<Plugin>> loaded;
    std::lock_guard lock(m);
    auto& p = loaded[path];
    if (!p) p = std::make_unique<Plugin>(path);
    return *p;
}

// The descriptor says `kind`, this ABI major and a minor this SDK knows (and, when `min_minor` is
// not 0, at least `min_minor`, `why_min_minor` saying why), and has a name and a version.
inline void expect_identity(const sw_plugin_descriptor& d, uint32_t kind, uint32_t min_minor = 0,
                            const char* why_min_minor = "") {
    EXPECT_EQ(d.kind, kind);
    EXPECT_EQ(d.abi_major, SW_ABI_MAJOR);
    if (min_minor > 0) {
        EXPECT_GE(d.abi_minor, min_minor) << why_min_minor;
    }
    EXPECT_LE(d.abi_minor, SW_ABI_MINOR);
    ASSERT_NE(d.name, nullptr);
    EXPECT_GT(std::strlen(d.name), 0u);
    ASSERT_NE(d.version, nullptr);
    EXPECT_GT(std::strlen(d.version), 0u);
}

// The descriptor has a vtable of this SDK's VTable up to its reserved slots, with every slot of
// the lifecycle (create, start, stop, destroy, health); `vt` is that vtable, or null after a fatal
// failure. The kind's own slots are for the caller to check.
template <class VTable>
void expect_lifecycle_slots(const sw_plugin_descriptor& d, const VTable*& vt) {
    vt = nullptr;
    ASSERT_NE(d.vtable, nullptr);
    const auto* v = static_cast<const VTable*>(d.vtable);
    ASSERT_GE(v->struct_size, offsetof(VTable, reserved));
    EXPECT_NE(v->create, nullptr);
    EXPECT_NE(v->start, nullptr);
    EXPECT_NE(v->stop, nullptr);
    EXPECT_NE(v->destroy, nullptr);
    EXPECT_NE(v->health, nullptr);
    vt = v;
}

// Every option is named, once, of a known type, has a description, and is not both required and
// defaulted.
inline void expect_options_well_formed(const sw_plugin_descriptor& d) {
    std::set<std::string> names;
    for (size_t i = 0; i < d.n_options; ++i) {
        const sw_option& o = d.options[i];
        ASSERT_NE(o.name, nullptr) << "option " << i;
        EXPECT_TRUE(names.insert(o.name).second) << "option " << o.name << " is declared twice";
        EXPECT_GE(o.type, static_cast<uint32_t>(SW_OPT_STRING)) << o.name;
        EXPECT_LE(o.type, static_cast<uint32_t>(SW_OPT_STRING_LIST)) << o.name;
        EXPECT_TRUE(o.description && *o.description) << o.name << " has no description";
        EXPECT_FALSE((o.flags & SW_OPT_REQUIRED) && o.default_value) << o.name << " is required and has a default";
    }
}

// An instance of `config` is created, started, stopped and destroyed; another is created and
// destroyed without ever starting, which is what the engine does to validate.
template <class VTable>
void expect_create_start_stop_destroy(const Plugin& plugin, const Config& config) {
    auto instance = std::make_unique<Instance<VTable>>(plugin, config, false);
    ASSERT_EQ(instance->vt().start(instance->get()), SW_OK) << instance->host().last_error();
    EXPECT_EQ(instance->vt().stop(instance->get(), 5000), SW_OK) << instance->host().last_error();
    instance.reset();
    auto never_started = std::make_unique<Instance<VTable>>(plugin, config, false);
    never_started.reset();
}

// validate (the option table, then the plugin's own) accepts `config`.
inline void expect_validate_accepts(const Plugin& plugin, const Config& config) {
    HostContext host(plugin, config);
    EXPECT_EQ(validate(plugin, host), SW_OK) << host.last_error();
}

// For each required option: validate refuses `config` without it, and says why. Returns how many
// options are required (a test with none to check may skip).
inline size_t expect_validate_refuses_without_each_required_option(const Plugin& plugin, const Config& config) {
    const sw_plugin_descriptor& d = plugin.descriptor();
    size_t required = 0;
    for (size_t i = 0; i < d.n_options; ++i) {
        const sw_option& o = d.options[i];
        if (!(o.flags & SW_OPT_REQUIRED)) continue;
        ++required;
        Config without = config;
        without.values.erase(o.name);
        without.lists.erase(o.name);
        HostContext host(plugin, without);
        EXPECT_EQ(validate(plugin, host), SW_INVALID_CONFIG) << "without " << o.name;
        EXPECT_FALSE(host.last_error().empty()) << "refusing a config must say why (without " << o.name << ")";
    }
    return required;
}

// health answers OK with a state it knows and a terminated message.
template <class VTable>
void expect_health_known(Instance<VTable>& instance) {
    sw_health h{};
    h.struct_size = sizeof(h);
    ASSERT_EQ(instance.vt().health(instance.get(), &h), SW_OK) << instance.host().last_error();
    EXPECT_GE(h.state, SW_HEALTH_UNKNOWN);
    EXPECT_LE(h.state, SW_HEALTH_DOWN);
    EXPECT_NE(std::memchr(h.message, '\0', sizeof(h.message)), nullptr) << "message not terminated";
}

}  // namespace spillway::testkit::checks

#endif  // SPILLWAY_TESTKIT_DESCRIPTOR_CHECKS_HPP
