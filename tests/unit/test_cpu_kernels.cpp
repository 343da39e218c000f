// The CPU backend's kernel selection (Note [CPU kernel selection]), its own
// vector kernels against libm/double references, and packed sequences
// against the padded layout.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

#include "backends/cpu/gemm.h"
#include "backends/cpu/isa.h"
#include "backends/cpu/profile.h"
#include "backends/cpu/vec_kernels.h"
#include "fanin/bert.h"
#include "fanin/ops.h"
#include "test_helpers.h"


namespace fanin {
namespace {

namespace cpu = backend::cpu;

// The ISA this CPU offers, by GCC's own cpuid reader (independent of isa.cpp).
cpu::Isa expected_isa() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
      __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    return cpu::Isa::kAvx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return cpu::Isa::kAvx2Fma;
  if (__builtin_cpu_supports("avx")) return cpu::Isa::kAvx;
  return cpu::Isa::kBaseline;
}

// y[m, n] = x[m, k] w[n, k]^T through ops::linear (gemm_nt: oneDNN or OpenBLAS),
// checked against a double loop.
void expect_sgemm_correct() {
  const int64_t m = 37, n = 53, k = 29;
  std::vector<float> a = testing::random_values(m * k, 1), b = testing::random_values(n * k, 2);
  std::vector<float> c(m * n);
  Device& d = Device::get("cpu");
  StreamLease lease = d.stream_pool().acquire();
  Stream& s = lease.stream();
  {
    Encoder e = s.command_buffer().begin_encoding();
    Tensor x = Tensor::from_host(a.data(), a.size() * 4, {m, k}, DType::kF32, s);
    Tensor w = Tensor::from_host(b.data(), b.size() * 4, {n, k}, DType::kF32, s);
    ops::linear(x, w, Tensor(), Activation::kNone, s).copy_to_host(c.data(), c.size() * 4, s);
  }
  s.synchronize();
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double ref = 0;
      for (int64_t l = 0; l < k; ++l) ref += static_cast<double>(a[i * k + l]) * b[j * k + l];
      ASSERT_NEAR(c[i * n + j], ref, 1e-4) << i << "," << j;
    }
}

// y = x w^T from `gemm` against a double loop, on shapes that are not
// multiples of any vector width, one row, and the encoder's widths.
void expect_gemm_nt_correct(void (*gemm)(int64_t, int64_t, int64_t, const float*, const float*,
                                         float*),
                            const char* what) {
  const int64_t shapes[][3] = {{37, 53, 29}, {1, 17, 33}, {65, 384, 384}, {19, 1536, 384}};
  for (const auto& sh : shapes) {
    const int64_t m = sh[0], n = sh[1], k = sh[2];
    std::vector<float> a = testing::random_values(m * k, 3), b = testing::random_values(n * k, 4);
    std::vector<float> c(m * n, -1.0f);
    gemm(m, n, k, a.data(), b.data(), c.data());
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        double ref = 0, mag = 0;
        for (int64_t l = 0; l < k; ++l) {
          ref += static_cast<double>(a[i * k + l]) * b[j * k + l];
          mag += std::abs(static_cast<double>(a[i * k + l]) * b[j * k + l]);
        }
        ASSERT_NEAR(c[i * n + j], ref, 1e-5 * mag + 1e-6)
            << what << " [" << m << "x" << n << "x" << k << "] at " << i << "," << j;
      }
  }
}

TEST(CpuKernelSelection, FeaturesDecideTheIsa) {
  EXPECT_EQ(cpu::isa(), expected_isa()) << cpu::to_string(cpu::isa());
  EXPECT_EQ(cpu::vec_kernel_isa(), expected_isa()) << cpu::to_string(cpu::vec_kernel_isa());
}

