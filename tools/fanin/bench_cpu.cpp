// `fanin bench --model minilm --mode cpu-profile | cpu-encoder`: where the
// CPU backend's time goes, and sentences/s over cores.
//
// Note [Bench CPU profile]
// One batch (--cpu-batch sentences, 32 by default, the first of --sentences,
// cycled) is tokenized, then its forward (upload, BERT, mean pooling, copy
// back, synchronize) is repeated for --seconds with the CPU backend's
// per-op counters on (Note [CPU profile]), twice: packed (the default path,
// no padding) and padded to the longest sentence (the layout of GPUs and of
// fanin before packing). Reported per batch: wall time, each op's time and
// share, the GEMMs' GFLOP/s against a plain single-threaded sgemm loop of the
// same sizes (OpenBLAS's own peak here), the time the stream worker slept
// (hand-off from the calling thread and back), the process's CPU time, and
// WordPiece's time for the batch's texts. Pin the process (taskset -c N) to
// measure one core.
//
// Note [Bench CPU encoder]
// Sentences/s of the text Engine on the CPU backend with W workers (each
// its own stream, so its own thread; BLAS single-threaded per call) for W in
// --threads (0 = every core the process may run on, sched_getaffinity): all
// --cpu-sentences texts (cycled from --sentences) are submitted at once with
// submit_text and the clock runs until the last result; one unmeasured
// pass first. Tokenization runs on the submitting thread, as in a service.
// The measured pass has the per-op counters on: each op's CPU time per batch
// over all workers shows what sharing the cores' caches and memory costs.
#include <sched.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <future>

#include "backends/cpu/gemm.h"
#include "backends/cpu/isa.h"
#include "backends/cpu/profile.h"
#include "bench_more.h"
#include "cli.h"
#include "fanin/device.h"
#include "fanin/engine.h"
#include "fanin/sentence_encoder.h"
#include "fanin/stream.h"
#include "text/wordpiece.h"

namespace fanin::cli {
namespace {

using json = nlohmann::json;
using SteadyClock = std::chrono::steady_clock;
namespace cpu = backend::cpu;

double since(SteadyClock::time_point t0) {
  return std::chrono::duration<double>(SteadyClock::now() - t0).count();
}

double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         1e-6 * static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

int affinity_cores() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) != 0) return 1;
  return std::max(1, CPU_COUNT(&set));
}

std::vector<std::string> cycled(const std::vector<std::string>& s, size_t n) {
  std::vector<std::string> out;
  for (size_t i = 0; i < n; ++i) out.push_back(s[i % s.size()]);
  return out;
}

json machine_json() {
  const cpu::BlasKernels& b = cpu::blas_kernels();
  return {{"affinity_cores", affinity_cores()},
          {"isa", cpu::to_string(cpu::isa())},
          {"vec_kernels", cpu::to_string(cpu::vec_kernel_isa())},
          {"openblas_core", b.core},
          {"openblas_detected_core", b.detected_core},
          {"openblas_reselected", b.reselected}};
}

// WordPiece alone: tokens/s on this thread over `texts`, for about `seconds`.
json tokenizer_rate(const SentenceEncoder& enc, const std::vector<std::string>& texts,
                    double seconds) {
  std::vector<int32_t> ids;
  uint64_t tokens = 0, sentences = 0;
  const auto t0 = SteadyClock::now();
  do {
    for (const std::string& t : texts) {
      enc.tokenizer().encode_into(t, ids);
      tokens += ids.size();
    }
    sentences += texts.size();
  } while (since(t0) < seconds);
  const double el = since(t0);
  return {{"tokens_per_s", tokens / el},
          {"sentences_per_s", sentences / el},
          {"us_per_sentence", 1e6 * el / static_cast<double>(sentences)}};
}

