// spillway/testkit/scheduler_suite.hpp — what every scheduler plugin must do, whatever its policy.
//
// Include once in a test file and instantiate for your plugin:
//
//   INSTANTIATE_TEST_SUITE_P(Mine, spillway::testkit::SchedulerConformance,
//       ::testing::Values(spillway::testkit::SchedulerCase{"mine", {}, "production"}));
//
// The rules: a delay is never negative; an idle round or a failed round never asks for "go again
// now" (that would spin the relay on an empty or broken store); a full batch is answered quickly;
// reset() is always allowed; the instance reports health.
#ifndef SPILLWAY_TESTKIT_SCHEDULER_SUITE_HPP
#define SPILLWAY_TESTKIT_SCHEDULER_SUITE_HPP

#include <spillway/testkit/descriptor_checks.hpp>
#include <spillway/testkit/host.hpp>

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <string>

namespace spillway::testkit {

struct SchedulerCase {
    std::string plugin;                   // plugin name, resolved with plugin_file()
    Config config;                        // the instance's configuration
    std::string environment = "testing";  // what host.environment() answers
};

inline void PrintTo(const SchedulerCase& c, std::ostream* os) { *os << c.plugin << "@" << c.environment; }

// Reports one relay round to the scheduler and returns the delay it asks for; a call that does not
// answer SW_OK fails the test (and returns -1). For a plugin's own tests as for the suite.
inline int64_t next_delay(SchedulerInstance& s, int32_t status, uint64_t claimed, uint64_t limit,
                          int32_t cause = SW_WAKE_TIMER) {
    sw_round round{};
    round.struct_size = sizeof(round);
    round.status = status;
    round.cause = cause;
    round.claimed = claimed;
    round.limit = limit;
    int64_t delay = -1;
    EXPECT_EQ(s.vt().next_delay(s.get(), &round, &delay), SW_OK) << s.host().last_error();
    return delay;
}

class SchedulerConformance : public ::testing::TestWithParam<SchedulerCase> {
protected:
    static Plugin& plugin(const std::string& name) { return checks::loaded_plugin(plugin_file(name)); }
    std::unique_ptr<SchedulerInstance> make() {
        const SchedulerCase& c = GetParam();
        return std::make_unique<SchedulerInstance>(plugin(c.plugin), c.config, true, c.environment);
    }
};

TEST_P(SchedulerConformance, DescriptorIsASchedulerWithItsSlots) {
    const Plugin& p = plugin(GetParam().plugin);
    EXPECT_EQ(p.descriptor().kind, static_cast<uint32_t>(SW_KIND_SCHEDULER));
    const auto* vt = static_cast<const sw_scheduler_vtable*>(p.descriptor().vtable);
    ASSERT_NE(vt, nullptr);
    EXPECT_GE(vt->struct_size, sizeof(sw_scheduler_vtable));
    EXPECT_NE(vt->next_delay, nullptr);
    EXPECT_NE(vt->reset, nullptr);
}

TEST_P(SchedulerConformance, IdleRoundsNeverSpin) {
    auto s = make();
    for (int i = 0; i < 50; ++i) {
        const int64_t d = next_delay(*s, SW_OK, 0, 100, i % 2 ? SW_WAKE_DOORBELL : SW_WAKE_TIMER);
        EXPECT_GT(d, 0) << "idle round " << i;
        EXPECT_LE(d, 24 * 3600 * 1000LL) << "idle round " << i;
    }
}

TEST_P(SchedulerConformance, FailedRoundsNeverSpin) {
    auto s = make();
    for (int i = 0; i < 10; ++i) {
        EXPECT_GT(next_delay(*s, SW_RETRY, 0, 100), 0);
        EXPECT_GT(next_delay(*s, SW_FATAL, 100, 100), 0);
    }
}

TEST_P(SchedulerConformance, FullBatchIsAnsweredQuickly) {
    auto s = make();
    for (int i = 0; i < 20; ++i) next_delay(*s, SW_OK, 0, 100);
    const int64_t d = next_delay(*s, SW_OK, 100, 100);
    EXPECT_GE(d, 0);
    EXPECT_LE(d, 100) << "a full batch means a backlog: the relay should not idle on it";
}

TEST_P(SchedulerConformance, ResetAndHealthAreAlwaysAllowed) {
    auto s = make();
    s->vt().reset(s->get());
    next_delay(*s, SW_OK, 0, 100);
    s->vt().reset(s->get());
    sw_health h{};
    h.struct_size = sizeof(h);
    EXPECT_EQ(s->vt().health(s->get(), &h), SW_OK);
    EXPECT_NE(h.state, SW_HEALTH_DOWN);
    EXPECT_EQ(s->host().count_logs(SW_LOG_ERROR), 0u);
}

}  // namespace spillway::testkit

#endif
