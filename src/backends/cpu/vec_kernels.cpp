// The vector kernels of vec_kernels.h. Each body is written once as plain
// loops (`#pragma omp simd`: vectorised reductions without -ffast-math) and
// compiled into three clones by target attributes; a table picked from the
// CPU's features at load calls the widest (Note [CPU kernel selection]).
// Math: exp by range reduction (x = n ln2 + r, |r| <= ln2/2) and a degree-7
// polynomial, relative error < 2e-7; erf by Abramowitz & Stegun 7.1.26,
// absolute error < 1.5e-7, so GELU differs from the libm form by < 1e-6 of x.
#include "backends/cpu/vec_kernels.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>

#include "backends/cpu/isa.h"

namespace fanin::backend::cpu::vec {
namespace {

#define FANIN_INLINE inline __attribute__((always_inline))

FANIN_INLINE float exp_poly(float x) {
  x = std::min(std::max(x, -87.0f), 88.0f);
  float n = x * 1.44269504088896341f + 12582912.0f;  // round to nearest integer
  n -= 12582912.0f;
  float r = x - n * 0.693145751953125f;
  r = r - n * 1.428606765330187e-06f;
  float p = 1.98412698412698e-4f;
  p = p * r + 1.38888888888889e-3f;
  p = p * r + 8.33333333333333e-3f;
  p = p * r + 4.16666666666667e-2f;
  p = p * r + 1.66666666666667e-1f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  return p * std::bit_cast<float>(bits);
}

FANIN_INLINE float gelu_poly(float x) {
  const float z = x * 0.70710678118654752f;
  const float az = std::fabs(z);
  const float t = 1.0f / (1.0f + 0.3275911f * az);
  float p = 1.061405429f;
  p = p * t - 1.453152027f;
  p = p * t + 1.421413741f;
  p = p * t - 0.284496736f;
  p = p * t + 0.254829592f;
  const float e = 1.0f - p * t * exp_poly(-az * az);  // erf(|z|)
  const float erf = z < 0.0f ? -e : e;
  return 0.5f * x * (1.0f + erf);
}

FANIN_INLINE void bias_act_body(float* y, const float* bias, int64_t m, int64_t n, int act) {
  for (int64_t i = 0; i < m; ++i) {
    float* row = y + i * n;
    if (bias != nullptr) {
#pragma omp simd
      for (int64_t j = 0; j < n; ++j) row[j] += bias[j];
    }
    if (act == 1) {
#pragma omp simd
      for (int64_t j = 0; j < n; ++j) row[j] = std::max(row[j], 0.0f);
    } else if (act == 2) {
#pragma omp simd
      for (int64_t j = 0; j < n; ++j) row[j] = gelu_poly(row[j]);
    }
  }
}

FANIN_INLINE void gelu_body(const float* x, float* out, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) out[i] = gelu_poly(x[i]);
}

FANIN_INLINE void exp_body(const float* x, float* out, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) out[i] = exp_poly(x[i]);
}

FANIN_INLINE void layernorm_body(const float* x, const float* res, const float* g, const float* b,
                                 float* out, int64_t rows, int64_t cols, float eps) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* in = x + r * cols;
    float* o = out + r * cols;
    if (res != nullptr) {
      const float* rr = res + r * cols;
#pragma omp simd
      for (int64_t c = 0; c < cols; ++c) o[c] = in[c] + rr[c];
      in = o;
    }
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int64_t c = 0; c < cols; ++c) sum += in[c];
    const float mean = sum / static_cast<float>(cols);
    float var = 0.0f;
#pragma omp simd reduction(+ : var)
    for (int64_t c = 0; c < cols; ++c) var += (in[c] - mean) * (in[c] - mean);
    const float inv = 1.0f / std::sqrt(var / static_cast<float>(cols) + eps);
#pragma omp simd
    for (int64_t c = 0; c < cols; ++c) o[c] = (in[c] - mean) * inv * g[c] + b[c];
  }
}

