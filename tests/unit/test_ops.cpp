// Ops on the CPU against naive double-precision loops on random data.
#include <gtest/gtest.h>

#include <cmath>
#include <sstream>
#include <vector>

#include "fanin/fanin.h"
#include "test_helpers.h"

namespace fanin {
namespace {

using fanin::testing::random_values;
using fanin::testing::throws_error;

constexpr double kTol = 1e-5;

// Every element within tol * (|ref| + rms(ref)), and the relative error of
// the whole within tol.
::testing::AssertionResult close(const std::vector<float>& out, const std::vector<double>& ref,
                                 double tol = kTol) {
  if (out.size() != ref.size())
    return ::testing::AssertionFailure() << "size " << out.size() << " != " << ref.size();
  double ss_ref = 0, ss_err = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    ss_ref += ref[i] * ref[i];
    ss_err += (out[i] - ref[i]) * (out[i] - ref[i]);
  }
  const double rms = std::sqrt(ss_ref / std::max<size_t>(1, ref.size()));
  for (size_t i = 0; i < ref.size(); ++i) {
    if (!(std::fabs(out[i] - ref[i]) <= tol * (std::fabs(ref[i]) + rms))) {
      return ::testing::AssertionFailure()
             << "element " << i << ": " << out[i] << " vs reference " << ref[i];
    }
  }
  if (ss_ref > 0 && std::sqrt(ss_err / ss_ref) > tol)
    return ::testing::AssertionFailure() << "relative error " << std::sqrt(ss_err / ss_ref);
  return ::testing::AssertionSuccess();
}

double gelu_ref(double x) { return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0))); }

std::vector<double> linear_ref(const std::vector<float>& x, const std::vector<float>& w,
                               const std::vector<float>* b, int64_t m, int64_t n, int64_t k,
                               Activation act) {
  std::vector<double> out(m * n);
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      double acc = b ? (*b)[j] : 0.0;
      for (int64_t p = 0; p < k; ++p) acc += double(x[i * k + p]) * double(w[j * k + p]);
      if (act == Activation::kRelu) acc = std::max(acc, 0.0);
      if (act == Activation::kGelu) acc = gelu_ref(acc);
      out[i * n + j] = acc;
    }
  }
  return out;
}

class Ops : public ::testing::Test {
 protected:
  Stream s{Device::cpu()};
  Tensor upload(const std::vector<float>& v, const Shape& shape) {
    return Tensor::from_vector(v, shape, s);
  }
};

TEST_F(Ops, ActivationNames) {
  EXPECT_STREQ(to_string(Activation::kNone), "none");
  EXPECT_STREQ(to_string(Activation::kGelu), "gelu");
  EXPECT_EQ(parse_activation("relu"), Activation::kRelu);
  EXPECT_TRUE(throws_error([] { parse_activation("tanh"); }, ErrorCode::kInvalidArgument,
                           {"[parse_activation]", "'tanh'"}));
}

TEST_F(Ops, LinearWithBiasAndEachActivation) {
  const int64_t m = 7, k = 33, n = 19;
  auto xv = random_values(m * k, 1), wv = random_values(n * k, 2), bv = random_values(n, 3);
  Tensor x = upload(xv, {m, k}), w = upload(wv, {n, k}), b = upload(bv, {n});
  for (Activation act : {Activation::kNone, Activation::kRelu, Activation::kGelu}) {
    Tensor y = ops::linear(x, w, b, act, s);
    EXPECT_EQ(y.shape(), (Shape{m, n}));
    EXPECT_EQ(y.storage()->stream_id(), s.id()) << "output not allocated on the stream";
    EXPECT_TRUE(close(y.to_vector(s), linear_ref(xv, wv, &bv, m, n, k, act))) << to_string(act);
  }
  // Without bias.
  EXPECT_TRUE(close(ops::linear(x, w, Tensor(), Activation::kNone, s).to_vector(s),
                    linear_ref(xv, wv, nullptr, m, n, k, Activation::kNone)));
}

