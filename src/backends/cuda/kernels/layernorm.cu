// Row-wise layer normalisation: one block per row (grid-stride over rows),
// fp32 accumulation, two passes over the row for a stable variance.
#include "backends/cuda/kernels/common.cuh"
#include "backends/cuda/kernels/kernels.h"

namespace fanin::backend::cuda {
namespace {

template <typename T>
__global__ void layernorm_kernel(const T* x, const T* gamma, const T* beta, T* out, int64_t rows,
                                 int64_t cols, float eps) {
  const float inv_cols = 1.0f / static_cast<float>(cols);
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* in = x + r * cols;
    T* o = out + r * cols;
    float sum = 0.0f;
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) sum += to_float(in[c]);
    const float mean = block_reduce(sum, SumOp{}, 0.0f) * inv_cols;
    float sq = 0.0f;
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
      const float d = to_float(in[c]) - mean;
      sq += d * d;
    }
    const float var = block_reduce(sq, SumOp{}, 0.0f) * inv_cols;
    const float inv_std = 1.0f / sqrtf(var + eps);
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
      const float v = (to_float(in[c]) - mean) * inv_std;
      o[c] = from_float<T>(v * to_float(gamma[c]) + to_float(beta[c]));
    }
  }
}

}  // namespace

void launch_layernorm(cudaStream_t stream, const LayerNormArgs& a) {
  if (a.rows <= 0 || a.cols <= 0) return;
  dispatch_float(a.dtype, "layernorm", [&](auto tag) {
    using T = decltype(tag);
    const unsigned threads = row_threads(a.cols);
    const unsigned blocks = static_cast<unsigned>(std::min<int64_t>(a.rows, kMaxBlocks));
    const cudaLaunchConfig_t cfg = launch_config(blocks, threads, stream);
    FANIN_CUDA_CHECK(cudaLaunchKernelEx(
        &cfg, layernorm_kernel<T>, static_cast<const T*>(a.x), static_cast<const T*>(a.gamma),
        static_cast<const T*>(a.beta), static_cast<T*>(a.out), a.rows, a.cols, a.eps));
  });
}

}  // namespace fanin::backend::cuda
