// The CPU backend's large GEMM: y[m,n] = x[m,k] w[n,k]^T (row-major), one
// thread per call (Note [CPU GEMM library]).
#pragma once

#include <cstdint>
#include <string>

namespace fanin::backend::cpu {

// y = x w^T for the linear layers. Single-threaded on the calling thread.
void gemm_nt(int64_t m, int64_t n, int64_t k, const float* x, const float* w, float* y);

// The same with OpenBLAS whatever gemm_nt uses (the profile compares both).
void gemm_nt_openblas(int64_t m, int64_t n, int64_t k, const float* x, const float* w, float* y);

// The library gemm_nt uses and the instructions it dispatched to, e.g.
// "oneDNN 2.6.3 (avx512_core_amx)" or "OpenBLAS (SkylakeX)".
std::string gemm_library();

// True when gemm_nt runs oneDNN (built with FANIN_ONEDNN and not disabled
// with FANIN_CPU_GEMM=openblas).
bool gemm_uses_onednn() noexcept;

// y = x w^T with w in bf16 (w[n,k] row-major): x is rounded to bf16 (round
// to nearest even) and the products are summed in f32 (Note [CPU bf16
// matmul]). On oneDNN's native bf16 kernels (AMX or AVX512-BF16) where
// bf16_matmul_native(); elsewhere the same rounding emulated on the f32
// GEMM (slower than gemm_nt: only for tests and FANIN_CPU_MATMUL=bf16).
void gemm_nt_bf16(int64_t m, int64_t n, int64_t k, const float* x, const uint16_t* w, float* y);

// The linear layers' precision, decided once at load: FANIN_CPU_MATMUL
// "auto" (default: bf16 where bf16_matmul_native(), else f32), "f32" or
// "bf16".
enum class CpuMatmul { kF32, kBf16 };
CpuMatmul cpu_matmul() noexcept;
const char* to_string(CpuMatmul p) noexcept;

// True when oneDNN runs bf16 matmul on bf16 hardware here (AMX tiles or
// AVX512-BF16), as its effective ISA and the kernel it picked say.
bool bf16_matmul_native() noexcept;

// What the bf16 GEMM runs on, e.g. "oneDNN brg:avx512_core_amx" or
// "emulated on the f32 GEMM".
std::string bf16_matmul_library();

// The ISA oneDNN's kernels use here, as oneDNN reports it (0 without
// oneDNN); compare with isa() (tests).
int onednn_isa_level() noexcept;

}  // namespace fanin::backend::cpu