json profile_layout(const SentenceEncoder& enc, const std::vector<std::vector<int32_t>>& rows,
                    bool packed, const BenchOptions& o, Stream& s) {
  const Bert& bert = enc.model();
  const int64_t n = static_cast<int64_t>(rows.size());
  int64_t seq = 1, total = 0;
  for (const auto& r : rows) {
    seq = std::max<int64_t>(seq, static_cast<int64_t>(r.size()));
    total += static_cast<int64_t>(r.size());
  }
  std::vector<int32_t> ids, aux;
  if (packed) {
    aux.push_back(0);
    for (const auto& r : rows) {
      ids.insert(ids.end(), r.begin(), r.end());
      aux.push_back(static_cast<int32_t>(ids.size()));
    }
  } else {
    ids.assign(static_cast<size_t>(n * seq), enc.tokenizer().pad_id());
    for (int64_t i = 0; i < n; ++i) {
      std::copy(rows[i].begin(), rows[i].end(), ids.begin() + i * seq);
      aux.push_back(static_cast<int32_t>(rows[i].size()));
    }
  }
  std::vector<float> host(static_cast<size_t>(n * enc.dim()));
  auto one = [&] {
    {
      Encoder e = s.command_buffer().begin_encoding();
      Tensor t_ids = packed ? Tensor::from_host(ids.data(), ids.size() * 4, {total}, DType::kI32, s)
                            : Tensor::from_host(ids.data(), ids.size() * 4, {n, seq}, DType::kI32, s);
      Tensor t_aux = Tensor::from_host(aux.data(), aux.size() * 4,
                                       {static_cast<int64_t>(aux.size())}, DType::kI32, s);
      Tensor y = packed ? bert.forward_packed(t_ids, t_aux, seq, s) : bert.forward(t_ids, t_aux, s);
      y.copy_to_host(host.data(), host.size() * 4, s);
    }
    s.synchronize();
  };
  for (auto t0 = SteadyClock::now(); since(t0) < o.warmup_seconds;) one();
  cpu::reset_profile();
  cpu::set_profiling(true);
  uint64_t iters = 0;
  const double c0 = cpu_seconds();
  const auto t0 = SteadyClock::now();
  do {
    one();
    ++iters;
  } while (since(t0) < o.seconds);
  const double wall = since(t0);
  const double cpu_s = cpu_seconds() - c0;
  cpu::set_profiling(false);
  const cpu::ProfSnapshot p = cpu::profile_snapshot();
  const double per = 1e3 / static_cast<double>(iters);  // ms per batch from totals in s
  json ops = json::object();
  double kernel_ms = 0, kernel_cpu_ms = 0;
  for (int i = 0; i < static_cast<int>(cpu::ProfOp::kCount); ++i) {
    kernel_ms += static_cast<double>(p.ns[i]) * 1e-9 * per;
    kernel_cpu_ms += static_cast<double>(p.cpu_ns[i]) * 1e-9 * per;
  }
  const double wall_ms = wall * per;
  for (int i = 0; i < static_cast<int>(cpu::ProfOp::kCount); ++i) {
    if (p.calls[i] == 0) continue;
    const double ms = static_cast<double>(p.ns[i]) * 1e-9 * per;
    const double cpu_ms = static_cast<double>(p.cpu_ns[i]) * 1e-9 * per;
    json op = {{"ms_per_batch", ms},
               {"cpu_ms_per_batch", cpu_ms},
               {"share_of_wall", ms / wall_ms},
               {"share_of_kernel_cpu", cpu_ms / kernel_cpu_ms},
               {"calls_per_batch", static_cast<double>(p.calls[i]) / static_cast<double>(iters)}};
    if (p.flops[i] > 0) {
      op["gflop_per_s"] = static_cast<double>(p.flops[i]) / static_cast<double>(p.ns[i]);
      op["gflop_per_cpu_s"] = static_cast<double>(p.flops[i]) / static_cast<double>(p.cpu_ns[i]);
    }
    ops[cpu::to_string(static_cast<cpu::ProfOp>(i))] = op;
  }
  const int rows_gemm = static_cast<int>(packed ? total : n * seq);
  const double sleep_ms = static_cast<double>(p.worker_sleep_ns) * 1e-9 * per;
  std::fprintf(stderr,
               "fanin bench cpu-profile: %-6s %lld sentences, %d GEMM rows: %.2f ms per batch "
               "(%.0f sentences/s), kernels %.2f ms (CPU %.2f ms: %.0f sentences per CPU s), "
               "worker asleep %.2f ms\n",
               packed ? "packed" : "padded", static_cast<long long>(n), rows_gemm, wall_ms,
               1e3 * n / wall_ms, kernel_ms, kernel_cpu_ms, 1e3 * n / kernel_cpu_ms, sleep_ms);
  for (auto& [name, op] : ops.items()) {
    char rate[48] = "";
    if (op.contains("gflop_per_s"))
      std::snprintf(rate, sizeof rate, " %.0f GFLOP/s (%.0f per CPU s)",
                    op["gflop_per_s"].get<double>(), op["gflop_per_cpu_s"].get<double>());
    std::fprintf(stderr, "fanin bench cpu-profile:   %-10s %8.3f ms (CPU %8.3f)  %5.1f%%%s\n",
                 name.c_str(), op["ms_per_batch"].get<double>(),
                 op["cpu_ms_per_batch"].get<double>(), 100 * op["share_of_kernel_cpu"].get<double>(),
                 rate);
  }
  return {{"layout", packed ? "packed" : "padded"},
          {"sentences", n},
          {"tokens", total},
          {"longest", seq},
          {"gemm_rows", rows_gemm},
          {"iterations", iters},
          {"wall_ms_per_batch", wall_ms},
          {"sentences_per_s", 1e3 * static_cast<double>(n) / wall_ms},
          {"kernel_ms_per_batch", kernel_ms},
          {"kernel_cpu_ms_per_batch", kernel_cpu_ms},
          {"sentences_per_kernel_cpu_s", 1e3 * static_cast<double>(n) / kernel_cpu_ms},
          {"worker_asleep_ms_per_batch", sleep_ms},
          {"worker_wakeups_per_batch", static_cast<double>(p.worker_wakeups) / static_cast<double>(iters)},
          {"unaccounted_ms_per_batch", wall_ms - kernel_ms - sleep_ms},
          {"process_cpu_s_per_wall_s", cpu_s / wall},
          {"ops", ops}};
}

}  // namespace

