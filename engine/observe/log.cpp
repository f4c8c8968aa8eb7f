#include "engine/observe/log.hpp"

#include "engine/observe/clock.hpp"

#include <nlohmann/json.hpp>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>

#include <atomic>
#include <chrono>
#include <ctime>
#include <mutex>

namespace spillway::observe {

namespace {

// The fields of the line being logged on this thread (log() below): the sinks are synchronous, so
// the formatter runs inside logger.log() on the caller's thread.
thread_local const std::initializer_list<Field>* t_fields = nullptr;
std::atomic<bool> g_json{false};

// One JSON object per line: ts (RFC 3339, UTC, ms), level, logger, msg, and the line's fields.
class JsonFormatter final : public spdlog::formatter {
public:
    void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
        const auto t = std::chrono::system_clock::to_time_t(msg.time);
        const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(msg.time.time_since_epoch()).count() % 1000;
        std::tm tm{};
        gmtime_r(&t, &tm);
        char ts[64];
        std::snprintf(ts, sizeof ts, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                      tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms));
        nlohmann::json j = {{"ts", ts},
                            {"level", std::string(spdlog::level::to_string_view(msg.level).data(),
                                                  spdlog::level::to_string_view(msg.level).size())},
                            {"logger", std::string(msg.logger_name.data(), msg.logger_name.size())},
                            {"msg", std::string(msg.payload.data(), msg.payload.size())}};
        if (t_fields)
            for (const auto& [key, value] : *t_fields) j[key] = value;
        const std::string line = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
        dest.append(line.data(), line.data() + line.size());
    }
    std::unique_ptr<spdlog::formatter> clone() const override { return std::make_unique<JsonFormatter>(); }
};

std::mutex& setup_mutex() {
    static std::mutex m;
    return m;
}

spdlog::sink_ptr& shared_sink() {
    static spdlog::sink_ptr sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
    return sink;
}

std::string& current_format() {
    static std::string f = "text";
    return f;
}

void apply_format(spdlog::logger& l) {
    if (current_format() == "json") l.set_formatter(std::make_unique<JsonFormatter>());
    else l.set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%-5l%$ [%n] %v");
}

}  // namespace

void setup_logging(const std::string& level, const std::string& format) {
    std::lock_guard lock(setup_mutex());
    current_format() = format;
    g_json = format == "json";
    const auto lvl = spdlog::level::from_str(level == "warn" ? "warning" : level);
    spdlog::set_level(lvl);
    spdlog::apply_all([&](const std::shared_ptr<spdlog::logger>& l) {
        l->set_level(lvl);
        apply_format(*l);
    });
}

std::shared_ptr<spdlog::logger> logger(const std::string& name) {
    if (auto existing = spdlog::get(name)) return existing;
    std::lock_guard lock(setup_mutex());
    if (auto existing = spdlog::get(name)) return existing;
    auto l = std::make_shared<spdlog::logger>(name, shared_sink());
    l->set_level(spdlog::get_level());
    apply_format(*l);
    spdlog::register_logger(l);
    return l;
}

void log(spdlog::logger& logger, spdlog::level::level_enum level, const std::string& message,
         std::initializer_list<Field> fields) {
    if (!logger.should_log(level)) return;
    if (g_json) {
        t_fields = &fields;
        logger.log(level, "{}", message);
        t_fields = nullptr;
        return;
    }
    std::string text = message;
    for (const auto& [key, value] : fields) {
        text += ' ';
        text += key;
        text += '=';
        if (value.empty() || value.find_first_of(" \"=") != std::string::npos) text += nlohmann::json(value).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
        else text += value;
    }
    logger.log(level, "{}", text);
}

void LogLimit::log(spdlog::logger& logger, spdlog::level::level_enum level, const std::string& message,
                   std::initializer_list<Field> fields) {
    if (!logger.should_log(level)) return;
    uint64_t left_out = 0;
    {
        std::lock_guard lock(mutex_);
        const int64_t now = monotonic_us();
        if (now - window_us_ >= 1'000'000) {
            window_us_ = now;
            in_window_ = 0;
        }
        if (in_window_ >= per_second_) {
            ++suppressed_;
            return;
        }
        ++in_window_;
        left_out = suppressed_;
        suppressed_ = 0;
    }
    if (left_out)
        observe::log(logger, level, std::to_string(left_out) + " similar line(s) were not logged (at most " +
                                        std::to_string(per_second_) + " a second)",
                     {{"suppressed", std::to_string(left_out)}});
    observe::log(logger, level, message, fields);
}

}  // namespace spillway::observe
