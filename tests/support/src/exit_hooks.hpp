// Servers still running when the process exits are shut down by one atexit hook: it covers the
// shared() instances (deliberately leaked, so nothing can use them after a static destructor ran)
// and own instances that were never destroyed. A SIGKILLed process is covered by PDEATHSIG instead.
#pragma once

#include <functional>

namespace spillway::test_support::detail {

void on_exit_shutdown(const void* key, std::function<void()> shutdown);
void forget_exit_shutdown(const void* key);

}  // namespace spillway::test_support::detail
