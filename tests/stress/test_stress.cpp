// Stress tests of the concurrency contract, meant to run under
// ThreadSanitizer: many threads leasing streams from a small pool, encoding
// ops, allocating and freeing, recording events and making other streams
// wait, and waiting on the host, with the invariants checked as they go:
// - no stream slot is held by two leases at once,
// - no memory block is handed out twice at once,
// - every result is right (stream order, event waits and stream-ordered
//   reuse all hold), and
// - the allocator's counts balance at the end.
//
// FANIN_STRESS_ITERS sets the iterations per thread (default below, sized
// for well under a minute under TSan on 2 cores); FANIN_CI_LONG=1 in .ci/run
// sets it to 20000.
#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <cstdlib>
#include <latch>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include "fanin/fanin.h"

namespace fanin {
namespace {

int iterations(int fallback) {
  if (const char* env = std::getenv("FANIN_STRESS_ITERS")) {
    const int n = std::atoi(env);
    if (n > 0) return n;
  }
  return fallback;
}

// Pointers handed out and not yet freed, across all threads.
class LiveBlocks {
 public:
  // False when `p` is already live: the allocator handed it out twice.
  bool add(const void* p) {
    std::lock_guard<std::mutex> lock(mu_);
    return live_.insert(p).second;
  }
  void remove(const void* p) {
    std::lock_guard<std::mutex> lock(mu_);
    live_.erase(p);
  }
  size_t size() const {
    std::lock_guard<std::mutex> lock(mu_);
    return live_.size();
  }

