// Fused masked multi-head self-attention of the sequence model:
//   out[b, i, h, :] = softmax_j<len(q_i . k_j * scale) v_j   for i < len,
//   out[b, i, h, :] = 0                                      for len <= i < seq,
// with qkv [batch, seq, 3, heads, head_dim] and len = clamp(lengths[b], 0, seq).
//
// Note [Fused attention]
// No score matrix reaches global memory. A block owns one (batch, head,
// query tile); the keys < len stream through shared memory in tiles, and
// each query row keeps a running max m, a running sum l and an unnormalised
// output o (online softmax, as in FlashAttention): for each key tile,
//   m' = max(m, max_j s_j),  o = o * 2^(m - m') + sum_j 2^(s_j - m') v_j,
//   l = l * 2^(m - m') + sum_j 2^(s_j - m'),
// and out = o / l after the last tile. Online rather than two-pass: K and V
// are read once, shared memory does not grow with seq (no limit on seq), and
// the max needs no second sweep. Scores are pre-multiplied by scale * log2(e)
// so the exponentials are exp2f. Every key tile starts below len, so each row
// has a finite max from its first tile on (2^(-inf - m') = 0 for the start
// and for masked keys, never inf - inf). Keys >= len are zero in shared
// memory and masked to -inf; query tiles at or past len only write zeros.
//
// Two kernels:
// - attention_mma_kernel (f16/bf16, head_dim 32 or 64; 32 is all-MiniLM-L6-v2):
//   tensor cores through mma.sync.m16n8k16 (fp32 accumulators). One warp
//   owns 16 query rows (up to 4 warps, 64 rows, per block); key tiles of 64.
//   S = Q K^T lands in registers in the accumulator layout, which is the
//   A-operand layout of P V once rounded to the input dtype (the
//   FlashAttention-2 register trick), so P never touches shared memory. K is
//   kept [key][d] and V transposed [d][key] in shared memory, both padded by
//   8 elements so the fragment loads are free of bank conflicts. P is
//   rounded to f16/bf16 before P V, as in FlashAttention; l sums the fp32 P.
// - attention_simt_kernel (f32, and f16/bf16 with other head_dim <= 128):
//   CUDA cores, one warp per query row at a time, one key per lane for the
//   scores, one output dimension per lane for P V (p broadcast by shuffle);
//   key tiles of 32, query tiles of 32 (16 when head_dim > 64).
#include <cstring>
#include <type_traits>

#include "backends/cuda/kernels/common.cuh"
#include "backends/cuda/kernels/kernels.h"

namespace fanin::backend::cuda {
namespace {

constexpr float kLog2e = 1.4426950408889634f;
constexpr int64_t kMaxHeadDim = 128;
constexpr int kMmaMaxWarps = 4;
constexpr int kSimtWarps = 4;

__device__ __forceinline__ int64_t clamp_len(int32_t v, int64_t seq) {
  const int64_t l = v;
  return l < 0 ? 0 : (l > seq ? seq : l);
}

// Zeros rows [row0, min(row0 + rows, seq)) of one head: out rows are hd apart.
template <typename T>
__device__ void zero_rows(T* ob, int64_t row0, int64_t rows, int64_t seq, int64_t hd,
                          int64_t d) {
  const int64_t n = (seq - row0 < rows ? seq - row0 : rows) * d;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x)
    ob[(row0 + i / d) * hd + i % d] = from_float<T>(0.0f);
}

// ---- tensor-core path ----

// mma.sync.m16n8k16 (row-major A 16x16, column-major B 16x8, fp32 C 16x8) for
// one 16-bit input type, and the packing of two floats into one operand
// register (lower column in the low half).
template <typename T>
struct Mma;

template <>
struct Mma<__half> {
  static __device__ __forceinline__ void run(float (&c)[4], const uint32_t (&a)[4], uint32_t b0,
                                             uint32_t b1) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
        "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#else
    __trap();  // the launcher picks this kernel only on sm_80 and newer
#endif
  }
  static __device__ __forceinline__ uint32_t pack(float lo, float hi) {
    const __half2 v = __floats2half2_rn(lo, hi);
    uint32_t r;
    memcpy(&r, &v, sizeof r);
    return r;
  }
};

template <>
struct Mma<__nv_bfloat16> {
  static __device__ __forceinline__ void run(float (&c)[4], const uint32_t (&a)[4], uint32_t b0,
                                             uint32_t b1) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
        "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#else
    __trap();
#endif
  }
  static __device__ __forceinline__ uint32_t pack(float lo, float hi) {
    const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    uint32_t r;
    memcpy(&r, &v, sizeof r);
    return r;
  }
};

