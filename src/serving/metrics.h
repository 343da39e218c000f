// Engine metrics: accumulation (under the engine's metrics lock) and the
// Prometheus text exposition.
#pragma once

#include <string>

#include "fanin/engine.h"

namespace fanin::serving {

// Bucket upper bounds (µs) of the latency histograms.
const std::vector<double>& latency_bounds_us();
// Adds `us` to a histogram over latency_bounds_us() (+Inf bucket last).
void observe(std::vector<uint64_t>& hist, double us);
// An empty metrics struct shaped for `max_batch` and `workers`.
EngineMetrics empty_metrics(int max_batch, int workers);
// Prometheus text format, metric names prefixed "fanin_".
std::string to_prometheus(const EngineMetrics& m);

}  // namespace fanin::serving