 private:
  mutable std::mutex mu_;  // guards live_
  std::unordered_set<const void*> live_;
};

// Holders per pool slot: each must be 0 or 1 at every moment.
template <size_t N>
struct SlotHolders {
  std::array<std::atomic<int>, N> count{};
  std::atomic<int> violations{0};
  void take(int slot) {
    if (count[slot].fetch_add(1) != 0) ++violations;
  }
  void give(int slot) {
    if (count[slot].fetch_sub(1) != 1) ++violations;
  }
};

constexpr int64_t kRows = 4, kCols = 16;

// Small integers, so every result below is exact in f32.
float weight(int64_t j, int64_t k) { return static_cast<float>((j * 3 + k * 5) % 5 - 2); }
float bias(int64_t j) { return static_cast<float>(j % 3 - 1); }
float input(int t, int i, int64_t k) { return static_cast<float>((t * 131 + i * 17 + k * 7) % 17 - 8); }

// 2 * relu(x W^T + b) for thread t's iteration i.
std::vector<float> expected(int t, int i) {
  std::vector<float> out(kRows * kCols);
  for (int64_t r = 0; r < kRows; ++r)
    for (int64_t j = 0; j < kCols; ++j) {
      float acc = bias(j);
      for (int64_t k = 0; k < kCols; ++k) acc += input(t, i + static_cast<int>(r), k) * weight(j, k);
      out[r * kCols + j] = 2 * std::max(acc, 0.0f);
    }
  return out;
}

std::vector<float> inputs(int t, int i) {
  std::vector<float> x(kRows * kCols);
  for (int64_t r = 0; r < kRows; ++r)
    for (int64_t k = 0; k < kCols; ++k) x[r * kCols + k] = input(t, i + static_cast<int>(r), k);
  return x;
}

// 32 threads share a pool of 8 streams. Each iteration: lease a stream,
// upload, run a linear layer with device-wide weights, allocate and free a
// raw block, record an event, give the lease back; then make the thread's
// own stream wait on that event, finish the computation there (reading the
// pooled stream's output), sometimes on a second pooled stream too, and
// check the result on the host.
TEST(Stress, LeasesEncodingAllocationAndEvents) {
  constexpr int kThreads = 32;
  constexpr int kSlots = 8;
  const int iters = iterations(1000);
  Device& cpu = Device::cpu();
  Allocator& alloc = cpu.allocator();

  PoolOptions opts;
  opts.slots = kSlots;
  opts.acquire_timeout = std::chrono::seconds(120);
  StreamPool pool(cpu, opts);

  Tensor w, b;
  {
    Stream setup(cpu);
    std::vector<float> wv(kCols * kCols), bv(kCols);
    for (int64_t j = 0; j < kCols; ++j) {
      bv[j] = bias(j);
      for (int64_t k = 0; k < kCols; ++k) wv[j * kCols + k] = weight(j, k);
    }
    w = Tensor::empty_device_wide({kCols, kCols}, DType::kF32, cpu);
    b = Tensor::empty_device_wide({kCols}, DType::kF32, cpu);
    w.copy_from_host(wv.data(), wv.size() * 4, setup);
    b.copy_from_host(bv.data(), bv.size() * 4, setup);
    setup.synchronize();
  }
  const size_t baseline = alloc.stats().in_use_bytes;

  LiveBlocks live;
  SlotHolders<kSlots> holders;
  std::atomic<int> duplicates{0}, wrong{0}, errors{0}, second_leases{0};
  std::latch start(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      try {
        Stream own(cpu);
        Event ev(cpu);
        start.arrive_and_wait();
        auto track = [&](const void* p) {
          if (!live.add(p)) ++duplicates;
        };
        for (int i = 0; i < iters; ++i) {
          Tensor x, y;
          {
            StreamLease lease = pool.acquire();
            holders.take(lease.slot());
            Stream& s = lease.stream();
            x = Tensor::from_vector(inputs(t, i), {kRows, kCols}, s);
            track(x.data());
            y = ops::linear(x, w, b, Activation::kRelu, s);
            track(y.data());
            Block* raw = alloc.allocate(static_cast<size_t>(64 * (1 + (i + t) % 40)), s);
            track(raw->ptr);
            ev.record(s);
            if (i % 7 == 3) ev.synchronize();  // a host wait
            live.remove(raw->ptr);
            alloc.free(raw);
            holders.give(lease.slot());
          }  // lease returned; s's work may still be running
          own.wait(ev);
          Tensor z = ops::add(y, y, own);  // reads y, written on the pooled stream
          track(z.data());
          std::optional<Tensor> z2;
          if (i % 5 == 0) {
            // A second stream, if one is free, computes the same from y too.
            if (auto second = pool.try_acquire()) {
              holders.take(second->slot());
              ++second_leases;
              second->stream().wait(ev);
              z2 = ops::add(y, y, second->stream());
              track(z2->data());
              if (z2->to_vector(second->stream()) != expected(t, i)) ++wrong;
              holders.give(second->slot());
            }
          }
          if (z.to_vector(own) != expected(t, i)) ++wrong;
          for (const Tensor* d : {&x, &y, &z}) live.remove(d->data());
          if (z2) live.remove(z2->data());
          // x, y, z, z2 are freed here, y and z2 while other streams may
          // still be queued behind them.
        }
        own.synchronize();
      } catch (const std::exception& e) {
        ++errors;
        ADD_FAILURE() << "thread " << t << ": " << e.what();
      }
    });
  }
  for (auto& th : threads) th.join();

  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(holders.violations.load(), 0) << "a stream slot was held by two leases at once";
  EXPECT_EQ(duplicates.load(), 0) << "a block was handed out twice at once";
  EXPECT_EQ(wrong.load(), 0) << "wrong results";
  EXPECT_EQ(live.size(), 0u);
  EXPECT_EQ(pool.leased(), 0);
  EXPECT_GT(second_leases.load(), 0) << "no iteration ever found a second free stream";
  const AllocatorStats st = alloc.stats();
  EXPECT_EQ(st.in_use_bytes, baseline) << "allocator counts do not balance";
  EXPECT_EQ(st.reserved_bytes, st.in_use_bytes + st.cached_bytes);
  EXPECT_GE(st.peak_in_use_bytes, baseline);
  EXPECT_GT(st.cache_hits, 0u);
  RecordProperty("cross_stream_reuses", std::to_string(st.cross_stream_reuses));
}

// Many threads hammer one kThrow stream: each attempt either succeeds or
// gets ConcurrentEncoding; nothing crashes, and the stream stays usable.
TEST(Stress, OneSharedStreamThrowPolicy) {
  constexpr int kThreads = 16;
  const int iters = iterations(1000);
  Device& cpu = Device::cpu();
  Stream s(cpu);
  CommandBuffer& cb = s.command_buffer();
  Tensor x = Tensor::from_vector({1, -2, 3, -4}, {4}, s);
  s.synchronize();
  const size_t baseline = cpu.allocator().stats().in_use_bytes;

  std::atomic<int> ok{0}, conflicts{0}, other{0};
  std::latch start(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      start.arrive_and_wait();
      for (int i = 0; i < iters; ++i) {
        try {
          if ((i + t) % 3 == 0) {
            Tensor y = ops::relu(x, s);  // implicit encoder
          } else {
            Encoder enc = cb.begin_encoding();
            Tensor y = ops::add(x, x, s);
            std::this_thread::yield();  // hold the encoder while others try
            Tensor z = ops::gelu(y, s);
          }
          ++ok;
        } catch (const Error& e) {
          if (e.code() == ErrorCode::kConcurrentEncoding) {
            ++conflicts;
          } else {
            ++other;
            ADD_FAILURE() << e.what();
          }
        }
      }
    });
  }
  for (auto& th : threads) th.join();

  EXPECT_EQ(other.load(), 0);
  EXPECT_EQ(ok.load() + conflicts.load(), kThreads * iters);
  EXPECT_GT(ok.load(), 0);
  EXPECT_GT(conflicts.load(), 0) << "16 threads never collided on one command buffer";
  EXPECT_EQ(cb.conflicts(), static_cast<uint64_t>(conflicts.load()));
  EXPECT_FALSE(cb.is_encoding());
  // Still usable, from this thread.
  EXPECT_EQ(ops::relu(x, s).to_vector(s), (std::vector<float>{1, 0, 3, 0}));
  s.synchronize();
  EXPECT_EQ(cpu.allocator().stats().in_use_bytes, baseline);
}

