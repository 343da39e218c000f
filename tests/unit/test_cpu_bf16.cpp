// The CPU's bf16 linear layers (Note [CPU bf16 matmul] in docs/design.md):
// gemm_nt_bf16 against a double reference of the bf16-rounded inputs, on
// oneDNN's bf16 kernels where the CPU has them and on the emulated path
// elsewhere; ops::linear with bf16 weights and f32 activations; the choice
// of the native kernels where the CPU's features allow them; many threads
// sharing the primitives. The encoder's parity in bf16 is
// SentenceEncoderParity.CpuBf16LinearLayersMatchSentenceTransformers (ctest
// runs it a second time with FANIN_CPU_MATMUL=bf16: cpu_bf16_matmul).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "backends/cpu/gemm.h"
#include "fanin/device.h"
#include "fanin/error.h"
#include "fanin/ops.h"
#include "fanin/stream.h"
#include "fanin/tensor.h"
#include "test_helpers.h"

namespace fanin {
namespace {

namespace cpu = backend::cpu;

double rounded(float v) { return static_cast<double>(bf16_to_f32(f32_to_bf16(v))); }

std::vector<uint16_t> to_bf16(const std::vector<float>& v) {
  std::vector<uint16_t> h(v.size());
  for (size_t i = 0; i < v.size(); ++i) h[i] = f32_to_bf16(v[i]);
  return h;
}

// y[i,j] against sum_l bf16(x[i,l]) * w[j,l] in double.
void expect_matches_rounded_reference(int64_t m, int64_t n, int64_t k, const std::vector<float>& x,
                                      const std::vector<uint16_t>& w, const std::vector<float>& y) {
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double ref = 0, mag = 0;
      for (int64_t l = 0; l < k; ++l) {
        const double p = rounded(x[i * k + l]) * bf16_to_f32(w[j * k + l]);
        ref += p;
        mag += std::abs(p);
      }
      ASSERT_NEAR(y[i * n + j], ref, 1e-5 * mag + 1e-6)
          << cpu::bf16_matmul_library() << " [" << m << "x" << n << "x" << k << "] at " << i
          << "," << j;
    }
}

TEST(CpuBf16Matmul, MatchesADoubleReferenceOfTheRoundedInputs) {
  // Odd sizes, one row, a chunk and a padded tail (300 = 256 + 44), the
  // encoder's widths.
  const int64_t shapes[][3] = {{37, 53, 29}, {1, 17, 33}, {300, 384, 384}, {19, 1536, 384},
                               {513, 64, 96}};
  for (const auto& sh : shapes) {
    const int64_t m = sh[0], n = sh[1], k = sh[2];
    std::vector<float> x = testing::random_values(m * k, 5);
    std::vector<uint16_t> w = to_bf16(testing::random_values(n * k, 6));
    std::vector<float> y(m * n, -1.0f);
    cpu::gemm_nt_bf16(m, n, k, x.data(), w.data(), y.data());
    expect_matches_rounded_reference(m, n, k, x, w, y);
  }
}

TEST(CpuBf16Matmul, OpsLinearTakesBf16WeightsWithF32Activations) {
  const int64_t m = 45, n = 70, k = 40;
  std::vector<float> a = testing::random_values(m * k, 7), bias = testing::random_values(n, 8);
  std::vector<uint16_t> wb = to_bf16(testing::random_values(n * k, 9));
  std::vector<float> c(m * n);
  Device& d = Device::get("cpu");
  StreamLease lease = d.stream_pool().acquire();
  Stream& s = lease.stream();
  {
    Encoder e = s.command_buffer().begin_encoding();
    Tensor x = Tensor::from_host(a.data(), a.size() * 4, {m, k}, DType::kF32, s);
    Tensor w = Tensor::from_host(wb.data(), wb.size() * 2, {n, k}, DType::kBF16, s);
    Tensor b = Tensor::from_host(bias.data(), bias.size() * 4, {n}, DType::kF32, s);
    Tensor y = ops::linear(x, w, b, Activation::kRelu, s);
    EXPECT_EQ(y.dtype(), DType::kF32);
    y.copy_to_host(c.data(), c.size() * 4, s);
    // Only bf16 weights with f32 activations mix; f16 weights do not.
    std::vector<uint16_t> wh(wb.size(), 0);
    Tensor w16 = Tensor::from_host(wh.data(), wh.size() * 2, {n, k}, DType::kF16, s);
    try {
      ops::linear(x, w16, b, Activation::kNone, s);
      ADD_FAILURE() << "f16 weights with f32 activations were accepted";
    } catch (const Error& err) {
      EXPECT_EQ(err.code(), ErrorCode::kInvalidArgument) << err.what();
    }
  }
  s.synchronize();
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double ref = bias[j], mag = std::abs(bias[j]);
      for (int64_t l = 0; l < k; ++l) {
        const double p = rounded(a[i * k + l]) * bf16_to_f32(wb[j * k + l]);
        ref += p;
        mag += std::abs(p);
      }
      ASSERT_NEAR(c[i * n + j], std::max(ref, 0.0), 1e-5 * mag + 1e-6) << i << "," << j;
    }
}

