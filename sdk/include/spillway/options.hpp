// spillway/options.hpp — a plugin's options declared once.
//
// Each option is one line binding a key to a member of the plugin's settings struct, with its
// type (from the member), default, range or choices, and description. From that one table come
// the sw_option rows the engine validates a component's TOML against (and `spillway plugins`
// prints), the code that reads the values into the struct, and the range checks:
//
//   struct Settings { std::string host; int64_t port; int64_t timeout_ms; };
//   inline const spillway::sdk::Options<Settings> kOptions{
//       spillway::sdk::option<&Settings::host>("host", "127.0.0.1", "host name or address"),
//       spillway::sdk::option<&Settings::port>("port", "6379", "TCP port").range(1, 65535),
//       spillway::sdk::duration<&Settings::timeout_ms>("timeout", "200ms", "bound on a call").at_least(1),
//   };
//   const Settings s = kOptions.read(host);  // throws sdk::ConfigError naming the key
//   SW_EXPORT_NOTIFIER(MyNotifier, "mine", "1.0.0", "...", kOptions, 0)
//
// The engine fills every unset option from its default before the plugin sees the config, so the
// default is written here only: the settings struct's members need no initialisers for them.
#ifndef SPILLWAY_OPTIONS_HPP
#define SPILLWAY_OPTIONS_HPP

#include <spillway/sdk.hpp>

#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

namespace spillway::sdk {

template <class S>
class Option {
public:
    using Reader = bool (*)(S& settings, const Host& host, const Option& self);  // false: no value

    Option(const char* name, uint32_t type, const char* default_value, const char* description, Reader reader)
        : name_(name), type_(type), default_(default_value), description_(description), reader_(reader) {}

    // Inclusive bounds for an integer, double or duration (milliseconds) option.
    Option range(double lo, double hi) && {
        min_ = lo, max_ = hi;
        return std::move(*this);
    }
    Option at_least(double lo) && {
        min_ = lo;
        return std::move(*this);
    }
    // The values a string (or each item of a string list) may take.
    Option one_of(std::initializer_list<const char*> choices) && {
        choices_.assign(choices.begin(), choices.end());
        return std::move(*this);
    }
    Option required() && {
        flags_ |= SW_OPT_REQUIRED;
        return std::move(*this);
    }
    Option secret() && {
        flags_ |= SW_OPT_SECRET;
        return std::move(*this);
    }

    const char* name() const { return name_; }
    uint32_t type() const { return type_; }
    uint32_t flags() const { return flags_; }
    const char* default_value() const { return default_; }
    // The description with the bounds or choices appended, as `spillway plugins` shows it.
    std::string full_description() const {
        std::string d = description_ ? description_ : "";
        const std::string unit = type_ == SW_OPT_DURATION ? "ms" : "";
        if (has_min() && has_max()) d += "; from " + number(min_) + unit + " to " + number(max_) + unit;
        else if (has_min()) d += "; at least " + number(min_) + unit;
        if (!choices_.empty()) d += "; one of: " + joined();
        return d;
    }
    // A required option without a value is refused here too: not every host checks it first.
    void read(S& settings, const Host& host) const {
        if (!reader_(settings, host, *this) && (flags_ & SW_OPT_REQUIRED))
            throw ConfigError(name_, std::string("missing required option '") + name_ + "'");
    }

    // Called by the readers: throws ConfigError naming the key when `v` is out of bounds.
    void check_bounds(double v) const {
        const std::string unit = type_ == SW_OPT_DURATION ? "ms" : "";
        if ((has_min() || has_max()) && std::isnan(v))
            throw ConfigError(name_, std::string(name_) + " must be a number, not nan");
        if (has_min() && has_max() && (v < min_ || v > max_))
            throw ConfigError(name_, std::string(name_) + " must be between " + number(min_) + unit + " and " +
                                         number(max_) + unit + ", not " + number(v) + unit);
        if (has_min() && v < min_)
            throw ConfigError(name_, std::string(name_) + " must be at least " + number(min_) + unit + ", not " +
                                         number(v) + unit);
        if (has_max() && v > max_)
            throw ConfigError(name_, std::string(name_) + " must be at most " + number(max_) + unit + ", not " +
                                         number(v) + unit);
    }
    void check_choice(const std::string& v) const {
        if (choices_.empty()) return;
        for (const char* c : choices_)
            if (v == c) return;
        throw ConfigError(name_, std::string(name_) + " must be one of: " + joined() + " (not '" + v + "')");
    }

private:
    bool has_min() const { return min_ != -std::numeric_limits<double>::infinity(); }
    bool has_max() const { return max_ != std::numeric_limits<double>::infinity(); }
    static std::string number(double v) {
        if (v == static_cast<double>(static_cast<int64_t>(v))) return std::to_string(static_cast<int64_t>(v));
        std::string s = std::to_string(v);
        while (s.size() > 1 && s.back() == '0') s.pop_back();
        return s;
    }
    std::string joined() const {
        std::string out;
        for (const char* c : choices_) out += (out.empty() ? "" : ", ") + std::string(c);
        return out;
    }