TEST_F(Ops, LinearSingleRowAndBatchedInput) {
  const int64_t k = 64, n = 48;
  auto wv = random_values(n * k, 5), bv = random_values(n, 6);
  Tensor w = upload(wv, {n, k}), b = upload(bv, {n});
  auto x1 = random_values(k, 7);  // one row: the matrix-vector path
  EXPECT_TRUE(close(ops::linear(upload(x1, {1, k}), w, b, Activation::kGelu, s).to_vector(s),
                    linear_ref(x1, wv, &bv, 1, n, k, Activation::kGelu)));
  auto x3 = random_values(2 * 3 * k, 8);  // [2, 3, k] -> [2, 3, n]
  Tensor y = ops::linear(upload(x3, {2, 3, k}), w, b, Activation::kRelu, s);
  EXPECT_EQ(y.shape(), (Shape{2, 3, n}));
  EXPECT_TRUE(close(y.to_vector(s), linear_ref(x3, wv, &bv, 6, n, k, Activation::kRelu)));
}

TEST_F(Ops, LinearWithNoInputFeaturesIsTheBias) {
  auto bv = random_values(5, 9);
  Tensor x = Tensor::empty({3, 0}, DType::kF32, s);
  Tensor w = Tensor::empty({5, 0}, DType::kF32, s);
  std::vector<double> ref;
  for (int i = 0; i < 3; ++i)
    for (float b : bv) ref.push_back(std::max<double>(b, 0.0));
  EXPECT_TRUE(close(ops::linear(x, w, upload(bv, {5}), Activation::kRelu, s).to_vector(s), ref));
}

TEST_F(Ops, LinearRejectsBadArguments) {
  Tensor x = upload(random_values(6, 1), {2, 3});
  Tensor w = upload(random_values(12, 2), {4, 3});
  EXPECT_TRUE(throws_error([&] { ops::linear(x, upload(random_values(8, 3), {4, 2}), Tensor(),
                                             Activation::kNone, s); },
                           ErrorCode::kInvalidArgument,
                           {"[linear]", "x has 3 columns, weight expects 2"}));
  EXPECT_TRUE(throws_error(
      [&] { ops::linear(x, upload(random_values(12, 3), {12}), Tensor(), Activation::kNone, s); },
      ErrorCode::kInvalidArgument, {"[linear]", "weight must be 2-D", "[12]"}));
  EXPECT_TRUE(throws_error(
      [&] { ops::linear(x, w, upload(random_values(3, 4), {3}), Activation::kNone, s); },
      ErrorCode::kInvalidArgument, {"[linear]", "bias has shape [3]", "expected [4]"}));
  // (bf16 weights with f32 x are the CPU's bf16 matmul, allowed there:
  // CpuBf16Matmul.OpsLinearTakesBf16WeightsWithF32Activations; f16 ones never.)
  EXPECT_TRUE(throws_error(
      [&] { ops::linear(x, ops::cast(w, DType::kF16, s), Tensor(), Activation::kNone, s); },
      ErrorCode::kInvalidArgument, {"[linear]", "weight has dtype f16", "expected f32"}));
  EXPECT_TRUE(throws_error([&] { ops::linear(x, Tensor(), Tensor(), Activation::kNone, s); },
                           ErrorCode::kInvalidArgument, {"[linear]", "weight is a null tensor"}));
  Tensor xi = ops::cast(x, DType::kI32, s);
  Tensor wi = ops::cast(w, DType::kI32, s);
  EXPECT_TRUE(throws_error([&] { ops::linear(xi, wi, Tensor(), Activation::kNone, s); },
                           ErrorCode::kInvalidArgument, {"[linear]", "floating-point", "i32"}));
}

TEST_F(Ops, AddSameShapeAndRowBroadcast) {
  const int64_t r = 5, c = 11;
  auto av = random_values(r * c, 21), bv = random_values(r * c, 22), rv = random_values(c, 23);
  Tensor a = upload(av, {r, c});
  std::vector<double> same(r * c), row(r * c);
  for (int64_t i = 0; i < r * c; ++i) {
    same[i] = double(av[i]) + bv[i];
    row[i] = double(av[i]) + rv[i % c];
  }
  EXPECT_TRUE(close(ops::add(a, upload(bv, {r, c}), s).to_vector(s), same));
  EXPECT_TRUE(close(ops::add(a, upload(rv, {c}), s).to_vector(s), row));
  EXPECT_TRUE(throws_error([&] { ops::add(a, upload(random_values(r, 1), {r}), s); },
                           ErrorCode::kInvalidArgument,
                           {"[add]", "b of shape [5]", "a of shape [5, 11]"}));
  EXPECT_TRUE(throws_error([&] { ops::add(a, upload(bv, {c, r}), s); },
                           ErrorCode::kInvalidArgument, {"[add]", "[11, 5]"}));
}

