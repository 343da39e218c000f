// Counters of Note [CPU profile], and the plain sgemm loop that measures
// the GEMM library's peak.
#include "backends/cpu/profile.h"

#include "backends/cpu/gemm.h"

#include <time.h>

#include <algorithm>
#include <vector>

namespace fanin::backend::cpu {
namespace {

constexpr int kOps = static_cast<int>(ProfOp::kCount);
std::atomic<uint64_t> g_ns[kOps];
std::atomic<uint64_t> g_cpu_ns[kOps];
std::atomic<uint64_t> g_calls[kOps];
std::atomic<uint64_t> g_flops[kOps];
std::atomic<uint64_t> g_sleep_ns{0};
std::atomic<uint64_t> g_wakeups{0};

}  // namespace

namespace detail {
std::atomic<bool> g_profiling{false};

uint64_t thread_cpu_ns() noexcept {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000u + static_cast<uint64_t>(ts.tv_nsec);
}

void prof_add(ProfOp op, uint64_t ns, uint64_t cpu_ns, uint64_t flops) noexcept {
  const int i = static_cast<int>(op);
  g_ns[i].fetch_add(ns, std::memory_order_relaxed);
  g_cpu_ns[i].fetch_add(cpu_ns, std::memory_order_relaxed);
  g_calls[i].fetch_add(1, std::memory_order_relaxed);
  g_flops[i].fetch_add(flops, std::memory_order_relaxed);
}

void prof_sleep(uint64_t ns) noexcept {
  g_sleep_ns.fetch_add(ns, std::memory_order_relaxed);
  g_wakeups.fetch_add(1, std::memory_order_relaxed);
}
}  // namespace detail

const char* to_string(ProfOp op) noexcept {
  switch (op) {
    case ProfOp::kGemm: return "gemm";
    case ProfOp::kBias: return "bias";
    case ProfOp::kGelu: return "gelu";
    case ProfOp::kAttention: return "attention";
    case ProfOp::kLayerNorm: return "layernorm";
    case ProfOp::kAdd: return "add";
    case ProfOp::kEmbedding: return "embedding";
    case ProfOp::kMeanPool: return "mean_pool";
    case ProfOp::kCopy: return "copy";
    case ProfOp::kOther: return "other";
    case ProfOp::kCount: break;
  }
  return "?";
}

void set_profiling(bool on) noexcept { detail::g_profiling.store(on, std::memory_order_relaxed); }
bool profiling() noexcept { return detail::g_profiling.load(std::memory_order_relaxed); }

void reset_profile() noexcept {
  for (int i = 0; i < kOps; ++i) {
    g_ns[i].store(0, std::memory_order_relaxed);
    g_cpu_ns[i].store(0, std::memory_order_relaxed);
    g_calls[i].store(0, std::memory_order_relaxed);
    g_flops[i].store(0, std::memory_order_relaxed);
  }
  g_sleep_ns.store(0, std::memory_order_relaxed);
  g_wakeups.store(0, std::memory_order_relaxed);
}

ProfSnapshot profile_snapshot() noexcept {
  ProfSnapshot s;
  for (int i = 0; i < kOps; ++i) {
    s.ns[i] = g_ns[i].load(std::memory_order_relaxed);
    s.cpu_ns[i] = g_cpu_ns[i].load(std::memory_order_relaxed);
    s.calls[i] = g_calls[i].load(std::memory_order_relaxed);
    s.flops[i] = g_flops[i].load(std::memory_order_relaxed);
  }
  s.worker_sleep_ns = g_sleep_ns.load(std::memory_order_relaxed);
  s.worker_wakeups = g_wakeups.load(std::memory_order_relaxed);
  return s;
}

double sgemm_peak_gflops(int m, int n, int k, double seconds, bool openblas) {
  std::vector<float> x(static_cast<size_t>(m) * k, 0.01f), w(static_cast<size_t>(n) * k, 0.02f),
      y(static_cast<size_t>(m) * n);
  double best = 1e30, total = 0;
  do {
    const auto t0 = std::chrono::steady_clock::now();
    if (openblas) {
      gemm_nt_openblas(m, n, k, x.data(), w.data(), y.data());
    } else {
      gemm_nt(m, n, k, x.data(), w.data(), y.data());
    }
    const double dt =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::min(best, dt);
    total += dt;
  } while (total < seconds);
  return 2.0 * m * n * k / best / 1e9;
}

}  // namespace fanin::backend::cpu
