// Which plugin call a thread is in, so a crash inside a plugin names it. In-process plugins cannot
// be isolated: a plugin that crashes takes the engine down; what the engine can do is say who.
#pragma once

namespace spillway::plugin {

// Set for the duration of one call into a plugin. `component` and `slot` must outlive the scope
// (an Instance's label and a string literal).
class CallScope {
public:
    CallScope(const char* component, const char* slot) noexcept;
    ~CallScope();
    CallScope(const CallScope&) = delete;
    CallScope& operator=(const CallScope&) = delete;

    // The innermost call of this thread, or nullptr; readable from a signal handler.
    static const char* component() noexcept;
    static const char* slot() noexcept;

private:
    const char* saved_component_;
    const char* saved_slot_;
};

// On SIGSEGV, SIGBUS, SIGFPE, SIGILL or SIGABRT, writes to stderr which plugin call (if any) the
// crashing thread was in, then lets the signal take the process down as it would have.
void install_crash_reporter();

}  // namespace spillway::plugin
