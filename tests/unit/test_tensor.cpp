// Tensor: dtypes, shapes, views, host transfers, f16/bf16 conversions.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "fanin/fanin.h"
#include "test_helpers.h"

namespace fanin {
namespace {

using fanin::testing::random_values;
using fanin::testing::throws_error;

std::vector<float> iota(int n, float start = 1.0f) {
  std::vector<float> v(n);
  for (int i = 0; i < n; ++i) v[i] = start + static_cast<float>(i);
  return v;
}

TEST(DType, NamesSizesAndParsing) {
  EXPECT_STREQ(to_string(DType::kF32), "f32");
  EXPECT_STREQ(to_string(DType::kF16), "f16");
  EXPECT_STREQ(to_string(DType::kBF16), "bf16");
  EXPECT_STREQ(to_string(DType::kI32), "i32");
  EXPECT_EQ(dtype_size(DType::kF32), 4u);
  EXPECT_EQ(dtype_size(DType::kF16), 2u);
  EXPECT_EQ(dtype_size(DType::kBF16), 2u);
  EXPECT_EQ(dtype_size(DType::kI32), 4u);
  EXPECT_EQ(parse_dtype("float32"), DType::kF32);
  EXPECT_EQ(parse_dtype("f16"), DType::kF16);
  EXPECT_EQ(parse_dtype("bfloat16"), DType::kBF16);
  EXPECT_EQ(parse_dtype("i32"), DType::kI32);
  EXPECT_TRUE(throws_error([] { parse_dtype("f64"); }, ErrorCode::kInvalidArgument,
                           {"[parse_dtype]", "'f64'"}));
}

TEST(Shape, ToStringAndCheckedNumel) {
  EXPECT_EQ(to_string(Shape{}), "[]");
  EXPECT_EQ(to_string(Shape{2, 3}), "[2, 3]");
  EXPECT_EQ(checked_numel({2, 3, 4}, "op"), 24);
  EXPECT_EQ(checked_numel({}, "op"), 1);
  EXPECT_EQ(checked_numel({5, 0}, "op"), 0);
  EXPECT_TRUE(throws_error([] { checked_numel({3, -1}, "myop"); }, ErrorCode::kInvalidArgument,
                           {"[myop]", "negative size", "[3, -1]"}));
  EXPECT_TRUE(throws_error([] { checked_numel({int64_t{1} << 40, int64_t{1} << 40}, "myop"); },
                           ErrorCode::kInvalidArgument, {"[myop]", "too many elements"}));
}

TEST(Tensor, NullTensor) {
  Tensor t;
  EXPECT_FALSE(t.defined());
  EXPECT_EQ(t.data(), nullptr);
  Stream s(Device::cpu());
  EXPECT_TRUE(throws_error([&] { t.device(); }, ErrorCode::kInvalidArgument, {"null"}));
  EXPECT_TRUE(throws_error([&] { t.to_vector(s); }, ErrorCode::kInvalidArgument,
                           {"[Tensor::to_vector]", "null"}));
  EXPECT_TRUE(throws_error([&] { t.reshape({1}); }, ErrorCode::kInvalidArgument, {"[reshape]"}));
  EXPECT_TRUE(throws_error([&] { t.slice(0, 0, 1); }, ErrorCode::kInvalidArgument, {"[slice]"}));
  float f = 0;
  EXPECT_TRUE(throws_error([&] { t.copy_from_host(&f, 4, s); }, ErrorCode::kInvalidArgument,
                           {"[Tensor::copy_from_host]", "null"}));
}

TEST(Tensor, ShapeStridesAndDims) {
  Stream s(Device::cpu());
  Tensor t = Tensor::empty({2, 3, 4}, DType::kF16, s);
  EXPECT_TRUE(t.defined());
  EXPECT_EQ(t.shape(), (Shape{2, 3, 4}));
  EXPECT_EQ(t.strides(), (std::vector<int64_t>{12, 4, 1}));
  EXPECT_EQ(t.ndim(), 3);
  EXPECT_EQ(t.numel(), 24);
  EXPECT_EQ(t.nbytes(), 48u);
  EXPECT_EQ(t.dtype(), DType::kF16);
  EXPECT_EQ(&t.device(), &Device::cpu());
  EXPECT_TRUE(t.is_contiguous());
  EXPECT_EQ(t.dim(0), 2);
  EXPECT_EQ(t.dim(-1), 4);
  EXPECT_EQ(t.dim(-3), 2);
  EXPECT_TRUE(throws_error([&] { t.dim(3); }, ErrorCode::kInvalidArgument,
                           {"[Tensor::dim]", "dimension 3", "[2, 3, 4]"}));
  EXPECT_TRUE(throws_error([&] { t.dim(-4); }, ErrorCode::kInvalidArgument, {"dimension -4"}));
  // Scalars and empty tensors.
  Tensor scalar = Tensor::empty({}, DType::kF32, s);
  EXPECT_EQ(scalar.numel(), 1);
  EXPECT_EQ(scalar.ndim(), 0);
  Tensor none = Tensor::empty({0, 5}, DType::kF32, s);
  EXPECT_EQ(none.numel(), 0);
  EXPECT_TRUE(none.to_vector(s).empty());
}

TEST(Tensor, FromHostChecksTheSize) {
  Stream s(Device::cpu());
  std::vector<float> v = iota(6);
  EXPECT_TRUE(throws_error(
      [&] { Tensor::from_host(v.data(), 20, {2, 3}, DType::kF32, s); },
      ErrorCode::kInvalidArgument, {"[Tensor::from_host]", "got 20 bytes", "[2, 3]", "needs 24"}));
  EXPECT_TRUE(throws_error([&] { Tensor::from_vector(v, {7}, s); }, ErrorCode::kInvalidArgument,
                           {"got 24 bytes", "needs 28"}));
  EXPECT_TRUE(throws_error([&] { Tensor::from_host(nullptr, 24, {6}, DType::kF32, s); },
                           ErrorCode::kInvalidArgument, {"null"}));
  Tensor t = Tensor::from_vector(v, {2, 3}, s);
  EXPECT_EQ(t.to_vector(s), v);
}

TEST(Tensor, FromHostCopiesAtOnce) {
  Stream s(Device::cpu());
  std::vector<float> v = iota(1000);
  Tensor t = Tensor::from_vector(v, {1000}, s);
  std::fill(v.begin(), v.end(), -1.0f);  // the source may be reused at once
  EXPECT_EQ(t.to_vector(s), iota(1000));
}

TEST(Tensor, HostCopiesOfOtherDtypes) {
  Stream s(Device::cpu());
  std::vector<int32_t> ints{-3, 0, 7, 1 << 20};
  Tensor i = Tensor::from_host(ints.data(), 16, {4}, DType::kI32, s);
  EXPECT_EQ(i.to_vector(s), (std::vector<float>{-3, 0, 7, 1 << 20}));
  std::vector<uint16_t> halves{f32_to_f16(1.5f), f32_to_f16(-2.0f)};
  Tensor h = Tensor::from_host(halves.data(), 4, {2}, DType::kF16, s);
  EXPECT_EQ(h.to_vector(s), (std::vector<float>{1.5f, -2.0f}));
  std::vector<uint16_t> bh{f32_to_bf16(3.0f), f32_to_bf16(-0.5f)};
  Tensor b = Tensor::from_host(bh.data(), 4, {2}, DType::kBF16, s);
  EXPECT_EQ(b.to_vector(s), (std::vector<float>{3.0f, -0.5f}));
  std::vector<uint16_t> back(2);
  b.copy_to_host(back.data(), 4, s);
  s.synchronize();
  EXPECT_EQ(back, bh);
  EXPECT_TRUE(throws_error([&] { b.copy_to_host(back.data(), 2, s); },
                           ErrorCode::kInvalidArgument,
                           {"[Tensor::copy_to_host]", "destination has 2 bytes", "tensor has 4"}));
  EXPECT_TRUE(throws_error([&] { b.copy_from_host(back.data(), 6, s); },
                           ErrorCode::kInvalidArgument,
                           {"[Tensor::copy_from_host]", "source has 6 bytes", "tensor has 4"}));
}

TEST(Tensor, CopyFromHostOverwrites) {
  Stream s(Device::cpu());
  Tensor t = Tensor::empty({2, 2}, DType::kF32, s);
  std::vector<float> v{9, 8, 7, 6};
  t.copy_from_host(v.data(), 16, s);
  EXPECT_EQ(t.to_vector(s), v);
}

TEST(Tensor, Reshape) {
  Stream s(Device::cpu());
  Tensor t = Tensor::from_vector(iota(24), {2, 3, 4}, s);
  Tensor r = t.reshape({6, 4});
  EXPECT_EQ(r.shape(), (Shape{6, 4}));
  EXPECT_EQ(r.strides(), (std::vector<int64_t>{4, 1}));
  EXPECT_EQ(r.data(), t.data()) << "reshape copied";
  EXPECT_EQ(r.storage(), t.storage());
  EXPECT_EQ(t.reshape({-1}).shape(), (Shape{24}));
  EXPECT_EQ(t.reshape({4, -1}).shape(), (Shape{4, 6}));
  EXPECT_EQ(t.reshape({-1, 2, 3}).shape(), (Shape{4, 2, 3}));
  EXPECT_EQ(t.reshape({2, -1, 2}).to_vector(s), iota(24));
  EXPECT_TRUE(throws_error([&] { t.reshape({5, 5}); }, ErrorCode::kInvalidArgument,
                           {"[reshape]", "[2, 3, 4]", "24 elements", "[5, 5]"}));
  EXPECT_TRUE(throws_error([&] { t.reshape({-1, 5}); }, ErrorCode::kInvalidArgument,
                           {"[reshape]", "[-1, 5]"}));
  EXPECT_TRUE(throws_error([&] { t.reshape({-1, -1}); }, ErrorCode::kInvalidArgument,
                           {"more than one -1"}));
  EXPECT_TRUE(throws_error([&] { t.reshape({-3, 8}); }, ErrorCode::kInvalidArgument,
                           {"negative size", "[-3, 8]"}));
}

// Sizes whose product overflows int64 must not wrap around to the element
// count: a view with such a shape would reach far outside its storage.
TEST(Tensor, ReshapeRejectsOverflowingShapes) {
  Stream s(Device::cpu());
  Tensor t = Tensor::from_vector(iota(16), {16}, s);
  // (2^62 + 4) * 4 wraps to 16 in 64-bit arithmetic.
  EXPECT_TRUE(throws_error([&] { t.reshape({(int64_t{1} << 62) + 4, 4}); },
                           ErrorCode::kInvalidArgument, {"[reshape]"}));
  EXPECT_TRUE(throws_error([&] { t.reshape({-1, int64_t{1} << 62, 4}); },
                           ErrorCode::kInvalidArgument, {"[reshape]"}));
  EXPECT_TRUE(throws_error([&] { t.reshape({int64_t{1} << 32, int64_t{1} << 32, 16}); },
                           ErrorCode::kInvalidArgument, {"[reshape]"}));
}

TEST(Tensor, SliceViewsShareStorage) {
  Stream s(Device::cpu());
  Tensor t = Tensor::from_vector(iota(12), {4, 3}, s);
  Tensor rows = t.slice(0, 1, 3);
  EXPECT_EQ(rows.shape(), (Shape{2, 3}));
  EXPECT_EQ(rows.storage(), t.storage());
  EXPECT_EQ(static_cast<char*>(rows.data()), static_cast<char*>(t.data()) + 3 * sizeof(float));
  EXPECT_TRUE(rows.is_contiguous());
  EXPECT_EQ(rows.to_vector(s), (std::vector<float>{4, 5, 6, 7, 8, 9}));
  // A view of a view; negative dimension.
  EXPECT_EQ(rows.slice(-2, 1, 2).to_vector(s), (std::vector<float>{7, 8, 9}));
  // Writes through a view land in the shared storage.
  std::vector<float> w{-1, -2, -3};
  t.slice(0, 2, 3).copy_from_host(w.data(), 12, s);
  EXPECT_EQ(t.to_vector(s), (std::vector<float>{1, 2, 3, 4, 5, 6, -1, -2, -3, 10, 11, 12}));
  // A column slice is a strided view: not contiguous.
  Tensor cols = t.slice(1, 1, 3);
  EXPECT_EQ(cols.shape(), (Shape{4, 2}));
  EXPECT_EQ(cols.strides(), (std::vector<int64_t>{3, 1}));
  EXPECT_FALSE(cols.is_contiguous());
  EXPECT_TRUE(throws_error([&] { cols.to_vector(s); }, ErrorCode::kInvalidArgument,
                           {"not contiguous"}));
  EXPECT_TRUE(throws_error([&] { cols.reshape({8}); }, ErrorCode::kInvalidArgument,
                           {"[reshape]", "not contiguous"}));
  EXPECT_TRUE(throws_error([&] { ops::relu(cols, s); }, ErrorCode::kInvalidArgument,
                           {"[relu]", "not contiguous", "ops::contiguous"}));
  EXPECT_EQ(ops::contiguous(cols, s).to_vector(s), (std::vector<float>{2, 3, 5, 6, -2, -3, 11, 12}));
  // Bounds.
  EXPECT_TRUE(throws_error([&] { t.slice(0, 2, 5); }, ErrorCode::kInvalidArgument,
                           {"[slice]", "[2, 5)", "size 4"}));
  EXPECT_TRUE(throws_error([&] { t.slice(0, 3, 2); }, ErrorCode::kInvalidArgument, {"[3, 2)"}));
  EXPECT_TRUE(throws_error([&] { t.slice(2, 0, 1); }, ErrorCode::kInvalidArgument,
                           {"dimension 2"}));
  EXPECT_EQ(t.slice(0, 2, 2).numel(), 0);
}

TEST(Tensor, DeviceWideStorage) {
  Stream s(Device::cpu());
  Tensor w = Tensor::empty_device_wide({3}, DType::kF32, Device::cpu());
  EXPECT_EQ(w.storage()->stream_id(), 0u);
  std::vector<float> v{1, 2, 3};
  w.copy_from_host(v.data(), 12, s);
  EXPECT_EQ(w.to_vector(s), v);
  Stream other(Device::cpu());
  EXPECT_EQ(w.to_vector(other), v);
  EXPECT_TRUE(throws_error([&] { Tensor::empty_device_wide({-1}, DType::kF32, Device::cpu()); },
                           ErrorCode::kInvalidArgument, {"[Tensor::empty_device_wide]"}));
}

// ---- f16 / bf16 conversions ----

uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
float from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Independent references: the value of a half from its fields, and the
// round-to-nearest-even of a float to half / bfloat16 by comparing the two
// neighbours in double precision.
double half_value(uint16_t h) {
  const int sign = (h >> 15) ? -1 : 1;
  const int exp = (h >> 10) & 0x1f;
  const int mant = h & 0x3ff;
  if (exp == 0x1f) return mant ? std::nan("") : sign * INFINITY;
  if (exp == 0) return sign * std::ldexp(mant, -24);
  return sign * std::ldexp(1024 + mant, exp - 25);
}

uint16_t ref_f32_to_f16(float f) {
  if (std::isnan(f)) return 0x7e00;
  const uint16_t sign = std::signbit(f) ? 0x8000 : 0;
  const double a = std::fabs(static_cast<double>(f));
  // Largest finite half 65504; halfway to the next (65536) rounds to inf.
  if (a >= 65520.0) return sign | 0x7c00;
  // Binary search the largest non-negative half <= a.
  uint16_t lo = 0, hi = 0x7bff;
  while (lo < hi) {
    uint16_t mid = static_cast<uint16_t>((lo + hi + 1) / 2);
    if (half_value(mid) <= a) lo = mid;
    else hi = static_cast<uint16_t>(mid - 1);
  }
  if (half_value(lo) == a) return sign | lo;
  const double down = a - half_value(lo), up = half_value(lo + 1) - a;
  uint16_t r = lo;
  if (up < down || (up == down && (lo & 1))) r = lo + 1;
  return sign | r;
}

uint16_t ref_f32_to_bf16(float f) {
  const uint32_t u = bits(f);
  const uint16_t lo = static_cast<uint16_t>(u >> 16);
  if ((u & 0xffff) == 0) return lo;
  const double x = f;
  const double down = std::fabs(x - static_cast<double>(from_bits(uint32_t{lo} << 16)));
  const double up = std::fabs(static_cast<double>(from_bits(uint32_t(lo + 1) << 16)) - x);
  if (up < down || (up == down && (lo & 1))) return static_cast<uint16_t>(lo + 1);
  return lo;
}

TEST(HalfConversion, EveryHalfRoundTrips) {
  for (uint32_t h = 0; h <= 0xffff; ++h) {
    const float f = f16_to_f32(static_cast<uint16_t>(h));
    const double want = half_value(static_cast<uint16_t>(h));
    if (std::isnan(want)) {
      ASSERT_TRUE(std::isnan(f)) << std::hex << h;
      ASSERT_TRUE(std::isnan(f16_to_f32(f32_to_f16(f)))) << std::hex << h;
      continue;
    }
    ASSERT_EQ(static_cast<double>(f), want) << "f16_to_f32(0x" << std::hex << h << ")";
    ASSERT_EQ(f32_to_f16(f), h) << "round trip of 0x" << std::hex << h;
  }
}

TEST(HalfConversion, SpecialValuesAndRounding) {
  EXPECT_EQ(f32_to_f16(0.0f), 0x0000);
  EXPECT_EQ(f32_to_f16(-0.0f), 0x8000);
  EXPECT_EQ(f32_to_f16(1.0f), 0x3c00);
  EXPECT_EQ(f32_to_f16(INFINITY), 0x7c00);
  EXPECT_EQ(f32_to_f16(-INFINITY), 0xfc00);
  const uint16_t nan = f32_to_f16(std::numeric_limits<float>::quiet_NaN());
  EXPECT_EQ(nan & 0x7c00, 0x7c00);
  EXPECT_NE(nan & 0x03ff, 0) << "NaN became infinity";
  EXPECT_EQ(f32_to_f16(65504.0f), 0x7bff);
  EXPECT_EQ(f32_to_f16(65519.0f), 0x7bff);
  EXPECT_EQ(f32_to_f16(65520.0f), 0x7c00) << "halfway past the largest half rounds to inf";
  EXPECT_EQ(f32_to_f16(1e10f), 0x7c00);
  // Ties go to even.
  EXPECT_EQ(f32_to_f16(1.0f + std::ldexp(1.0f, -11)), 0x3c00);
  EXPECT_EQ(f32_to_f16(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);
  EXPECT_EQ(f32_to_f16(1.0f + std::ldexp(1.0f, -11) + std::ldexp(1.0f, -20)), 0x3c01);
  // Subnormals.
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -24)), 0x0001);
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -25)), 0x0000) << "tie between 0 and the least subnormal";
  EXPECT_EQ(f32_to_f16(std::ldexp(1.5f, -25)), 0x0001);
  EXPECT_EQ(f32_to_f16(std::ldexp(3.0f, -25)), 0x0002) << "tie between 1 and 2 ulps";
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -14)), 0x0400) << "least normal";
  EXPECT_EQ(f32_to_f16(std::ldexp(1023.0f, -24)), 0x03ff) << "largest subnormal";
  EXPECT_EQ(f32_to_f16(-std::ldexp(5.0f, -24)), 0x8005);
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -30)), 0x0000);
  EXPECT_EQ(f16_to_f32(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(f16_to_f32(0x7c00), INFINITY);
  EXPECT_TRUE(std::isnan(f16_to_f32(0x7e00)));
}

TEST(HalfConversion, MatchesReferenceOnRandomFloats) {
  std::mt19937 rng(11);
  std::uniform_int_distribution<uint32_t> any;
  for (int i = 0; i < 200000; ++i) {
    // Random bit patterns over the half range and beyond, both signs.
    uint32_t u = any(rng);
    u = (u & 0x807fffffu) | ((100u + (u >> 23) % 50u) << 23);
    const float f = from_bits(u);
    ASSERT_EQ(f32_to_f16(f), ref_f32_to_f16(f)) << f << " bits 0x" << std::hex << u;
  }
}

TEST(BFloatConversion, RoundTripsAndRounding) {
  for (uint32_t h = 0; h <= 0xffff; ++h) {
    const float f = bf16_to_f32(static_cast<uint16_t>(h));
    ASSERT_EQ(bits(f), h << 16);
    if (std::isnan(f)) {
      ASSERT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(f)))) << std::hex << h;
    } else {
      ASSERT_EQ(f32_to_bf16(f), h) << std::hex << h;
    }
  }
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3f80);
  EXPECT_EQ(f32_to_bf16(-INFINITY), 0xff80);
  // A NaN whose payload lives only in the low bits must stay NaN.
  const float low_nan = from_bits(0x7f800001u);
  ASSERT_TRUE(std::isnan(low_nan));
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(low_nan))));
  // Ties to even, and overflow to infinity.
  EXPECT_EQ(f32_to_bf16(from_bits(0x3f808000u)), 0x3f80);
  EXPECT_EQ(f32_to_bf16(from_bits(0x3f818000u)), 0x3f82);
  EXPECT_EQ(f32_to_bf16(from_bits(0x3f808001u)), 0x3f81);
  EXPECT_EQ(f32_to_bf16(from_bits(0x7f7fffffu)), 0x7f80);
  // Subnormal floats keep their upper bits.
  EXPECT_EQ(f32_to_bf16(from_bits(0x00010000u)), 0x0001);
  std::mt19937 rng(5);
  std::uniform_int_distribution<uint32_t> any;
  for (int i = 0; i < 200000; ++i) {
    const uint32_t u = any(rng);
    const float f = from_bits(u);
    if (std::isnan(f) || (u & 0x7fffffffu) >= 0x7f7f8000u) continue;  // rounds to inf: below
    ASSERT_EQ(f32_to_bf16(f), ref_f32_to_bf16(f)) << "bits 0x" << std::hex << u;
  }
}

TEST(Tensor, HalfTensorsRoundTripThroughCast) {
  Stream s(Device::cpu());
  std::vector<float> v = random_values(512, 3, -100.0f, 100.0f);
  v.push_back(65520.0f);
  v.push_back(std::ldexp(1.0f, -25));
  Tensor x = Tensor::from_vector(v, {static_cast<int64_t>(v.size())}, s);
  std::vector<float> h = ops::cast(x, DType::kF16, s).to_vector(s);
  std::vector<float> b = ops::cast(x, DType::kBF16, s).to_vector(s);
  for (size_t i = 0; i < v.size(); ++i) {
    EXPECT_EQ(bits(h[i]), bits(f16_to_f32(ref_f32_to_f16(v[i])))) << v[i];
    EXPECT_EQ(bits(b[i]), bits(bf16_to_f32(ref_f32_to_bf16(v[i])))) << v[i];
  }
}

}  // namespace
}  // namespace fanin
