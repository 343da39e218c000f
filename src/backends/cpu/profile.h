// Per-op time of the CPU backend's kernels, for `fanin bench --mode
// cpu-profile` (Note [CPU profile]). Thread-safe: counters are atomics that
// every stream worker adds to; off by default, and then a kernel pays one
// relaxed load per call.
//
// Note [CPU profile]
// While profiling is on, each kernel adds its own run time (steady clock,
// nanoseconds) and its floating-point work to the counter of its op; the
// linear kernel splits its time into the GEMM and the epilogue (bias and
// activation), so GELU inside linear is counted as `gelu`. Each stream worker
// also adds the time it slept waiting for work, so that a caller can tell
// compute from hand-off: wall time of a synchronous batch = kernel time +
// time the worker slept (encoding on the caller's thread, waking the worker,
// waking the caller).
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>

namespace fanin::backend::cpu {

enum class ProfOp : int {
  kGemm,        // linear's matrix product
  kBias,        // linear's bias add (and ReLU)
  kGelu,        // GELU, inside linear or alone
  kAttention,   // the whole attention kernel (its own small GEMMs included)
  kLayerNorm,
  kAdd,         // residual adds
  kEmbedding,
  kMeanPool,
  kCopy,        // host <-> device copies and device copies
  kOther,       // softmax, cast, events
  kCount
};

const char* to_string(ProfOp op) noexcept;

struct ProfSnapshot {
  // ns: steady-clock time; cpu_ns: the worker thread's CPU time over the same
  // spans (what the kernel cost when other processes share the cores).
  std::array<uint64_t, static_cast<int>(ProfOp::kCount)> ns{}, cpu_ns{}, calls{}, flops{};
  uint64_t worker_sleep_ns = 0;  // stream workers waiting for work
  uint64_t worker_wakeups = 0;
};

// Turns profiling on or off for every stream (the counters keep their values).
void set_profiling(bool on) noexcept;
bool profiling() noexcept;
void reset_profile() noexcept;
ProfSnapshot profile_snapshot() noexcept;

namespace detail {
extern std::atomic<bool> g_profiling;
void prof_add(ProfOp op, uint64_t ns, uint64_t cpu_ns, uint64_t flops) noexcept;
uint64_t thread_cpu_ns() noexcept;
void prof_sleep(uint64_t ns) noexcept;
}  // namespace detail

// Times a scope into `op` when profiling is on.
class ProfScope {
 public:
  explicit ProfScope(ProfOp op, uint64_t flops = 0) noexcept
      : on_(detail::g_profiling.load(std::memory_order_relaxed)), op_(op), flops_(flops) {
    if (on_) {
      t0_ = std::chrono::steady_clock::now();
      c0_ = detail::thread_cpu_ns();
    }
  }
  ~ProfScope() {
    if (on_)
      detail::prof_add(op_,
                       static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                                 std::chrono::steady_clock::now() - t0_)
                                                 .count()),
                       detail::thread_cpu_ns() - c0_, flops_);
  }
  ProfScope(const ProfScope&) = delete;
  ProfScope& operator=(const ProfScope&) = delete;

 private:
  bool on_;
  ProfOp op_;
  uint64_t flops_;
  std::chrono::steady_clock::time_point t0_;
  uint64_t c0_ = 0;
};

// The single-threaded sgemm rate (GFLOP/s) on y[m,n] = x[m,k] w[n,k]^T of
// the library the model uses (gemm_nt, Note [CPU GEMM library]), or of
// OpenBLAS with `openblas`, best of repeated calls over about `seconds`: the
// peak the model's GEMMs are compared with.
double sgemm_peak_gflops(int m, int n, int k, double seconds, bool openblas = false);

}  // namespace fanin::backend::cpu
