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

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <tuple>
#include <vector>

#include "backends/cpu/isa.h"
#include "core/check.h"
#include "fanin/tensor.h"

#if FANIN_HAVE_ONEDNN
#include <omp.h>

#include <oneapi/dnnl/dnnl.h>
#include <oneapi/dnnl/dnnl.hpp>
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

void one_omp_thread() {
#if FANIN_HAVE_ONEDNN
  thread_local bool once = [] {
    omp_set_num_threads(1);
    return true;
  }();
  (void)once;
#endif
}

// f32 -> bf16 bits, round to nearest even (NaN stays NaN), as oneDNN's
// reorder rounds: the emulated path and the native one round x alike.
// fanin::f32_to_bf16 rounds the same way; this copy is inline for the
// per-element loop of every bf16 GEMM's input.
inline uint16_t round_bf16(float f) noexcept {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

void to_bf16_rows(const float* x, int64_t n, uint16_t* out) noexcept {
  for (int64_t i = 0; i < n; ++i) out[i] = round_bf16(x[i]);
}

// The emulated bf16 GEMM: the same roundings on the f32 GEMM.
void gemm_nt_bf16_emulated(int64_t m, int64_t n, int64_t k, const float* x, const uint16_t* w,
                           float* y) {
  std::vector<float> xf(static_cast<size_t>(m * k)), wf(static_cast<size_t>(n * k));
  for (int64_t i = 0; i < m * k; ++i) xf[i] = bf16_to_f32(round_bf16(x[i]));
  for (int64_t i = 0; i < n * k; ++i) wf[i] = bf16_to_f32(w[i]);
  gemm_nt_openblas(m, n, k, xf.data(), wf.data(), y);
}

#if FANIN_HAVE_ONEDNN
// Note [CPU bf16 matmul], the oneDNN side. One matmul primitive per
// (rows, n, k): src x [rows,k] bf16 (converted here), weights w [n,k] bf16
// used in place (dims {k,n}, tag ba), dst y [rows,n] f32. Rows come in
// chunks of kChunk; the last chunk is padded up to a multiple of kRowStep
// (zero rows, its output through a scratch buffer), so a model sees at most
// kChunk / kRowStep primitives per weight shape, all made on first use
// (oneDNN JITs each: about a millisecond). The scratchpad is the caller's
// (scratchpad_mode::user, a thread_local buffer), so one primitive runs on
// many worker threads at once.
constexpr int64_t kChunk = 256;
constexpr int64_t kRowStep = 32;

dnnl::engine& dnnl_engine() {
  static dnnl::engine* e = new dnnl::engine(dnnl::engine::kind::cpu, 0);  // Note [Process lifetime]
  return *e;
}

struct Bf16Prim {
  dnnl::matmul prim;
  dnnl::memory::desc src, wei, dst, scratch;
  std::string impl;
};

dnnl::memory::desc md(int64_t a, int64_t b, dnnl::memory::data_type t, dnnl::memory::format_tag f) {
  return dnnl::memory::desc({a, b}, t, f);
}

Bf16Prim make_prim(int64_t rows, int64_t n, int64_t k) {
  using dt = dnnl::memory::data_type;
  using tag = dnnl::memory::format_tag;
  Bf16Prim p;
  p.src = md(rows, k, dt::bf16, tag::ab);
  p.wei = md(k, n, dt::bf16, tag::ba);
  p.dst = md(rows, n, dt::f32, tag::ab);
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  dnnl::matmul::desc d(p.src, p.wei, p.dst);
  dnnl::matmul::primitive_desc pd(d, attr, dnnl_engine());
  p.scratch = pd.scratchpad_desc();
  p.impl = pd.impl_info_str();
  p.prim = dnnl::matmul(pd);
  return p;
}

std::mutex g_prims_mu;  // guards g_prims (entries are never erased: references stay valid)
std::map<std::tuple<int64_t, int64_t, int64_t>, Bf16Prim> g_prims;

const Bf16Prim& prim_for(int64_t rows, int64_t n, int64_t k) {
  std::lock_guard<std::mutex> lock(g_prims_mu);
  auto key = std::make_tuple(rows, n, k);
  auto it = g_prims.find(key);
  if (it == g_prims.end()) it = g_prims.emplace(key, make_prim(rows, n, k)).first;
  return it->second;
}

void run_prim(const Bf16Prim& p, const uint16_t* x, const uint16_t* w, float* y) {
  thread_local dnnl::stream strm(dnnl_engine());
  thread_local std::vector<char> scratch;
  if (scratch.size() < p.scratch.get_size()) scratch.resize(p.scratch.get_size());
  dnnl::memory src(p.src, dnnl_engine(), const_cast<uint16_t*>(x));
  dnnl::memory wei(p.wei, dnnl_engine(), const_cast<uint16_t*>(w));
  dnnl::memory dst(p.dst, dnnl_engine(), y);
  dnnl::memory sp(p.scratch, dnnl_engine(), scratch.data());
  p.prim.execute(strm, {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, wei}, {DNNL_ARG_DST, dst},
                        {DNNL_ARG_SCRATCHPAD, sp}});
  strm.wait();
}

