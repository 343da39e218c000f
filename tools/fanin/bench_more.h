// tools/fanin/bench_more.h: the other modes of `fanin bench`:
//   --mode queue      single-row requests from N producer threads through an
//                     Engine (BatchQueue + workers), the way services use it;
//   --model minilm    the BERT encoder (all-MiniLM-L6-v2 shape) at fixed
//                     batch x sequence sizes, inputs already on the device,
//                     plus one-sentence latency with tokenization.
// Each returns a JSON document (see the "notes" field of each).
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bench.h"

namespace fanin::cli {

nlohmann::json run_queue_bench(const BenchOptions& options);
nlohmann::json run_minilm_bench(const BenchOptions& options);
// --model minilm --mode queue: single sentences from N producers through an
// Engine serving the sentence encoder (bench_minilm_queue.cpp).
nlohmann::json run_minilm_queue_bench(const BenchOptions& options);
// --mode cpu-profile: per-op time of one batch on the CPU backend;
// --mode cpu-encoder: sentences/s of the text Engine over CPU workers
// (bench_cpu.cpp).
nlohmann::json run_cpu_profile_bench(const BenchOptions& options);
nlohmann::json run_cpu_encoder_bench(const BenchOptions& options);

// The non-empty lines of `path` (--sentences); UsageError naming the file
// when it cannot be read or holds none (bench_minilm_queue.cpp).
std::vector<std::string> load_sentences(const std::string& path);

}  // namespace fanin::cli
