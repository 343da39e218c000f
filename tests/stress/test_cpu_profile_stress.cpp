// The CPU profile's counters (Note [CPU profile]) under many streams at once:
// every kernel is counted once, and toggling profiling while streams run is
// race-free (run under ThreadSanitizer by the tsan preset).
#include <atomic>
#include <thread>
#include <vector>

#include "backends/cpu/profile.h"
#include "../unit/test_helpers.h"

namespace fanin {
namespace {

namespace cpu = backend::cpu;

TEST(CpuProfileStress, CountsEveryKernelOfConcurrentStreams) {
  Device& d = Device::get("cpu");
  constexpr int kThreads = 4, kOps = 40;
  std::vector<float> xv = testing::random_values(16 * 32, 1), wv = testing::random_values(8 * 32, 2);
  cpu::reset_profile();
  cpu::set_profiling(true);
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      StreamLease lease = d.stream_pool().acquire();
      Stream& s = lease.stream();
      Tensor x = Tensor::from_host(xv.data(), xv.size() * 4, {16, 32}, DType::kF32, s);
      Tensor w = Tensor::from_host(wv.data(), wv.size() * 4, {8, 32}, DType::kF32, s);
      for (int i = 0; i < kOps; ++i) ops::linear(x, w, Tensor(), Activation::kGelu, s);
      s.synchronize();
    });
  }
  // A reader snapshotting while the workers add.
  std::thread reader([&] {
    while (!stop.load()) (void)cpu::profile_snapshot();
  });
  for (auto& t : threads) t.join();
  stop = true;
  reader.join();
  cpu::set_profiling(false);
  const cpu::ProfSnapshot p = cpu::profile_snapshot();
  EXPECT_EQ(p.calls[static_cast<int>(cpu::ProfOp::kGemm)], static_cast<uint64_t>(kThreads * kOps));
  EXPECT_EQ(p.calls[static_cast<int>(cpu::ProfOp::kGelu)], static_cast<uint64_t>(kThreads * kOps));
  EXPECT_EQ(p.flops[static_cast<int>(cpu::ProfOp::kGemm)],
            static_cast<uint64_t>(kThreads * kOps) * 2 * 16 * 8 * 32);
}

TEST(CpuProfileStress, TogglingWhileStreamsRunIsSafe) {
  Device& d = Device::get("cpu");
  cpu::reset_profile();
  std::vector<float> xv = testing::random_values(8 * 16, 3), wv = testing::random_values(4 * 16, 4);
  std::atomic<bool> stop{false};
  std::thread toggler([&] {
    bool on = false;
    while (!stop.load()) cpu::set_profiling(on = !on);
  });
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t) {
    threads.emplace_back([&] {
      StreamLease lease = d.stream_pool().acquire();
      Stream& s = lease.stream();
      Tensor x = Tensor::from_host(xv.data(), xv.size() * 4, {8, 16}, DType::kF32, s);
      Tensor w = Tensor::from_host(wv.data(), wv.size() * 4, {4, 16}, DType::kF32, s);
      for (int i = 0; i < 30; ++i) {
        ops::linear(x, w, Tensor(), Activation::kNone, s);
        s.synchronize();
      }
    });
  }
  for (auto& t : threads) t.join();
  stop = true;
  toggler.join();
  cpu::set_profiling(false);
  // Off stays off: a kernel after the last toggle is not counted.
  const uint64_t before = cpu::profile_snapshot().calls[static_cast<int>(cpu::ProfOp::kGemm)];
  EXPECT_LE(before, 90u);
  StreamLease lease = d.stream_pool().acquire();
  Stream& s = lease.stream();
  Tensor x = Tensor::from_host(xv.data(), xv.size() * 4, {8, 16}, DType::kF32, s);
  Tensor w = Tensor::from_host(wv.data(), wv.size() * 4, {4, 16}, DType::kF32, s);
  ops::linear(x, w, Tensor(), Activation::kNone, s);
  s.synchronize();
  EXPECT_EQ(cpu::profile_snapshot().calls[static_cast<int>(cpu::ProfOp::kGemm)], before);
}

}  // namespace
}  // namespace fanin