TEST_F(Ops, LayerNorm) {
  const int64_t r = 6, c = 37;
  auto xv = random_values(r * c, 31, -3.0f, 5.0f), g = random_values(c, 32),
       b = random_values(c, 33);
  const float eps = 1e-5f;
  std::vector<double> ref(r * c);
  for (int64_t i = 0; i < r; ++i) {
    double mean = 0, var = 0;
    for (int64_t j = 0; j < c; ++j) mean += xv[i * c + j];
    mean /= c;
    for (int64_t j = 0; j < c; ++j) var += (xv[i * c + j] - mean) * (xv[i * c + j] - mean);
    var /= c;
    for (int64_t j = 0; j < c; ++j)
      ref[i * c + j] = (xv[i * c + j] - mean) / std::sqrt(var + eps) * g[j] + b[j];
  }
  Tensor x = upload(xv, {r, c});
  EXPECT_TRUE(close(ops::layernorm(x, upload(g, {c}), upload(b, {c}), eps, s).to_vector(s), ref));
  EXPECT_TRUE(throws_error([&] { ops::layernorm(x, upload(g, {c}), upload(b, {c}), 0.0f, s); },
                           ErrorCode::kInvalidArgument, {"[layernorm]", "eps"}));
  EXPECT_TRUE(throws_error(
      [&] { ops::layernorm(x, upload(random_values(c - 1, 1), {c - 1}), upload(b, {c}), eps, s); },
      ErrorCode::kInvalidArgument, {"[layernorm]", "gamma has shape [36]", "expected [37]"}));
  EXPECT_TRUE(throws_error(
      [&] { ops::layernorm(x, upload(g, {c}), upload(random_values(2 * c, 1), {2, c}), eps, s); },
      ErrorCode::kInvalidArgument, {"[layernorm]", "beta has shape [2, 37]"}));
}

TEST_F(Ops, SoftmaxIsStableAndNormalised) {
  const int64_t r = 4, c = 50;
  auto xv = random_values(r * c, 41, -4.0f, 4.0f);
  for (int64_t j = 0; j < c; ++j) xv[3 * c + j] += 1000.0f;  // would overflow a naive exp
  std::vector<double> ref(r * c);
  for (int64_t i = 0; i < r; ++i) {
    double mx = -INFINITY, sum = 0;
    for (int64_t j = 0; j < c; ++j) mx = std::max<double>(mx, xv[i * c + j]);
    for (int64_t j = 0; j < c; ++j) sum += std::exp(xv[i * c + j] - mx);
    for (int64_t j = 0; j < c; ++j) ref[i * c + j] = std::exp(xv[i * c + j] - mx) / sum;
  }
  std::vector<float> out = ops::softmax(upload(xv, {r, c}), s).to_vector(s);
  EXPECT_TRUE(close(out, ref));
  for (int64_t i = 0; i < r; ++i) {
    double sum = 0;
    for (int64_t j = 0; j < c; ++j) sum += out[i * c + j];
    EXPECT_NEAR(sum, 1.0, 1e-5) << "row " << i;
  }
}

TEST_F(Ops, ReluAndGelu) {
  auto xv = random_values(1000, 51, -6.0f, 6.0f);
  std::vector<double> relu(xv.size()), gelu(xv.size());
  for (size_t i = 0; i < xv.size(); ++i) {
    relu[i] = std::max<double>(xv[i], 0.0);
    gelu[i] = gelu_ref(xv[i]);
  }
  Tensor x = upload(xv, {10, 100});
  EXPECT_TRUE(close(ops::relu(x, s).to_vector(s), relu));
  // Exact (erf) GELU: the tanh approximation differs by up to ~1e-3.
  EXPECT_TRUE(close(ops::gelu(x, s).to_vector(s), gelu));
  Tensor xi = ops::cast(x, DType::kI32, s);
  EXPECT_TRUE(throws_error([&] { ops::gelu(xi, s); }, ErrorCode::kInvalidArgument,
                           {"[gelu]", "floating-point"}));
}

