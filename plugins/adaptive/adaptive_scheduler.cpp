// adaptive: decides how long the relay waits before its next round, from what the last round found.
//
//   error round             -> the environment's error interval (the idle count is kept)
//   full batch              -> 0: go again now
//   some work, batch not full -> the floor (first rung), and the ladder starts over
//   idle round              -> climb the ladder: rung by rung, then the ceiling
//
// A doorbell round that found nothing is idle like a timer round: the bell is a hint, and a bell
// rung for rows another relay already took must not pin this relay to the floor.
#include "ladder.hpp"
#include "profiles.hpp"

#include <spillway/sdk.hpp>

#include <random>

namespace spillway::plugins::adaptive {

namespace {

int64_t positive_duration(const sdk::Host& host, const char* key, int64_t fallback) {
    const auto v = host.opt_duration_ms(key);
    if (!v) return fallback;
    if (*v < 1) throw sdk::ConfigError(key, std::string(key) + " must be at least 1ms");
    return *v;
}

}  // namespace

class AdaptiveScheduler final : public sdk::Scheduler {
public:
    explicit AdaptiveScheduler(sdk::Host host) : Scheduler(host) {
        const std::string env = host.environment();
        const Profile* profile = find_profile(env);
        if (!profile) {
            profile = &kFallbackProfile;
            unknown_environment_ = env;
        }
        const int64_t ceiling = positive_duration(host, "ceiling", profile->ceiling_ms);
        error_ms_ = positive_duration(host, "error_interval", profile->error_interval_ms);

        std::vector<Rung> rungs;
        const std::vector<std::string> items = host.opt_list("ladder").value_or(kDefaultLadder);
        for (size_t i = 0; i < items.size(); ++i) rungs.push_back(parse_rung(items[i], i));
        ladder_ = Ladder(std::move(rungs), ceiling);

        jitter_ = host.opt_double("jitter").value_or(0.0);
        if (!(jitter_ >= 0.0 && jitter_ <= 1.0)) throw sdk::ConfigError("jitter", "jitter must be between 0 and 1");
        level_ms_ = ladder_.floor_ms();
    }

    void start() override {
        if (!unknown_environment_.empty())
            host().warn("adaptive scheduler: unknown environment '" + unknown_environment_ +
                        "', using the production profile (ceiling " + format_ms(kFallbackProfile.ceiling_ms) +
                        ", error interval " + format_ms(kFallbackProfile.error_interval_ms) + ")");
        host().gauge("poll_interval_seconds", static_cast<double>(level_ms_) / 1000.0);
    }

    int64_t next_delay(const sw_round& round) override {
        int64_t next = 0;
        const char* why = "";
        if (round.status != SW_OK) {
            next = error_ms_;
            why = "the round failed";
        } else if (round.limit > 0 && round.claimed >= round.limit) {
            next = 0;
            idle_rounds_ = 0;
            why = "full batch";
        } else if (round.claimed > 0) {
            next = ladder_.floor_ms();
            idle_rounds_ = 0;
            why = "work found";
        } else {
            ++idle_rounds_;
            next = ladder_.interval_after(idle_rounds_);
            why = "idle";
        }
        if (next != level_ms_) transition(next, why);
        return with_jitter(next);
    }

    void reset() override {
        idle_rounds_ = 0;
        if (level_ms_ != ladder_.floor_ms()) transition(ladder_.floor_ms(), "reset");
    }

private:
    void transition(int64_t to, const char* why) {
        const std::string from_s = format_ms(level_ms_), to_s = format_ms(to);
        host().debug("poll interval " + from_s + " -> " + to_s + " (" + why + ", idle rounds " +
                     std::to_string(idle_rounds_) + ")");
        const std::string labels = "from=" + from_s + ",to=" + to_s;
        host().count("scheduler_transitions_total", 1, labels.c_str());
        host().gauge("poll_interval_seconds", static_cast<double>(to) / 1000.0);
        level_ms_ = to;
    }

    // Spreads relays that went idle together: the wait times a factor in [1 - jitter, 1 + jitter].
    int64_t with_jitter(int64_t ms) {
        if (jitter_ <= 0.0 || ms <= 0) return ms;
        std::uniform_real_distribution<double> factor(1.0 - jitter_, 1.0 + jitter_);
        return std::max<int64_t>(1, std::llround(static_cast<double>(ms) * factor(rng_)));
    }

    Ladder ladder_;
    int64_t error_ms_ = 0;
    double jitter_ = 0.0;
    std::string unknown_environment_;
    uint64_t idle_rounds_ = 0;
    int64_t level_ms_ = 0;  // the last wait chosen, before jitter
    std::mt19937_64 rng_{std::random_device{}()};
};

}  // namespace spillway::plugins::adaptive

namespace {

const sw_option kOptions[] = {
    {"ladder", SW_OPT_STRING_LIST, 0, "100ms x2,1s x7",
     "idle waits before the ceiling, each \"<duration> x<rounds>\": the wait after each of the next "
     "<rounds> consecutive idle rounds; rungs above the ceiling are clamped to it; the first rung is "
     "the floor that any work found resets to"},
    {"ceiling", SW_OPT_DURATION, 0, nullptr,
     "longest idle wait, once the ladder is climbed; default from the environment: testing 100ms, "
     "development 1s, staging 5s, production 5s"},
    {"error_interval", SW_OPT_DURATION, 0, nullptr,
     "wait after a round that failed (store or sink error); default from the environment: testing 1s, "
     "development 10s, staging 30s, production 30s"},
    {"jitter", SW_OPT_DOUBLE, 0, "0.0",
     "0..1: each non-zero wait is multiplied by a random factor in [1 - jitter, 1 + jitter]"},
};

}  // namespace

SW_EXPORT_SCHEDULER(spillway::plugins::adaptive::AdaptiveScheduler, "adaptive", "1.0.0",
                    "adaptive poll interval: a ladder of idle waits up to an environment ceiling", kOptions, 0)