__device__ __forceinline__ uint32_t ld32(const uint16_t* p) {
  return *reinterpret_cast<const uint32_t*>(p);
}

// Fragment layouts (PTX ISA, mma.m16n8k16, lane = 4 * g + t):
//   A: a[0] = (row g, cols 2t..2t+1), a[1] = (row g+8, cols 2t..), a[2] = (row g,
//      cols 2t+8..), a[3] = (row g+8, cols 2t+8..);
//   B: b0 = (rows 2t..2t+1, col g), b1 = (rows 2t+8.., col g);
//   C: c[0..1] = (row g, cols 2t..2t+1), c[2..3] = (row g+8, cols 2t..2t+1).
template <typename T, int kD>
__global__ void __launch_bounds__(kMmaMaxWarps * 32)
    attention_mma_kernel(const T* qkv, const int32_t* lengths, T* out, int64_t batch, int64_t seq,
                         int64_t heads, float scale_log2, int64_t tiles) {
  static_assert(kD % 16 == 0 && kD <= kMaxHeadDim);
  constexpr int kKT = 64;            // keys per tile
  constexpr int kKStride = kD + 8;   // elements per K row in shared memory
  constexpr int kVStride = kKT + 8;  // elements per V^T row
  constexpr int kChunks = kD / 8;    // 16-byte chunks per K or V row
  __shared__ alignas(16) uint16_t ks[kKT * kKStride];
  __shared__ alignas(16) uint16_t vt[kD * kVStride];

  const int lane = static_cast<int>(threadIdx.x & 31u);
  const int warp = static_cast<int>(threadIdx.x >> 5);
  const int g = lane >> 2, t = lane & 3;
  const int64_t q_rows = (blockDim.x >> 5) * 16;
  const int64_t hd = heads * kD, row_stride = 3 * hd;
  const int64_t total = batch * heads * tiles;

  for (int64_t w = blockIdx.x; w < total; w += gridDim.x) {
    const int64_t qt = w % tiles, bh = w / tiles, h = bh % heads, b = bh / heads;
    const int64_t len = clamp_len(lengths[b], seq);
    const int64_t q0 = qt * q_rows;
    T* ob = out + b * seq * hd + h * kD;
    if (q0 >= len) {
      zero_rows(ob, q0, q_rows, seq, hd, kD);
      continue;
    }
    // q of row r at qb + r * row_stride, k at + hd, v at + 2 * hd.
    const T* qb = qkv + b * seq * row_stride + h * kD;
    const int64_t r0 = q0 + warp * 16 + g, r1 = r0 + 8;
    const bool active = q0 + warp * 16 < len;  // warp-uniform

    uint32_t qa[kD / 16][4];
#pragma unroll
    for (int kk = 0; kk < kD / 16; ++kk) {
      const int c = kk * 16 + 2 * t;
      const uint16_t* q0p = reinterpret_cast<const uint16_t*>(qb + r0 * row_stride + c);
      const uint16_t* q1p = reinterpret_cast<const uint16_t*>(qb + r1 * row_stride + c);
      qa[kk][0] = r0 < len ? ld32(q0p) : 0u;
      qa[kk][1] = r1 < len ? ld32(q1p) : 0u;
      qa[kk][2] = r0 < len ? ld32(q0p + 8) : 0u;
      qa[kk][3] = r1 < len ? ld32(q1p + 8) : 0u;
    }

    float o[kD / 8][4];
#pragma unroll
    for (int dn = 0; dn < kD / 8; ++dn) o[dn][0] = o[dn][1] = o[dn][2] = o[dn][3] = 0.0f;
    float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.0f, l1 = 0.0f;  // rows r0, r1

    for (int64_t k0 = 0; k0 < len; k0 += kKT) {
      __syncthreads();  // nobody still reads the previous tile
      for (int i = static_cast<int>(threadIdx.x); i < kKT * kChunks;
           i += static_cast<int>(blockDim.x)) {
        const int key = i / kChunks, c8 = (i % kChunks) * 8;
        uint4 kraw = make_uint4(0u, 0u, 0u, 0u), vraw = kraw;
        if (k0 + key < len) {
          const T* src = qb + (k0 + key) * row_stride + c8;
          kraw = *reinterpret_cast<const uint4*>(src + hd);
          vraw = *reinterpret_cast<const uint4*>(src + 2 * hd);
        }
        *reinterpret_cast<uint4*>(ks + key * kKStride + c8) = kraw;
        uint16_t v8[8];
        memcpy(v8, &vraw, sizeof vraw);
#pragma unroll
        for (int e = 0; e < 8; ++e) vt[(c8 + e) * kVStride + key] = v8[e];
      }
      __syncthreads();
      if (!active) continue;

      const int valid = static_cast<int>(len - k0 < kKT ? len - k0 : kKT);  // >= 1
      const int steps = (valid + 15) / 16;  // 16-key steps holding a valid key
      float s[kKT / 8][4];
#pragma unroll
      for (int j = 0; j < kKT / 8; ++j) {
        s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.0f;
        if (j < 2 * steps) {
#pragma unroll
          for (int kk = 0; kk < kD / 16; ++kk) {
            const uint16_t* kr = ks + (j * 8 + g) * kKStride + kk * 16 + 2 * t;
            Mma<T>::run(s[j], qa[kk], ld32(kr), ld32(kr + 8));
          }
        }
      }
      // Scale into the exp2 domain, mask keys >= len, row maxima over the
      // four lanes (t = 0..3) that share a row.
      float mx0 = -INFINITY, mx1 = -INFINITY;
#pragma unroll
      for (int j = 0; j < kKT / 8; ++j)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const bool ok = j * 8 + 2 * t + e < valid;
          s[j][e] = ok ? s[j][e] * scale_log2 : -INFINITY;
          s[j][2 + e] = ok ? s[j][2 + e] * scale_log2 : -INFINITY;
          mx0 = fmaxf(mx0, s[j][e]);
          mx1 = fmaxf(mx1, s[j][2 + e]);
        }
      mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 1));
      mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 2));
      mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 1));
      mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 2));
      const float mn0 = fmaxf(m0, mx0), mn1 = fmaxf(m1, mx1);
      const float alpha0 = exp2f(m0 - mn0), alpha1 = exp2f(m1 - mn1);
      m0 = mn0;
      m1 = mn1;
      float sum0 = 0.0f, sum1 = 0.0f;  // this lane's part of the row sums
