// dtype conversion between f32, f16, bf16 and i32. Values go through f32
// as in the CPU reference (exact for f16/bf16 sources; i32 -> f32 rounds to
// nearest even), then round to nearest even into the target (f32 -> i32:
// __float2int_rn, which saturates out-of-range values and maps NaN to 0).
#include "backends/cuda/kernels/common.cuh"
#include "backends/cuda/kernels/kernels.h"

namespace fanin::backend::cuda {
namespace {

template <typename From, typename To>
__global__ void cast_kernel(const From* x, To* out, int64_t n) {
  for (int64_t i = global_index(); i < n; i += global_stride())
    out[i] = from_float<To>(to_float(x[i]));
}

}  // namespace

void launch_cast(cudaStream_t stream, const void* x, DType from, void* out, DType to, int64_t n) {
  if (n <= 0) return;
  if (from == to) {
    FANIN_CUDA_CHECK(cudaMemcpyAsync(out, x, static_cast<size_t>(n) * dtype_size(from),
                                     cudaMemcpyDeviceToDevice, stream));
    return;
  }
  dispatch_any(from, [&](auto from_tag) {
    using From = decltype(from_tag);
    dispatch_any(to, [&](auto to_tag) {
      using To = decltype(to_tag);
      const cudaLaunchConfig_t cfg = launch_config(blocks_for(n), kThreads, stream);
      FANIN_CUDA_CHECK(cudaLaunchKernelEx(&cfg, cast_kernel<From, To>, static_cast<const From*>(x),
                                          static_cast<To*>(out), n));
    });
  });
}

}  // namespace fanin::backend::cuda
