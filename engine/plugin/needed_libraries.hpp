// What a shared object asks the dynamic loader for before anything of it runs: read from the
// file, so the engine can refuse a plugin whose loading would take the process down with it.
#pragma once

#include <string>
#include <vector>

namespace spillway::plugin {

// The DT_NEEDED entries of a 64-bit ELF file ("libasan.so.8", ...); empty when `path` is not one
// (dlopen then says why).
std::vector<std::string> needed_libraries(const std::string& path);

// A sanitizer runtime `path` needs that this process has not loaded ("libasan.so.8"), or "".
// AddressSanitizer's and ThreadSanitizer's runtimes must be the process's first library: dlopen
// of a plugin that needs one aborts an engine started without it, with no chance to refuse it.
std::string missing_sanitizer_runtime(const std::string& path);

}  // namespace spillway::plugin
