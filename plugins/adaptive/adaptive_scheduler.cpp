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

#include <spillway/options.hpp>

#include <cmath>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace spillway::plugins::adaptive {

namespace {

// The original relay's ladder: 100 ms for 2 idle rounds, 1 s for 7 more, then the ceiling.
constexpr const char* kDefaultLadder = "100ms x2,1s x7";

// Defaults, bounds and descriptions are kOptions' (the engine fills unset options from it).
struct Settings {
    std::vector<std::string> ladder;
    int64_t ceiling_ms;         // 0: not written, the environment's profile gives it
    int64_t error_interval_ms;  // 0: not written, the environment's profile gives it
    double jitter;
};

const sdk::Options<Settings> kOptions{
    sdk::option<&Settings::ladder>(
        "ladder", kDefaultLadder,
        "idle waits before the ceiling, each `\"<duration> x<rounds>\"`: the wait after each of the next "
        "`<rounds>` consecutive idle rounds; rungs above the ceiling are clamped to it; the first rung is "
        "the floor that any work found resets to; `[]` = the ceiling at once"),
    sdk::duration<&Settings::ceiling_ms>("ceiling", nullptr,
                                         "longest idle wait, once the ladder is climbed; default from the environment: "
                                         "testing 100ms, development 1s, staging 5s, production 5s")
        .at_least(1),
    sdk::duration<&Settings::error_interval_ms>(
        "error_interval", nullptr,
        "wait after a round that failed (store or sink error); default from the environment: testing 1s, "
        "development 10s, staging 30s, production 30s")
        .at_least(1),
    sdk::option<&Settings::jitter>("jitter", "0.0",
                                   "each non-zero wait is multiplied by a random factor in [1 - jitter, 1 + jitter]")
        .range(0, 1),
};

Settings read_settings(const sdk::Host& host) {
    Settings s = kOptions.read(host);
    // NaN compares false with both bounds, so the range check lets it through.
    if (std::isnan(s.jitter)) throw sdk::ConfigError("jitter", "jitter must be between 0 and 1, not nan");
    // The engine always hands over the ladder (its default split at commas when unwritten); a host
    // that hands over no list at all (the testkit's applies no list defaults) gets that default
    // split the same way, not an empty ladder, which would mean "the ceiling at once".
    if (!host.opt_list("ladder")) {
        std::stringstream text(kDefaultLadder);
        for (std::string item; std::getline(text, item, ',');)
            if (!item.empty()) s.ladder.push_back(item);
    }
    return s;
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
        const Settings settings = read_settings(host);
        const int64_t ceiling = settings.ceiling_ms > 0 ? settings.ceiling_ms : profile->ceiling_ms;
        error_ms_ = settings.error_interval_ms > 0 ? settings.error_interval_ms : profile->error_interval_ms;

        std::vector<Rung> rungs;
        for (size_t i = 0; i < settings.ladder.size(); ++i) rungs.push_back(parse_rung(settings.ladder[i], i));
        ladder_ = Ladder(std::move(rungs), ceiling);
        jitter_ = settings.jitter;
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

SW_EXPORT_SCHEDULER(spillway::plugins::adaptive::AdaptiveScheduler, "adaptive", "1.0.0",
                    "adaptive poll interval: a ladder of idle waits up to an environment ceiling",
                    spillway::plugins::adaptive::kOptions, 0)
