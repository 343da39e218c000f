// Mean pooling over the first lengths[b] rows of x[b, :, :], written as
// f32, optionally L2-normalised with sentence-transformers' guard
// x / max(||x||, 1e-12). One block of 8 warps per batch row (grid-stride over
// rows); the columns go in chunks of 32 (one per lane, coalesced), each warp
// sums every 8th sequence row of the chunk and warp 0 adds the 8 partial
// sums. All sums are fp32.
#include "backends/cuda/kernels/common.cuh"
#include "backends/cuda/kernels/kernels.h"

namespace fanin::backend::cuda {
namespace {

constexpr unsigned kPoolWarps = 8;

template <typename T>
__global__ void __launch_bounds__(kPoolWarps * 32)
    mean_pool_kernel(const T* x, const int32_t* lengths, float* out, int64_t batch, int64_t seq,
                     int64_t hidden, bool l2_normalize) {
  __shared__ float partial[kPoolWarps][32];
  const unsigned lane = threadIdx.x & 31u;
  const unsigned warp = threadIdx.x >> 5;
  for (int64_t b = blockIdx.x; b < batch; b += gridDim.x) {
    const int64_t l = lengths[b];
    const int64_t len = l < 0 ? 0 : (l > seq ? seq : l);
    const float inv_len = len > 0 ? 1.0f / static_cast<float>(len) : 0.0f;
    const T* xb = x + b * seq * hidden;
    float* ob = out + b * hidden;
    float sq = 0.0f;  // warp 0: sum of squares of the columns this lane wrote
    for (int64_t c0 = 0; c0 < hidden; c0 += 32) {
      const int64_t c = c0 + lane;
      float acc = 0.0f;
      if (c < hidden)
        for (int64_t s = warp; s < len; s += kPoolWarps) acc += to_float(xb[s * hidden + c]);
      partial[warp][lane] = acc;
      __syncthreads();
      if (warp == 0) {
        float sum = 0.0f;
#pragma unroll
        for (unsigned w = 0; w < kPoolWarps; ++w) sum += partial[w][lane];
        const float mean = sum * inv_len;
        if (c < hidden) {
          ob[c] = mean;
          sq += mean * mean;
        }
      }
      __syncthreads();  // partial is rewritten by the next chunk
    }
    if (l2_normalize && warp == 0) {
      const float norm = sqrtf(warp_reduce(sq, SumOp{}));
      const float inv = 1.0f / fmaxf(norm, 1e-12f);
      // Each lane rescales the columns it wrote itself.
      for (int64_t c = lane; c < hidden; c += 32) ob[c] *= inv;
    }
  }
}

}  // namespace

void launch_mean_pool(cudaStream_t stream, const MeanPoolArgs& a) {
  if (a.batch <= 0 || a.hidden <= 0) return;
  dispatch_float(a.dtype, "mean_pool", [&](auto tag) {
    using T = decltype(tag);
    const unsigned blocks = static_cast<unsigned>(std::min<int64_t>(a.batch, kMaxBlocks));
    const cudaLaunchConfig_t cfg = launch_config(blocks, kPoolWarps * 32, stream);
    FANIN_CUDA_CHECK(cudaLaunchKernelEx(&cfg, mean_pool_kernel<T>, static_cast<const T*>(a.x),
                                        a.lengths, a.out, a.batch, a.seq, a.hidden,
                                        a.l2_normalize));
  });
}

}  // namespace fanin::backend::cuda