    const char* name_;
    uint32_t type_;
    uint32_t flags_ = 0;
    const char* default_;
    const char* description_;
    Reader reader_;
    double min_ = -std::numeric_limits<double>::infinity();
    double max_ = std::numeric_limits<double>::infinity();
    std::vector<const char*> choices_;
};

namespace detail {
template <class M>
struct member_traits;
template <class S, class T>
struct member_traits<T S::*> {
    using settings = S;
    using type = T;
};

template <class T>
constexpr uint32_t option_type_of() {
    if constexpr (std::is_same_v<T, std::string>) return SW_OPT_STRING;
    else if constexpr (std::is_same_v<T, bool>) return SW_OPT_BOOL;
    else if constexpr (std::is_integral_v<T>) return SW_OPT_INT;
    else if constexpr (std::is_floating_point_v<T>) return SW_OPT_DOUBLE;
    else if constexpr (std::is_same_v<T, std::vector<std::string>>) return SW_OPT_STRING_LIST;
    else static_assert(sizeof(T) == 0, "an option binds a std::string, bool, integer, double or string list member");
}
}  // namespace detail

// An option whose type follows its member: std::string, bool, an integer, double, or
// std::vector<std::string>.
template <auto Member>
Option<typename detail::member_traits<decltype(Member)>::settings> option(const char* name, const char* default_value,
                                                                          const char* description) {
    using S = typename detail::member_traits<decltype(Member)>::settings;
    using T = typename detail::member_traits<decltype(Member)>::type;
    auto reader = [](S& s, const Host& host, const Option<S>& o) -> bool {
        if constexpr (std::is_same_v<T, std::string>) {
            auto v = host.opt_string(o.name());
            if (!v) return false;
            o.check_choice(*v);
            s.*Member = std::move(*v);
        } else if constexpr (std::is_same_v<T, bool>) {
            auto v = host.opt_bool(o.name());
            if (!v) return false;
            s.*Member = *v;
        } else if constexpr (std::is_integral_v<T>) {
            auto v = host.opt_int(o.name());
            if (!v) return false;
            o.check_bounds(static_cast<double>(*v));
            s.*Member = static_cast<T>(*v);
        } else if constexpr (std::is_floating_point_v<T>) {
            auto v = host.opt_double(o.name());
            if (!v) return false;
            o.check_bounds(*v);
            s.*Member = static_cast<T>(*v);
        } else {
            auto v = host.opt_list(o.name());
            if (!v) return false;
            for (const auto& item : *v) o.check_choice(item);
            s.*Member = std::move(*v);
        }
        return true;
    };
    return Option<S>(name, detail::option_type_of<T>(), default_value, description, reader);
}

// A duration ("250ms", "1.5s", "2m" or milliseconds) read into an integer member of milliseconds.
template <auto Member>
Option<typename detail::member_traits<decltype(Member)>::settings> duration(const char* name, const char* default_value,
                                                                            const char* description) {
    using S = typename detail::member_traits<decltype(Member)>::settings;
    using T = typename detail::member_traits<decltype(Member)>::type;
    static_assert(std::is_integral_v<T>, "a duration binds an integer member of milliseconds");
    auto reader = [](S& s, const Host& host, const Option<S>& o) -> bool {
        auto v = host.opt_duration_ms(o.name());
        if (!v) return false;
        o.check_bounds(static_cast<double>(*v));
        s.*Member = static_cast<T>(*v);
        return true;
    };
    return Option<S>(name, SW_OPT_DURATION, default_value, description, reader);
}

// The whole table: the rows handed to the engine and the reading of a settings struct.
template <class S>
class Options {
public:
    Options(std::initializer_list<Option<S>> options) : options_(options) {
        descriptions_.reserve(options_.size());
        for (const auto& o : options_) descriptions_.push_back(o.full_description());
        for (size_t i = 0; i < options_.size(); ++i) {
            const auto& o = options_[i];
            rows_.push_back({o.name(), o.type(), o.flags(), o.default_value(), descriptions_[i].c_str()});
        }
    }
    Options(const Options&) = delete;
    Options& operator=(const Options&) = delete;

    // Every option into a fresh settings struct; throws ConfigError naming the first bad key.
    S read(const Host& host) const {
        S s{};
        for (const auto& o : options_) o.read(s, host);
        return s;
    }
    const sw_option* data() const { return rows_.data(); }
    size_t size() const { return rows_.size(); }
    const std::vector<Option<S>>& options() const { return options_; }

private:
    std::vector<Option<S>> options_;
    std::vector<std::string> descriptions_;
    std::vector<sw_option> rows_;
};

}  // namespace spillway::sdk

#endif  // SPILLWAY_OPTIONS_HPP