// The slow path must not be taken where AVX2 is present: OpenBLAS's kernels
// are at least as wide as the CPU's features (up to AVX-512), whatever the
// CPU's model name and whatever OPENBLAS_CORETYPE the environment sets.
TEST(CpuKernelSelection, OpenBlasUsesTheWidestKernelsTheFeaturesAllow) {
  if (std::getenv("FANIN_OPENBLAS_CORETYPE") != nullptr)
    GTEST_SKIP() << "FANIN_OPENBLAS_CORETYPE forces the core";
  const cpu::BlasKernels& k = cpu::blas_kernels();
  if (!k.dynamic_arch) GTEST_SKIP() << "this OpenBLAS is built for one core (" << k.core << ")";
  EXPECT_GE(static_cast<int>(k.isa), static_cast<int>(expected_isa()))
      << "OpenBLAS core " << k.core << " (it chose " << k.detected_core << ") on a CPU with "
      << cpu::to_string(expected_isa());
  EXPECT_EQ(k.isa, cpu::isa_of_blas_core(cpu::blas_core_now()));
  const Device& d = Device::get("cpu");
  EXPECT_NE(d.description().find(k.core), std::string::npos) << d.description();
}

// A VM that hides the CPU model makes OpenBLAS fall back to Prescott (SSE3):
// force that, then the selection must raise it again, and GEMMs stay right.
TEST(CpuKernelSelection, ANarrowCoreIsRaisedByFeatures) {
  if (std::getenv("FANIN_OPENBLAS_CORETYPE") != nullptr)
    GTEST_SKIP() << "FANIN_OPENBLAS_CORETYPE forces the core";
  if (expected_isa() < cpu::Isa::kAvx) GTEST_SKIP() << "no AVX: Prescott is right here";
  const char* old = std::getenv("OPENBLAS_CORETYPE");
  const std::string saved = old ? old : "";
  if (!cpu::force_blas_core("Prescott")) GTEST_SKIP() << "this OpenBLAS is built for one core";
  ASSERT_EQ(cpu::blas_core_now(), "Prescott");
  const cpu::BlasKernels k = cpu::select_blas_kernels();
  EXPECT_EQ(k.detected_core, "Prescott");
  EXPECT_TRUE(k.reselected);
  EXPECT_EQ(k.isa, expected_isa()) << k.core;
  const char* now = std::getenv("OPENBLAS_CORETYPE");
  EXPECT_EQ(now ? std::string(now) : std::string("(unset)"), old ? saved : std::string("(unset)"))
      << "the environment is put back";
  expect_sgemm_correct();
  expect_gemm_nt_correct(cpu::gemm_nt_openblas, "OpenBLAS after the reselection");
}

// The linear layers' GEMM library (Note [CPU GEMM library]): where fanin is
// built with oneDNN, its kernels must be as wide as the CPU's features too
// (oneDNN reads cpuid itself; this fails if it ever ran its SSE4.1 or AVX
// path on an AVX2 or AVX-512 machine).
TEST(CpuKernelSelection, OneDnnUsesTheWidestKernelsTheFeaturesAllow) {
  if (!cpu::gemm_uses_onednn())
    GTEST_SKIP() << "the linear layers use OpenBLAS here (built without oneDNN, or "
                    "FANIN_CPU_GEMM=openblas): " << cpu::gemm_library();
  // dnnl_cpu_isa_t values are bit sets: each ISA's bits include the narrower ones'.
  const int need = expected_isa() == cpu::Isa::kAvx512    ? 0x27  // avx512_core
                   : expected_isa() == cpu::Isa::kAvx2Fma ? 0x7   // avx2
                   : expected_isa() == cpu::Isa::kAvx     ? 0x3   // avx
                                                          : 0x1;
  EXPECT_EQ(cpu::onednn_isa_level() & need, need)
      << cpu::gemm_library() << " on a CPU with " << cpu::to_string(expected_isa());
  const Device& d = Device::get("cpu");
  EXPECT_NE(d.description().find("GEMM oneDNN"), std::string::npos) << d.description();
  // Its results: CpuGemm.BothLibrariesMatchADoubleReference.
}

TEST(CpuGemm, BothLibrariesMatchADoubleReference) {
  expect_gemm_nt_correct(cpu::gemm_nt, cpu::gemm_library().c_str());
  expect_gemm_nt_correct(cpu::gemm_nt_openblas, "OpenBLAS");
}

TEST(CpuKernelSelection, IsaOfCoreNames) {
  EXPECT_EQ(cpu::isa_of_blas_core("SkylakeX"), cpu::Isa::kAvx512);
  EXPECT_EQ(cpu::isa_of_blas_core("cooperlake"), cpu::Isa::kAvx512);
  EXPECT_EQ(cpu::isa_of_blas_core("Zen"), cpu::Isa::kAvx2Fma);
  EXPECT_EQ(cpu::isa_of_blas_core("Haswell"), cpu::Isa::kAvx2Fma);
  EXPECT_EQ(cpu::isa_of_blas_core("Sandybridge"), cpu::Isa::kAvx);
  EXPECT_EQ(cpu::isa_of_blas_core("Prescott"), cpu::Isa::kBaseline);
  EXPECT_EQ(cpu::isa_of_blas_core("Unknown"), cpu::Isa::kBaseline);
}

