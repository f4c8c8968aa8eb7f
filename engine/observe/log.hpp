// Logging through spdlog, to stderr (stdout is for command output): text for people, JSON lines
// for machines.
#pragma once

#include <spdlog/spdlog.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

namespace spillway::observe {

// level: trace|debug|info|warn|error; format: text|json. Safe to call again (reconfigures).
void setup_logging(const std::string& level, const std::string& format);

// The engine's logger; `name` gives a child logger ("pipeline.essays", "store.outbox").
std::shared_ptr<spdlog::logger> logger(const std::string& name = "spillway");

// A line with fields an operator's tools can select on (pipeline, event_id, path, reason, cause,
// ...): JSON lines carry each as a member beside "msg", text lines end with ` key=value` (the
// value quoted when it holds a space, '"' or '='). Nothing is formatted when `level` is off.
using Field = std::pair<const char*, std::string>;
void log(spdlog::logger& logger, spdlog::level::level_enum level, const std::string& message,
         std::initializer_list<Field> fields);

// For a line a fault repeats once per event (a rejected event, a dead letter): a client sending
// thousands of bad events must not flood the log. At most `per_second` lines a second pass; the
// first one after a refusal is preceded by a line saying how many were left out ("suppressed").
class LogLimit {
public:
    explicit LogLimit(int per_second) : per_second_(per_second) {}
    void log(spdlog::logger& logger, spdlog::level::level_enum level, const std::string& message,
             std::initializer_list<Field> fields);

private:
    const int per_second_;
    std::mutex mutex_;
    int64_t window_us_ = 0;
    int in_window_ = 0;
    uint64_t suppressed_ = 0;
};

}  // namespace spillway::observe