json run_cpu_profile_bench(const BenchOptions& o) {
  if (o.backend != "cpu") throw UsageError("--mode cpu-profile runs on --backend cpu only");
  Device& device = Device::get("cpu");
  auto enc = SentenceEncoder::load(o.model_dir, device, DType::kF32);
  const std::vector<std::string> all = load_sentences(o.sentences);
  const std::vector<std::string> texts = cycled(all, static_cast<size_t>(o.cpu_batch));
  std::vector<std::vector<int32_t>> rows;
  for (const std::string& t : texts) rows.push_back(enc->tokenize(t));
  std::fprintf(stderr, "fanin bench cpu-profile: %s, %s; %d core(s) in affinity\n",
               device.description().c_str(), o.model_dir.c_str(), affinity_cores());
  StreamLease lease = device.stream_pool().acquire();
  json layouts = json::array();
  layouts.push_back(profile_layout(*enc, rows, true, o, lease.stream()));
  layouts.push_back(profile_layout(*enc, rows, false, o, lease.stream()));
  // The GEMM shapes of the packed batch, and OpenBLAS alone on them.
  const int m = static_cast<int>(layouts[0]["gemm_rows"].get<int64_t>());
  const int64_t H = enc->model().config().hidden, I = enc->model().config().intermediate;
  const int shapes[][2] = {{static_cast<int>(3 * H), static_cast<int>(H)},
                           {static_cast<int>(H), static_cast<int>(H)},
                           {static_cast<int>(I), static_cast<int>(H)},
                           {static_cast<int>(H), static_cast<int>(I)}};
  json peak = json::array();
  double flops = 0, secs = 0, secs_openblas = 0;
  const double loop_s = std::max(0.2, o.seconds / 8);
  for (const auto& sh : shapes) {
    const double g = cpu::sgemm_peak_gflops(m, sh[0], sh[1], loop_s);
    const double f = 2.0 * m * sh[0] * sh[1];
    json e = {{"m", m}, {"n", sh[0]}, {"k", sh[1]}, {"gflop_per_s", g}};
    if (cpu::gemm_uses_onednn()) {  // the same shapes on OpenBLAS, same run
      const double gb = cpu::sgemm_peak_gflops(m, sh[0], sh[1], loop_s, true);
      e["openblas_gflop_per_s"] = gb;
      secs_openblas += f / (gb * 1e9);
    }
    peak.push_back(e);
    flops += f;
    secs += f / (g * 1e9);
  }
  const double peak_all = flops / secs / 1e9;
  if (secs_openblas > 0)
    std::fprintf(stderr,
                 "fanin bench cpu-profile: GEMM %s %.1f GFLOP/s on the model's shapes, "
                 "OpenBLAS %.1f (%.2fx)\n",
                 cpu::gemm_library().c_str(), peak_all, flops / secs_openblas / 1e9,
                 secs_openblas / secs);
  const double model_gemm = layouts[0]["ops"]["gemm"]["gflop_per_s"].get<double>();
  const double model_gemm_cpu = layouts[0]["ops"]["gemm"]["gflop_per_cpu_s"].get<double>();
  std::fprintf(stderr,
               "fanin bench cpu-profile: sgemm loop on the model's shapes %.1f GFLOP/s (best "
               "call); the model's GEMMs %.1f GFLOP/s (%.0f%%), %.1f per CPU second (%.0f%%)\n",
               peak_all, model_gemm, 100 * model_gemm / peak_all, model_gemm_cpu,
               100 * model_gemm_cpu / peak_all);
  json tok = tokenizer_rate(*enc, all, std::max(0.3, o.seconds / 4));
  const double tok_ms = tok["us_per_sentence"].get<double>() * 1e-3 * o.cpu_batch;
  const double wall_ms = layouts[0]["wall_ms_per_batch"].get<double>();
  tok["ms_per_batch"] = tok_ms;
  tok["share_of_request"] = tok_ms / (tok_ms + wall_ms);
  std::fprintf(stderr,
               "fanin bench cpu-profile: WordPiece %.0f tokens/s on one thread, %.3f ms per batch "
               "(%.1f%% of tokenize + forward)\n",
               tok["tokens_per_s"].get<double>(), tok_ms, 100 * tok["share_of_request"].get<double>());
  json j;
  j["model"] = {{"name", "all-MiniLM-L6-v2"}, {"weights", o.model_dir}, {"dtype", "f32"},
                {"linear_layers", cpu::to_string(cpu::cpu_matmul())},
                {"bf16_matmul", cpu::bf16_matmul_library()}};
  j["device"] = {{"name", device.name()}, {"description", device.description()}};
  j["machine"] = machine_json();
  j["batch"] = {{"sentences", o.cpu_batch}, {"file", o.sentences}};
  j["layouts"] = layouts;
  j["sgemm_peak"] = {{"shapes", peak}, {"gflop_per_s", peak_all},
                     {"model_gemm_fraction_of_peak", model_gemm / peak_all},
                     {"model_gemm_cpu_fraction_of_peak", model_gemm_cpu / peak_all},
                     {"library", cpu::gemm_library()},
                     {"openblas_gflop_per_s",
                      secs_openblas > 0 ? json(flops / secs_openblas / 1e9) : json(nullptr)},
                     {"note", "best single call of a plain sgemm loop of the GEMM library the "
                              "model uses (Note [CPU GEMM library]), same shapes"}};
  j["tokenizer"] = tok;
  j["notes"] = {"Note [Bench CPU profile] in tools/fanin/bench_cpu.cpp",
                "ops: kernel time on the stream worker per batch; gelu includes linear's "
                "epilogue; attention includes its own small GEMMs",
                "unaccounted = wall - kernels - worker asleep (task hand-off, allocation)"};
  return j;
}

