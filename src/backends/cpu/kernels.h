// CPU reference kernels: plain loops plus OpenBLAS GEMM. They run on a
// stream's worker thread; each call is single-threaded so that streams scale
// over cores. f16/bf16 inputs are computed in f32 and rounded on store.
#pragma once

#include <cmath>
#include <cstdint>

#include "backends/backend.h"

namespace fanin::backend::cpu {

// Element i of `p` (of dtype `t`) as f32.
inline float load(const void* p, int64_t i, DType t) {
  switch (t) {
    case DType::kF32: return static_cast<const float*>(p)[i];
    case DType::kF16: return f16_to_f32(static_cast<const uint16_t*>(p)[i]);
    case DType::kBF16: return bf16_to_f32(static_cast<const uint16_t*>(p)[i]);
    case DType::kI32: return static_cast<float>(static_cast<const int32_t*>(p)[i]);
  }
  return 0.0f;
}

// Stores `v` as element i of `p` (of dtype `t`), rounding to nearest even.
inline void store(void* p, int64_t i, DType t, float v) {
  switch (t) {
    case DType::kF32: static_cast<float*>(p)[i] = v; break;
    case DType::kF16: static_cast<uint16_t*>(p)[i] = f32_to_f16(v); break;
    case DType::kBF16: static_cast<uint16_t*>(p)[i] = f32_to_bf16(v); break;
    case DType::kI32: static_cast<int32_t*>(p)[i] = static_cast<int32_t>(std::lrint(v)); break;
  }
}

void linear(const LinearArgs& a);
void layernorm(const LayerNormArgs& a);
void add(const void* a, const void* b, void* out, int64_t n, int64_t nb, DType dtype);
void unary(Unary kind, const void* x, void* out, int64_t n, DType dtype);
void softmax(const void* x, void* out, int64_t rows, int64_t cols, DType dtype);
void cast(const void* x, DType from, void* out, DType to, int64_t n);
void embedding(const EmbeddingArgs& a);
void attention(const AttentionArgs& a);
void mean_pool(const MeanPoolArgs& a);

}  // namespace fanin::backend::cpu
