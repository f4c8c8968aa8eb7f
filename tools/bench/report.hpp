// What a scenario measured: rows of figures (latency percentiles or a rate), each next to its
// raw baseline and the target it is held against, printed as a table and written as JSON.
#pragma once

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <vector>

namespace spillway::bench {

// Latency samples in microseconds.
struct Stats {
    size_t n = 0;
    double p50 = 0, p95 = 0, p99 = 0, max = 0, mean = 0;
    static Stats of(std::vector<double> samples_us);
    nlohmann::json json() const;
};

// A goal a row is checked against: `value <= limit` (or >= when `at_least`).
struct Target {
    std::string text;   // "p99 <= 2 ms", "<= 1.3x raw"
    bool met = false;
};

struct Row {
    std::string measure;            // "sync publish, 1 event"
    std::string unit;               // "us", "events/s", "ms", "MB", "1/s"
    std::optional<Stats> latency;   // for latency rows
    double value = 0;               // for rate/size rows (and p99 copied here for latency rows)
    std::string baseline;           // "raw librdkafka producer"
    std::optional<Stats> baseline_latency;
    std::optional<double> baseline_value;
    std::optional<double> ratio;    // ours / raw (latency: p99 / p99; rates: ours / raw)
    std::vector<Target> targets;
    std::string note;               // what bounds the figure
};

class Report {
public:
    explicit Report(std::string scenario) : scenario_(std::move(scenario)) {}
    Row& add(Row row);
    void setting(const std::string& key, nlohmann::json value) { settings_[key] = std::move(value); }
    void pending(const std::string& why) { pending_ = why; }

    void print() const;
    nlohmann::json json() const;
    const std::string& scenario() const { return scenario_; }
    const std::vector<Row>& rows() const { return rows_; }

private:
    std::string scenario_;
    std::vector<Row> rows_;
    nlohmann::json settings_ = nlohmann::json::object();
    std::string pending_;
};

// Helpers that fill a Row's comparison and targets.
Row latency_row(std::string measure, const std::vector<double>& ours_us, std::string baseline = {},
                const std::vector<double>& raw_us = {});
Row rate_row(std::string measure, std::string unit, double ours, std::string baseline = {},
             std::optional<double> raw = std::nullopt);
Target at_most(const std::string& text, double value, double limit);
Target at_least(const std::string& text, double value, double limit);

// The machine and library versions, for every JSON file.
nlohmann::json machine_info();

}  // namespace spillway::bench
