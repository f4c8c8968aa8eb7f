#include "engine/pipeline/member.hpp"

#include <unistd.h>

#include <cstdlib>

namespace spillway::pipeline {

namespace {
std::string host_name() {
    char buf[256] = {};
    if (::gethostname(buf, sizeof(buf) - 1) != 0 || !buf[0]) return "localhost";
    return buf;
}
}  // namespace

std::string member_id() {
    if (const char* id = std::getenv("SPILLWAY_MEMBER_ID"); id && *id) return id;
    return host_name() + "-" + std::to_string(::getpid());
}

}  // namespace spillway::pipeline