FANIN_INLINE void softmax_body(float* row, int64_t n) {
  float mx = -INFINITY;
#pragma omp simd reduction(max : mx)
  for (int64_t j = 0; j < n; ++j) mx = std::max(mx, row[j]);
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) row[j] = exp_poly(row[j] - mx);
  float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
  for (int64_t j = 0; j < n; ++j) sum += row[j];
  const float inv = 1.0f / sum;
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) row[j] *= inv;
}

FANIN_INLINE void add_body(const float* a, const float* b, float* out, int64_t n, int64_t nb) {
  if (nb == n) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) out[i] = a[i] + b[i];
    return;
  }
  for (int64_t i = 0; i < n; i += nb) {
    const int64_t len = std::min(nb, n - i);
#pragma omp simd
    for (int64_t j = 0; j < len; ++j) out[i + j] = a[i + j] + b[j];
  }
}

struct Table {
  void (*bias_act)(float*, const float*, int64_t, int64_t, int);
  void (*gelu)(const float*, float*, int64_t);
  void (*exp)(const float*, float*, int64_t);
  void (*layernorm)(const float*, const float*, const float*, const float*, float*, int64_t,
                    int64_t, float);
  void (*softmax)(float*, int64_t);
  void (*add)(const float*, const float*, float*, int64_t, int64_t);
};

#define FANIN_CLONE(NS, TARGET)                                                                   \
  namespace NS {                                                                                  \
  TARGET void bias_act(float* y, const float* bias, int64_t m, int64_t n, int act) {              \
    bias_act_body(y, bias, m, n, act);                                                            \
  }                                                                                               \
  TARGET void gelu(const float* x, float* out, int64_t n) { gelu_body(x, out, n); }               \
  TARGET void exp(const float* x, float* out, int64_t n) { exp_body(x, out, n); }                 \
  TARGET void layernorm(const float* x, const float* res, const float* g, const float* b,         \
                        float* out, int64_t rows, int64_t cols, float eps) {                      \
    layernorm_body(x, res, g, b, out, rows, cols, eps);                                           \
  }                                                                                               \
  TARGET void softmax(float* row, int64_t n) { softmax_body(row, n); }                            \
  TARGET void add(const float* a, const float* b, float* out, int64_t n, int64_t nb) {            \
    add_body(a, b, out, n, nb);                                                                   \
  }                                                                                               \
  constexpr Table table{bias_act, gelu, exp, layernorm, softmax, add};                            \
  }

FANIN_CLONE(avx512, __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,avx2,fma,"
                                          "prefer-vector-width=512"))))
FANIN_CLONE(avx2, __attribute__((target("avx2,fma"))))
FANIN_CLONE(baseline, )

struct Chosen {
  Table table;
  Isa isa;
};

Chosen choose() noexcept {
  switch (isa()) {
    case Isa::kAvx512: return {avx512::table, Isa::kAvx512};
    case Isa::kAvx2Fma: return {avx2::table, Isa::kAvx2Fma};
    default: return {baseline::table, Isa::kBaseline};
  }
}

const Chosen& chosen() noexcept {
  static const Chosen c = choose();
  return c;
}

}  // namespace

void bias_act(float* y, const float* bias, int64_t m, int64_t n, int act) {
  chosen().table.bias_act(y, bias, m, n, act);
}
void gelu(const float* x, float* out, int64_t n) { chosen().table.gelu(x, out, n); }
void exp(const float* x, float* out, int64_t n) { chosen().table.exp(x, out, n); }
void layernorm(const float* x, const float* residual, const float* gamma, const float* beta,
               float* out, int64_t rows, int64_t cols, float eps) {
  chosen().table.layernorm(x, residual, gamma, beta, out, rows, cols, eps);
}
void softmax(float* row, int64_t n) { chosen().table.softmax(row, n); }
void add(const float* a, const float* b, float* out, int64_t n, int64_t nb) {
  chosen().table.add(a, b, out, n, nb);
}

}  // namespace fanin::backend::cpu::vec

namespace fanin::backend::cpu {
Isa vec_kernel_isa() noexcept { return vec::chosen().isa; }
}  // namespace fanin::backend::cpu
