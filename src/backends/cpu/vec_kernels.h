// fanin's own vector kernels of the CPU backend, f32, single-threaded: the
// element-wise and row-wise work around the GEMMs. Each is compiled for
// AVX-512, AVX2+FMA and baseline x86-64; the widest the CPU's features allow
// is called (Note [CPU kernel selection] in isa.h). Thread-safe (pure
// functions of their arguments).
#pragma once

#include <cstdint>

namespace fanin::backend::cpu::vec {

// y[m, n] += bias[n] (if not null), then GELU (erf form), ReLU or nothing:
// act 0 none, 1 relu, 2 gelu.
void bias_act(float* y, const float* bias, int64_t m, int64_t n, int act);
// out = GELU(x) (erf form), elementwise; out may be x.
void gelu(const float* x, float* out, int64_t n);
// out[r] = layernorm(x[r] + residual[r]) * gamma + beta over `cols`;
// residual may be null. out may alias x or residual.
void layernorm(const float* x, const float* residual, const float* gamma, const float* beta,
               float* out, int64_t rows, int64_t cols, float eps);
// row[0, n) = softmax(row) in place.
void softmax(float* row, int64_t n);
// out[i] = a[i] + b[i % nb].
void add(const float* a, const float* b, float* out, int64_t n, int64_t nb);
// exp(x) elementwise, |relative error| < 2e-7 (for the tests).
void exp(const float* x, float* out, int64_t n);

}  // namespace fanin::backend::cpu::vec
