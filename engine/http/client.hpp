// A small client of the admin API, for `spillway status` (keeps cpp-httplib out of tools/).
#pragma once

#include <chrono>
#include <stdexcept>
#include <string>

namespace spillway::http {

// GETs `path` from `base_url` ("http://host:port", or "host:port"). Returns the body of a 200;
// throws std::runtime_error naming the URL and what went wrong (connection refused, 401, ...).
std::string admin_get(const std::string& base_url, const std::string& path, const std::string& token,
                      std::chrono::milliseconds timeout = std::chrono::seconds(5));

}  // namespace spillway::http