TEST(CpuVecKernels, GeluMatchesTheErfForm) {
  std::vector<float> x;
  for (float v = -12.0f; v <= 12.0f; v += 0.001f) x.push_back(v);
  std::vector<float> y(x.size());
  cpu::vec::gelu(x.data(), y.data(), static_cast<int64_t>(x.size()));
  for (size_t i = 0; i < x.size(); ++i) {
    const double ref = 0.5 * x[i] * (1.0 + std::erf(x[i] / std::sqrt(2.0)));
    ASSERT_NEAR(y[i], ref, 1e-6 * std::max(1.0, std::fabs(static_cast<double>(x[i])))) << x[i];
  }
  // Fused into linear's epilogue, with a bias: the same values.
  std::vector<float> z(x.begin(), x.begin() + 1000), bias(1000, 0.0f);
  cpu::vec::bias_act(z.data(), bias.data(), 1, 1000, 2);
  for (size_t i = 0; i < z.size(); ++i) ASSERT_FLOAT_EQ(z[i], y[i]);
}

TEST(CpuVecKernels, ExpIsWithinTwoTenMillionths) {
  std::vector<float> x;
  for (float v = -87.0f; v <= 88.0f; v += 0.01f) x.push_back(v);
  std::vector<float> y(x.size());
  cpu::vec::exp(x.data(), y.data(), static_cast<int64_t>(x.size()));
  for (size_t i = 0; i < x.size(); ++i) {
    const double ref = std::exp(static_cast<double>(x[i]));
    ASSERT_LT(std::fabs(y[i] - ref) / ref, 2e-7) << x[i];
  }
}

TEST(CpuVecKernels, SoftmaxLayerNormAndAddMatchDoubleReferences) {
  for (int64_t n : {1, 7, 16, 33, 384}) {
    std::vector<float> row = testing::random_values(static_cast<size_t>(n), 3, -8.0f, 8.0f);
    std::vector<double> ref(row.begin(), row.end());
    cpu::vec::softmax(row.data(), n);
    const double mx = *std::max_element(ref.begin(), ref.end());
    double sum = 0;
    for (double& v : ref) sum += (v = std::exp(v - mx));
    for (int64_t j = 0; j < n; ++j) ASSERT_NEAR(row[j], ref[j] / sum, 1e-6) << n << " " << j;
  }
  const int64_t rows = 5, cols = 384;
  std::vector<float> x = testing::random_values(rows * cols, 4), r = testing::random_values(rows * cols, 5);
  std::vector<float> g = testing::random_values(cols, 6), b = testing::random_values(cols, 7);
  std::vector<float> out(rows * cols);
  cpu::vec::layernorm(x.data(), r.data(), g.data(), b.data(), out.data(), rows, cols, 1e-12f);
  for (int64_t i = 0; i < rows; ++i) {
    double mean = 0, var = 0;
    for (int64_t c = 0; c < cols; ++c) mean += x[i * cols + c] + r[i * cols + c];
    mean /= cols;
    for (int64_t c = 0; c < cols; ++c) {
      const double d = x[i * cols + c] + r[i * cols + c] - mean;
      var += d * d;
    }
    var /= cols;
    for (int64_t c = 0; c < cols; ++c) {
      const double ref = (x[i * cols + c] + r[i * cols + c] - mean) / std::sqrt(var + 1e-12) * g[c] + b[c];
      ASSERT_NEAR(out[i * cols + c], ref, 2e-5) << i << "," << c;
    }
  }
  std::vector<float> sum(rows * cols);
  cpu::vec::add(x.data(), g.data(), sum.data(), rows * cols, cols);
  for (int64_t i = 0; i < rows * cols; ++i) ASSERT_EQ(sum[i], x[i] + g[i % cols]);
}

