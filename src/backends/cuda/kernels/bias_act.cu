// In-place bias and activation over a [rows, cols] matrix: the part of
// linear's epilogue that cuBLASLt does not fuse (exact GELU, and the
// fallback when no fused-epilogue algorithm exists).
#include "backends/cuda/kernels/common.cuh"
#include "backends/cuda/kernels/kernels.h"

namespace fanin::backend::cuda {
namespace {

template <typename T, Activation kAct>
__global__ void bias_act_kernel(T* out, const T* bias, int64_t total, int64_t cols) {
  for (int64_t i = global_index(); i < total; i += global_stride()) {
    float v = to_float(out[i]);
    if (bias != nullptr) v += to_float(bias[i % cols]);
    if constexpr (kAct == Activation::kRelu) v = relu(v);
    if constexpr (kAct == Activation::kGelu) v = gelu_erf(v);
    out[i] = from_float<T>(v);
  }
}

}  // namespace

void launch_bias_act(cudaStream_t stream, void* out, const void* bias, int64_t rows, int64_t cols,
                     Activation act, DType dtype) {
  const int64_t total = rows * cols;
  if (total <= 0 || (bias == nullptr && act == Activation::kNone)) return;
  dispatch_float(dtype, "linear epilogue", [&](auto tag) {
    using T = decltype(tag);
    const cudaLaunchConfig_t cfg = launch_config(blocks_for(total), kThreads, stream);
    T* o = static_cast<T*>(out);
    const T* b = static_cast<const T*>(bias);
    switch (act) {
      case Activation::kNone:
        FANIN_CUDA_CHECK(
            cudaLaunchKernelEx(&cfg, bias_act_kernel<T, Activation::kNone>, o, b, total, cols));
        break;
      case Activation::kRelu:
        FANIN_CUDA_CHECK(
            cudaLaunchKernelEx(&cfg, bias_act_kernel<T, Activation::kRelu>, o, b, total, cols));
        break;
      case Activation::kGelu:
        FANIN_CUDA_CHECK(
            cudaLaunchKernelEx(&cfg, bias_act_kernel<T, Activation::kGelu>, o, b, total, cols));
        break;
    }
  });
}

}  // namespace fanin::backend::cuda
