// The ABI contract, through the engine's real loader: what loads, what is refused and why, and
// that a refused or failing plugin never takes the engine down with it.
#include "engine/plugin/binding.hpp"
#include "engine/plugin/call_scope.hpp"
#include "engine/plugin/instance.hpp"
#include "engine/plugin/loader.hpp"
#include "engine/plugin/needed_libraries.hpp"
#include "engine/plugin/ports.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <dlfcn.h>

namespace spillway::plugin {
namespace {

std::string file(const std::string& name) { return std::string(ABI_PLUGIN_DIR) + "/spillway-" + name + ".so"; }

TEST(Abi, PluginWrittenInCLoads) {
    Refusal why;
    auto lib = load_library(file("c-echo"), why);
    ASSERT_TRUE(lib) << why.str();
    EXPECT_EQ(lib->name, "c-echo");
    EXPECT_EQ(lib->kind, static_cast<uint32_t>(SW_KIND_SINK));
    EXPECT_EQ(lib->version, "1.0.0");
    ASSERT_NE(lib->option("prefix"), nullptr);
}

TEST(Abi, PluginBuiltAgainstFrozenV10HeaderLoads) {
    Refusal why;
    auto lib = load_library(file("v1-0-echo"), why);
    ASSERT_TRUE(lib) << why.str();
    EXPECT_EQ(lib->name, "v1-0-echo");
    EXPECT_EQ(lib->descriptor->abi_major, 1);
    EXPECT_EQ(lib->descriptor->abi_minor, 0);
}

TEST(Abi, PluginBuiltAgainstFrozenV11HeaderLoads) {
    Refusal why;
    auto lib = load_library(file("v1-1-echo"), why);
    ASSERT_TRUE(lib) << why.str();
    EXPECT_EQ(lib->descriptor->abi_minor, 1);
    EXPECT_EQ(lib->kind, static_cast<uint32_t>(SW_KIND_SINK));
}

// ABI 1.2's transform kind, written in C: the plugin owns the rewritten events until release_batch.
TEST(Abi, TransformWrittenInCLoadsAndRewritesEvents) {
    Refusal why;
    auto lib = load_library(file("c-transform"), why);
    ASSERT_TRUE(lib) << why.str();
    EXPECT_EQ(lib->kind, static_cast<uint32_t>(SW_KIND_TRANSFORM));
    EXPECT_STREQ(kind_name(lib->kind), "transform");
    EXPECT_EQ(kind_from_name("transform"), static_cast<uint32_t>(SW_KIND_TRANSFORM));
    const auto& vt = *static_cast<const sw_transform_vtable*>(lib->descriptor->vtable);
    sw_instance* inst = nullptr;
    ASSERT_EQ(vt.create(nullptr, nullptr, &inst), SW_OK);
    const sw_header h{{"a", 1}, {"b", 1}};
    sw_event in[2]{};
    in[0].struct_size = in[1].struct_size = sizeof(sw_event);
    in[0].topic = {"t", 1};
    in[0].headers = &h;
    in[0].n_headers = 1;
    sw_result results[2]{};
    sw_batch out{};
    ASSERT_EQ(vt.apply(inst, in, 2, results, &out), SW_OK);
    ASSERT_EQ(out.n, 2u);
    EXPECT_EQ(results[0].status, SW_OK);
    ASSERT_EQ(out.events[0].n_headers, 2u);
    EXPECT_EQ(std::string(out.events[0].headers[0].name.ptr, out.events[0].headers[0].name.len), "a");
    EXPECT_EQ(std::string(out.events[0].headers[1].name.ptr, out.events[0].headers[1].name.len), "c-transform");
    EXPECT_EQ(std::string(out.events[0].topic.ptr, out.events[0].topic.len), "t");
    ASSERT_EQ(out.events[1].n_headers, 1u);
    vt.release_batch(inst, &out);
    EXPECT_EQ(out.plugin_data, nullptr);
    vt.destroy(inst);
}

// What an engine that predates the kind says of it: an engine of ABI 1.1 refuses a transform by the
// minor it needs, and would name the kind it does not know even if the plugin claimed less.
TEST(Abi, AnOlderEngineRefusesATransformNamingTheKindAndTheMinor) {
    Refusal why;
    auto lib = load_library(file("c-transform"), why);
    ASSERT_TRUE(lib) << why.str();
    EXPECT_EQ(descriptor_problem(lib->descriptor, 2), "");
    EXPECT_EQ(descriptor_problem(lib->descriptor, 1), "needs ABI 1.2, newer than this engine's 1.1");
    sw_plugin_descriptor claims_less = *lib->descriptor;
    claims_less.abi_minor = 1;
    EXPECT_EQ(descriptor_problem(&claims_less, 1),
              "unknown plugin kind 5 (transform plugins came with ABI 1.2; this engine speaks 1.1)");
    EXPECT_EQ(descriptor_problem(&claims_less, 2),
              "transform plugins came with ABI 1.2, but the descriptor says it needs only 1.1");
    // The kinds 1.0 had are known to every engine.
    Refusal sink_why;
    auto sink = load_library(file("c-echo"), sink_why);
    ASSERT_TRUE(sink) << sink_why.str();
    EXPECT_EQ(descriptor_problem(sink->descriptor, 0), "");
}

struct RefusalCase {
    const char* plugin;
    const char* reason;
};

class AbiRefusal : public ::testing::TestWithParam<RefusalCase> {};

TEST_P(AbiRefusal, IsRefusedWithFileAndReason) {
    Refusal why;
    auto lib = load_library(file(GetParam().plugin), why);
    EXPECT_FALSE(lib);
    EXPECT_EQ(why.path, file(GetParam().plugin));
    EXPECT_EQ(why.reason, GetParam().reason);
    EXPECT_EQ(why.str(), file(GetParam().plugin) + ": " + GetParam().reason);
}

INSTANTIATE_TEST_SUITE_P(
    Abi, AbiRefusal,
    ::testing::Values(
        RefusalCase{"bad-magic", "bad magic 0xdeadbeef (expected 0x53574c31): not a Spillway plugin descriptor"},
        RefusalCase{"bad-major", "built for ABI major 2, this engine speaks major 1"},
        RefusalCase{"bad-minor", "needs ABI 1.3, newer than this engine's 1.2"},
        RefusalCase{"bad-kind", "unknown plugin kind 42"},
        RefusalCase{"bad-null", "sw_plugin_entry returned NULL (the plugin declined this host's ABI 1.2)"},
        RefusalCase{"bad-no-entry",
                    "no sw_plugin_entry symbol (not a Spillway plugin, or built without the export macro)"},
        RefusalCase{"bad-small-vtable", "notifier vtable struct_size 8 is smaller than ABI 1.0's 80"}),
    [](const auto& info) {
        std::string n = info.param.plugin;
        for (auto& c : n)
            if (c == '-') c = '_';
        return n;
    });

TEST(Abi, NonElfFileIsRefusedNamingTheLoaderError) {
    Refusal why;
    EXPECT_FALSE(load_library(file("garbage"), why));
    EXPECT_NE(why.reason.find("cannot be loaded: "), std::string::npos) << why.reason;
    EXPECT_NE(why.reason.find("spillway-garbage.so"), std::string::npos) << why.reason;
}

TEST(Abi, NeededLibrariesAreReadFromTheFile) {
    const auto needed = needed_libraries(file("c-echo"));
    EXPECT_NE(std::find(needed.begin(), needed.end(), "libc.so.6"), needed.end());
    EXPECT_TRUE(needed_libraries(file("garbage")).empty());
    EXPECT_TRUE(needed_libraries("/nonexistent/spillway-none.so").empty());
}

// Loading a plugin built with -fsanitize=address into an engine without libasan aborts the
// process inside dlopen (exit 1, like an invalid config); the loader refuses it by name first.
TEST(Abi, APluginBuiltWithASanitizerIsRefusedByNameUnlessTheEngineHasItsRuntime) {
#ifndef SANITIZED_PLUGIN
    GTEST_SKIP() << "no sanitized plugin in a ThreadSanitizer tree";
#else
    const auto needed = needed_libraries(SANITIZED_PLUGIN);
    const auto asan = std::find_if(needed.begin(), needed.end(), [](const std::string& n) { return n.rfind("libasan.so", 0) == 0; });
    ASSERT_NE(asan, needed.end()) << "the plugin does not need libasan";
    void* runtime = dlopen(asan->c_str(), RTLD_NOW | RTLD_NOLOAD);
    Refusal why;
    const auto lib = load_library(SANITIZED_PLUGIN, why);
    if (runtime) {  // this test runs under AddressSanitizer: such an engine loads it
        dlclose(runtime);
        EXPECT_TRUE(lib) << why.reason;
    } else {
        EXPECT_FALSE(lib);
        EXPECT_NE(why.reason.find("built with a sanitizer: it needs " + *asan), std::string::npos) << why.reason;
        EXPECT_NE(why.path.find("spillway-asan-echo.so"), std::string::npos) << why.path;
    }
#endif
}

TEST(Abi, RegistryKeepsGoodPluginsAndListsRefusedOnes) {
    Registry r;
    r.scan({ABI_PLUGIN_DIR});
    EXPECT_NE(r.find(SW_KIND_SINK, "c-echo"), nullptr);
    EXPECT_NE(r.find(SW_KIND_SINK, "v1-0-echo"), nullptr);
    EXPECT_NE(r.find(SW_KIND_SINK, "throwing"), nullptr);  // it loads; only its create fails
    EXPECT_EQ(r.refused().size(), 8u);  // the crashing plugin loads fine: it only crashes when called
    for (const auto& refusal : r.refused()) EXPECT_FALSE(refusal.reason.empty()) << refusal.path;
}

TEST(Abi, DuplicatePluginNameIsRefusedNamingTheWinner) {
    Registry r;
    r.scan({file("c-echo"), file("c-echo")});
    ASSERT_EQ(r.refused().size(), 1u);
    EXPECT_EQ(r.refused()[0].reason, "duplicate sink plugin 'c-echo'; already loaded from " + file("c-echo"));
}

// A component bound by hand to a library, as bind_all would.
Binding bind(const Library* lib, config::Component& spec) {
    Binding b;
    b.spec = &spec;
    b.library = lib;
    b.environment = "testing";
    return b;
}

TEST(Abi, CreateThatThrowsIsRefusedAndTheEngineGoesOn) {
    Registry r;
    r.scan({file("throwing"), file("c-echo")});
    config::Component spec{"sink", "moon", "throwing", {"pipes.toml", 3, 1}, {}, {}};
    Binding b = bind(r.find(SW_KIND_SINK, "throwing"), spec);
    try {
        Instance inst(b, nullptr);
        FAIL() << "create should have failed";
    } catch (const PluginError& e) {
        EXPECT_EQ(std::string(e.what()), "sink.moon (throwing plugin, " + file("throwing") +
                                             "): create failed (INVALID_CONFIG): cannot reach the moon from here");
    }

    // The same process keeps loading and running other plugins.
    config::Component echo_spec{"sink", "echo", "c-echo", {"pipes.toml", 9, 1}, {}, {}};
    Binding eb = bind(r.find(SW_KIND_SINK, "c-echo"), echo_spec);
    observe::Metrics metrics;
    Instance echo(eb, &metrics);
    echo.start();
    sw_event ev{};
    ev.struct_size = sizeof ev;
    ev.event_id = {"e-1", 3};
    sw_result res[1];
    ASSERT_EQ(echo.vt<sw_sink_vtable>().send(echo.get(), &ev, 1, res, 1000), SW_OK);
    EXPECT_EQ(res[0].status, SW_OK);
    EXPECT_EQ(metrics.value("echo_sent_total", {{"component", "sink.echo"}}), 1.0);
    EXPECT_EQ(echo.stop(1000), SW_OK);
}

// Built against the frozen v1.0 and v1.1 headers, unchanged: they load, start and send in this
// engine through the same ports the pipelines use.
TEST(Abi, PluginsBuiltAgainstFrozenV10AndV11HeadersRunInThisEngine) {
    Registry r;
    r.scan({file("v1-0-echo"), file("v1-1-echo")});
    for (const char* name : {"v1-0-echo", "v1-1-echo"}) {
        SCOPED_TRACE(name);
        config::Component spec{"sink", "old", name, {"pipes.toml", 1, 1}, {}, {}};
        const Library* lib = r.find(SW_KIND_SINK, name);
        ASSERT_TRUE(lib);
        Binding b = bind(lib, spec);
        observe::Metrics metrics;
        Instance inst(b, &metrics);
        inst.start();
        sw_event ev{};
        ev.struct_size = sizeof ev;
        ev.event_id = {"e-1", 3};
        sw_result res[1]{};
        const auto sent = SinkPort(inst).send({&ev, 1}, res, 1000);
        EXPECT_EQ(sent.status, SW_OK);
        EXPECT_EQ(res[0].status, SW_OK);
        EXPECT_EQ(metrics.value("echo_sent_total", {{"component", "sink.old"}}), 1.0);
        EXPECT_EQ(inst.stop(1000), SW_OK);
    }
}

// The C transform through the engine's TransformPort, as the SinkSupervisor calls it.
TEST(Abi, TransformWrittenInCRunsThroughTheEnginesPort) {
    Registry r;
    r.scan({file("c-transform")});
    config::Component spec{"transform", "stamp", "c-transform", {"pipes.toml", 1, 1}, {}, {}};
    const Library* lib = r.find(SW_KIND_TRANSFORM, "c-transform");
    ASSERT_TRUE(lib);
    Binding b = bind(lib, spec);
    Instance inst(b, nullptr);
    inst.start();
    sw_event ev{};
    ev.struct_size = sizeof ev;
    ev.event_id = {"e-1", 3};
    sw_result res[1]{};
    sw_batch out{};
    const TransformPort port(inst);
    ASSERT_EQ(port.apply({&ev, 1}, res, out), SW_OK);
    ASSERT_EQ(out.n, 1u);
    ASSERT_EQ(out.events[0].n_headers, 1u);
    EXPECT_EQ(std::string(out.events[0].headers[0].name.ptr, out.events[0].headers[0].name.len), "c-transform");
    port.release_batch(out);
    EXPECT_EQ(inst.stop(1000), SW_OK);
}

TEST(AbiDeathTest, CrashInsideAPluginCallNamesThePlugin) {
    Registry r;
    r.scan({file("crashing")});
    config::Component spec{"sink", "boom", "crashing", {"pipes.toml", 1, 1}, {}, {}};
    Binding b = bind(r.find(SW_KIND_SINK, "crashing"), spec);
    Instance inst(b, nullptr);
    inst.start();
    sw_event ev{};
    ev.struct_size = sizeof ev;
    sw_result res[1];
    EXPECT_DEATH(
        {
            install_crash_reporter();
            auto scope = inst.call("send");
            inst.vt<sw_sink_vtable>().send(inst.get(), &ev, 1, res, 1000);
        },
        "fatal signal SIGSEGV inside a plugin call: sink.boom \\(crashing plugin, .*spillway-crashing.so\\) send\\(\\)");
}

}  // namespace
}  // namespace spillway::plugin