// The same with kSerialize: every attempt succeeds, in some order, and each
// thread reads back its own result.
TEST(Stress, OneSharedStreamSerializePolicy) {
  constexpr int kThreads = 16;
  const int iters = iterations(1000) / 3 + 1;
  StreamOptions so;
  so.policy = EncodingPolicy::kSerialize;
  Stream s(Device::cpu(), so);
  std::atomic<int> wrong{0}, errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      try {
        for (int i = 0; i < iters; ++i) {
          const float v = static_cast<float>(t * 1000 + i);
          Tensor x = Tensor::from_vector({v, -v, 0.5f * v}, {3}, s);
          Tensor y = ops::relu(ops::add(x, x, s), s);
          if (y.to_vector(s) != std::vector<float>{2 * v, 0, v}) ++wrong;
        }
      } catch (const std::exception& e) {
        ++errors;
        ADD_FAILURE() << e.what();
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(s.command_buffer().conflicts(), 0u);
}

// Lease churn on a 2-slot pool: 32 threads acquire (waiting), try_acquire
// and release; a slot is never held twice and no waiter is lost.
TEST(Stress, LeaseChurnOnATinyPool) {
  constexpr int kThreads = 32;
  constexpr int kSlots = 2;
  const int iters = iterations(1000) * 2;
  PoolOptions opts;
  opts.slots = kSlots;
  opts.acquire_timeout = std::chrono::seconds(120);
  StreamPool pool(Device::cpu(), opts);
  SlotHolders<kSlots> holders;
  std::atomic<int> acquired{0}, tried{0}, errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      try {
        for (int i = 0; i < iters; ++i) {
          if ((i + t) % 4 == 0) {
            if (auto l = pool.try_acquire()) {
              holders.take(l->slot());
              ++tried;
              holders.give(l->slot());
            }
            continue;
          }
          StreamLease l = pool.acquire();
          holders.take(l.slot());
          ++acquired;
          if (i % 16 == 0) std::this_thread::yield();
          holders.give(l.slot());
          StreamLease moved = std::move(l);  // returned by the moved-to lease
        }
      } catch (const std::exception& e) {
        ++errors;
        ADD_FAILURE() << e.what();
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(holders.violations.load(), 0) << "a slot was held by two leases at once";
  EXPECT_GT(acquired.load(), 0);
  EXPECT_EQ(pool.leased(), 0);
}

// Waves of short-lived threads take thread_stream() from a pool with fewer
// slots than threads: those that find it full wait until others exit and
// return theirs.
TEST(Stress, ThreadStreamsReturnAtThreadExit) {
  constexpr int kSlots = 4;
  constexpr int kThreadsPerWave = 12;
  const int waves = std::max(2, iterations(1000) / 30);
  PoolOptions opts;
  opts.slots = kSlots;
  opts.acquire_timeout = std::chrono::seconds(120);
  StreamPool pool(Device::cpu(), opts);
  std::atomic<int> wrong{0}, errors{0};
  for (int wave = 0; wave < waves; ++wave) {
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreadsPerWave; ++t) {
      threads.emplace_back([&, t] {
        try {
          Stream& s = pool.thread_stream();
          const float v = static_cast<float>(wave * 100 + t);
          Tensor x = Tensor::from_vector({v, -v}, {2}, s);
          if (ops::relu(x, s).to_vector(s) != std::vector<float>{v, 0}) ++wrong;
          if (&pool.thread_stream() != &s) ++wrong;
        } catch (const std::exception& e) {
          ++errors;
          ADD_FAILURE() << e.what();
        }
      });
    }
    for (auto& th : threads) th.join();
    ASSERT_EQ(pool.leased(), 0) << "wave " << wave << " left leases behind";
  }
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(wrong.load(), 0);
}

}  // namespace
}  // namespace fanin