#pragma unroll
      for (int j = 0; j < kKT / 8; ++j)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          s[j][e] = exp2f(s[j][e] - mn0);
          s[j][2 + e] = exp2f(s[j][2 + e] - mn1);
          sum0 += s[j][e];
          sum1 += s[j][2 + e];
        }
      l0 = l0 * alpha0 + sum0;
      l1 = l1 * alpha1 + sum1;
#pragma unroll
      for (int dn = 0; dn < kD / 8; ++dn) {
        o[dn][0] *= alpha0;
        o[dn][1] *= alpha0;
        o[dn][2] *= alpha1;
        o[dn][3] *= alpha1;
      }
      // o += P V: the accumulators of key columns 16ks..16ks+15 (n-tiles 2ks,
      // 2ks+1) are exactly the A fragment of that k-step.
#pragma unroll
      for (int kstep = 0; kstep < kKT / 16; ++kstep) {
        if (kstep < steps) {
          const float(&lo)[4] = s[2 * kstep];
          const float(&hi)[4] = s[2 * kstep + 1];
          const uint32_t pa[4] = {Mma<T>::pack(lo[0], lo[1]), Mma<T>::pack(lo[2], lo[3]),
                                  Mma<T>::pack(hi[0], hi[1]), Mma<T>::pack(hi[2], hi[3])};
#pragma unroll
          for (int dn = 0; dn < kD / 8; ++dn) {
            const uint16_t* vr = vt + (dn * 8 + g) * kVStride + kstep * 16 + 2 * t;
            Mma<T>::run(o[dn], pa, ld32(vr), ld32(vr + 8));
          }
        }
      }
    }

    // Full row sums (over the four lanes of a row), normalise, store pairs.
    l0 += __shfl_xor_sync(0xffffffffu, l0, 1);
    l0 += __shfl_xor_sync(0xffffffffu, l0, 2);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 1);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 2);
    const bool live0 = active && r0 < len, live1 = active && r1 < len;
    const float inv0 = live0 ? 1.0f / l0 : 0.0f, inv1 = live1 ? 1.0f / l1 : 0.0f;
