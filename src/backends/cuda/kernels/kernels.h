// Host-side launchers of the backend's own kernels, one kernel per .cu file
// beside this header. Each enqueues on `stream` (which must belong to the
// current device), returns at once, and throws fanin::Error when the launch
// is rejected (InvalidArgument for a dtype the kernel does not take,
// DeviceError for a CUDA failure). Asynchronous faults surface at the next
// synchronize. Pointers are device pointers to contiguous row-major data.
// The launchers keep no state: any thread may call them.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "backends/backend.h"

namespace fanin::backend::cuda {

// out[r, :] = (x[r, :] - mean) / sqrt(var + eps) * gamma + beta, fp32 math.
void launch_layernorm(cudaStream_t stream, const LayerNormArgs& args);

// out[i] = a[i] + b[i % nb], 0 <= i < n; nb > 0.
void launch_add(cudaStream_t stream, const void* a, const void* b, void* out, int64_t n, int64_t nb,
                DType dtype);

// out[i] = relu(x[i]) or exact (erf) gelu(x[i]). x may equal out.
void launch_unary(cudaStream_t stream, Unary kind, const void* x, void* out, int64_t n,
                  DType dtype);

// Row-wise, numerically stable softmax over `cols`.
void launch_softmax(cudaStream_t stream, const void* x, void* out, int64_t rows, int64_t cols,
                    DType dtype);

// out[i] = (to) x[i], rounding to nearest even (f32 -> i32 too).
void launch_cast(cudaStream_t stream, const void* x, DType from, void* out, DType to, int64_t n);

// In place on out[rows, cols]: out = act(out + bias[col]); bias may be null.
// The epilogue of linear where cuBLASLt has no fused one (exact GELU).
void launch_bias_act(cudaStream_t stream, void* out, const void* bias, int64_t rows, int64_t cols,
                     Activation act, DType dtype);

// Sequence-model kernels (semantics of the CPU reference, seq_kernels.cpp).
// out[b,s,:] = word[id] + pos[s] + type[tt], ids and types clamped into range.
void launch_embedding(cudaStream_t stream, const EmbeddingArgs& args);

// Fused masked self-attention (Note [Fused attention] in attention.cu); rows
// at or past a length are zero. head_dim <= 128, else InvalidArgument.
void launch_attention(cudaStream_t stream, const AttentionArgs& args);

// f32 mean over the first lengths[b] rows, L2-normalised with max(norm, 1e-12).
void launch_mean_pool(cudaStream_t stream, const MeanPoolArgs& args);

}  // namespace fanin::backend::cuda
