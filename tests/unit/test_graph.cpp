// Graph capture and replay (include/fanin/graph.h) on every available
// backend: many threads capturing at the same moment, each on its own
// stream, all succeed and replay the right numbers; capture-time tensors live
// in the graph's private pool; misuse raises InvalidArgument.
#include <gtest/gtest.h>

#include <atomic>
#include <barrier>
#include <cmath>
#include <cstring>
#include <thread>

#include "fanin/device.h"
#include "fanin/graph.h"
#include "fanin/host_buffer.h"
#include "fanin/model.h"
#include "fanin/stream.h"
#include "test_helpers.h"

namespace fanin {
namespace {

using fanin::testing::throws_error;

class GraphTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (!Device::is_available(GetParam()))
      GTEST_SKIP() << "no " << GetParam() << " device: graph tests on it run on the GPU machine";
  }
  Device& device() { return Device::get(GetParam()); }
};

std::vector<float> input_row(int seed, int n) {
  std::vector<float> v(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) v[i] = std::sin(0.37f * static_cast<float>(i + 1) + static_cast<float>(seed));
  return v;
}

double max_rel_err(const std::vector<float>& a, const std::vector<float>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    num = std::max(num, std::fabs(double(a[i]) - b[i]));
    den = std::max(den, std::fabs(double(b[i])));
  }
  return num / std::max(den, 1e-30);
}

// 16 threads capture the whole request (copy in, MLP forward, copy out) on
// their own streams at the same moment, three rounds; every capture succeeds
// and every replay matches the eager forward of the same input.
TEST_P(GraphTest, SixteenThreadsCaptureAtOnceAndReplayCorrectly) {
  constexpr int kThreads = 16, kRounds = 3, kReplays = 5;
  Device& dev = device();
  auto mlp = Mlp::random({}, 7, dev);
  const int in = 512, out = 512;
  PoolOptions po;
  po.slots = kThreads;
  StreamPool pool(dev, po);
  std::barrier sync(kThreads);
  std::atomic<int> captured{0}, correct{0}, failures{0};
  std::vector<std::string> errors(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      try {
        StreamLease lease = pool.acquire();
        Stream& s = lease.stream();
        HostBuffer hin(dev, in * sizeof(float)), hout(dev, out * sizeof(float));
        Tensor x = Tensor::empty({1, in}, DType::kF32, s);
        for (int round = 0; round < kRounds; ++round) {
          Tensor y;
          sync.arrive_and_wait();  // everyone captures now
          auto g = Graph::capture(s, [&] {
            x.copy_from_host(hin.data(), hin.size(), s);
            y = mlp->forward(x, s);
            y.copy_to_host(hout.data(), hout.size(), s);
          });
          captured.fetch_add(1);
          for (int r = 0; r < kReplays; ++r) {
            const auto row = input_row(t * 100 + round * 10 + r, in);
            std::memcpy(hin.data(), row.data(), hin.size());
            g->launch(s);
            s.synchronize();
            std::vector<float> got(hout.as<float>(), hout.as<float>() + out);
            Tensor xe = Tensor::from_vector(row, {1, in}, s);
            const auto want = mlp->forward(xe, s).to_vector(s);
            if (max_rel_err(got, want) < 1e-5) correct.fetch_add(1);
            else failures.fetch_add(1);
          }
        }
      } catch (const std::exception& e) {
        errors[t] = e.what();
        failures.fetch_add(1);
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(errors[t], "") << "thread " << t;
  EXPECT_EQ(captured.load(), kThreads * kRounds);
  EXPECT_EQ(correct.load(), kThreads * kRounds * kReplays);
  EXPECT_EQ(failures.load(), 0);
}

// Memory allocated during capture belongs to the graph: a tensor allocated
// on the same stream after the capture never shares its addresses, so
// replays cannot overwrite it.
TEST_P(GraphTest, ReplaysNeverTouchTensorsAllocatedAfterCapture) {
  Device& dev = device();
  auto mlp = Mlp::random({}, 11, dev);
  StreamLease lease = dev.stream_pool().acquire();
  Stream& s = lease.stream();
  Tensor x = Tensor::from_vector(input_row(1, 512), {1, 512}, s);
  Tensor y;
  auto g = Graph::capture(s, [&] { y = mlp->forward(x, s); });
  // Same sizes as the graph's intermediates ([1, 1024] and [1, 512]).
  std::vector<float> ones(1024, 1.0f);
  Tensor a = Tensor::from_vector(ones, {1, 1024}, s);
  Tensor b = Tensor::from_vector(std::vector<float>(ones.begin(), ones.begin() + 512), {1, 512}, s);
  for (int i = 0; i < 4; ++i) g->launch(s);
  EXPECT_EQ(a.to_vector(s), ones);
  EXPECT_EQ(b.to_vector(s), std::vector<float>(512, 1.0f));
  EXPECT_NE(y.data(), a.data());
  EXPECT_NE(y.data(), b.data());
}

TEST_P(GraphTest, LaunchOnAnotherStreamIsRejected) {
  Device& dev = device();
  StreamLease l1 = dev.stream_pool().acquire(), l2 = dev.stream_pool().acquire();
  Tensor x = Tensor::from_vector({1, 2, 3}, {3}, l1.stream());
  Tensor y;
  auto g = Graph::capture(l1.stream(), [&] { y = ops::relu(x, l1.stream()); });
  EXPECT_TRUE(throws_error([&] { g->launch(l2.stream()); }, ErrorCode::kInvalidArgument,
                           {"[Graph::launch]", "replays only there"}));
}

TEST_P(GraphTest, NestedCaptureIsRejectedAndTheStreamStaysUsable) {
  Device& dev = device();
  StreamLease lease = dev.stream_pool().acquire();
  Stream& s = lease.stream();
  Tensor x = Tensor::from_vector({-1, 2}, {2}, s);
  EXPECT_TRUE(throws_error(
      [&] {
        Graph::capture(s, [&] { Graph::capture(s, [&] { ops::relu(x, s); }); });
      },
      ErrorCode::kInvalidArgument, {"[Graph::capture]", "nest"}));
  EXPECT_EQ(ops::relu(x, s).to_vector(s), (std::vector<float>{0, 2}));
}

TEST_P(GraphTest, AThrowingEncodeDiscardsTheCapture) {
  Device& dev = device();
  StreamLease lease = dev.stream_pool().acquire();
  Stream& s = lease.stream();
  Tensor x = Tensor::from_vector({1, 2}, {2}, s);
  Tensor w = Tensor::from_vector({1, 2, 3, 4, 5, 6}, {2, 3}, s);
  EXPECT_TRUE(throws_error(
      [&] { Graph::capture(s, [&] { ops::linear(x, w, Tensor(), Activation::kNone, s); }); },
      ErrorCode::kInvalidArgument, {"[linear]"}));
  EXPECT_EQ(ops::relu(x, s).to_vector(s), (std::vector<float>{1, 2}));
}

INSTANTIATE_TEST_SUITE_P(AllBackends, GraphTest, ::testing::Values("cpu", "cuda:0"),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (char& c : n)
                             if (c == ':') c = '_';
                           return n;
                         });

}  // namespace
}  // namespace fanin
