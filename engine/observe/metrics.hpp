// The engine's metrics: counters, gauges and histograms keyed by name and labels, held in a
// prometheus-cpp registry and rendered by its text serializer (exposition format 0.0.4). The engine
// speaks to them by name, as plugins do through the C ABI; this class keeps each series' handle so a
// hot path pays one map lookup, not a family's label hashing and a new metric object per call.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace spillway::observe {

using Labels = std::vector<std::pair<std::string, std::string>>;

// Parses "k1=v1,k2=v2" (the plugin ABI's label spelling); malformed pieces are skipped.
Labels parse_labels(const char* text);

class Metrics {
public:
    Metrics();
    ~Metrics();
    Metrics(const Metrics&) = delete;
    Metrics& operator=(const Metrics&) = delete;

    // Names are given without the spillway_ prefix; render() adds it. A name already used with
    // another type, or one the exposition format cannot carry, is dropped (a plugin's mistake must
    // not break the scrape).
    void add(const std::string& name, const Labels& labels, double delta = 1);
    void set(const std::string& name, const Labels& labels, double value);
    // `times` observations of the same value (a batch whose events all took as long).
    void observe(const std::string& name, const Labels& labels, double value, uint64_t times = 1);
    // Several observations under one lookup (a relay round's per-event delays).
    void observe_each(const std::string& name, const Labels& labels, const std::vector<double>& values);
    // HELP of a family; takes effect when the family is first used (the engine describes every
    // family of its catalogue at construction).
    void describe(const std::string& name, const std::string& help);

    double value(const std::string& name, const Labels& labels = {}) const;  // counter or gauge; 0 if absent
    uint64_t count(const std::string& name, const Labels& labels = {}) const; // histogram observations

    std::string render() const;

    static const std::vector<double>& default_buckets();  // seconds, 100 µs .. 10 s

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace spillway::observe