// Packed sequences give the padded layout's embeddings, row for row.
TEST(CpuPackedSequences, ForwardPackedMatchesPadded) {
  Device& d = Device::get("cpu");
  BertConfig c;
  c.vocab_size = 500;
  c.hidden = 64;
  c.layers = 2;
  c.heads = 4;
  c.intermediate = 128;
  c.max_position = 64;
  auto bert = Bert::random(c, 9, d, DType::kF32);
  StreamLease lease = d.stream_pool().acquire();
  Stream& s = lease.stream();
  ASSERT_TRUE(ops::packed_sequences(d));
  const std::vector<int32_t> lens = {5, 1, 17, 9, 0, 33};
  const int64_t n = static_cast<int64_t>(lens.size()), seq = 33;
  std::mt19937 rng(3);
  std::vector<int32_t> padded(static_cast<size_t>(n * seq), 0), packed, offsets{0};
  for (int64_t b = 0; b < n; ++b) {
    for (int32_t i = 0; i < lens[b]; ++i) {
      const int32_t id = static_cast<int32_t>(rng() % 500);
      padded[b * seq + i] = id;
      packed.push_back(id);
    }
    offsets.push_back(static_cast<int32_t>(packed.size()));
  }
  std::vector<float> a(n * c.hidden), p(n * c.hidden);
  {
    Encoder e = s.command_buffer().begin_encoding();
    Tensor ids = Tensor::from_host(padded.data(), padded.size() * 4, {n, seq}, DType::kI32, s);
    Tensor len = Tensor::from_host(lens.data(), lens.size() * 4, {n}, DType::kI32, s);
    bert->forward(ids, len, s).copy_to_host(a.data(), a.size() * 4, s);
    Tensor pids = Tensor::from_host(packed.data(), packed.size() * 4,
                                    {static_cast<int64_t>(packed.size())}, DType::kI32, s);
    Tensor off = Tensor::from_host(offsets.data(), offsets.size() * 4, {n + 1}, DType::kI32, s);
    bert->forward_packed(pids, off, seq, s).copy_to_host(p.data(), p.size() * 4, s);
  }
  s.synchronize();
  for (int64_t i = 0; i < n * c.hidden; ++i) ASSERT_NEAR(a[i], p[i], 1e-5) << i;
  // The empty sequence pools to zeros in both layouts.
  for (int64_t j = 0; j < c.hidden; ++j) EXPECT_EQ(p[4 * c.hidden + j], 0.0f);
}

// Attention of sequences of different lengths against a double reference,
// padded and packed.
TEST(CpuPackedSequences, AttentionShortAndLongMatchAReference) {
  Device& d = Device::get("cpu");
  StreamLease lease = d.stream_pool().acquire();
  Stream& s = lease.stream();
  const int64_t B = 3, S = 80, H = 2, D = 8, W = 3 * H * D;
  const std::vector<int32_t> lens = {80, 20, 64};
  std::vector<float> qkv = testing::random_values(B * S * W, 11);
  std::vector<float> packed, got(B * S * H * D), got_packed;
  std::vector<int32_t> offsets{0};
  for (int64_t b = 0; b < B; ++b) {
    packed.insert(packed.end(), qkv.begin() + b * S * W, qkv.begin() + (b * S + lens[b]) * W);
    offsets.push_back(static_cast<int32_t>(packed.size() / W));
  }
  got_packed.resize(packed.size() / 3);
  {
    Encoder e = s.command_buffer().begin_encoding();
    Tensor t = Tensor::from_host(qkv.data(), qkv.size() * 4, {B, S, W}, DType::kF32, s);
    Tensor l = Tensor::from_host(lens.data(), lens.size() * 4, {B}, DType::kI32, s);
    ops::attention(t, l, static_cast<int>(H), s).copy_to_host(got.data(), got.size() * 4, s);
    Tensor tp = Tensor::from_host(packed.data(), packed.size() * 4,
                                  {static_cast<int64_t>(packed.size() / W), W}, DType::kF32, s);
    Tensor o = Tensor::from_host(offsets.data(), offsets.size() * 4, {B + 1}, DType::kI32, s);
    ops::attention_packed(tp, o, S, static_cast<int>(H), s)
        .copy_to_host(got_packed.data(), got_packed.size() * 4, s);
  }
  s.synchronize();
  const double scale = 1.0 / std::sqrt(static_cast<double>(D));
  for (int64_t b = 0; b < B; ++b) {
    const float* base = qkv.data() + b * S * W;
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < lens[b]; ++i) {
        std::vector<double> p(lens[b]);
        double mx = -1e300, sum = 0;
        for (int64_t j = 0; j < lens[b]; ++j) {
          double dot = 0;
          for (int64_t c = 0; c < D; ++c) dot += base[i * W + h * D + c] * base[j * W + H * D + h * D + c];
          mx = std::max(mx, p[j] = dot * scale);
        }
        for (double& v : p) sum += (v = std::exp(v - mx));
        for (int64_t c = 0; c < D; ++c) {
          double ref = 0;
          for (int64_t j = 0; j < lens[b]; ++j) ref += p[j] / sum * base[j * W + 2 * H * D + h * D + c];
          ASSERT_NEAR(got[(b * S + i) * H * D + h * D + c], ref, 1e-5) << b << " " << h << " " << i;
          ASSERT_NEAR(got_packed[(offsets[b] + i) * H * D + h * D + c], ref, 1e-5) << b << " packed";
        }
      }
    for (int64_t i = lens[b]; i < S; ++i)  // padded rows are zero
      for (int64_t c = 0; c < H * D; ++c) ASSERT_EQ(got[(b * S + i) * H * D + c], 0.0f);
  }
}

