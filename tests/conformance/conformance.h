// Shared by the conformance suites: tolerances by dtype, random inputs
// rounded to the dtype under test, and the fixture that compares an op's
// output with a double-precision reference (||out - ref|| / ||ref|| and the
// largest element error, against the dtype's tolerance).
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <ostream>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "fanin/fanin.h"

namespace fanin {

// Names the dtype in test parameters ("f16", not "4-byte object <01-00 00-00>").
inline void PrintTo(DType dtype, std::ostream* os) { *os << to_string(dtype); }

namespace conformance {

using Ref = std::vector<double>;

inline double tolerance(DType dt) {
  switch (dt) {
    case DType::kF32: return 1e-5;
    case DType::kF16: return 1e-2;
    case DType::kBF16: return 2e-2;
    case DType::kI32: return 0;
  }
  return 0;
}

inline float round_to(DType dt, float v) {
  if (dt == DType::kF16) return f16_to_f32(f32_to_f16(v));
  if (dt == DType::kBF16) return bf16_to_f32(f32_to_bf16(v));
  return v;
}

inline std::vector<float> random_rounded(size_t n, uint32_t seed, DType dt, float lo = -2.0f,
                                  float hi = 2.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = round_to(dt, dist(rng));
  return v;
}

inline std::vector<int32_t> random_ints(size_t n, uint32_t seed, int32_t lo, int32_t hi) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> dist(lo, hi);
  std::vector<int32_t> v(n);
  for (int32_t& x : v) x = dist(rng);
  return v;
}

inline int64_t clamp64(int64_t v, int64_t lo, int64_t hi) { return std::min(std::max(v, lo), hi); }

// Ragged lengths for a batch padded to `seq`: full, empty, partial, clamped.
inline std::vector<int32_t> ragged_lengths(int64_t seq) {
  const auto s = static_cast<int32_t>(seq);
  return {s, 0, s / 2 + 1, (s + 2) / 3, s + 7, -2};
}

using Param = std::tuple<std::string, DType>;

// The fixture of every conformance suite: a stream on the device under test,
// inputs of the dtype under test, and the comparison with the reference.
class ConformanceTest : public ::testing::TestWithParam<Param> {
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
  // The same for an output of the dtype under test.
  std::vector<float> expect_close(const Tensor& out, const Ref& ref, const std::string& what) {
    return expect_close(out, ref, what, dtype_);
  }

  std::string backend_;
  DType dtype_ = DType::kF32;
  Device* device_ = nullptr;
  std::unique_ptr<Stream> stream_;
  double tol_ = 0;
};

// "cpu_f32", "cuda_0_bf16".
inline std::string param_name(const ::testing::TestParamInfo<Param>& info) {
  std::string b = std::get<0>(info.param);
  for (char& ch : b)
    if (ch == ':') ch = '_';
  return b + "_" + to_string(std::get<1>(info.param));
}

// Every backend (cuda:0 skips without a device) x every float dtype.
inline auto all_backends_and_dtypes() {
  return ::testing::Combine(::testing::Values(std::string("cpu"), std::string("cuda:0")),
                            ::testing::Values(DType::kF32, DType::kF16, DType::kBF16));
}

}  // namespace conformance
}  // namespace fanin
