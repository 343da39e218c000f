// tools/fanin/bench.h: `fanin bench`, the throughput/latency benchmark.
//
// Direct mode (Note [Bench direct mode] in bench.cpp): for each thread count
// N, N threads each lease a stream from the device's pool and run a closed
// loop of requests (copy in, forward, copy out, synchronize) on one shared
// model. Output is one JSON document on stdout (and in --out FILE);
// progress goes to stderr.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace CLI {
class App;
}

namespace fanin::cli {

// The command line of `fanin bench`, as parsed; checked by run_bench.
struct BenchOptions {
  std::string model = "mlp";
  std::string backend = "cpu";
  std::vector<int> threads{1, 2, 4};
  double seconds = 3.0;
  double warmup_seconds = 0.5;
  std::string mode = "direct";
  std::string dtype = "f32";
  int batch = 1;
  std::vector<int> dims{512, 1024, 1024, 512};
  std::string out;  // empty: stdout only
  bool graphs = false;
  std::string sync = "block";  // block | yield | spin
  // --mode queue (bench_queue.cpp)
  std::vector<int> producers{1, 8, 64};
  int window = 1;           // requests in flight per producer
  int workers = 1;
  int max_batch = 256;
  int max_delay_us = 100;
  bool fixed_delay = false;  // EngineOptions::adaptive_queue_delay off
  int64_t max_tokens = 0;   // token budget per batch (minilm queue); 0: none
  std::string devices;      // queue mode: "cuda:0,cuda:1" or "all" (Note [Bench device sets])
  // --model minilm (bench_minilm.cpp)
  std::vector<int> batches{1, 8, 32, 128, 512};
  std::vector<int> seqs{16, 128};
  std::string model_dir;    // a sentence-transformers folder; empty: random weights
  std::string sentences = "bench/data/queue_sentences.txt";  // minilm queue mode
  // --mode cpu-profile / cpu-encoder (bench_cpu.cpp)
  int cpu_batch = 32;        // sentences in the profiled batch
  int cpu_sentences = 2000;  // sentences per pass of the encoder mode
};

// Registers the `bench` subcommand on `app`, parsing into `options`.
CLI::App* add_bench_command(CLI::App& app, BenchOptions& options);

// Runs the benchmark; returns the exit code. Throws UsageError for bad
// values and fanin::Error for failures of the library.
int run_bench(const BenchOptions& options);

}  // namespace fanin::cli
