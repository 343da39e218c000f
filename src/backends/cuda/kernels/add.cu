// Element-wise add with row broadcast: out[i] = a[i] + b[i % nb].
#include "backends/cuda/kernels/common.cuh"
#include "backends/cuda/kernels/kernels.h"

namespace fanin::backend::cuda {
namespace {

template <typename T>
__global__ void add_kernel(const T* a, const T* b, T* out, int64_t n, int64_t nb) {
  if (nb == n) {
    for (int64_t i = global_index(); i < n; i += global_stride())
      out[i] = from_float<T>(to_float(a[i]) + to_float(b[i]));
  } else {
    for (int64_t i = global_index(); i < n; i += global_stride())
      out[i] = from_float<T>(to_float(a[i]) + to_float(b[i % nb]));
  }
}

}  // namespace

void launch_add(cudaStream_t stream, const void* a, const void* b, void* out, int64_t n, int64_t nb,
                DType dtype) {
  if (n <= 0) return;
  FANIN_CHECK(nb > 0 && nb <= n, kInvalidArgument, "[cuda add] b has ", nb,
              " elements, expected 1..", n);
  dispatch_float(dtype, "add", [&](auto tag) {
    using T = decltype(tag);
    const cudaLaunchConfig_t cfg = launch_config(blocks_for(n), kThreads, stream);
    FANIN_CUDA_CHECK(cudaLaunchKernelEx(&cfg, add_kernel<T>, static_cast<const T*>(a),
                                        static_cast<const T*>(b), static_cast<T*>(out), n, nb));
  });
}

}  // namespace fanin::backend::cuda