#pragma unroll
    for (int dn = 0; dn < kD / 8; ++dn) {
      const int c = dn * 8 + 2 * t;
      if (r0 < seq)
        *reinterpret_cast<uint32_t*>(ob + r0 * hd + c) =
            live0 ? Mma<T>::pack(o[dn][0] * inv0, o[dn][1] * inv0) : 0u;
      if (r1 < seq)
        *reinterpret_cast<uint32_t*>(ob + r1 * hd + c) =
            live1 ? Mma<T>::pack(o[dn][2] * inv1, o[dn][3] * inv1) : 0u;
    }
  }
}

// ---- CUDA-core path ----

// head_dim d <= kDMax; q, k, v are zero-padded to kDMax in shared memory.
template <typename T, int kDMax>
__global__ void __launch_bounds__(kSimtWarps * 32)
    attention_simt_kernel(const T* qkv, const int32_t* lengths, T* out, int64_t batch,
                          int64_t seq, int64_t heads, int64_t d, float scale_log2, int64_t tiles) {
  constexpr int kRows = kDMax <= 64 ? 8 : 4;  // query rows per warp (shared memory < 48 KiB)
  constexpr int kQT = kSimtWarps * kRows;     // query rows per block
  constexpr int kKT = 32;                     // keys per tile: one per lane
  constexpr int kC = kDMax / 32;              // output dimensions per lane
  __shared__ float qs[kQT][kDMax];            // q * scale * log2(e)
  __shared__ float ks[kKT][kDMax + 1];        // +1: lanes read one row each
  __shared__ float vs[kKT][kDMax];

  const int lane = static_cast<int>(threadIdx.x & 31u);
  const int warp = static_cast<int>(threadIdx.x >> 5);
  const int64_t hd = heads * d, row_stride = 3 * hd;
  const int64_t total = batch * heads * tiles;

  for (int64_t w = blockIdx.x; w < total; w += gridDim.x) {
    const int64_t qt = w % tiles, bh = w / tiles, h = bh % heads, b = bh / heads;
    const int64_t len = clamp_len(lengths[b], seq);
    const int64_t q0 = qt * kQT;
    T* ob = out + b * seq * hd + h * d;
    if (q0 >= len) {
      zero_rows(ob, q0, kQT, seq, hd, d);
      continue;
    }
    const T* qb = qkv + b * seq * row_stride + h * d;
    __syncthreads();  // nobody still reads qs of the previous work item
    for (int i = static_cast<int>(threadIdx.x); i < kQT * kDMax;
         i += static_cast<int>(blockDim.x)) {
      const int r = i / kDMax, c = i % kDMax;
      const int64_t row = q0 + r;
      qs[r][c] = row < len && c < d ? to_float(qb[row * row_stride + c]) * scale_log2 : 0.0f;
    }

    float o[kRows][kC], m[kRows], l[kRows];  // l: this lane's part of the row sum
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      m[r] = -INFINITY;
      l[r] = 0.0f;
#pragma unroll
      for (int c = 0; c < kC; ++c) o[r][c] = 0.0f;
    }

    for (int64_t k0 = 0; k0 < len; k0 += kKT) {
      __syncthreads();  // nobody still reads the previous tile
      for (int i = static_cast<int>(threadIdx.x); i < kKT * kDMax;
           i += static_cast<int>(blockDim.x)) {
        const int j = i / kDMax, c = i % kDMax;
        const int64_t key = k0 + j;
        const bool ok = key < len && c < d;
        ks[j][c] = ok ? to_float(qb[key * row_stride + hd + c]) : 0.0f;
        vs[j][c] = ok ? to_float(qb[key * row_stride + 2 * hd + c]) : 0.0f;
      }
      __syncthreads();
      const int nk = static_cast<int>(len - k0 < kKT ? len - k0 : kKT);  // >= 1
#pragma unroll
      for (int r = 0; r < kRows; ++r) {
        const int rl = warp * kRows + r;
        if (q0 + rl >= len) continue;  // warp-uniform
        float sc = 0.0f;
#pragma unroll
        for (int c = 0; c < kDMax; ++c) sc = fmaf(qs[rl][c], ks[lane][c], sc);
        sc = lane < nk ? sc : -INFINITY;
        const float mn = fmaxf(m[r], warp_reduce(sc, MaxOp{}));
        const float alpha = exp2f(m[r] - mn);
        const float p = exp2f(sc - mn);
        l[r] = l[r] * alpha + p;
        m[r] = mn;
#pragma unroll
        for (int c = 0; c < kC; ++c) o[r][c] *= alpha;
        for (int j = 0; j < nk; ++j) {
          const float pj = __shfl_sync(0xffffffffu, p, j);
#pragma unroll
          for (int c = 0; c < kC; ++c) o[r][c] = fmaf(pj, vs[j][lane + 32 * c], o[r][c]);
        }
      }
    }

#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      const int64_t row = q0 + warp * kRows + r;
      if (row >= seq) continue;  // warp-uniform
      const float sum = warp_reduce(l[r], SumOp{});
      const bool live = row < len;
#pragma unroll
      for (int c = 0; c < kC; ++c) {
        const int64_t dim = lane + 32 * c;
        if (dim < d) ob[row * hd + dim] = from_float<T>(live ? o[r][c] / sum : 0.0f);
      }
    }
  }
}

