// Several threads make this process's first oneDNN calls at the same moment:
// the CPU workers do this at warm-up (each worker is one core's thread and
// runs its own GEMMs, Note [CPU GEMM library]). A program of its own, so
// that the calls here are the process's first. Run under ThreadSanitizer by
// CI; it fails (exit 66) on any race TSan reports, including one inside
// oneDNN's own first-use initialization that TSan cannot see ordered
// (Note [Uninstrumented libraries] in src/core/sanitizers.cpp).
#include <barrier>
#include <cmath>
#include <cstdio>
#include <string_view>
#include <thread>
#include <vector>

#include "backends/cpu/gemm.h"

namespace {

// x = 1, w = 0.5: every output of x[m,k] w[n,k]^T is k / 2 (exact in bf16 and f32).
bool run(int t, bool bf16, std::barrier<>& start) {
  const int64_t m = 17 + t, n = 384, k = 384;
  std::vector<float> x(static_cast<size_t>(m * k), 1.0f), y(static_cast<size_t>(m * n), -1.0f);
  std::vector<float> w(static_cast<size_t>(n * k), 0.5f);
  std::vector<uint16_t> wb(static_cast<size_t>(n * k), 0x3f00);  // 0.5 in bf16
  start.arrive_and_wait();
  if (bf16) {
    fanin::backend::cpu::gemm_nt_bf16(m, n, k, x.data(), wb.data(), y.data());
  } else {
    fanin::backend::cpu::gemm_nt(m, n, k, x.data(), w.data(), y.data());
  }
  for (float v : y)
    if (std::fabs(v - static_cast<float>(k) / 2) > 1e-3f) return false;
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  const bool bf16 = argc > 1 && std::string_view(argv[1]) == "bf16";
  constexpr int kThreads = 4;
  std::barrier start(kThreads);
  std::vector<std::thread> threads;
  std::vector<char> ok(kThreads, 0);
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] { ok[t] = run(t, bf16, start) ? 1 : 0; });
  for (auto& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) {
    if (!ok[t]) {
      std::fprintf(stderr, "cpu_gemm_first_use: thread %d got a wrong product (%s, %s)\n", t,
                   bf16 ? "bf16" : "f32", fanin::backend::cpu::gemm_library().c_str());
      return 1;
    }
  }
  std::printf("cpu_gemm_first_use: %d threads, %s on %s: ok\n", kThreads, bf16 ? "bf16" : "f32",
              bf16 ? fanin::backend::cpu::bf16_matmul_library().c_str()
                   : fanin::backend::cpu::gemm_library().c_str());
  return 0;
}
