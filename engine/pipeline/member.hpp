// Who this engine is to the other engines on the same outbox and to operators.
#pragma once

#include <string>

namespace spillway::pipeline {

// $SPILLWAY_MEMBER_ID (a pod name, or "%H-%i" under systemd), else "<host>-<pid>".
std::string member_id();

}  // namespace spillway::pipeline
