// Conformance of the sequence-model ops (embedding, attention, mean_pool) on
// every backend ("cpu", and "cuda:0" when present) and every float dtype
// against a double-precision host reference, in the manner of
// test_ops_conformance.cpp: inputs are random (never zero), rounded to the
// dtype under test, and the reference is computed in double from the rounded
// values. Batches are ragged: lengths include 0, the full seq, values in
// between, and out-of-range values that the ops clamp (-2 and seq + 7).
// Rows at or past a length must be exactly zero.
//
// The CUDA instances are always instantiated; without a CUDA device they
// skip with a message. On the GPU the cases reach every kernel variant:
// attention's tensor-core kernel (f16/bf16, head_dim 32 and 64, aligned),
// its CUDA-core kernel (f32; head_dim 24 and 128; an unaligned view), and
// embedding's 16-byte and scalar paths (hidden 384 and 37; an unaligned
// table).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "conformance.h"
#include "fanin/fanin.h"

namespace fanin {
namespace {

using namespace conformance;

class SeqConformance : public ConformanceTest {
 protected:
  // Rows [len, seq) of batch row b of a [batch, seq, width] result are 0.
  static void expect_zero_rows(const std::vector<float>& got, int64_t b, int64_t len,
                               int64_t seq, int64_t width, const std::string& what) {
    for (int64_t r = len; r < seq; ++r)
      for (int64_t c = 0; c < width; ++c) {
        const float v = got[static_cast<size_t>((b * seq + r) * width + c)];
        if (v != 0.0f) {
          ADD_FAILURE() << what << ": padded row " << r << " of batch row " << b << " (length "
                        << len << ") has " << v << " at column " << c;
          return;
        }
      }
  }

};

TEST_P(SeqConformance, Embedding) {
  const int64_t batch = 3, vocab = 50, type_vocab = 2, max_pos = 130;
  uint32_t seed = 1;
  // hidden 384: 16-byte packs; 37: element by element.
  for (int64_t hidden : {int64_t{384}, int64_t{37}})
    for (int64_t seq : {int64_t{1}, int64_t{7}, int64_t{16}, int64_t{128}})
      for (int variant = 0; variant < 3; ++variant) {  // types, no types, unaligned table
        const bool with_types = variant != 1, misalign = variant == 2;
        auto word = random_rounded(vocab * hidden, seed++, dtype_);
        auto pos = random_rounded(max_pos * hidden, seed++, dtype_);
        auto type = random_rounded(type_vocab * hidden, seed++, dtype_);
        // Out-of-range ids and types are clamped.
        auto ids = random_ints(batch * seq, seed++, -3, static_cast<int32_t>(vocab) + 3);
        auto types = random_ints(batch * seq, seed++, -1, static_cast<int32_t>(type_vocab));
        Ref ref(batch * seq * hidden);
        for (int64_t r = 0; r < batch * seq; ++r) {
          const int64_t id = clamp64(ids[r], 0, vocab - 1);
          const int64_t tt = with_types ? clamp64(types[r], 0, type_vocab - 1) : 0;
          for (int64_t c = 0; c < hidden; ++c)
            ref[r * hidden + c] = double(word[id * hidden + c]) + pos[(r % seq) * hidden + c] +
                                  type[tt * hidden + c];
        }
        Tensor out = ops::embedding(make_i32(ids, {batch, seq}),
                                    with_types ? make_i32(types, {batch, seq}) : Tensor(),
                                    make(word, {vocab, hidden}, misalign),
                                    make(pos, {max_pos, hidden}), make(type, {type_vocab, hidden}),
                                    s());
        ASSERT_EQ(out.shape(), (Shape{batch, seq, hidden}));
        expect_close(out, ref,
                     "embedding hidden " + std::to_string(hidden) + " seq " +
                         std::to_string(seq) + " variant " + std::to_string(variant),
                     dtype_);
      }
}

// softmax_j<len(q_i . k_j / sqrt(d)) v_j per head in double; zero rows >= len.
Ref attention_ref(const std::vector<float>& qkv, const std::vector<int32_t>& lengths, int64_t seq,
                  int64_t heads, int64_t d) {
  const int64_t batch = static_cast<int64_t>(lengths.size()), hd = heads * d;
  const double scale = 1.0 / std::sqrt(static_cast<double>(d));
  Ref out(batch * seq * hd, 0.0);
  std::vector<double> p(seq);
  for (int64_t b = 0; b < batch; ++b) {
    const int64_t len = clamp64(lengths[b], 0, seq);
    auto at = [&](int64_t row, int which, int64_t h, int64_t c) {
      return double(qkv[((b * seq + row) * 3 + which) * hd + h * d + c]);
    };
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t i = 0; i < len; ++i) {
        double mx = -INFINITY, sum = 0;
        for (int64_t j = 0; j < len; ++j) {
          double dot = 0;
          for (int64_t c = 0; c < d; ++c) dot += at(i, 0, h, c) * at(j, 1, h, c);
          p[j] = dot * scale;
          mx = std::max(mx, p[j]);
        }
        for (int64_t j = 0; j < len; ++j) sum += (p[j] = std::exp(p[j] - mx));
        for (int64_t c = 0; c < d; ++c) {
          double acc = 0;
          for (int64_t j = 0; j < len; ++j) acc += p[j] * at(j, 2, h, c);
          out[(b * seq + i) * hd + h * d + c] = acc / sum;
        }
      }
  }
  return out;
}

TEST_P(SeqConformance, Attention) {
  struct Case {
    int64_t seq, heads, head_dim;
    bool misalign;
  };
  std::vector<Case> cases;
  for (int64_t seq : {1, 7, 16, 128}) {
    cases.push_back({seq, 12, 32, false});  // all-MiniLM-L6-v2
    cases.push_back({seq, 2, 64, false});
    cases.push_back({seq, 3, 24, false});
    cases.push_back({seq, 1, 128, false});
  }
  cases.push_back({300, 2, 32, false});  // several key tiles, a ragged last one
  cases.push_back({16, 12, 32, true});   // unaligned qkv: the CUDA-core fallback
  uint32_t seed = 100;
  for (const Case& c : cases) {
    const auto lengths = ragged_lengths(c.seq);
    const auto batch = static_cast<int64_t>(lengths.size());
    const int64_t width = 3 * c.heads * c.head_dim;
    auto qkv = random_rounded(batch * c.seq * width, seed++, dtype_);
    const std::string what = "attention seq " + std::to_string(c.seq) + " heads " +
                             std::to_string(c.heads) + " head_dim " +
                             std::to_string(c.head_dim) + (c.misalign ? " unaligned" : "");
    Tensor out = ops::attention(make(qkv, {batch, c.seq, width}, c.misalign),
                                make_i32(lengths, {batch}), static_cast<int>(c.heads), s());
    ASSERT_EQ(out.shape(), (Shape{batch, c.seq, c.heads * c.head_dim}));
    const auto got =
        expect_close(out, attention_ref(qkv, lengths, c.seq, c.heads, c.head_dim), what, dtype_);
    if (got.size() != static_cast<size_t>(out.numel())) continue;
    for (int64_t b = 0; b < batch; ++b)
      expect_zero_rows(got, b, clamp64(lengths[b], 0, c.seq), c.seq, c.heads * c.head_dim, what);
  }
}

TEST_P(SeqConformance, MeanPool) {
  // The output is f32 and the sums are fp32 (double on the CPU) whatever the
  // input dtype: the only error is fp32 accumulation.
  tol_ = 1e-5;
  uint32_t seed = 200;
  for (int64_t hidden : {int64_t{384}, int64_t{37}})
    for (int64_t seq : {int64_t{1}, int64_t{7}, int64_t{16}, int64_t{128}})
      for (bool l2 : {true, false}) {
        const auto lengths = ragged_lengths(seq);
        const auto batch = static_cast<int64_t>(lengths.size());
        auto x = random_rounded(batch * seq * hidden, seed++, dtype_, -1.5f, 2.5f);
        Ref ref(batch * hidden, 0.0);
        for (int64_t b = 0; b < batch; ++b) {
          const int64_t len = clamp64(lengths[b], 0, seq);
          if (len == 0) continue;  // all zeros, normalised or not
          double norm = 0;
          for (int64_t c = 0; c < hidden; ++c) {
            double acc = 0;
            for (int64_t r = 0; r < len; ++r) acc += x[(b * seq + r) * hidden + c];
            ref[b * hidden + c] = acc / static_cast<double>(len);
            norm += ref[b * hidden + c] * ref[b * hidden + c];
          }
          if (l2)
            for (int64_t c = 0; c < hidden; ++c) ref[b * hidden + c] /= std::sqrt(norm);
        }
        const std::string what = "mean_pool hidden " + std::to_string(hidden) + " seq " +
                                 std::to_string(seq) + (l2 ? " l2" : "");
        Tensor out = ops::mean_pool(make(x, {batch, seq, hidden}), make_i32(lengths, {batch}),
                                    l2, s());
        ASSERT_EQ(out.shape(), (Shape{batch, hidden}));
        const auto got = expect_close(out, ref, what, DType::kF32);
        if (got.size() != static_cast<size_t>(out.numel())) continue;
        for (int64_t b = 0; b < batch; ++b)  // an empty row pools to zeros
          if (clamp64(lengths[b], 0, seq) == 0) expect_zero_rows(got, b, 0, 1, hidden, what);
      }
}


INSTANTIATE_TEST_SUITE_P(AllBackends, SeqConformance, all_backends_and_dtypes(), param_name);

}  // namespace
}  // namespace fanin
