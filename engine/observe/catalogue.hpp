// Every metric family the engine itself emits, in one table: name (without the spillway_ prefix),
// type, labels and HELP. The engine describes them all at construction, so a family has its HELP
// whichever part of the engine emits it first. Plugins' families are theirs (no HELP from us).
#pragma once

#include "engine/observe/metrics.hpp"

#include <cstddef>
#include <string>

namespace spillway::observe {

struct MetricFamily {
    const char* name;
    const char* type;    // counter, gauge, histogram
    const char* labels;  // comma-separated; every label's values are bounded (no key or event_id)
    const char* help;
    const char* unit;  // what one of its values counts or measures
    const char* was;   // the original (Python) system's series it replaces, and how; "" for none
};

extern const MetricFamily kEngineMetrics[];
extern const size_t kEngineMetricCount;
// The families the bundled plugins report through the host (which adds a `component` label, the
// plugin instance's id): described by the engine too, so every family of a scrape has its HELP.
// `was` names the plugin folder that emits it.
extern const MetricFamily kPluginMetrics[];
extern const size_t kPluginMetricCount;

// Gives `metrics` the HELP text of every family in kEngineMetrics.
void describe_engine_metrics(Metrics& metrics);

// `text` with the tables between "<!-- metrics:engine ...-->" and "<!-- /metrics:engine -->" (and
// the same for metrics:plugins) made from kEngineMetrics and kPluginMetrics (docs/metrics.md;
// `tools/dev reference` writes it). Throws std::runtime_error when the markers are missing.
std::string with_metric_table(const std::string& text);

}  // namespace spillway::observe
