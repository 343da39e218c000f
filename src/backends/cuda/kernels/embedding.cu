// Embedding sum of the sequence model: out[b,s,:] = word[id] + pos[s] +
// type[tt], ids and types clamped into their tables (as the CPU reference
// does). Grid-stride over packs of 16 bytes (4 f32 or 8 f16/bf16) when the
// hidden size and every pointer allow it, single elements otherwise. The sum
// is fp32 in the CPU's order ((word + pos) + type), rounded once on store.
#include <cstring>

#include "backends/cuda/kernels/common.cuh"
#include "backends/cuda/kernels/kernels.h"

namespace fanin::backend::cuda {
namespace {

// kVec consecutive elements of T, loaded and stored as one 16-byte access
// when kVec * sizeof(T) == 16.
template <typename T, int kVec>
struct Pack {
  T v[kVec];
};

template <typename T, int kVec>
__device__ __forceinline__ Pack<T, kVec> load_pack(const T* p) {
  Pack<T, kVec> r;
  if constexpr (kVec * sizeof(T) == 16) {
    const uint4 raw = *reinterpret_cast<const uint4*>(p);
    memcpy(&r, &raw, sizeof raw);
  } else {
#pragma unroll
    for (int k = 0; k < kVec; ++k) r.v[k] = p[k];
  }
  return r;
}

template <typename T, int kVec>
__device__ __forceinline__ void store_pack(T* p, const Pack<T, kVec>& r) {
  if constexpr (kVec * sizeof(T) == 16) {
    uint4 raw;
    memcpy(&raw, &r, sizeof raw);
    *reinterpret_cast<uint4*>(p) = raw;
  } else {
#pragma unroll
    for (int k = 0; k < kVec; ++k) p[k] = r.v[k];
  }
}

__device__ __forceinline__ int64_t clamp_index(int64_t v, int64_t n) {
  return v < 0 ? 0 : (v >= n ? n - 1 : v);
}

template <typename T, int kVec>
__global__ void embedding_kernel(const int32_t* ids, const int32_t* types, const T* word,
                                 const T* pos, const T* type, T* out, int64_t rows, int64_t seq,
                                 int64_t hidden, int64_t vocab, int64_t type_vocab) {
  const int64_t packs = hidden / kVec;  // per row
  const int64_t total = rows * packs;
  for (int64_t i = global_index(); i < total; i += global_stride()) {
    const int64_t row = i / packs;
    const int64_t c = (i - row * packs) * kVec;
    const int64_t s = row % seq;
    const int64_t id = clamp_index(ids[row], vocab);
    const int64_t tt = types != nullptr ? clamp_index(types[row], type_vocab) : 0;
    const Pack<T, kVec> w = load_pack<T, kVec>(word + id * hidden + c);
    const Pack<T, kVec> p = load_pack<T, kVec>(pos + s * hidden + c);
    const Pack<T, kVec> t = load_pack<T, kVec>(type + tt * hidden + c);
    Pack<T, kVec> o;
#pragma unroll
    for (int k = 0; k < kVec; ++k)
      o.v[k] = from_float<T>(to_float(w.v[k]) + to_float(p.v[k]) + to_float(t.v[k]));
    store_pack<T, kVec>(out + row * hidden + c, o);
  }
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

}  // namespace

void launch_embedding(cudaStream_t stream, const EmbeddingArgs& a) {
  if (a.batch <= 0 || a.seq <= 0 || a.hidden <= 0) return;
  FANIN_CHECK(a.vocab > 0 && a.type_vocab > 0, kInvalidArgument,
              "[cuda embedding] empty table: vocab ", a.vocab, ", type_vocab ", a.type_vocab);
  dispatch_float(a.dtype, "embedding", [&](auto tag) {
    using T = decltype(tag);
    constexpr int kVec = static_cast<int>(16 / sizeof(T));
    const bool vectorised = a.hidden % kVec == 0 && aligned16(a.word) && aligned16(a.pos) &&
                            aligned16(a.type) && aligned16(a.out);
    const int64_t rows = a.batch * a.seq;
    const auto* ids = a.ids;
    const auto* types = a.types;
    const auto* word = static_cast<const T*>(a.word);
    const auto* pos = static_cast<const T*>(a.pos);
    const auto* type = static_cast<const T*>(a.type);
    auto* out = static_cast<T*>(a.out);
    if (vectorised) {
      const cudaLaunchConfig_t cfg =
          launch_config(blocks_for(rows * (a.hidden / kVec)), kThreads, stream);
      FANIN_CUDA_CHECK(cudaLaunchKernelEx(&cfg, embedding_kernel<T, kVec>, ids, types, word, pos,
                                          type, out, rows, a.seq, a.hidden, a.vocab,
                                          a.type_vocab));
    } else {
      const cudaLaunchConfig_t cfg = launch_config(blocks_for(rows * a.hidden), kThreads, stream);
      FANIN_CUDA_CHECK(cudaLaunchKernelEx(&cfg, embedding_kernel<T, 1>, ids, types, word, pos,
                                          type, out, rows, a.seq, a.hidden, a.vocab,
                                          a.type_vocab));
    }
  });
}

}  // namespace fanin::backend::cuda
