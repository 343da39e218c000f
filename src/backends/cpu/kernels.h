// CPU reference kernels: plain loops plus OpenBLAS GEMM. They run on a
// stream's worker thread; each call is single-threaded so that streams scale
// over cores. f16/bf16 inputs are computed in f32 and rounded on store.
#pragma once

#include <cstdint>

#include "backends/backend.h"

namespace fanin::backend::cpu {

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
