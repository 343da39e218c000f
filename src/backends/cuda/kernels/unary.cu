// Element-wise activations: relu and exact (erf) gelu, fp32 math.
#include "backends/cuda/kernels/common.cuh"
#include "backends/cuda/kernels/kernels.h"

namespace fanin::backend::cuda {
namespace {

template <typename T, bool kGelu>
__global__ void unary_kernel(const T* x, T* out, int64_t n) {
  for (int64_t i = global_index(); i < n; i += global_stride()) {
    const float v = to_float(x[i]);
    out[i] = from_float<T>(kGelu ? gelu_erf(v) : relu(v));
  }
}

}  // namespace

void launch_unary(cudaStream_t stream, Unary kind, const void* x, void* out, int64_t n,
                  DType dtype) {
  if (n <= 0) return;
  dispatch_float(dtype, kind == Unary::kGelu ? "gelu" : "relu", [&](auto tag) {
    using T = decltype(tag);
    const cudaLaunchConfig_t cfg = launch_config(blocks_for(n), kThreads, stream);
    const T* in = static_cast<const T*>(x);
    T* o = static_cast<T*>(out);
    if (kind == Unary::kGelu) {
      FANIN_CUDA_CHECK(cudaLaunchKernelEx(&cfg, unary_kernel<T, true>, in, o, n));
    } else {
      FANIN_CUDA_CHECK(cudaLaunchKernelEx(&cfg, unary_kernel<T, false>, in, o, n));
    }
  });
}

}  // namespace fanin::backend::cuda
