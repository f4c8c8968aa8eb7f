// Clean shutdown on SIGINT/SIGTERM: the signals are blocked in every thread and taken
// synchronously by the one thread that waits for them, so no handler runs in an arbitrary thread.
#pragma once

#include <chrono>

namespace spillway {

// Call first thing in main, before any thread starts (threads inherit the mask).
void block_shutdown_signals();
// Waits for SIGINT or SIGTERM (or until `timeout` when positive); returns the signal, or 0.
int wait_for_shutdown_signal(std::chrono::milliseconds timeout = std::chrono::milliseconds(0));

// Gives the calling thread an alternate stack for signal handlers (once per thread; later calls
// are a thread-local check). Without one, a stack overflow's SIGSEGV finds no stack to run the
// crash reporter on and the process dies without a word. The stack is freed when the thread ends.
void ensure_alternate_signal_stack() noexcept;

}  // namespace spillway