// Only the CPU mixes: on a GPU, bf16 weights with f32 x stay an error.
TEST(CpuBf16Matmul, OtherBackendsRejectBf16WeightsWithF32Activations) {
  if (!Device::is_available("cuda")) GTEST_SKIP() << "no cuda device: runs on the GPU machine";
  Device& d = Device::get("cuda");
  StreamLease lease = d.stream_pool().acquire();
  Stream& s = lease.stream();
  std::vector<float> a = testing::random_values(6, 1);
  std::vector<uint16_t> wb = to_bf16(testing::random_values(12, 2));
  Encoder e = s.command_buffer().begin_encoding();
  Tensor x = Tensor::from_host(a.data(), a.size() * 4, {2, 3}, DType::kF32, s);
  Tensor w = Tensor::from_host(wb.data(), wb.size() * 2, {4, 3}, DType::kBF16, s);
  try {
    ops::linear(x, w, Tensor(), Activation::kNone, s);
    ADD_FAILURE() << "cuda accepted bf16 weights with f32 activations";
  } catch (const Error& err) {
    EXPECT_EQ(err.code(), ErrorCode::kInvalidArgument) << err.what();
    EXPECT_NE(std::string(err.what()).find("weight has dtype bf16"), std::string::npos)
        << err.what();
  }
}

bool cpu_flag(const std::string& flag) {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("flags", 0) == 0) return (line + " ").find(" " + flag + " ") != std::string::npos;
  return false;
}

// Where the CPU has bf16 instructions (AVX512-BF16 or AMX-BF16, by GCC's
// cpuid reader and the kernel's flags) and fanin runs oneDNN, the bf16
// matmul must be oneDNN's native kernel and, unless FANIN_CPU_MATMUL says
// otherwise, the linear layers' default; elsewhere never the default.
TEST(CpuKernelSelection, Bf16MatmulIsNativeWhereTheCpuHasBf16) {
  __builtin_cpu_init();
  const bool has_bf16 = __builtin_cpu_supports("avx512bf16") || cpu_flag("amx_bf16");
  const char* env = std::getenv("FANIN_CPU_MATMUL");
  const bool forced = env != nullptr && std::strcmp(env, "auto") != 0;
  if (!has_bf16) {
    EXPECT_FALSE(cpu::bf16_matmul_native()) << cpu::bf16_matmul_library();
    if (!forced) EXPECT_EQ(cpu::cpu_matmul(), cpu::CpuMatmul::kF32);
    GTEST_SKIP() << "this CPU has no bf16 instructions: the linear layers run in "
                 << cpu::to_string(cpu::cpu_matmul());
  }
  if (!cpu::gemm_uses_onednn())
    GTEST_SKIP() << "built without oneDNN (or FANIN_CPU_GEMM=openblas): " << cpu::gemm_library();
  EXPECT_TRUE(cpu::bf16_matmul_native()) << cpu::bf16_matmul_library();
  EXPECT_EQ(cpu::bf16_matmul_library().find("ref"), std::string::npos)
      << cpu::bf16_matmul_library();
  if (!forced) EXPECT_EQ(cpu::cpu_matmul(), cpu::CpuMatmul::kBf16);
  std::printf("[bf16] %s, linear layers in %s\n", cpu::bf16_matmul_library().c_str(),
              cpu::to_string(cpu::cpu_matmul()));
}

// Worker threads share the primitives (made once, under a lock) and each
// has its own scratch: results are the single-thread ones, bit for bit.
TEST(CpuBf16Matmul, ManyThreadsGetTheSingleThreadResults) {
  const int64_t n = 384, k = 384;
  const int64_t rows[] = {20, 256, 300, 641, 7, 100, 33, 512};
  std::vector<uint16_t> w = to_bf16(testing::random_values(n * k, 10));
  std::vector<std::vector<float>> xs, want;
  for (int t = 0; t < 8; ++t) {
    xs.push_back(testing::random_values(rows[t] * k, 20 + t));
    want.emplace_back(rows[t] * n);
    cpu::gemm_nt_bf16(rows[t], n, k, xs[t].data(), w.data(), want[t].data());
  }
  std::vector<std::vector<float>> got(8);
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&, t] {
      got[t].assign(rows[t] * n, 0.0f);
      for (int rep = 0; rep < 3; ++rep)
        cpu::gemm_nt_bf16(rows[t], n, k, xs[t].data(), w.data(), got[t].data());
    });
  for (auto& th : threads) th.join();
  for (int t = 0; t < 8; ++t)
    EXPECT_EQ(std::memcmp(got[t].data(), want[t].data(), got[t].size() * 4), 0) << "thread " << t;
}

}  // namespace
}  // namespace fanin