json run_cpu_encoder_bench(const BenchOptions& o) {
  if (o.backend != "cpu") throw UsageError("--mode cpu-encoder runs on --backend cpu only");
  Device& device = Device::get("cpu");
  auto enc = SentenceEncoder::load(o.model_dir, device, DType::kF32);
  const std::vector<std::string> texts =
      cycled(load_sentences(o.sentences), static_cast<size_t>(o.cpu_sentences));
  const int cores = affinity_cores();
  std::fprintf(stderr, "fanin bench cpu-encoder: %s; %d core(s) in affinity, %zu sentences\n",
               device.description().c_str(), cores, texts.size());
  json runs = json::array();
  double one = 0;
  for (int w : o.threads) {
    const int workers = w == 0 ? cores : w;
    EngineOptions eo;
    eo.workers = workers;
    eo.max_batch_size = o.max_batch;
    eo.max_queue_delay = std::chrono::microseconds(o.max_delay_us);
    eo.adaptive_queue_delay = !o.fixed_delay;
    eo.warmup = true;
    Engine engine(std::vector<std::shared_ptr<const SentenceEncoder>>{enc}, eo);
    auto pass = [&] {
      std::vector<std::future<Response>> f;
      f.reserve(texts.size());
      const auto t0 = SteadyClock::now();
      for (const std::string& t : texts) f.push_back(engine.submit_text(t));
      int64_t tokens = 0;
      for (auto& x : f) tokens += x.get().tokens;
      return std::make_pair(since(t0), tokens);
    };
    pass();
    cpu::reset_profile();
    cpu::set_profiling(true);
    const double c0 = cpu_seconds();
    auto [el, tokens] = pass();
    const double cpu_s = cpu_seconds() - c0;
    cpu::set_profiling(false);
    // Per batch over all workers: how the kernels' cost changes as workers
    // share the caches and memory (one mean_pool per batch).
    const cpu::ProfSnapshot p = cpu::profile_snapshot();
    const double batches =
        static_cast<double>(p.calls[static_cast<int>(cpu::ProfOp::kMeanPool)]);
    json ops = json::object();
    double kernel_cpu_ms = 0;
    for (int i = 0; i < static_cast<int>(cpu::ProfOp::kCount); ++i) {
      if (p.calls[i] == 0 || batches == 0) continue;
      const double ms = static_cast<double>(p.cpu_ns[i]) * 1e-6 / batches;
      kernel_cpu_ms += ms;
      json op = {{"cpu_ms_per_batch", ms}};
      if (p.flops[i] > 0)
        op["gflop_per_cpu_s"] = static_cast<double>(p.flops[i]) / static_cast<double>(p.cpu_ns[i]);
      ops[cpu::to_string(static_cast<cpu::ProfOp>(i))] = op;
    }
    const double sps = static_cast<double>(texts.size()) / el;
    if (workers == 1) one = sps;
    const double gemm_rate =
        ops.contains("gemm") ? ops["gemm"]["gflop_per_cpu_s"].get<double>() : 0.0;
    std::fprintf(stderr,
                 "fanin bench cpu-encoder: %2d worker(s) %9.1f sentences/s  (%.2f s, CPU %.0f%%; "
                 "%.0f batches, %.1f kernel CPU ms each, GEMM %.0f GFLOP per CPU s)\n",
                 workers, sps, el, 100 * cpu_s / el, batches, kernel_cpu_ms, gemm_rate);
    runs.push_back({{"workers", workers},
                    {"requested", w},
                    {"seconds", el},
                    {"sentences_per_s", sps},
                    {"tokens_per_s", static_cast<double>(tokens) / el},
                    {"process_cpu_s_per_wall_s", cpu_s / el},
                    {"speedup_vs_1", one > 0 ? sps / one : 0.0},
                    {"batches", batches},
                    {"kernel_cpu_ms_per_batch", kernel_cpu_ms},
                    {"ops", ops}});
    engine.drain();
  }
  json j;
  j["model"] = {{"name", "all-MiniLM-L6-v2"}, {"weights", o.model_dir}, {"dtype", "f32"},
                {"linear_layers", cpu::to_string(cpu::cpu_matmul())},
                {"bf16_matmul", cpu::bf16_matmul_library()}};
  j["device"] = {{"name", device.name()}, {"description", device.description()}};
  j["machine"] = machine_json();
  j["sentences"] = {{"file", o.sentences}, {"count", texts.size()}};
  j["engine"] = {{"max_batch_size", o.max_batch},
                 {"max_queue_delay_us", o.max_delay_us},
                 {"adaptive_queue_delay", !o.fixed_delay}};
  j["results"] = runs;
  j["notes"] = {"Note [Bench CPU encoder] in tools/fanin/bench_cpu.cpp",
                "workers 0 in --threads = every core of the process's affinity"};
  return j;
}

}  // namespace fanin::cli
