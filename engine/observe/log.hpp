// Logging through spdlog, to stderr (stdout is for command output): text for people, JSON lines
// for machines.
#pragma once

#include <spdlog/spdlog.h>

#include <memory>
#include <string>

namespace spillway::observe {

// level: trace|debug|info|warn|error; format: text|json. Safe to call again (reconfigures).
void setup_logging(const std::string& level, const std::string& format);

// The engine's logger; `name` gives a child logger ("pipeline.essays", "store.outbox").
std::shared_ptr<spdlog::logger> logger(const std::string& name = "spillway");

}  // namespace spillway::observe
