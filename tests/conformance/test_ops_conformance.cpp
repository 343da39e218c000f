// Conformance: every op on every backend ("cpu", and "cuda:0" when present)
// and every float dtype against a double-precision host reference.
//
// Inputs are generated in f32, rounded to the dtype under test on the host,
// and the reference is computed in double from those rounded values, so the
// comparison measures only the op's own error: the accumulation order, f32
// intermediates, and the final rounding to the output dtype (on the CPU, f16
// and bf16 are computed in f32 and rounded on store). Each comparison checks
// the relative error of the whole, ||out - ref|| / ||ref||, and the largest
// element error against the tolerance times the largest reference magnitude.
//
// The CUDA instances are always instantiated; without a CUDA device they
// skip with a message instead of disappearing.
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <ostream>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "conformance.h"
#include "fanin/fanin.h"

namespace fanin {
namespace {

using namespace conformance;

using OpsConformance = ConformanceTest;

double gelu_ref(double x) { return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0))); }

Ref linear_ref(const std::vector<float>& x, const std::vector<float>& w,
               const std::vector<float>* b, int64_t m, int64_t n, int64_t k, Activation act) {
  Ref out(m * n);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double acc = b ? (*b)[j] : 0.0;
      for (int64_t p = 0; p < k; ++p) acc += double(x[i * k + p]) * w[j * k + p];
      if (act == Activation::kRelu) acc = std::max(acc, 0.0);
      if (act == Activation::kGelu) acc = gelu_ref(acc);
      out[i * n + j] = acc;
    }
  return out;
}

TEST_P(OpsConformance, Linear) {
  struct Case {
    int64_t m, k, n;
    bool bias;
    Activation act;
  };
  const Case cases[] = {
      {16, 64, 48, true, Activation::kNone},  {16, 64, 48, true, Activation::kRelu},
      {16, 64, 48, true, Activation::kGelu},  {9, 33, 17, false, Activation::kNone},
      {1, 512, 256, true, Activation::kRelu}, {64, 512, 128, true, Activation::kGelu},
  };
  uint32_t seed = 1;
  for (const Case& c : cases) {
    // Scale so that pre-activations stay O(1) whatever k is.
    const float scale = 2.0f / std::sqrt(static_cast<float>(c.k));
    auto x = random_rounded(c.m * c.k, seed++, dtype_);
    auto w = random_rounded(c.n * c.k, seed++, dtype_, -scale, scale);
    auto b = random_rounded(c.n, seed++, dtype_);
    Tensor y = ops::linear(make(x, {c.m, c.k}), make(w, {c.n, c.k}),
                           c.bias ? make(b, {c.n}) : Tensor(), c.act, s());
    ASSERT_EQ(y.shape(), (Shape{c.m, c.n}));
    expect_close(y, linear_ref(x, w, c.bias ? &b : nullptr, c.m, c.n, c.k, c.act),
                 "linear " + std::to_string(c.m) + "x" + std::to_string(c.k) + "x" +
                     std::to_string(c.n) + " " + to_string(c.act));
  }
  // A 3-D input: [2, 5, k] -> [2, 5, n].
  auto x = random_rounded(2 * 5 * 24, 100, dtype_);
  auto w = random_rounded(12 * 24, 101, dtype_, -0.4f, 0.4f);
  auto b = random_rounded(12, 102, dtype_);
  Tensor y = ops::linear(make(x, {2, 5, 24}), make(w, {12, 24}), make(b, {12}),
                         Activation::kGelu, s());
  ASSERT_EQ(y.shape(), (Shape{2, 5, 12}));
  expect_close(y, linear_ref(x, w, &b, 10, 12, 24, Activation::kGelu), "linear 3-D");
}

TEST_P(OpsConformance, Add) {
  const int64_t r = 13, c = 70;
  auto a = random_rounded(r * c, 11, dtype_), b = random_rounded(r * c, 12, dtype_),
       row = random_rounded(c, 13, dtype_);
  Ref same(r * c), bcast(r * c);
  for (int64_t i = 0; i < r * c; ++i) {
    same[i] = double(a[i]) + b[i];
    bcast[i] = double(a[i]) + row[i % c];
  }
  Tensor ta = make(a, {r, c});
  expect_close(ops::add(ta, make(b, {r, c}), s()), same, "add");
  expect_close(ops::add(ta, make(row, {c}), s()), bcast, "add row broadcast");
}

TEST_P(OpsConformance, LayerNorm) {
  const int64_t r = 8, c = 384;
  auto x = random_rounded(r * c, 21, dtype_, -3.0f, 5.0f);
  auto g = random_rounded(c, 22, dtype_, 0.5f, 1.5f), b = random_rounded(c, 23, dtype_);
  const float eps = 1e-5f;
  Ref ref(r * c);
  for (int64_t i = 0; i < r; ++i) {
    double mean = 0, var = 0;
    for (int64_t j = 0; j < c; ++j) mean += x[i * c + j];
    mean /= c;
    for (int64_t j = 0; j < c; ++j) var += (x[i * c + j] - mean) * (x[i * c + j] - mean);
    var /= c;
    for (int64_t j = 0; j < c; ++j)
      ref[i * c + j] = (x[i * c + j] - mean) / std::sqrt(var + eps) * g[j] + b[j];
  }
  expect_close(ops::layernorm(make(x, {r, c}), make(g, {c}), make(b, {c}), eps, s()), ref,
               "layernorm");
}

