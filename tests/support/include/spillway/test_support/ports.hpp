// Free loopback ports for servers a test starts.
#pragma once

namespace spillway::test_support {

// A TCP port on 127.0.0.1 that was free a moment ago: binds port 0, reads the port the kernel
// chose, closes the socket. Another process can take it before the caller binds it, so the
// server starters in this harness retry with a fresh port when the first bind fails.
int free_port();

}  // namespace spillway::test_support
