// The topic an outbox event goes to: Kafka Connect's RegexRouter as Debezium's router applies it
// to the value of the route.by.field column. When the regex matches the whole value, the topic is
// the replacement with its group references filled in; when it does not, the topic is the value
// itself (RegexRouter leaves a record it does not match alone).
//
// Java's syntax is kept where std::regex (ECMAScript) differs: named groups `(?<name>...)` in the
// regex, and in the replacement `${name}`, `$n` (digits taken while they name a group, as Java
// does) and `\x` for a literal x.
#ifndef SPILLWAY_PLUGINS_DEBEZIUM_TOPIC_ROUTER_HPP
#define SPILLWAY_PLUGINS_DEBEZIUM_TOPIC_ROUTER_HPP

#include <cstddef>
#include <regex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace spillway::plugins::debezium {

// A regex or replacement that cannot work; `option` is the key to blame.
class RouterError : public std::runtime_error {
public:
    RouterError(std::string option, const std::string& what) : std::runtime_error(what), option_(std::move(option)) {}
    const std::string& option() const noexcept { return option_; }

private:
    std::string option_;
};

class TopicRouter {
public:
    // Throws RouterError naming route.topic.regex or route.topic.replacement.
    TopicRouter(std::string_view regex, std::string_view replacement);

    std::string route(std::string_view routed_by_value) const;

private:
    using Piece = std::variant<std::string, size_t>;  // literal text, or a group's number
    std::regex regex_;
    std::vector<Piece> replacement_;
};

}  // namespace spillway::plugins::debezium

#endif