// ---- launchers ----

bool aligned(const void* p, size_t bytes) { return reinterpret_cast<uintptr_t>(p) % bytes == 0; }

// mma.sync.m16n8k16 with f16 and bf16 needs sm_80.
bool current_device_has_mma() {
  int device = 0, major = 0;
  FANIN_CUDA_CHECK(cudaGetDevice(&device));
  FANIN_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
  return major >= 8;
}

unsigned grid_for(int64_t work) {
  return static_cast<unsigned>(std::clamp<int64_t>(work, 1, 0x7fffffff));
}

template <typename T, int kD>
void launch_mma(cudaStream_t stream, const AttentionArgs& a, float scale_log2) {
  const int64_t warps = std::clamp<int64_t>((a.seq + 15) / 16, 1, kMmaMaxWarps);
  const int64_t q_rows = 16 * warps;
  const int64_t tiles = (a.seq + q_rows - 1) / q_rows;
  const cudaLaunchConfig_t cfg = launch_config(grid_for(a.batch * a.heads * tiles),
                                               static_cast<unsigned>(warps * 32), stream);
  FANIN_CUDA_CHECK(cudaLaunchKernelEx(&cfg, attention_mma_kernel<T, kD>,
                                      static_cast<const T*>(a.qkv), a.lengths,
                                      static_cast<T*>(a.out), a.batch, a.seq, a.heads, scale_log2,
                                      tiles));
}

template <typename T, int kDMax>
void launch_simt(cudaStream_t stream, const AttentionArgs& a, float scale_log2) {
  constexpr int64_t kQT = kSimtWarps * (kDMax <= 64 ? 8 : 4);
  const int64_t tiles = (a.seq + kQT - 1) / kQT;
  const cudaLaunchConfig_t cfg =
      launch_config(grid_for(a.batch * a.heads * tiles), kSimtWarps * 32, stream);
  FANIN_CUDA_CHECK(cudaLaunchKernelEx(&cfg, attention_simt_kernel<T, kDMax>,
                                      static_cast<const T*>(a.qkv), a.lengths,
                                      static_cast<T*>(a.out), a.batch, a.seq, a.heads,
                                      a.head_dim, scale_log2, tiles));
}

}  // namespace

void launch_attention(cudaStream_t stream, const AttentionArgs& a) {
  if (a.batch <= 0 || a.seq <= 0 || a.heads <= 0 || a.head_dim <= 0) return;
  FANIN_CHECK(a.head_dim <= kMaxHeadDim, kInvalidArgument, "[cuda attention] head_dim ",
              a.head_dim, " is larger than the supported ", kMaxHeadDim);
  const float scale_log2 = a.scale * kLog2e;
  dispatch_float(a.dtype, "attention", [&](auto tag) {
    using T = decltype(tag);
    if constexpr (!std::is_same_v<T, float>) {
      // 16-byte K/V loads and 4-byte output pairs need aligned rows: every
      // row starts at a multiple of 8 elements when head_dim is.
      if ((a.head_dim == 32 || a.head_dim == 64) && aligned(a.qkv, 16) && aligned(a.out, 4) &&
          current_device_has_mma()) {
        if (a.head_dim == 32)
          launch_mma<T, 32>(stream, a, scale_log2);
        else
          launch_mma<T, 64>(stream, a, scale_log2);
        return;
      }
    }
    if (a.head_dim <= 32)
      launch_simt<T, 32>(stream, a, scale_log2);
    else if (a.head_dim <= 64)
      launch_simt<T, 64>(stream, a, scale_log2);
    else
      launch_simt<T, 128>(stream, a, scale_log2);
  });
}

}  // namespace fanin::backend::cuda
