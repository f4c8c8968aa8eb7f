// What a network doorbell's connection throws when its server cannot be used right now.
#ifndef SPILLWAY_PLUGINS_DOORBELL_COMMON_UNREACHABLE_HPP
#define SPILLWAY_PLUGINS_DOORBELL_COMMON_UNREACHABLE_HPP

#include <stdexcept>
#include <string>

namespace spillway::plugins::doorbell {

// The server could not be reached, the connection broke, or it did not answer in time: try again
// later; the connection is unusable. The message says what failed ("cannot connect: Connection
// refused"); callers add which server.
class Unreachable : public std::runtime_error {
public:
    explicit Unreachable(const std::string& message, bool timed_out = false)
        : std::runtime_error(message), timed_out_(timed_out) {}
    // The server did not answer before the deadline (hung, paused, or a black hole), rather than
    // refusing or closing the connection.
    bool timed_out() const noexcept { return timed_out_; }

private:
    bool timed_out_;
};

}  // namespace spillway::plugins::doorbell

#endif
