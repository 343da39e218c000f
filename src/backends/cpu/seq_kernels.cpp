// CPU kernels of the sequence model (BERT encoder): embedding sum, masked
// multi-head attention, mean pooling, on padded or packed batches (Note
// [Packed sequences] in backend.h). f32 compute; GEMMs through OpenBLAS.
//
// Note [CPU attention]
// Per sequence and head, scores [len, len] = scale * q k^T (one sgemm that
// reads q and k in place from the qkv rows, leading dimension 3 * hidden),
// a vectorised softmax per row, then out = p v (one sgemm writing the
// head's columns of the output in place). Only real tokens are computed:
// len is the sequence's own length, never the batch's longest. The scores
// of one head (len^2 floats: 6.4 KiB at 40 tokens) stay in L1, so a fused
// online-softmax kernel would save no memory traffic at these lengths; it
// would matter from a few hundred tokens on.
#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "backends/cpu/kernels.h"
#include "backends/cpu/profile.h"
#include "backends/cpu/vec_kernels.h"

namespace fanin::backend::cpu {
namespace {

int64_t clamp(int64_t v, int64_t lo, int64_t hi) { return std::min(std::max(v, lo), hi); }

// Row ranges [begin, begin + len) of each sequence, from offsets (packed) or
// from b * seq and lengths (padded); clamped so bad values cannot reach
// outside the buffers.
struct Span {
  int64_t begin, len;
};

std::vector<Span> spans(int64_t batch, int64_t seq, const int32_t* lengths,
                        const int32_t* offsets, int64_t total) {
  std::vector<Span> out(static_cast<size_t>(batch));
  if (offsets != nullptr) {
    int64_t prev = clamp(offsets[0], 0, total);
    for (int64_t b = 0; b < batch; ++b) {
      const int64_t next = clamp(offsets[b + 1], prev, total);
      out[b] = {prev, std::min(next - prev, seq)};
      prev = next;
    }
  } else {
    for (int64_t b = 0; b < batch; ++b) out[b] = {b * seq, clamp(lengths[b], 0, seq)};
  }
  return out;
}

// One sequence's attention on f32 rows: qkv rows of width 3 * H * D, output
// rows of width H * D; `p` holds len * len floats.
void attend(const float* qkv, int64_t len, int64_t H, int64_t D, float scale, float* out,
            float* p) {
  const int64_t HD = H * D;
  const int l = static_cast<int>(len), d = static_cast<int>(D);
  for (int64_t h = 0; h < H; ++h) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, l, l, d, scale, qkv + h * D,
                static_cast<int>(3 * HD), qkv + HD + h * D, static_cast<int>(3 * HD), 0.0f, p, l);
    for (int64_t i = 0; i < len; ++i) vec::softmax(p + i * len, len);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, l, d, l, 1.0f, p, l,
                qkv + 2 * HD + h * D, static_cast<int>(3 * HD), 0.0f, out + h * D,
                static_cast<int>(HD));
  }
}

}  // namespace

void embedding(const EmbeddingArgs& a) {
  ProfScope prof(ProfOp::kEmbedding);
  const int64_t h = a.hidden;
  const int64_t rows = a.offsets != nullptr ? a.total : a.batch * a.seq;
  std::vector<int64_t> position(static_cast<size_t>(rows), 0);
  if (a.offsets != nullptr) {
    for (const Span& s : spans(a.batch, a.seq, nullptr, a.offsets, a.total))
      for (int64_t i = 0; i < s.len; ++i) position[s.begin + i] = i;
  } else {
    for (int64_t r = 0; r < rows; ++r) position[r] = r % a.seq;
  }
  std::vector<float> row(static_cast<size_t>(h));
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t id = clamp(a.ids[r], 0, a.vocab - 1);
    const int64_t tt = a.types ? clamp(a.types[r], 0, a.type_vocab - 1) : 0;
    const int64_t s = position[r];
    if (a.dtype == DType::kF32) {
      const float* w = static_cast<const float*>(a.word) + id * h;
      const float* p = static_cast<const float*>(a.pos) + s * h;
      const float* t = static_cast<const float*>(a.type) + tt * h;
      float* o = static_cast<float*>(a.out) + r * h;
      for (int64_t c = 0; c < h; ++c) o[c] = w[c] + p[c] + t[c];
      continue;
    }
    for (int64_t c = 0; c < h; ++c)
      store(a.out, r * h + c, a.dtype,
            load(a.word, id * h + c, a.dtype) + load(a.pos, s * h + c, a.dtype) +
                load(a.type, tt * h + c, a.dtype));
  }
}

