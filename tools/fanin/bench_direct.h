// tools/fanin/bench_direct.h: the closed-loop, one-stream-per-thread runner
// behind `fanin bench --mode direct` (Note [Bench direct mode] in
// bench_direct.cpp).
#pragma once

#include <cstdint>
#include <vector>

#include "fanin/allocator.h"

namespace fanin {
class Model;
}

namespace fanin::cli {

// How a request waits for its stream: Stream::synchronize (block), or
// polling Stream::query with a yield between polls (yield) or none (spin),
// then Stream::synchronize to collect errors.
enum class SyncMode { kBlock, kYield, kSpin };

// How one run of N threads is driven.
struct DirectConfig {
  int threads = 1;
  double seconds = 3.0;         // measured interval
  double warmup_seconds = 0.5;  // unmeasured requests before it
  int batch = 1;                // rows per request
  bool graphs = false;          // replay a per-stream captured forward
  SyncMode sync = SyncMode::kBlock;
};

// Latency of the measured requests, in microseconds.
struct LatencySummary {
  double p50_us = 0, p99_us = 0, p999_us = 0, mean_us = 0, min_us = 0, max_us = 0;
};

// What one run measured.
struct DirectResult {
  int threads = 0;
  uint64_t requests = 0;  // completed inside the measured interval
  double elapsed_s = 0;   // measured interval: start to the last request's end
  double rps = 0;         // requests / elapsed_s
  LatencySummary latency;
  std::vector<uint64_t> requests_per_thread;
  // Allocator snapshots: before the threads start (after trim()), and at
  // the end with every thread's lease, input tensor and graph still held.
  AllocatorStats alloc_before, alloc_end;
};

// Runs `model` from config.threads threads, each on its own stream leased
// from the model's device pool. Throws the first fanin::Error any thread
// raised (after every thread has stopped).
DirectResult run_direct(const Model& model, const DirectConfig& config);

// Percentiles (nearest rank) and mean of `us`; sorts it.
LatencySummary summarize(std::vector<double>& us);

}  // namespace fanin::cli
