// Row-wise softmax: one block per row (grid-stride over rows); the row's
// max is subtracted before exp, sums are fp32.
#include "backends/cuda/kernels/common.cuh"
#include "backends/cuda/kernels/kernels.h"

namespace fanin::backend::cuda {
namespace {

template <typename T>
__global__ void softmax_kernel(const T* x, T* out, int64_t rows, int64_t cols) {
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* in = x + r * cols;
    T* o = out + r * cols;
    float mx = -INFINITY;
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) mx = fmaxf(mx, to_float(in[c]));
    mx = block_reduce(mx, MaxOp{}, -INFINITY);
    float sum = 0.0f;
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) sum += expf(to_float(in[c]) - mx);
    const float inv = 1.0f / block_reduce(sum, SumOp{}, 0.0f);
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x)
      o[c] = from_float<T>(expf(to_float(in[c]) - mx) * inv);
  }
}

}  // namespace

void launch_softmax(cudaStream_t stream, const void* x, void* out, int64_t rows, int64_t cols,
                    DType dtype) {
  if (rows <= 0 || cols <= 0) return;
  dispatch_float(dtype, "softmax", [&](auto tag) {
    using T = decltype(tag);
    const unsigned threads = row_threads(cols);
    const unsigned blocks = static_cast<unsigned>(std::min<int64_t>(rows, kMaxBlocks));
    const cudaLaunchConfig_t cfg = launch_config(blocks, threads, stream);
    FANIN_CUDA_CHECK(cudaLaunchKernelEx(&cfg, softmax_kernel<T>, static_cast<const T*>(x),
                                        static_cast<T*>(out), rows, cols));
  });
}

}  // namespace fanin::backend::cuda
