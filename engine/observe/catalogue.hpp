// Every metric family the engine itself emits, in one table: name (without the spillway_ prefix),
// type, labels and HELP. The engine describes them all at construction, so a family has its HELP
// whichever part of the engine emits it first. Plugins' families are theirs (no HELP from us).
#pragma once

#include "engine/observe/metrics.hpp"

#include <cstddef>

namespace spillway::observe {

struct MetricFamily {
    const char* name;
    const char* type;    // counter, gauge, histogram
    const char* labels;  // comma-separated; every label's values are bounded (no key or event_id)
    const char* help;
};

extern const MetricFamily kEngineMetrics[];
extern const size_t kEngineMetricCount;

// Gives `metrics` the HELP text of every family in kEngineMetrics.
void describe_engine_metrics(Metrics& metrics);

}  // namespace spillway::observe