TEST_P(OpsConformance, Softmax) {
  const int64_t r = 6, c = 129;
  auto x = random_rounded(r * c, 31, dtype_, -6.0f, 6.0f);
  for (int64_t j = 0; j < c; ++j) x[5 * c + j] = round_to(dtype_, x[5 * c + j] + 200.0f);
  Ref ref(r * c);
  for (int64_t i = 0; i < r; ++i) {
    double mx = -INFINITY, sum = 0;
    for (int64_t j = 0; j < c; ++j) mx = std::max<double>(mx, x[i * c + j]);
    for (int64_t j = 0; j < c; ++j) sum += std::exp(x[i * c + j] - mx);
    for (int64_t j = 0; j < c; ++j) ref[i * c + j] = std::exp(x[i * c + j] - mx) / sum;
  }
  expect_close(ops::softmax(make(x, {r, c}), s()), ref, "softmax");
}

TEST_P(OpsConformance, ReluAndGelu) {
  const int64_t n = 4099;  // not a multiple of any vector width
  auto x = random_rounded(n, 41, dtype_, -5.0f, 5.0f);
  Ref relu(n), gelu(n);
  for (int64_t i = 0; i < n; ++i) {
    relu[i] = std::max<double>(x[i], 0.0);
    gelu[i] = gelu_ref(x[i]);
  }
  Tensor t = make(x, {n});
  expect_close(ops::relu(t, s()), relu, "relu");
  expect_close(ops::gelu(t, s()), gelu, "gelu");
}

TEST_P(OpsConformance, Cast) {
  // From dtype_ to every float dtype, and from f32 into dtype_.
  const int64_t n = 1000;
  auto x = random_rounded(n, 51, dtype_, -1000.0f, 1000.0f);
  Tensor t = make(x, {n});
  for (DType to : {DType::kF32, DType::kF16, DType::kBF16}) {
    Ref ref(n);
    for (int64_t i = 0; i < n; ++i) ref[i] = x[i];
    // Rounding to a narrower type costs at most its own half-ulp.
    const double saved = tol_;
    tol_ = std::max(tol_, tolerance(to));
    expect_close(ops::cast(t, to, s()), ref, std::string("cast to ") + to_string(to), to);
    tol_ = saved;
  }
  auto f = random_rounded(n, 52, DType::kF32, -1000.0f, 1000.0f);
  Ref ref(f.begin(), f.end());
  Tensor tf = Tensor::from_vector(f, {n}, s());
  expect_close(ops::cast(tf, dtype_, s()), ref, "cast from f32");
  // i32 round trip of integral values is exact.
  std::vector<float> ints(n);
  for (int64_t i = 0; i < n; ++i) ints[i] = static_cast<float>((i * 37) % 201 - 100);
  Tensor ti = ops::cast(make(ints, {n}), DType::kI32, s());
  Ref iref(ints.begin(), ints.end());
  expect_close(ops::cast(ti, dtype_, s()), iref, "cast through i32");
}

TEST_P(OpsConformance, ContiguousOfASlicedView) {
  auto x = random_rounded(4 * 10 * 6, 61, dtype_);
  Tensor t = make(x, {4, 10, 6});
  Tensor v = t.slice(1, 2, 7).slice(2, 1, 5);  // [4, 5, 4]
  ASSERT_FALSE(v.is_contiguous());
  Ref ref;
  for (int i = 0; i < 4; ++i)
    for (int j = 2; j < 7; ++j)
      for (int k = 1; k < 5; ++k) ref.push_back(x[i * 60 + j * 6 + k]);
  Tensor c = ops::contiguous(v, s());
  ASSERT_EQ(c.shape(), (Shape{4, 5, 4}));
  const double saved = tol_;
  tol_ = 0;  // a copy is exact
  expect_close(c, ref, "contiguous");
  tol_ = saved;
}

TEST_P(OpsConformance, MlpForwardMatchesLayerByLayer) {
  // The model path (ops chained on one stream, weights device-wide) against
  // the reference of each layer.
  MlpConfig cfg;
  cfg.dims = {32, 64, 16};
  cfg.dtype = dtype_;
  cfg.activation = Activation::kGelu;
  auto m = Mlp::random(cfg, 9, *device_);
  auto x = random_rounded(4 * 32, 71, dtype_);
  Tensor y = m->forward(make(x, {4, 32}), s());
  ASSERT_EQ(y.shape(), (Shape{4, 16}));
  // Same seed on the CPU in f32 gives the reference weights (rounded to dtype_).
  cfg.dtype = DType::kF32;
  auto ref_model = Mlp::random(cfg, 9, Device::cpu());
  Stream cpu(Device::cpu());
  std::vector<float> xin(x.begin(), x.end());
  std::vector<float> ref_out =
      ref_model->forward(Tensor::from_vector(xin, {4, 32}, cpu), cpu).to_vector(cpu);
  Ref ref(ref_out.begin(), ref_out.end());
  // Weights rounded to f16/bf16 move the result by about the dtype's epsilon
  // times the layer's fan-in spread; give it twice the op tolerance.
  const double saved = tol_;
  tol_ = dtype_ == DType::kF32 ? 1e-5 : 2 * tol_;
  expect_close(y, ref, "mlp forward");
  tol_ = saved;
}


INSTANTIATE_TEST_SUITE_P(AllBackends, OpsConformance, all_backends_and_dtypes(), param_name);

}  // namespace
}  // namespace fanin