TEST(CpuPackedSequences, BadOffsetsAreRejectedOrClamped) {
  Device& d = Device::get("cpu");
  StreamLease lease = d.stream_pool().acquire();
  Stream& s = lease.stream();
  Tensor x = Tensor::from_host(std::vector<float>(12, 1.0f).data(), 48, {4, 3}, DType::kF32, s);
  const std::vector<float> off_f(3, 0.0f);
  Tensor bad = Tensor::from_host(off_f.data(), 12, {3}, DType::kF32, s);
  EXPECT_TRUE(testing::throws_error([&] { ops::mean_pool_packed(x, bad, 4, true, s); },
                                    ErrorCode::kInvalidArgument, {"[mean_pool_packed]", "offsets"}));
  // Offsets past the rows or going backwards read nothing outside x.
  const std::vector<int32_t> wild = {0, 99, -5};
  Tensor off = Tensor::from_host(wild.data(), 12, {3}, DType::kI32, s);
  std::vector<float> out(6, -1.0f);
  ops::mean_pool_packed(x, off, 4, false, s).copy_to_host(out.data(), 24, s);
  s.synchronize();
  for (int j = 0; j < 3; ++j) EXPECT_FLOAT_EQ(out[j], 1.0f);  // rows 0..3 (clamped to max_len 4)
  for (int j = 3; j < 6; ++j) EXPECT_FLOAT_EQ(out[j], 0.0f);  // empty
}

TEST(CpuProfile, CountsKernelsOnlyWhileOn) {
  Device& d = Device::get("cpu");
  StreamLease lease = d.stream_pool().acquire();
  Stream& s = lease.stream();
  std::vector<float> xv = testing::random_values(8 * 16, 1), wv = testing::random_values(4 * 16, 2);
  Tensor x = Tensor::from_host(xv.data(), xv.size() * 4, {8, 16}, DType::kF32, s);
  Tensor w = Tensor::from_host(wv.data(), wv.size() * 4, {4, 16}, DType::kF32, s);
  s.synchronize();
  cpu::reset_profile();
  ops::linear(x, w, Tensor(), Activation::kNone, s);
  s.synchronize();
  EXPECT_EQ(cpu::profile_snapshot().calls[static_cast<int>(cpu::ProfOp::kGemm)], 0u);
  cpu::set_profiling(true);
  ops::linear(x, w, Tensor(), Activation::kGelu, s);
  s.synchronize();
  cpu::set_profiling(false);
  const cpu::ProfSnapshot p = cpu::profile_snapshot();
  EXPECT_EQ(p.calls[static_cast<int>(cpu::ProfOp::kGemm)], 1u);
  EXPECT_EQ(p.flops[static_cast<int>(cpu::ProfOp::kGemm)], 2u * 8 * 4 * 16);
  EXPECT_EQ(p.calls[static_cast<int>(cpu::ProfOp::kGelu)], 1u);
  EXPECT_GT(cpu::sgemm_peak_gflops(64, 64, 64, 0.01), 0.0);
}

}  // namespace
}  // namespace fanin
