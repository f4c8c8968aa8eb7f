// The adaptive scheduler as a state machine: ladder, reset, full batch, error interval, custom
// ladders, jitter, each environment's values, transitions as metrics, and config errors.
#include <spillway/testkit/host.hpp>
#include <spillway/testkit/scheduler_suite.hpp>

#include <gtest/gtest.h>

#include <set>
#include <tuple>
#include <string>
#include <vector>

namespace spillway::testkit {
namespace {

Plugin& adaptive() {
    static Plugin plugin(plugin_file("adaptive"));
    return plugin;
}

constexpr uint64_t kLimit = 100;

// The testkit's next_delay with this file's defaults: a timer round of kLimit that went well.
int64_t next(SchedulerInstance& s, uint64_t claimed, sw_status status = SW_OK, int32_t cause = SW_WAKE_TIMER,
             uint64_t limit = kLimit) {
    return next_delay(s, status, claimed, limit, cause);
}

std::vector<int64_t> idle_rounds(SchedulerInstance& s, int n) {
    std::vector<int64_t> out;
    for (int i = 0; i < n; ++i) out.push_back(next(s, 0));
    return out;
}

// The idle sequence of the default ladder under a ceiling: 2 at the first rung, 7 at the second,
// then the ceiling; rungs above the ceiling are clamped to it.
std::vector<int64_t> default_sequence(int64_t ceiling, int n) {
    std::vector<int64_t> out;
    for (int i = 1; i <= n; ++i) out.push_back(std::min<int64_t>(i <= 2 ? 100 : i <= 9 ? 1000 : ceiling, ceiling));
    return out;
}

struct EnvironmentCase {
    const char* environment;
    int64_t ceiling_ms;
    int64_t error_ms;
};

void PrintTo(const EnvironmentCase& c, std::ostream* os) { *os << c.environment; }

class EnvironmentProfile : public ::testing::TestWithParam<EnvironmentCase> {};

TEST_P(EnvironmentProfile, IdleLadderCeilingAndErrorInterval) {
    const EnvironmentCase& c = GetParam();
    SchedulerInstance s(adaptive(), Config{}, true, c.environment);
    EXPECT_EQ(idle_rounds(s, 13), default_sequence(c.ceiling_ms, 13));
    EXPECT_EQ(next(s, 0, SW_RETRY), c.error_ms);
    EXPECT_EQ(next(s, 0, SW_FATAL), c.error_ms);
    EXPECT_EQ(s.host().count_logs(SW_LOG_WARN), 0u);
}

INSTANTIATE_TEST_SUITE_P(Adaptive, EnvironmentProfile,
                         ::testing::Values(EnvironmentCase{"testing", 100, 1'000},
                                           EnvironmentCase{"development", 1'000, 10'000},
                                           EnvironmentCase{"staging", 5'000, 30'000},
                                           EnvironmentCase{"production", 5'000, 30'000}),
                         [](const auto& info) { return std::string(info.param.environment); });

TEST(AdaptiveScheduler, ProductionLadderIsTheOriginalOne) {
    SchedulerInstance s(adaptive(), Config{}, true, "production");
    const std::vector<int64_t> expected{100, 100, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 5000, 5000};
    EXPECT_EQ(idle_rounds(s, 11), expected);
}

TEST(AdaptiveScheduler, WorkFoundResetsToTheFloorAndRestartsTheLadder) {
    SchedulerInstance s(adaptive(), Config{}, true, "production");
    idle_rounds(s, 12);
    EXPECT_EQ(next(s, 0), 5000);
    EXPECT_EQ(next(s, 3), 100);  // some work, batch not full
    EXPECT_EQ(idle_rounds(s, 4), (std::vector<int64_t>{100, 100, 1000, 1000}));
}

TEST(AdaptiveScheduler, FullBatchGoesAgainNow) {
    SchedulerInstance s(adaptive(), Config{}, true, "production");
    idle_rounds(s, 12);
    EXPECT_EQ(next(s, kLimit), 0);
    EXPECT_EQ(next(s, kLimit), 0);
    EXPECT_EQ(next(s, kLimit + 5), 0);   // a store that returned more than asked is still full
    EXPECT_EQ(next(s, kLimit - 1), 100);  // the backlog is drained: floor
    EXPECT_EQ(idle_rounds(s, 3), (std::vector<int64_t>{100, 100, 1000}));
}

TEST(AdaptiveScheduler, UnknownLimitMeansWorkFoundNotFullBatch) {
    SchedulerInstance s(adaptive(), Config{}, true, "production");
    EXPECT_EQ(next(s, 5, SW_OK, SW_WAKE_TIMER, 0), 100);
}

TEST(AdaptiveScheduler, ErrorWaitsTheErrorIntervalAndKeepsTheIdleCount) {
    SchedulerInstance s(adaptive(), Config{}, true, "production");
    EXPECT_EQ(idle_rounds(s, 3), (std::vector<int64_t>{100, 100, 1000}));
    EXPECT_EQ(next(s, 0, SW_RETRY), 30'000);
    // An error is not an idle round: the ladder continues where it was.
    EXPECT_EQ(idle_rounds(s, 7), (std::vector<int64_t>{1000, 1000, 1000, 1000, 1000, 1000, 5000}));
    // A failed round that still claimed rows is an error first.
    EXPECT_EQ(next(s, kLimit, SW_RETRY), 30'000);
}

TEST(AdaptiveScheduler, DoorbellRoundThatFoundNothingIsIdle) {
    SchedulerInstance s(adaptive(), Config{}, true, "production");
    for (int i = 0; i < 9; ++i) next(s, 0, SW_OK, SW_WAKE_DOORBELL);
    EXPECT_EQ(next(s, 0, SW_OK, SW_WAKE_DOORBELL), 5000);
    EXPECT_EQ(next(s, 1, SW_OK, SW_WAKE_DOORBELL), 100);
    EXPECT_EQ(next(s, 0, SW_OK, SW_WAKE_START), 100);
}

TEST(AdaptiveScheduler, CustomLadder) {
    Config config{{"ceiling", "10s"}, {"error_interval", "3s"}};
    config.set_list("ladder", {"50ms x1", "200ms x 2", "1.5s x1"});
    SchedulerInstance s(adaptive(), config, true, "production");
    EXPECT_EQ(idle_rounds(s, 6), (std::vector<int64_t>{50, 200, 200, 1500, 10'000, 10'000}));
    EXPECT_EQ(next(s, 1), 50);  // the floor is the first rung
    EXPECT_EQ(next(s, 0, SW_RETRY), 3000);
}

TEST(AdaptiveScheduler, ConfiguredCeilingOverridesTheEnvironment) {
    SchedulerInstance s(adaptive(), Config{{"ceiling", "2s"}}, true, "testing");
    EXPECT_EQ(idle_rounds(s, 11), default_sequence(2000, 11));
    EXPECT_EQ(next(s, 0, SW_RETRY), 1000);  // error interval still the environment's
}

TEST(AdaptiveScheduler, EmptyLadderWaitsTheCeilingFromTheFirstIdleRound) {
    Config config{{"ceiling", "300ms"}};
    config.set_list("ladder", {});
    SchedulerInstance s(adaptive(), config, true, "production");
    EXPECT_EQ(idle_rounds(s, 3), (std::vector<int64_t>{300, 300, 300}));
    EXPECT_EQ(next(s, 1), 300);
}

TEST(AdaptiveScheduler, ResetStartsTheLadderOver) {
    SchedulerInstance s(adaptive(), Config{}, true, "production");
    idle_rounds(s, 10);
    s.vt().reset(s.get());
    EXPECT_EQ(idle_rounds(s, 3), (std::vector<int64_t>{100, 100, 1000}));
}

TEST(AdaptiveScheduler, JitterStaysWithinItsBandAndVaries) {
    Config config{{"ceiling", "1s"}, {"jitter", "0.5"}};
    config.set_list("ladder", {});
    SchedulerInstance s(adaptive(), config, true, "production");
    std::set<int64_t> seen;
    for (int i = 0; i < 200; ++i) {
        const int64_t d = next(s, 0);
        EXPECT_GE(d, 500);
        EXPECT_LE(d, 1500);
        seen.insert(d);
    }
    EXPECT_GT(seen.size(), 10u);
    EXPECT_EQ(next(s, kLimit), 0);  // "go again now" is never jittered
}

TEST(AdaptiveScheduler, TransitionsAreCountedLoggedAndTheIntervalIsAGauge) {
    SchedulerInstance s(adaptive(), Config{}, true, "production");
    HostContext& h = s.host();
    EXPECT_DOUBLE_EQ(h.metric("poll_interval_seconds"), 0.1);
    idle_rounds(s, 12);
    EXPECT_DOUBLE_EQ(h.metric("scheduler_transitions_total", "from=100ms,to=1s"), 1);
    EXPECT_DOUBLE_EQ(h.metric("scheduler_transitions_total", "from=1s,to=5s"), 1);
    EXPECT_DOUBLE_EQ(h.metric("poll_interval_seconds"), 5.0);
    next(s, kLimit);
    next(s, 1);
    next(s, 0, SW_RETRY);
    EXPECT_DOUBLE_EQ(h.metric("scheduler_transitions_total", "from=5s,to=0ms"), 1);
    EXPECT_DOUBLE_EQ(h.metric("scheduler_transitions_total", "from=0ms,to=100ms"), 1);
    EXPECT_DOUBLE_EQ(h.metric("scheduler_transitions_total", "from=100ms,to=30s"), 1);
    EXPECT_DOUBLE_EQ(h.metric("poll_interval_seconds"), 30.0);
    EXPECT_EQ(h.count_logs(SW_LOG_DEBUG, "poll interval"), 5u);
    EXPECT_EQ(h.count_logs(SW_LOG_DEBUG, "1s -> 5s"), 1u);
    // Staying on a rung is not a transition.
    EXPECT_DOUBLE_EQ(h.metric("scheduler_transitions_total", "from=5s,to=5s"), 0);
}

TEST(AdaptiveScheduler, UnknownEnvironmentUsesProductionValuesAndSaysSo) {
    SchedulerInstance s(adaptive(), Config{}, true, "qa");
    EXPECT_EQ(idle_rounds(s, 11), default_sequence(5000, 11));
    EXPECT_EQ(next(s, 0, SW_RETRY), 30'000);
    EXPECT_EQ(s.host().count_logs(SW_LOG_WARN, "unknown environment 'qa'"), 1u);
}

// Config errors blame the key and say what is wrong.
std::pair<std::string, std::string> config_error(Config config) {
    HostContext host(adaptive(), std::move(config));
    EXPECT_EQ(validate(adaptive(), host), SW_INVALID_CONFIG);
    const auto errors = host.config_errors();
    if (errors.empty()) return {};
    return errors.front();
}

TEST(AdaptiveScheduler, MalformedRungsAreRejectedWithTheirIndex) {
    const std::vector<std::pair<std::string, std::string>> cases{
        {"1s", "no 'x<rounds>'"},
        {"x3", "is not a duration"},
        {"fast x2", "'fast' is not a duration"},
        {"1s x0", "rounds must be at least 1"},
        {"1s x-2", "is not a whole number"},
        {"1s x2.5", "is not a whole number"},
        {"0ms x2", "at least 1ms"},
    };
    for (const auto& [rung, why] : cases) {
        Config config;
        config.set_list("ladder", {"100ms x2", rung});
        const auto [key, message] = config_error(config);
        EXPECT_EQ(key, "ladder") << rung;
        EXPECT_NE(message.find("ladder[1] = \"" + rung + "\""), std::string::npos) << message;
        EXPECT_NE(message.find(why), std::string::npos) << message;
    }
}

TEST(AdaptiveScheduler, OutOfRangeValuesAreRejected) {
    EXPECT_EQ(config_error(Config{{"jitter", "1.5"}}).first, "jitter");
    EXPECT_EQ(config_error(Config{{"jitter", "-0.1"}}).first, "jitter");
    EXPECT_EQ(config_error(Config{{"ceiling", "0ms"}}).first, "ceiling");
    EXPECT_EQ(config_error(Config{{"error_interval", "0"}}).first, "error_interval");
}

// The testkit's validate applies the option table as the engine does (unknown keys, types,
// malformed durations, values spelled as TOML spells them) before the plugin sees anything.
TEST(TestkitOptions, ValidateAppliesTheOptionTableAsTheEngineDoes) {
    for (const char* good : {"\"2s\"", "2s", "2000"}) {
        HostContext host(adaptive(), Config{{"ceiling", good}});
        EXPECT_EQ(validate(adaptive(), host), SW_OK) << good << ": " << host.last_error();
    }
    const std::vector<std::tuple<std::string, std::string, std::string>> bad{
        {"ceiling", "\"2 parsecs\"", "bad duration \"2 parsecs\""},
        {"ceiling", "true", "expected a duration such as \"250ms\" or \"2s\", got a boolean"},
        {"jitter", "\"high\"", "expected a number, got a string"},
        {"no_such_option", "1", "unknown option for scheduler plugin 'adaptive' (it takes: ladder, ceiling"},
    };
    for (const auto& [key, value, why] : bad) {
        const auto [said_key, message] = config_error(Config{{key, value}});
        EXPECT_EQ(said_key, key) << value;
        EXPECT_NE(message.find(why), std::string::npos) << key << " = " << value << ": " << message;
    }
    Config list_for_scalar;
    list_for_scalar.set_list("ceiling", {"1s"});
    EXPECT_EQ(config_error(list_for_scalar).second, "expected a duration such as \"250ms\" or \"2s\", got a list");
}

// A malformed value the plugin reads itself (no validate first) is said to be malformed, not
// missing: the SDK tells the host's SW_INVALID_CONFIG from an absent key.
TEST(TestkitOptions, AMalformedValueIsNotReportedAsMissing) {
    HostContext host(adaptive(), Config{{"ceiling", "\"2 parsecs\""}});
    const auto* vt = static_cast<const sw_scheduler_vtable*>(adaptive().descriptor().vtable);
    sw_instance* self = nullptr;
    EXPECT_EQ(vt->create(HostContext::api(), host.ctx(), &self), SW_INVALID_CONFIG);
    if (self) vt->destroy(self);
    EXPECT_NE(host.last_error().find("option 'ceiling' is malformed"), std::string::npos) << host.last_error();
    EXPECT_EQ(host.last_error().find("missing"), std::string::npos) << host.last_error();
}

// The generic scheduler conformance suite, for the adaptive plugin.
INSTANTIATE_TEST_SUITE_P(Adaptive, SchedulerConformance,
                         ::testing::Values(SchedulerCase{"adaptive", {}, "testing"},
                                           SchedulerCase{"adaptive", {}, "production"}),
                         [](const auto& info) { return info.param.environment; });

}  // namespace
}  // namespace spillway::testkit
