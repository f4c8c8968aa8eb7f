#include "engine/plugin/call_scope.hpp"

#include "engine/signals.hpp"

#include <csignal>
#include <initializer_list>
#include <cstring>
#include <unistd.h>

namespace spillway::plugin {

namespace {
thread_local const char* tl_component = nullptr;
thread_local const char* tl_slot = nullptr;

void write_str(const char* s) {
    if (!s) return;
    ssize_t ignored = ::write(STDERR_FILENO, s, std::strlen(s));
    (void)ignored;
}

// Async-signal-safe: only write(2), then re-raise with the default action restored.
void on_fatal_signal(int sig) {
    write_str("spillway: fatal signal ");
    write_str(sig == SIGSEGV ? "SIGSEGV" : sig == SIGBUS ? "SIGBUS" : sig == SIGFPE ? "SIGFPE" : sig == SIGILL ? "SIGILL" : "SIGABRT");
    if (tl_component) {
        write_str(" inside a plugin call: ");
        write_str(tl_component);
        write_str(" ");
        write_str(tl_slot);
        write_str("()\n");
    } else {
        write_str(" (not inside a plugin call)\n");
    }
    std::signal(sig, SIG_DFL);
    std::raise(sig);
}
}  // namespace

CallScope::CallScope(const char* component, const char* slot) noexcept
    : saved_component_(tl_component), saved_slot_(tl_slot) {
    ensure_alternate_signal_stack();  // a plugin that overflows its stack is reported too
    tl_component = component;
    tl_slot = slot;
}

CallScope::~CallScope() {
    tl_component = saved_component_;
    tl_slot = saved_slot_;
}

const char* CallScope::component() noexcept { return tl_component; }
const char* CallScope::slot() noexcept { return tl_slot; }

void install_crash_reporter() {
    struct sigaction sa {};
    sa.sa_handler = &on_fatal_signal;
    sigemptyset(&sa.sa_mask);
    // On the alternate stack: a stack overflow leaves no room on the thread's own stack.
    sa.sa_flags = SA_RESETHAND | SA_ONSTACK;
    ensure_alternate_signal_stack();
    for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT}) sigaction(sig, &sa, nullptr);
}

}  // namespace spillway::plugin
