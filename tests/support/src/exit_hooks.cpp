#include "exit_hooks.hpp"

#include <cstdlib>
#include <map>
#include <mutex>
#include <unistd.h>

namespace spillway::test_support::detail {
namespace {

struct Registry {
  std::mutex mutex;
  std::map<const void*, std::function<void()>> shutdowns;
  pid_t owner = ::getpid();
};

// Leaked on purpose: the hook runs during exit, after ordinary statics may be gone.
Registry& registry() {
  static Registry* r = new Registry;
  return *r;
}

void run_exit_shutdowns() {
  Registry& r = registry();
  if (::getpid() != r.owner) return;  // a fork()ed child (gtest death test) leaves them running
  std::map<const void*, std::function<void()>> pending;
  {
    std::lock_guard lock(r.mutex);
    pending.swap(r.shutdowns);
  }
  for (auto& [key, shutdown] : pending) {
    try {
      shutdown();
    } catch (...) {  // nothing sensible to do about it while exiting
    }
  }
}

}  // namespace

void on_exit_shutdown(const void* key, std::function<void()> shutdown) {
  static const bool installed = (std::atexit(run_exit_shutdowns), true);
  (void)installed;
  Registry& r = registry();
  std::lock_guard lock(r.mutex);
  r.shutdowns[key] = std::move(shutdown);
}

void forget_exit_shutdown(const void* key) {
  Registry& r = registry();
  std::lock_guard lock(r.mutex);
  r.shutdowns.erase(key);
}

}  // namespace spillway::test_support::detail
