// Device-side helpers shared by the kernels: dtype conversions (fp32 math,
// round to nearest even on store), exact GELU, block reductions, launch
// configuration and dtype dispatch. Included only by the kernels' .cu files.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "backends/backend.h"
#include "backends/cuda/cuda_check.h"
#include "core/check.h"

namespace fanin::backend::cuda {

// ---- conversions ----

__device__ __forceinline__ float to_float(float v) { return v; }
__device__ __forceinline__ float to_float(__half v) { return __half2float(v); }
__device__ __forceinline__ float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ float to_float(int32_t v) { return __int2float_rn(v); }

template <typename T>
__device__ __forceinline__ T from_float(float v);
template <>
__device__ __forceinline__ float from_float<float>(float v) {
  return v;
}
template <>
__device__ __forceinline__ __half from_float<__half>(float v) {
  return __float2half_rn(v);
}
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);
}
template <>
__device__ __forceinline__ int32_t from_float<int32_t>(float v) {
  return __float2int_rn(v);
}

// ---- activations (match the CPU reference, NaN included) ----

__device__ __forceinline__ float relu(float x) { return x < 0.0f ? 0.0f : x; }
// Exact GELU: x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2)).
__device__ __forceinline__ float gelu_erf(float x) {
  return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f));
}

// ---- reductions ----

struct SumOp {
  __device__ __forceinline__ float operator()(float a, float b) const { return a + b; }
};
struct MaxOp {
  __device__ __forceinline__ float operator()(float a, float b) const { return fmaxf(a, b); }
};

template <typename Op>
__device__ __forceinline__ float warp_reduce(float v, Op op) {
  for (int offset = 16; offset > 0; offset >>= 1)
    v = op(v, __shfl_xor_sync(0xffffffffu, v, offset));
  return v;
}

// Reduces `v` over the block and returns the result to every thread. All
// threads of the block must call it (blockDim.x a multiple of 32, <= 1024).
// Safe to call repeatedly: the leading barrier keeps a call from
// overwriting `partial` while threads still read the previous result.
template <typename Op>
__device__ __forceinline__ float block_reduce(float v, Op op, float identity) {
  __shared__ float partial[32];
  const unsigned lane = threadIdx.x & 31u;
  const unsigned warp = threadIdx.x >> 5;
  const unsigned warps = (blockDim.x + 31u) >> 5;
  v = warp_reduce(v, op);
  __syncthreads();
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  if (warp == 0) {
    float w = lane < warps ? partial[lane] : identity;
    w = warp_reduce(w, op);
    if (lane == 0) partial[0] = w;
  }
  __syncthreads();
  return partial[0];
}

// ---- launch configuration ----

constexpr unsigned kThreads = 256;
// Grid-stride loops cover any n; more blocks than this only add overhead.
constexpr int64_t kMaxBlocks = 8192;

inline unsigned blocks_for(int64_t n, unsigned threads = kThreads) {
  const int64_t b = (n + threads - 1) / threads;
  return static_cast<unsigned>(std::clamp<int64_t>(b, 1, kMaxBlocks));
}

// Threads for a block that owns one row of `cols`: a power of two in
// [32, 256], no larger than the row needs.
inline unsigned row_threads(int64_t cols) {
  unsigned t = 32;
  while (t < 256 && t < cols) t <<= 1;
  return t;
}

inline cudaLaunchConfig_t launch_config(unsigned blocks, unsigned threads, cudaStream_t stream) {
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = dim3(blocks);
  cfg.blockDim = dim3(threads);
  cfg.dynamicSmemBytes = 0;
  cfg.stream = stream;
  cfg.attrs = nullptr;
  cfg.numAttrs = 0;
  return cfg;
}

// Grid-stride index helpers.
__device__ __forceinline__ int64_t global_index() {
  return static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ __forceinline__ int64_t global_stride() {
  return static_cast<int64_t>(gridDim.x) * blockDim.x;
}

// ---- dtype dispatch ----

// Calls f(T{}) with T the element type of a floating dtype; i32 is rejected.
template <typename F>
void dispatch_float(DType dtype, const char* op, F&& f) {
  switch (dtype) {
    case DType::kF32:
      f(float{});
      return;
    case DType::kF16:
      f(__half{});
      return;
    case DType::kBF16:
      f(__nv_bfloat16{});
      return;
    case DType::kI32:
      break;
  }
  FANIN_THROW(kInvalidArgument, "[cuda ", op, "] needs a floating-point dtype, got ",
              to_string(dtype));
}

// Calls f(T{}) with T the element type of any dtype.
template <typename F>
void dispatch_any(DType dtype, F&& f) {
  switch (dtype) {
    case DType::kF32:
      f(float{});
      return;
    case DType::kF16:
      f(__half{});
      return;
    case DType::kBF16:
      f(__nv_bfloat16{});
      return;
    case DType::kI32:
      f(int32_t{});
      return;
  }
  FANIN_ASSERT(false, "unknown dtype ", static_cast<int>(dtype));
}

}  // namespace fanin::backend::cuda
