// In-process metrics registry: counters, gauges and histograms keyed by name and labels, rendered
// in the Prometheus text exposition format 0.0.4 (prometheus-cpp is not packaged for Debian).
#pragma once

#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace spillway::observe {

using Labels = std::vector<std::pair<std::string, std::string>>;

// Parses "k1=v1,k2=v2" (the plugin ABI's label spelling); malformed pieces are skipped.
Labels parse_labels(const char* text);

class Metrics {
public:
    // Names are given without the spillway_ prefix; render() adds it.
    void add(const std::string& name, const Labels& labels, double delta = 1);
    void set(const std::string& name, const Labels& labels, double value);
    // `times` observations of the same value (a batch whose events all took as long).
    void observe(const std::string& name, const Labels& labels, double value, uint64_t times = 1);
    // Several observations under one lookup (a relay round's per-event delays).
    void observe_each(const std::string& name, const Labels& labels, const std::vector<double>& values);
    void describe(const std::string& name, const std::string& help);

    double value(const std::string& name, const Labels& labels = {}) const;  // counter or gauge; 0 if absent
    uint64_t count(const std::string& name, const Labels& labels = {}) const; // histogram observations

    std::string render() const;

    static const std::vector<double>& default_buckets();  // seconds, 100 µs .. 10 s

private:
    enum class Type { Counter, Gauge, Histogram };
    struct Histogram {
        std::vector<uint64_t> buckets;  // cumulative at render time; raw per-bucket here
        uint64_t count = 0;
        double sum = 0;
    };
    struct Family {
        Type type = Type::Counter;
        std::string help;
        std::map<Labels, double> values;
        std::map<Labels, Histogram> histograms;
    };
    Family& family(const std::string& name, Type type);
    Histogram& histogram(const std::string& name, const Labels& labels);  // with its buckets
    static void record(Histogram& h, double value, uint64_t times);

    mutable std::mutex mutex_;
    std::map<std::string, Family> families_;
};

}  // namespace spillway::observe