void gemm_nt_bf16_onednn(int64_t m, int64_t n, int64_t k, const float* x, const uint16_t* w,
                         float* y) {
  one_omp_thread();
  thread_local std::vector<uint16_t> xb;
  thread_local std::vector<float> tail;
  for (int64_t r0 = 0; r0 < m; r0 += kChunk) {
    const int64_t rows = std::min(kChunk, m - r0);
    const int64_t padded = rows == kChunk ? kChunk : (rows + kRowStep - 1) / kRowStep * kRowStep;
    if (xb.size() < static_cast<size_t>(padded * k)) xb.resize(static_cast<size_t>(padded * k));
    to_bf16_rows(x + r0 * k, rows * k, xb.data());
    std::fill(xb.begin() + rows * k, xb.begin() + padded * k, uint16_t{0});
    const Bf16Prim& p = prim_for(padded, n, k);
    if (padded == rows) {
      run_prim(p, xb.data(), w, y + r0 * n);
    } else {
      if (tail.size() < static_cast<size_t>(padded * n)) tail.resize(static_cast<size_t>(padded * n));
      run_prim(p, xb.data(), w, tail.data());
      std::memcpy(y + r0 * n, tail.data(), static_cast<size_t>(rows * n) * sizeof(float));
    }
  }
}

// Native: oneDNN's effective ISA has bf16 instructions (AVX512-BF16, or
// AMX, whose ISA value includes it) and the kernel it picks for a model-like
// shape is not its reference (C++ loop) one.
struct Bf16Native {
  bool native = false;
  std::string impl;
};

Bf16Native probe_bf16() {
  Bf16Native r;
  if (!g_onednn) return r;
  const int isa = static_cast<int>(dnnl_get_effective_cpu_isa());
  const int bf16 = static_cast<int>(dnnl_cpu_isa_avx512_core_bf16);
  if ((isa & bf16) != bf16) return r;
  try {
    const Bf16Prim p = make_prim(kChunk, 384, 384);
    r.impl = p.impl;
    r.native = p.impl.find("ref") == std::string::npos;
  } catch (const dnnl::error&) {
    r.native = false;
  }
  return r;
}

const Bf16Native& bf16_native_info() {
  static const Bf16Native info = probe_bf16();
  return info;
}
#endif

CpuMatmul choose_matmul() noexcept {
  const char* env = std::getenv("FANIN_CPU_MATMUL");
  if (env != nullptr && std::strcmp(env, "f32") == 0) return CpuMatmul::kF32;
  if (env != nullptr && std::strcmp(env, "bf16") == 0) return CpuMatmul::kBf16;
  return bf16_matmul_native() ? CpuMatmul::kBf16 : CpuMatmul::kF32;
}

}  // namespace

bool bf16_matmul_native() noexcept {
#if FANIN_HAVE_ONEDNN
  return bf16_native_info().native;
#else
  return false;
#endif
}

CpuMatmul cpu_matmul() noexcept {
  static const CpuMatmul p = choose_matmul();
  return p;
}

const char* to_string(CpuMatmul p) noexcept { return p == CpuMatmul::kBf16 ? "bf16" : "f32"; }

std::string bf16_matmul_library() {
#if FANIN_HAVE_ONEDNN
  if (bf16_matmul_native()) return "oneDNN " + bf16_native_info().impl;
#endif
  return "emulated on the f32 GEMM";
}

void gemm_nt_bf16(int64_t m, int64_t n, int64_t k, const float* x, const uint16_t* w, float* y) {
#if FANIN_HAVE_ONEDNN
  if (bf16_matmul_native()) {
    try {
      gemm_nt_bf16_onednn(m, n, k, x, w, y);
    } catch (const dnnl::error& e) {
      FANIN_THROW(kDeviceError, "[linear] oneDNN's bf16 matmul failed (", e.what(), ", status ",
                  static_cast<int>(e.status), ") on [", m, " x ", k, "] x [", n, " x ", k, "]^T");
    }
    return;
  }
#endif
  gemm_nt_bf16_emulated(m, n, k, x, w, y);
}

bool gemm_uses_onednn() noexcept { return g_onednn; }

void gemm_nt(int64_t m, int64_t n, int64_t k, const float* x, const float* w, float* y) {
#if FANIN_HAVE_ONEDNN
  if (g_onednn) {
    one_omp_thread();
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
