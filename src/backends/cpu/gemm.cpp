// Note [CPU GEMM library]
// The linear layers are 84-88% of the CPU encoder's time (one batch of 32
// sentences on one core, docs/performance.md), so their GEMM decides the CPU
// backend's speed. Where fanin is built with oneDNN (Debian's libdnnl-dev,
// CMake option FANIN_ONEDNN, on by default when found), gemm_nt calls
// dnnl_sgemm; else OpenBLAS's cblas_sgemm. Why oneDNN:
//  - it picks its kernels from the CPU's feature flags at run time (cpuid),
//    never from the model name, so a VM that hides the model still gets
//    AVX-512 (Note [CPU kernel selection] works around OpenBLAS 0.3.21 for
//    the same reason);
//  - on the model's shapes (461 rows, 384/1152/1536 columns, one core) its
//    sgemm's best call was 1.09-1.15x OpenBLAS's on the 2-core development
//    VM and 1.09x (157 vs 145 GFLOP/s, same run) on the GPU machine's Xeon
//    (bench/results/2026-12-02-cpu-onednn.json); whole-encoder gains are
//    smaller there (2 workers: median 1.04x over three interleaved rounds),
//    15% on one core of the development VM. The weights are passed as they
//    are (no packed copy to keep in step with the tensor: w[n,k] row-major);
//  - the same library has AMX bf16 matmul for a reduced-precision path.
// The attention's small per-head GEMMs (len x len x 32) stay on OpenBLAS:
// there oneDNN's per-call cost made it 0.5-0.7x at 20 tokens.
// Threads: Debian's oneDNN runs on OpenMP; each fanin worker is one core's
// thread, so the first call on a thread sets its OpenMP team size to 1
// (omp_set_num_threads is per thread): no team is spawned and no core is
// oversubscribed, whatever OMP_NUM_THREADS says.
// FANIN_CPU_GEMM=openblas switches back to OpenBLAS at load (for
// comparisons); the choice is made once and only read afterwards.
#include "backends/cpu/gemm.h"

#include <cblas.h>

#include <cstdlib>
#include <cstring>

#include "backends/cpu/isa.h"
#include "core/check.h"

#if FANIN_HAVE_ONEDNN
#include <oneapi/dnnl/dnnl.h>
#include <omp.h>
#endif

namespace fanin::backend::cpu {
namespace {

bool choose_onednn() noexcept {
#if FANIN_HAVE_ONEDNN
  const char* env = std::getenv("FANIN_CPU_GEMM");
  return env == nullptr || std::strcmp(env, "openblas") != 0;
#else
  return false;
#endif
}

const bool g_onednn = choose_onednn();

}  // namespace

bool gemm_uses_onednn() noexcept { return g_onednn; }

void gemm_nt(int64_t m, int64_t n, int64_t k, const float* x, const float* w, float* y) {
#if FANIN_HAVE_ONEDNN
  if (g_onednn) {
    thread_local bool one_thread = [] {
      omp_set_num_threads(1);
      return true;
    }();
    (void)one_thread;
    // Row-major: y = x * op(w), op = transpose, as cblas_sgemm below.
    const dnnl_status_t st = dnnl_sgemm('N', 'T', m, n, k, 1.0f, x, k, w, k, 0.0f, y, n);
    if (st != dnnl_success)
      FANIN_THROW(kDeviceError, "[linear] oneDNN's sgemm failed with status ", static_cast<int>(st),
                  " on [", m, " x ", k, "] x [", n, " x ", k, "]^T");
    return;
  }
#endif
  gemm_nt_openblas(m, n, k, x, w, y);
}

void gemm_nt_openblas(int64_t m, int64_t n, int64_t k, const float* x, const float* w, float* y) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(m), static_cast<int>(n),
              static_cast<int>(k), 1.0f, x, static_cast<int>(k), w, static_cast<int>(k), 0.0f, y,
              static_cast<int>(n));
}

int onednn_isa_level() noexcept {
#if FANIN_HAVE_ONEDNN
  return static_cast<int>(dnnl_get_effective_cpu_isa());
#else
  return 0;
#endif
}

std::string gemm_library() {
#if FANIN_HAVE_ONEDNN
  if (g_onednn) {
    const dnnl_version_t* v = dnnl_version();
    std::string isa;
    switch (dnnl_get_effective_cpu_isa()) {
      case dnnl_cpu_isa_avx512_core_amx: isa = "avx512_core_amx"; break;
      case dnnl_cpu_isa_avx512_core_bf16: isa = "avx512_core_bf16"; break;
      case dnnl_cpu_isa_avx512_core_vnni: isa = "avx512_core_vnni"; break;
      case dnnl_cpu_isa_avx512_core: isa = "avx512_core"; break;
      case dnnl_cpu_isa_avx2_vnni: isa = "avx2_vnni"; break;
      case dnnl_cpu_isa_avx2: isa = "avx2"; break;
      case dnnl_cpu_isa_avx: isa = "avx"; break;
      case dnnl_cpu_isa_sse41: isa = "sse41"; break;
      default: isa = "isa " + std::to_string(static_cast<int>(dnnl_get_effective_cpu_isa()));
    }
    return "oneDNN " + std::to_string(v->major) + "." + std::to_string(v->minor) + "." +
           std::to_string(v->patch) + " (" + isa + ")";
  }
#endif
  return "OpenBLAS (" + blas_kernels().core + ")";
}

}  // namespace fanin::backend::cpu
