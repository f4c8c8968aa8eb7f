// `spillway publish`: an engine in this process, NDJSON events on stdin, one result line per event
// on stdout in input order. Events are published in small batches: whatever arrived together (up
// to --batch) goes out together, so a pipe is fast and an interactive line is answered at once.
#include "commands.hpp"

#include "engine/engine.hpp"
#include "engine/http/event_json.hpp"
#include "engine/observe/log.hpp"
#include "engine/signals.hpp"

#include <nlohmann/json.hpp>

#include <poll.h>
#include <unistd.h>

#include <iostream>

namespace spillway::cli {

namespace {

class Publisher {
public:
    Publisher(pipeline::Pipeline& p, size_t batch) : pipeline_(p), batch_(batch) {}

    void add(size_t line, pipeline::Event e) {
        lines_.push_back(line);
        events_.push_back(std::move(e));
        if (events_.size() >= batch_) flush();
    }

    void invalid(size_t line, const std::string& message) {
        flush();  // results stay in input order
        ++failed_;
        // The message may quote the line's bytes, which need not be UTF-8: replaced, not thrown on.
        std::cout << nlohmann::json{{"line", line}, {"error", message}}.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)
                  << "\n" << std::flush;
    }

    void flush() {
        if (events_.empty()) return;
        const auto outcomes = pipeline_.publish(std::move(events_));
        for (size_t i = 0; i < outcomes.size(); ++i) {
            if (!outcomes[i].accepted()) ++failed_;
            auto j = nlohmann::json::parse(http::outcome_json(outcomes[i]));
            j["line"] = lines_[i];
            std::cout << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
        }
        std::cout << std::flush;
        events_.clear();
        lines_.clear();
    }

    size_t failed() const { return failed_; }

private:
    pipeline::Pipeline& pipeline_;
    size_t batch_;
    std::vector<pipeline::Event> events_;
    std::vector<size_t> lines_;
    size_t failed_ = 0;
};

// True when a line can be read without waiting; waits up to `ms` for one otherwise.
bool input_ready(int ms) {
    if (std::cin.rdbuf()->in_avail() > 0) return true;
    pollfd fd{STDIN_FILENO, POLLIN, 0};
    return ::poll(&fd, 1, ms) > 0;
}

}  // namespace

int publish(const PublishOptions& options) {
    std::ios::sync_with_stdio(false);  // in_avail() then sees what is buffered
    config::LoadOptions load;
    load.environment = options.config.environment;
    std::unique_ptr<Prepared> prepared;
    try {
        prepared = prepare(options.config.config, load);
    } catch (const config::ConfigError& e) {
        std::cerr << e.what() << "\n";
        return kInvalidConfig;
    }
    if (!prepared->config.pipelines.count(options.pipeline)) {
        std::cerr << "--pipeline " << options.pipeline << ": " << options.config.config << " has no such pipeline (it has:";
        for (const auto& [name, p] : prepared->config.pipelines) std::cerr << " " << name;
        std::cerr << ")\n";
        return kUsage;
    }
    observe::setup_logging(prepared->config.engine.log_level, prepared->config.engine.log_format);
    Engine engine(std::move(prepared));
    try {
        engine.start();
    } catch (const plugin::PluginError& e) {
        observe::logger()->error("{}", e.what());
        return e.status() == SW_INVALID_CONFIG ? kInvalidConfig : kRuntimeFailure;
    }
    pipeline::Pipeline& pipeline = *engine.pipeline(options.pipeline);
    Publisher out(pipeline, std::max<size_t>(options.batch, 1));

    size_t line_no = 0;
    std::string line;
    for (;;) {
        if (!input_ready(0)) {
            out.flush();  // nothing more arrived with this batch: answer it now
            while (!input_ready(200)) {
                if (wait_for_shutdown_signal(std::chrono::milliseconds(1)) != 0) {
                    observe::logger()->warn("interrupted: stopped reading at line {}", line_no);
                    engine.stop();
                    return kRuntimeFailure;
                }
            }
        }
        if (!std::getline(std::cin, line)) break;
        ++line_no;
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (line.find_first_not_of(" \t") == std::string::npos) continue;
        try {
            out.add(line_no, http::parse_event(line, pipeline.spec().topic));
        } catch (const http::BadRequest& e) {
            out.invalid(line_no, e.what());
        } catch (const std::exception& e) {
            // Every line gets its answer and the run goes on, whatever the line held.
            out.invalid(line_no, std::string("cannot read the line: ") + e.what());
        }
    }
    out.flush();
    engine.stop();
    return out.failed() == 0 ? kOk : kRuntimeFailure;
}

}  // namespace spillway::cli
