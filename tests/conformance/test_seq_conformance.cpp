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

#include "fanin/fanin.h"

namespace fanin {
namespace {

using Ref = std::vector<double>;

double tolerance(DType dt) {
  switch (dt) {
    case DType::kF32: return 1e-5;
    case DType::kF16: return 1e-2;
    case DType::kBF16: return 2e-2;
    case DType::kI32: return 0;
  }
  return 0;
}

float round_to(DType dt, float v) {
  if (dt == DType::kF16) return f16_to_f32(f32_to_f16(v));
  if (dt == DType::kBF16) return bf16_to_f32(f32_to_bf16(v));
  return v;
}

std::vector<float> random_rounded(size_t n, uint32_t seed, DType dt, float lo = -2.0f,
                                  float hi = 2.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = round_to(dt, dist(rng));
  return v;
}

std::vector<int32_t> random_ints(size_t n, uint32_t seed, int32_t lo, int32_t hi) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> dist(lo, hi);
  std::vector<int32_t> v(n);
  for (int32_t& x : v) x = dist(rng);
  return v;
}

int64_t clamp64(int64_t v, int64_t lo, int64_t hi) { return std::min(std::max(v, lo), hi); }

// Ragged lengths for a batch padded to `seq`: full, empty, partial, clamped.
std::vector<int32_t> ragged_lengths(int64_t seq) {
  const auto s = static_cast<int32_t>(seq);
  return {s, 0, s / 2 + 1, (s + 2) / 3, s + 7, -2};
}

using Param = std::tuple<std::string, DType>;

class SeqConformance : public ::testing::TestWithParam<Param> {
 protected:
  void SetUp() override {
    backend_ = std::get<0>(GetParam());
    dtype_ = std::get<1>(GetParam());
    if (!Device::is_available(backend_)) {
      if (backend_.rfind("cuda", 0) == 0) {
        GTEST_SKIP() << "no CUDA device: cuda conformance runs on the GPU machine";
      }
      GTEST_SKIP() << "device " << backend_ << " is not available";
    }
    device_ = &Device::get(backend_);
    stream_ = std::make_unique<Stream>(*device_);
    tol_ = tolerance(dtype_);
  }

  Stream& s() { return *stream_; }

  // A tensor of dtype_ holding `v` (already rounded to dtype_). With
  // `misalign`, a view that starts one element into its storage.
  Tensor make(const std::vector<float>& v, const Shape& shape, bool misalign = false) {
    std::vector<float> data = v;
    if (misalign) data.insert(data.begin(), 1.0f);
    const Shape flat{static_cast<int64_t>(data.size())};
    Tensor t;
    if (dtype_ == DType::kF32) {
      t = Tensor::from_vector(data, flat, s());
    } else {
      std::vector<uint16_t> h(data.size());
      for (size_t i = 0; i < data.size(); ++i)
        h[i] = dtype_ == DType::kF16 ? f32_to_f16(data[i]) : f32_to_bf16(data[i]);
      t = Tensor::from_host(h.data(), h.size() * 2, flat, dtype_, s());
    }
    if (misalign) t = t.slice(0, 1, flat[0]);
    return t.reshape(shape);
  }

  Tensor make_i32(const std::vector<int32_t>& v, const Shape& shape) {
    return Tensor::from_host(v.data(), v.size() * sizeof(int32_t), shape, DType::kI32, s());
  }

  // Compares `out` (of dtype `want_dtype`) with `ref`; returns the values.
  std::vector<float> expect_close(const Tensor& out, const Ref& ref, const std::string& what,
                                  DType want_dtype) {
    SCOPED_TRACE(what + " on " + backend_ + " in " + to_string(dtype_));
    EXPECT_EQ(out.dtype(), want_dtype);
    EXPECT_EQ(&out.device(), device_);
    std::vector<float> got = out.to_vector(s());
    EXPECT_EQ(got.size(), ref.size());
    if (got.size() != ref.size()) return got;
    double ss_ref = 0, ss_err = 0, max_err = 0, max_ref = 0;
    size_t worst = 0;
    for (size_t i = 0; i < ref.size(); ++i) {
      if (!std::isfinite(got[i])) {
        ADD_FAILURE() << "element " << i << " is " << got[i];
        return got;
      }
      const double e = std::fabs(got[i] - ref[i]);
      ss_ref += ref[i] * ref[i];
      ss_err += e * e;
      max_ref = std::max(max_ref, std::fabs(ref[i]));
      if (e > max_err) {
        max_err = e;
        worst = i;
      }
    }
    const double rel = ss_ref > 0 ? std::sqrt(ss_err / ss_ref) : std::sqrt(ss_err);
    EXPECT_LE(rel, tol_) << "||out - ref|| / ||ref|| = " << rel;
    EXPECT_LE(max_err, tol_ * std::max(max_ref, 1e-30))
        << "max abs error " << max_err << " at " << worst << " (got " << got[worst] << ", ref "
        << ref[worst] << "), max |ref| " << max_ref;
    return got;
  }

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

  std::string backend_;
  DType dtype_ = DType::kF32;
  Device* device_ = nullptr;
  std::unique_ptr<Stream> stream_;
  double tol_ = 0;
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

std::string param_name(const ::testing::TestParamInfo<Param>& info) {
  std::string b = std::get<0>(info.param);
  for (char& ch : b)
    if (ch == ':') ch = '_';
  return b + "_" + to_string(std::get<1>(info.param));
}

INSTANTIATE_TEST_SUITE_P(AllBackends, SeqConformance,
                         ::testing::Combine(::testing::Values(std::string("cpu"),
                                                              std::string("cuda:0")),
                                            ::testing::Values(DType::kF32, DType::kF16,
                                                              DType::kBF16)),
                         param_name);

}  // namespace
}  // namespace fanin
