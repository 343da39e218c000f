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

// The ISA oneDNN's kernels use here, as oneDNN reports it (0 without
// oneDNN); compare with isa() (tests).
int onednn_isa_level() noexcept;

}  // namespace fanin::backend::cpu
