// `spillway run <config>` as a child of the test (or bench) process, and the wait until its HTTP
// listener says it is ready.
//
//   ChildProcess engine = spawn_spillway_run({.binary = SPILLWAY_BIN, .config_path = cfg, .log_path = log});
//   ASSERT_TRUE(wait_ready(engine, "127.0.0.1", port, 30s)) << file_tail(log);
#pragma once

#include "spillway/test_support/child_process.hpp"

#include <chrono>
#include <csignal>
#include <string>
#include <vector>

namespace spillway::test_support {

struct SpillwayRunSpec {
  std::string binary{};                 // the spillway executable
  std::string config_path{};
  std::string environment = "testing";  // `--env`; empty: no --env (the engine's own default)
  std::string log_path{};               // stdout and stderr; empty: /dev/null
  std::vector<std::string> env{};       // "NAME=value" added to the inherited environment
  // SIGKILL: an engine left behind by a dying test must not get a clean shutdown that writes on.
  int death_signal = SIGKILL;
};

// Spawns `<binary> run <config_path> [--env <environment>]` in "/" (ChildSpec's default); throws std::runtime_error
// when fork/exec fails.
ChildProcess spawn_spillway_run(const SpillwayRunSpec& spec);

// Waits until GET http://host:port/readyz answers 200. False when the process exited first or the
// deadline passed (a test then shows the log's tail).
bool wait_ready(ChildProcess& engine, const std::string& host, int port, std::chrono::milliseconds deadline);

}  // namespace spillway::test_support