void attention(const AttentionArgs& a) {
  const int64_t S = a.seq, H = a.heads, D = a.head_dim, HD = H * D;
  const std::vector<Span> sp = spans(a.batch, S, a.lengths, a.offsets, a.total);
  uint64_t flops = 0;
  for (const Span& s : sp) flops += static_cast<uint64_t>(4 * s.len * s.len * HD);
  ProfScope prof(ProfOp::kAttention, flops);
  std::vector<float> p(static_cast<size_t>(S * S));
  const bool f32 = a.dtype == DType::kF32;
  std::vector<float> qkv_f32, out_f32;  // other dtypes: one sequence in f32
  if (!f32) {
    qkv_f32.resize(static_cast<size_t>(S * 3 * HD));
    out_f32.resize(static_cast<size_t>(S * HD));
  }
  if (a.offsets == nullptr) {
    // Padded rows of the output are zero.
    const int64_t n = a.batch * S * HD;
    if (f32) {
      std::fill(static_cast<float*>(a.out), static_cast<float*>(a.out) + n, 0.0f);
    } else {
      for (int64_t i = 0; i < n; ++i) store(a.out, i, a.dtype, 0.0f);
    }
  }
  for (const Span& s : sp) {
    if (s.len == 0) continue;
    if (f32) {
      attend(static_cast<const float*>(a.qkv) + s.begin * 3 * HD, s.len, H, D, a.scale,
             static_cast<float*>(a.out) + s.begin * HD, p.data());
      continue;
    }
    for (int64_t i = 0; i < s.len * 3 * HD; ++i)
      qkv_f32[i] = load(a.qkv, s.begin * 3 * HD + i, a.dtype);
    attend(qkv_f32.data(), s.len, H, D, a.scale, out_f32.data(), p.data());
    for (int64_t i = 0; i < s.len * HD; ++i) store(a.out, s.begin * HD + i, a.dtype, out_f32[i]);
  }
}

void mean_pool(const MeanPoolArgs& a) {
  ProfScope prof(ProfOp::kMeanPool);
  const int64_t H = a.hidden;
  std::vector<double> acc(static_cast<size_t>(H));
  const std::vector<Span> sp = spans(a.batch, a.seq, a.lengths, a.offsets, a.total);
  for (int64_t b = 0; b < a.batch; ++b) {
    const Span& s = sp[b];
    std::fill(acc.begin(), acc.end(), 0.0);
    for (int64_t i = 0; i < s.len; ++i)
      for (int64_t c = 0; c < H; ++c) acc[c] += load(a.x, (s.begin + i) * H + c, a.dtype);
    const double inv_len = s.len > 0 ? 1.0 / static_cast<double>(s.len) : 0.0;
    double norm = 0.0;
    for (int64_t c = 0; c < H; ++c) {
      acc[c] *= inv_len;
      norm += acc[c] * acc[c];
    }
    // sentence-transformers' Normalize: x / max(||x||, 1e-12)
    const double scale = a.l2_normalize ? 1.0 / std::max(std::sqrt(norm), 1e-12) : 1.0;
    for (int64_t c = 0; c < H; ++c) a.out[b * H + c] = static_cast<float>(acc[c] * scale);
  }
}

}  // namespace fanin::backend::cpu