TEST_F(Ops, CastBetweenEveryDtype) {
  auto xv = random_values(300, 61, -300.0f, 300.0f);
  xv.push_back(2.5f);   // i32: ties to even
  xv.push_back(-3.5f);
  Tensor x = upload(xv, {static_cast<int64_t>(xv.size())});
  for (DType to : {DType::kF32, DType::kF16, DType::kBF16, DType::kI32}) {
    Tensor y = ops::cast(x, to, s);
    EXPECT_EQ(y.dtype(), to);
    std::vector<float> out = y.to_vector(s);
    for (size_t i = 0; i < xv.size(); ++i) {
      float want = xv[i];
      if (to == DType::kF16) want = f16_to_f32(f32_to_f16(xv[i]));
      if (to == DType::kBF16) want = bf16_to_f32(f32_to_bf16(xv[i]));
      if (to == DType::kI32) want = static_cast<float>(std::nearbyint(xv[i]));
      ASSERT_EQ(out[i], want) << to_string(to) << " element " << i << " = " << xv[i];
    }
    // And back to f32.
    std::vector<float> back = ops::cast(y, DType::kF32, s).to_vector(s);
    EXPECT_EQ(back, out) << to_string(to);
  }
}

TEST_F(Ops, ContiguousGathersASlicedView) {
  auto xv = random_values(2 * 5 * 4, 71);
  Tensor x = upload(xv, {2, 5, 4});
  Tensor v = x.slice(1, 1, 4);  // [2, 3, 4], strides [20, 4, 1]
  ASSERT_FALSE(v.is_contiguous());
  Tensor c = ops::contiguous(v, s);
  EXPECT_TRUE(c.is_contiguous());
  EXPECT_EQ(c.shape(), (Shape{2, 3, 4}));
  EXPECT_NE(c.storage(), x.storage());
  std::vector<float> want;
  for (int i = 0; i < 2; ++i)
    for (int j = 1; j < 4; ++j)
      for (int k = 0; k < 4; ++k) want.push_back(xv[i * 20 + j * 4 + k]);
  EXPECT_EQ(c.to_vector(s), want);
  // Innermost slice: every run is shorter than a row.
  Tensor cols = x.slice(2, 1, 3);
  std::vector<float> want2;
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 5; ++j)
      for (int k = 1; k < 3; ++k) want2.push_back(xv[i * 20 + j * 4 + k]);
  EXPECT_EQ(ops::contiguous(cols, s).to_vector(s), want2);
  // A contiguous input is copied, not aliased.
  Tensor copy = ops::contiguous(x, s);
  EXPECT_NE(copy.data(), x.data());
  EXPECT_EQ(copy.to_vector(s), xv);
  EXPECT_TRUE(throws_error([&] { ops::contiguous(Tensor(), s); }, ErrorCode::kInvalidArgument,
                           {"[contiguous]", "null"}));
}

TEST_F(Ops, OpsOnHalfTypesRoundTheF32Result) {
  // On the CPU, f16 / bf16 are computed in f32 and rounded on store.
  auto xv = random_values(64, 81);
  Tensor x = upload(xv, {8, 8});
  for (DType dt : {DType::kF16, DType::kBF16}) {
    Tensor xh = ops::cast(x, dt, s);
    std::vector<float> xr = xh.to_vector(s);  // the rounded inputs
    std::vector<float> out = ops::relu(ops::add(xh, xh, s), s).to_vector(s);
    for (size_t i = 0; i < xv.size(); ++i) {
      const float f = std::max(xr[i] + xr[i], 0.0f);
      const float want = dt == DType::kF16 ? f16_to_f32(f32_to_f16(f)) : bf16_to_f32(f32_to_bf16(f));
      ASSERT_EQ(out[i], want) << to_string(dt) << " " << i;
    }
  }
}

TEST_F(Ops, EmptyInputsGiveEmptyOutputs) {
  Tensor x = Tensor::empty({0, 8}, DType::kF32, s);
  Tensor w = upload(random_values(16, 1), {2, 8});
  EXPECT_EQ(ops::linear(x, w, Tensor(), Activation::kRelu, s).shape(), (Shape{0, 2}));
  EXPECT_EQ(ops::softmax(x, s).numel(), 0);
  EXPECT_EQ(ops::relu(x, s).numel(), 0);
  EXPECT_EQ(ops::cast(x, DType::kF16, s).numel(), 0);
  EXPECT_EQ(ops::contiguous(x, s).numel(), 0);
}

}  // namespace
}  // namespace fanin
