#include "spillway/test_support/spillway_run.hpp"

#include "spillway/test_support/wait.hpp"

#include <httplib.h>

namespace spillway::test_support {

using namespace std::chrono_literals;

ChildProcess spawn_spillway_run(const SpillwayRunSpec& spec) {
  ChildSpec child;
  child.argv = {spec.binary, "run", spec.config_path};
  if (!spec.environment.empty()) {
    child.argv.push_back("--env");
    child.argv.push_back(spec.environment);
  }
  child.log_path = spec.log_path;
  child.death_signal = spec.death_signal;
  child.env = spec.env;
  return ChildProcess(child);
}

bool wait_ready(ChildProcess& engine, const std::string& host, int port, std::chrono::milliseconds deadline) {
  httplib::Client probe(host, port);
  // A connection refused comes back at once; the timeouts only bound a listener that hangs.
  probe.set_connection_timeout(1s);
  probe.set_read_timeout(5s);
  bool ready = false;
  // An engine that exited will not become ready: stop waiting then, not at the deadline.
  wait_until(
      [&] {
        if (!engine.running()) return true;
        auto res = probe.Get("/readyz");
        ready = res && res->status == 200;
        return ready;
      },
      deadline, 20ms);
  return ready;
}

}  // namespace spillway::test_support
