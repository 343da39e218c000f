// CPU kernels of the sequence model (BERT encoder): embedding sum, masked
// multi-head attention, mean pooling. f32 compute; GEMMs through OpenBLAS.
#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "backends/cpu/kernels.h"

namespace fanin::backend::cpu {
namespace {

int64_t clamp(int64_t v, int64_t lo, int64_t hi) { return std::min(std::max(v, lo), hi); }

}  // namespace

void embedding(const EmbeddingArgs& a) {
  const int64_t h = a.hidden;
  for (int64_t b = 0; b < a.batch; ++b) {
    for (int64_t s = 0; s < a.seq; ++s) {
      const int64_t row = b * a.seq + s;
      const int64_t id = clamp(a.ids[row], 0, a.vocab - 1);
      const int64_t tt = a.types ? clamp(a.types[row], 0, a.type_vocab - 1) : 0;
      for (int64_t c = 0; c < h; ++c) {
        const float v = load(a.word, id * h + c, a.dtype) + load(a.pos, s * h + c, a.dtype) +
                        load(a.type, tt * h + c, a.dtype);
        store(a.out, row * h + c, a.dtype, v);
      }
    }
  }
}

void attention(const AttentionArgs& a) {
  const int64_t S = a.seq, H = a.heads, D = a.head_dim, HD = H * D;
  // f32 copies of q, k, v for one batch row, and scores.
  std::vector<float> q(static_cast<size_t>(S * HD)), k(q.size()), v(q.size()), o(q.size());
  std::vector<float> p(static_cast<size_t>(S * S));
  for (int64_t b = 0; b < a.batch; ++b) {
    const int64_t len = clamp(a.lengths[b], 0, S);
    const int64_t base = b * S * 3 * HD;
    for (int64_t s = 0; s < S; ++s)
      for (int64_t j = 0; j < HD; ++j) {
        q[s * HD + j] = load(a.qkv, base + s * 3 * HD + j, a.dtype);
        k[s * HD + j] = load(a.qkv, base + s * 3 * HD + HD + j, a.dtype);
        v[s * HD + j] = load(a.qkv, base + s * 3 * HD + 2 * HD + j, a.dtype);
      }
    std::fill(o.begin(), o.end(), 0.0f);
    if (len > 0) {
      for (int64_t h = 0; h < H; ++h) {
        // p[len, len] = scale * q_h k_h^T
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(len),
                    static_cast<int>(len), static_cast<int>(D), a.scale, q.data() + h * D,
                    static_cast<int>(HD), k.data() + h * D, static_cast<int>(HD), 0.0f, p.data(),
                    static_cast<int>(len));
        for (int64_t i = 0; i < len; ++i) {
          float* row = p.data() + i * len;
          float mx = *std::max_element(row, row + len);
          double sum = 0.0;
          for (int64_t j = 0; j < len; ++j) {
            row[j] = std::exp(row[j] - mx);
            sum += row[j];
          }
          const float inv = static_cast<float>(1.0 / sum);
          for (int64_t j = 0; j < len; ++j) row[j] *= inv;
        }
        // o_h[len, D] = p v_h
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(len),
                    static_cast<int>(D), static_cast<int>(len), 1.0f, p.data(),
                    static_cast<int>(len), v.data() + h * D, static_cast<int>(HD), 0.0f,
                    o.data() + h * D, static_cast<int>(HD));
      }
    }
    for (int64_t i = 0; i < S * HD; ++i) store(a.out, b * S * HD + i, a.dtype, o[i]);
  }
}

void mean_pool(const MeanPoolArgs& a) {
  const int64_t H = a.hidden;
  for (int64_t b = 0; b < a.batch; ++b) {
    const int64_t len = clamp(a.lengths[b], 0, a.seq);
    std::vector<double> acc(static_cast<size_t>(H), 0.0);
    for (int64_t s = 0; s < len; ++s)
      for (int64_t c = 0; c < H; ++c) acc[c] += load(a.x, (b * a.seq + s) * H + c, a.dtype);
    const double inv_len = len > 0 ? 1.0 / static_cast<double>(len) : 0.0;
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
