// `fanin bench`: options, their checks, the runs, and the JSON result.
//
// stdout carries exactly one JSON document; progress goes to stderr. The
// JSON is the evidence format of DESIGN.md ("a performance claim is a
// file"): it names the tool, version, commit, date, host, device and model,
// and holds every figure of every run.
#include "bench.h"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <thread>

#include "bench_direct.h"
#include "bench_more.h"
#include "cli.h"
#include "fanin/allocator.h"
#include "fanin/device.h"
#include "fanin/error.h"
#include "fanin/model.h"
#include "fanin/stream.h"

namespace fanin::cli {
namespace {

using json = nlohmann::ordered_json;

constexpr uint64_t kModelSeed = 42;

// Rounds to `digits` decimals, so the JSON stays readable.
double rounded(double v, int digits = 3) {
  const double scale = std::pow(10.0, digits);
  return std::round(v * scale) / scale;
}

void check_finite(double v, bool zero_ok, const char* option) {
  if (!std::isfinite(v) || v < 0 || (!zero_ok && v == 0)) {
    std::ostringstream msg;
    msg << option << " must be " << (zero_ok ? ">= 0" : "> 0") << " (seconds), got " << v;
    throw UsageError(msg.str());
  }
}

// Checks every value that needs no device; returns the model's dtype.
DType validate(const BenchOptions& o) {
  if (o.model != "mlp" && o.model != "minilm")
    throw UsageError("--model: unknown model '" + o.model + "'; available: mlp, minilm");
  check_backend_name(o.backend);
  if (o.mode != "direct" && o.mode != "queue" && o.mode != "cpu-profile" &&
      o.mode != "cpu-encoder")
    throw UsageError("--mode: unknown mode '" + o.mode +
                     "'; available: direct, queue, cpu-profile, cpu-encoder");
  const bool cpu_mode = o.mode == "cpu-profile" || o.mode == "cpu-encoder";
  if (cpu_mode) {
    if (o.model != "minilm") throw UsageError("--mode " + o.mode + " needs --model minilm");
    if (o.model_dir.empty())
      throw UsageError("--mode " + o.mode + " needs --model-dir (the texts need the vocabulary)");
    if (o.cpu_batch < 1 || o.cpu_batch > 4096) throw UsageError("--cpu-batch must be in 1..4096");
    if (o.cpu_sentences < 1) throw UsageError("--cpu-sentences must be >= 1");
    if (o.max_batch < 1) throw UsageError("--max-batch must be >= 1");
    if (o.max_delay_us < 0) throw UsageError("--max-delay-us must be >= 0");
  }
  if (!o.devices.empty() && o.mode != "queue")
    throw UsageError("--devices: only with --mode queue (direct mode runs on --backend)");
  if (o.mode == "queue") {
    if (o.producers.empty()) throw UsageError("--producers: give at least one count");
    for (int p : o.producers)
      if (p < 1 || p > 4096) throw UsageError("--producers: each must be in 1..4096");
    if (o.window < 1) throw UsageError("--window must be >= 1");
    if (o.workers < 1 || o.workers > 64) throw UsageError("--workers must be in 1..64");
    if (o.max_batch < 1) throw UsageError("--max-batch must be >= 1");
    if (o.max_delay_us < 0) throw UsageError("--max-delay-us must be >= 0");
    if (o.max_tokens < 0) throw UsageError("--max-tokens must be >= 0");
    if (!o.devices.empty() && o.devices != "all") {
      size_t start = 0;
      for (;;) {
        const size_t comma = o.devices.find(',', start);
        const std::string item = o.devices.substr(start, comma == std::string::npos ? comma : comma - start);
        const bool cpu_n = item.rfind("cpu:", 0) == 0 && item.size() == 5 && item[4] >= '0' &&
                           item[4] <= '7';
        if (!cpu_n) {
          try {
            check_backend_name(item);
          } catch (const UsageError&) {
            throw UsageError("--devices: unknown device '" + item +
                             "'; expected a list such as cuda:0,cuda:1 (or cpu, cpu:1..cpu:7), "
                             "or all");
          }
        }
        if (comma == std::string::npos) break;
        start = comma + 1;
      }
    }
    if (o.model == "minilm" && o.model_dir.empty())
      throw UsageError(
          "--model minilm --mode queue needs --model-dir (the texts need the vocabulary)");
  }
  if (o.model == "minilm") {
    for (int b : o.batches)
      if (b < 1) throw UsageError("--batches: each must be >= 1");
    for (int s : o.seqs)
      if (s < 1 || s > 512) throw UsageError("--seqs: each must be in 1..512");
  }
  if (o.threads.empty()) throw UsageError("--threads: give at least one thread count, e.g. 1,2,4");
  for (int t : o.threads)
    if ((t < 1 && !(o.mode == "cpu-encoder" && t == 0)) || t > 4096)
      throw UsageError("--threads: every thread count must be in 1..4096, got " +
                       std::to_string(t));
  check_finite(o.seconds, false, "--seconds");
  check_finite(o.warmup_seconds, true, "--warmup-seconds");
  if (o.batch < 1) throw UsageError("--batch must be >= 1, got " + std::to_string(o.batch));
  if (o.dims.size() < 2)
    throw UsageError("--dims: an MLP needs at least 2 sizes (input, output), got " +
                     std::to_string(o.dims.size()));
  for (int d : o.dims)
    if (d < 1) throw UsageError("--dims: every layer size must be >= 1, got " + std::to_string(d));
  if (o.sync != "block" && o.sync != "yield" && o.sync != "spin")
    throw UsageError("--sync: unknown mode '" + o.sync + "'; expected block, yield or spin");
  DType dtype;
  try {
    dtype = parse_dtype(o.dtype);
  } catch (const Error& e) {
    throw UsageError("--dtype: " + e.message());
  }
  if (dtype == DType::kI32) throw UsageError("--dtype: an MLP needs f32, f16 or bf16, got i32");
  return dtype;
}

json result_json(const DirectResult& r, double rps1) {
  const AllocatorStats& b = r.alloc_before;
  const AllocatorStats& e = r.alloc_end;
  json j;
  j["threads"] = r.threads;
  j["requests"] = r.requests;
  j["elapsed_s"] = rounded(r.elapsed_s, 4);
  j["rps"] = rounded(r.rps, 1);
  j["efficiency"] = rps1 > 0 ? rounded(r.rps / (r.threads * rps1), 4) : 0.0;
  j["p50_us"] = rounded(r.latency.p50_us, 1);
  j["p99_us"] = rounded(r.latency.p99_us, 1);
  j["p999_us"] = rounded(r.latency.p999_us, 1);
  j["mean_us"] = rounded(r.latency.mean_us, 1);
  j["min_us"] = rounded(r.latency.min_us, 1);
  j["max_us"] = rounded(r.latency.max_us, 1);
  j["requests_per_thread"] = r.requests_per_thread;
  const size_t extra = e.reserved_bytes > b.reserved_bytes ? e.reserved_bytes - b.reserved_bytes : 0;
  j["allocator"] = {
      {"peak_in_use_bytes", e.peak_in_use_bytes},
      {"reserved", e.reserved_bytes},
      {"reserved_before", b.reserved_bytes},
      {"in_use_bytes", e.in_use_bytes},
      {"allocations", e.allocations - b.allocations},
      {"cache_hits", e.cache_hits - b.cache_hits},
      {"cross_stream_reuses", e.cross_stream_reuses - b.cross_stream_reuses},
      {"raw_allocations", e.raw_allocations - b.raw_allocations},
  };
  j["per_stream_extra_bytes"] = extra / static_cast<size_t>(r.threads);
  return j;
}

void report_progress(const DirectResult& r, double rps1) {
  char efficiency[32] = "   n/a";  // rps(1) not measured yet
  if (rps1 > 0)
    std::snprintf(efficiency, sizeof efficiency, "%5.1f%%", 100.0 * r.rps / (r.threads * rps1));
  std::fprintf(stderr,
               "fanin bench: %3d thread%s %9.1f req/s  efficiency %s  p50 %8.1f us  "
               "p99 %8.1f us  (%llu requests in %.2f s)\n",
               r.threads, r.threads == 1 ? " " : "s", r.rps, efficiency, r.latency.p50_us,
               r.latency.p99_us, static_cast<unsigned long long>(r.requests), r.elapsed_s);
}

}  // namespace

CLI::App* add_bench_command(CLI::App& app, BenchOptions& o) {
  CLI::App* cmd = app.add_subcommand(
      "bench",
      "Measure requests/s, threading efficiency and latency of a model, one leased stream per "
      "thread; prints JSON on stdout");
  cmd->add_option("--model", o.model, "Model: mlp (default mlp)");
  cmd->add_option("--backend", o.backend, "Device: cpu, cuda or cuda:N (default cpu)");
  cmd->add_option("--threads", o.threads, "Thread counts to run, comma-separated (default 1,2,4)")
      ->delimiter(',');
  cmd->add_option("--seconds", o.seconds, "Measured seconds per thread count (default 3)");
  cmd->add_option("--warmup-seconds", o.warmup_seconds,
                  "Unmeasured warm-up seconds before each (default 0.5)");
  cmd->add_option("--mode", o.mode,
                  "direct: each thread runs requests on its own stream; queue: through an "
                  "Engine; cpu-profile: per-op time of one minilm batch on the CPU; "
                  "cpu-encoder: minilm sentences/s over CPU workers");
  cmd->add_option("--dtype", o.dtype, "f32, f16 or bf16 (default f32)");
  cmd->add_option("--batch", o.batch, "Rows per request (default 1)");
  cmd->add_option("--dims", o.dims, "MLP layer sizes, comma-separated (default 512,1024,1024,512)")
      ->delimiter(',');
  cmd->add_option("--out", o.out, "Also write the JSON to this file");
  cmd->add_flag("--graphs", o.graphs,
                "Capture each thread's whole request once (fanin::Graph) and replay it");
  cmd->add_option("--sync", o.sync,
                  "How a request waits: block (Stream::synchronize), yield or spin (poll "
                  "Stream::query) (default block)");
  cmd->add_option("--producers", o.producers, "queue mode: producer thread counts (default 1,8,64)")
      ->delimiter(',');
  cmd->add_option("--window", o.window, "queue mode: requests in flight per producer (default 1)");
  cmd->add_option("--workers", o.workers, "queue mode: engine workers (default 1)");
  cmd->add_option("--max-batch", o.max_batch, "queue mode: max batch size (default 256)");
  cmd->add_option("--max-delay-us", o.max_delay_us, "queue mode: max queue delay (default 100)");
  cmd->add_flag("--fixed-delay", o.fixed_delay,
                "queue mode: always wait --max-delay-us for a batch that is not full");
  cmd->add_option("--devices", o.devices,
                  "queue mode: serve on these devices, e.g. cuda:0,cuda:1 or all; runs on the "
                  "first alone, then on all, and reports the scaling (replaces --backend)");
  cmd->add_option("--max-tokens", o.max_tokens,
                  "queue mode, minilm: token budget per batch (default 0: none)");
  cmd->add_option("--batches", o.batches, "minilm: batch sizes (default 1,8,32,128,512)")
      ->delimiter(',');
  cmd->add_option("--seqs", o.seqs, "minilm: sequence lengths (default 16,128)")->delimiter(',');
  cmd->add_option("--sentences", o.sentences,
                  "minilm queue mode: the texts producers send, one per line (default "
                  "bench/data/queue_sentences.txt)");
  cmd->add_option("--cpu-batch", o.cpu_batch,
                  "cpu-profile: sentences in the profiled batch (default 32)");
  cmd->add_option("--cpu-sentences", o.cpu_sentences,
                  "cpu-encoder: sentences per pass, cycled from --sentences (default 2000); "
                  "--threads lists worker counts, 0 = every core of the affinity");
  cmd->add_option("--model-dir", o.model_dir,
                  "minilm: a sentence-transformers folder (batch mode: random weights "
                  "when absent; queue mode: required, texts need its vocabulary)");
  return cmd;
}

int run_bench(const BenchOptions& o) {
  const DType dtype = validate(o);
  const std::string started = utc_now_iso8601();
  if (o.model == "minilm" || o.mode == "queue") {
    json j;
    if (o.mode == "cpu-profile") j = run_cpu_profile_bench(o);
    else if (o.mode == "cpu-encoder") j = run_cpu_encoder_bench(o);
    else if (o.model == "minilm" && o.mode == "queue") j = run_minilm_queue_bench(o);
    else if (o.model == "minilm") j = run_minilm_bench(o);
    else j = run_queue_bench(o);
    j["tool"] = "fanin bench";
    j["version"] = FANIN_VERSION;
    j["commit"] = build_commit();
    j["date"] = started;
    j["host"] = {{"hostname", host_name()}, {"cpu_cores", std::thread::hardware_concurrency()}};
    j["backend"] = o.devices.empty() ? o.backend : o.devices;
    j["mode"] = o.model == "minilm" && o.mode == "direct" ? "batch" : o.mode;
    j["seconds"] = o.seconds;
    const std::string text = j.dump(2);
    std::cout << text << std::endl;
    if (!o.out.empty()) {
      std::ofstream f(o.out, std::ios::out | std::ios::trunc);
      f << text << "\n";
      if (!f) throw UsageError("--out: cannot write '" + o.out + "'");
    }
    return kExitOk;
  }

  Device& device = Device::get(o.backend);  // Unavailable when not built / not present
  const int pool_size = device.stream_pool().size();
  for (int t : o.threads)
    if (t > pool_size)
      throw UsageError("--threads: " + std::to_string(t) + " threads need " + std::to_string(t) +
                       " streams, but the stream pool of " + device.name() + " has " +
                       std::to_string(pool_size) + " slots");

  std::ofstream out_file;
  if (!o.out.empty()) {  // fail before a long run, not after it
    out_file.open(o.out, std::ios::out | std::ios::trunc);
    if (!out_file)
      throw UsageError("--out: cannot write '" + o.out + "': " + std::strerror(errno));
  }

  MlpConfig config;
  config.dims.assign(o.dims.begin(), o.dims.end());
  config.dtype = dtype;
  std::shared_ptr<Mlp> model = Mlp::random(config, kModelSeed, device);
  std::fprintf(stderr, "fanin bench: %s %s on %s (%s), %zu weight bytes, batch %d%s\n",
               model->name().c_str(), to_string(dtype), device.name().c_str(),
               device.description().c_str(), model->weight_bytes(), o.batch,
               o.graphs ? ", graphs" : "");

  DirectConfig dc;
  dc.seconds = o.seconds;
  dc.warmup_seconds = o.warmup_seconds;
  dc.batch = o.batch;
  dc.graphs = o.graphs;
  dc.sync = o.sync == "spin"    ? SyncMode::kSpin
            : o.sync == "yield" ? SyncMode::kYield
                                : SyncMode::kBlock;

  // Efficiency needs rps(1): from the list, or from an extra run first.
  const bool has_one = std::find(o.threads.begin(), o.threads.end(), 1) != o.threads.end();
  std::optional<DirectResult> baseline;
  double rps1 = 0;
  if (!has_one) {
    std::fprintf(stderr, "fanin bench: 1 is not in --threads; running a 1-thread baseline\n");
    dc.threads = 1;
    baseline = run_direct(*model, dc);
    rps1 = baseline->rps;
    report_progress(*baseline, rps1);
  }
  std::vector<DirectResult> runs;
  for (int t : o.threads) {
    dc.threads = t;
    runs.push_back(run_direct(*model, dc));
    if (t == 1 && rps1 == 0) rps1 = runs.back().rps;
    report_progress(runs.back(), rps1);
  }

  json j;
  j["tool"] = "fanin bench";
  j["version"] = FANIN_VERSION;
  j["commit"] = build_commit();
  j["date"] = started;  // when the benchmark started
  j["host"] = {{"hostname", host_name()}, {"cpu_cores", std::thread::hardware_concurrency()}};
  j["device"] = {{"name", device.name()}, {"description", device.description()}};
  j["model"] = {{"name", model->name()},
                {"dims", config.dims},
                {"dtype", to_string(dtype)},
                {"activation", to_string(config.activation)},
                {"weight_bytes", model->weight_bytes()},
                {"seed", kModelSeed}};
  j["backend"] = o.backend;
  j["mode"] = o.mode;
  j["batch"] = o.batch;
  j["seconds"] = o.seconds;
  j["warmup_seconds"] = o.warmup_seconds;
  j["graphs"] = o.graphs;
  j["sync"] = o.sync;
  j["request"] = std::string(o.graphs ? "Graph::launch of a graph holding " : "") +
                 "copy_from_host, Model::forward, copy_to_host in one encoder (HostBuffer "
                 "memory), then " +
                 (o.sync == "block" ? "Stream::synchronize"
                                    : "poll Stream::query (" + o.sync + "), Stream::synchronize");
  j["threads_requested"] = o.threads;
  if (baseline) {
    json b = result_json(*baseline, rps1);
    b["note"] = "1 was not in --threads: this extra 1-thread run is the efficiency baseline";
    j["baseline"] = b;
  }
  j["results"] = json::array();
  for (const DirectResult& r : runs) j["results"].push_back(result_json(r, rps1));
  j["notes"] = {
      "efficiency = rps(N) / (N * rps(1))",
      "latency percentiles are nearest-rank over every measured request of all threads",
      "allocator.peak_in_use_bytes is the process-wide high-water mark so far",
      "per_stream_extra_bytes = (allocator reserved at the end of the run, leases held - "
      "reserved before it, after trim()) / threads; backend state outside the allocator "
      "(worker threads, library handles) is not included"};

  const std::string text = j.dump(2);
  std::cout << text << std::endl;
  if (out_file.is_open()) {
    out_file << text << "\n";
    out_file.close();
    if (!out_file) {
      std::cerr << "fanin: writing '" << o.out << "' failed\n";
      return kExitFailure;
    }
  }
  return kExitOk;
}

}  // namespace fanin::cli
