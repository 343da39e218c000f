// Allocator: caching and stream-ordered reuse (Note [Stream-ordered reuse]).
//
// Each gtest case runs in its own process under ctest, but the tests also
// pass when run together: they trim first and use sizes nothing else uses.
#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "fanin/fanin.h"
#include "test_helpers.h"

namespace fanin {
namespace {

using fanin::testing::Gate;
using fanin::testing::throws_error;

Allocator& cpu_alloc() { return Device::cpu().allocator(); }

TEST(Allocator, BlocksAreDistinctAndRounded) {
  Stream s(Device::cpu());
  Block* a = cpu_alloc().allocate(0, s);
  Block* b = cpu_alloc().allocate(1, s);
  Block* c = cpu_alloc().allocate(1000, s);
  ASSERT_NE(a, nullptr);
  EXPECT_NE(a->ptr, nullptr);
  EXPECT_NE(a->ptr, b->ptr);
  EXPECT_NE(b->ptr, c->ptr);
  EXPECT_GE(c->size, 1000u);
  EXPECT_GE(b->size, 1u);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(c->ptr) % 64, 0u) << "blocks are not 64-byte aligned";
  EXPECT_EQ(c->stream_id, s.id());
  cpu_alloc().free(a);
  cpu_alloc().free(b);
  cpu_alloc().free(c);
  cpu_alloc().free(nullptr);  // no-op
}

TEST(Allocator, SizeBeyondAnyDeviceIsInvalid) {
  Stream s(Device::cpu());
  EXPECT_TRUE(throws_error([&] { cpu_alloc().allocate((size_t{1} << 48) + 1, s); },
                           ErrorCode::kInvalidArgument,
                           {"[Allocator::allocate]", std::to_string((size_t{1} << 48) + 1)}));
  EXPECT_TRUE(throws_error([&] { cpu_alloc().allocate_device_wide(size_t{1} << 50); },
                           ErrorCode::kInvalidArgument, {"[Allocator::allocate_device_wide]"}));
}

// A block freed on S is reusable on S at once, even while S is still busy:
// S runs in order, so later work cannot overtake earlier uses.
TEST(Allocator, SameStreamReuseIsImmediate) {
  Stream s(Device::cpu());
  Gate gate(Device::cpu());
  gate.block(s);  // s is busy until the gate opens
  const size_t bytes = 3 * 1024 * 1024 + 512;
  Block* b = cpu_alloc().allocate(bytes, s);
  void* p = b->ptr;
  cpu_alloc().free(b);
  const AllocatorStats before = cpu_alloc().stats();
  Block* again = cpu_alloc().allocate(bytes, s);
  const AllocatorStats after = cpu_alloc().stats();
  EXPECT_EQ(again->ptr, p) << "same-stream reuse waited for the stream";
  EXPECT_EQ(after.cache_hits, before.cache_hits + 1);
  EXPECT_EQ(after.cross_stream_reuses, before.cross_stream_reuses);
  EXPECT_EQ(after.raw_allocations, before.raw_allocations);
  cpu_alloc().free(again);
}

// A block freed on a busy stream S is not handed to another stream T; once S
// has finished the work before the free, it is, and counts as a cross-stream
// reuse.
TEST(Allocator, CrossStreamReuseOnlyAfterTheFence) {
  Stream s(Device::cpu()), t(Device::cpu());
  cpu_alloc().trim();
  const size_t bytes = 5 * 1024 * 1024 + 256;
  void* p = nullptr;
  Block* early = nullptr;
  {
    Gate gate(Device::cpu());
    gate.block(s);
    Block* b = cpu_alloc().allocate(bytes, s);
    p = b->ptr;
    cpu_alloc().free(b);  // s's work before this free has not run
    const AllocatorStats before = cpu_alloc().stats();
    early = cpu_alloc().allocate(bytes, t);
    EXPECT_NE(early->ptr, p) << "a block still in use by a busy stream was handed to another";
    EXPECT_EQ(cpu_alloc().stats().cross_stream_reuses, before.cross_stream_reuses);
    // trim must not return the block either: its last use has not finished.
    cpu_alloc().trim();
    EXPECT_GE(cpu_alloc().stats().cached_bytes, bytes) << "trim freed a block still in use";
    gate.open();
  }
  s.synchronize();
  // `early` stays alive, so the only cached block of this size is s's.
  const AllocatorStats before = cpu_alloc().stats();
  Block* reused = cpu_alloc().allocate(bytes, t);
  const AllocatorStats after = cpu_alloc().stats();
  EXPECT_EQ(reused->ptr, p) << "the block freed on s was not reused on t after s finished";
  EXPECT_EQ(after.cross_stream_reuses, before.cross_stream_reuses + 1);
  EXPECT_EQ(after.raw_allocations, before.raw_allocations);
  cpu_alloc().free(early);
  cpu_alloc().free(reused);
}

// A tensor allocated on S and read on T is not reused, not even on S, until
// T has passed its read.
TEST(Allocator, BlockUsedOnAnotherStreamWaitsForThatStream) {
  Stream s(Device::cpu()), t(Device::cpu());
  cpu_alloc().trim();
  const int64_t n = 700 * 1024;  // 2.8 MB of f32
  std::vector<float> host(n);
  Tensor x = Tensor::from_vector(std::vector<float>(n, 1.5f), {n}, s);
  s.synchronize();
  void* p = x.data();
  {
    Gate gate(Device::cpu());
    gate.block(t);
    x.copy_to_host(host.data(), host.size() * sizeof(float), t);  // a read on t
    x = Tensor();  // last handle: the block is freed, used by s and t
    Tensor y = Tensor::empty({n}, DType::kF32, s);
    EXPECT_NE(y.data(), p) << "reused on s while t had not read it yet";
    gate.open();
  }
  t.synchronize();
  EXPECT_EQ(host[0], 1.5f);
  EXPECT_EQ(host[n - 1], 1.5f);
  Tensor keep = Tensor::empty({n}, DType::kF32, s);  // takes whatever s cached
  Tensor z = Tensor::empty({n}, DType::kF32, s);
  EXPECT_TRUE(z.data() == p || keep.data() == p) << "block not reusable after t passed it";
}

TEST(Allocator, StatsBalance) {
  Stream s(Device::cpu());
  s.synchronize();
  cpu_alloc().trim();
  const AllocatorStats base = cpu_alloc().stats();
  EXPECT_EQ(base.reserved_bytes, base.in_use_bytes + base.cached_bytes);

  std::vector<Block*> blocks;
  size_t total = 0;
  for (size_t bytes : {size_t{100}, size_t{4096}, size_t{70000}, size_t{1} << 20}) {
    blocks.push_back(cpu_alloc().allocate(bytes, s));
    total += blocks.back()->size;
  }
  AllocatorStats live = cpu_alloc().stats();
  EXPECT_EQ(live.in_use_bytes, base.in_use_bytes + total);
  EXPECT_GE(live.peak_in_use_bytes, base.in_use_bytes + total);
  EXPECT_EQ(live.allocations, base.allocations + 4);
  EXPECT_EQ(live.reserved_bytes, live.in_use_bytes + live.cached_bytes);

  for (Block* b : blocks) cpu_alloc().free(b);
  AllocatorStats freed = cpu_alloc().stats();
  EXPECT_EQ(freed.in_use_bytes, base.in_use_bytes);
  EXPECT_EQ(freed.cached_bytes, base.cached_bytes + total);
  EXPECT_EQ(freed.peak_in_use_bytes, live.peak_in_use_bytes) << "peak is a high-water mark";

  // Reallocating the same sizes hits the cache, takes nothing new.
  for (size_t bytes : {size_t{100}, size_t{4096}, size_t{70000}, size_t{1} << 20}) {
    Block* b = cpu_alloc().allocate(bytes, s);
    cpu_alloc().free(b);
  }
  AllocatorStats again = cpu_alloc().stats();
  EXPECT_EQ(again.raw_allocations, freed.raw_allocations);
  EXPECT_EQ(again.cache_hits, freed.cache_hits + 4);
  EXPECT_EQ(again.in_use_bytes, base.in_use_bytes);

  s.synchronize();
  cpu_alloc().trim();
  AllocatorStats trimmed = cpu_alloc().stats();
  EXPECT_EQ(trimmed.cached_bytes, base.cached_bytes);
  EXPECT_EQ(trimmed.reserved_bytes, base.reserved_bytes);
  EXPECT_GE(trimmed.raw_frees, freed.raw_frees + 4);
}

TEST(Allocator, TensorsBalanceTheCounts) {
  Stream s(Device::cpu());
  const size_t before = cpu_alloc().stats().in_use_bytes;
  {
    Tensor a = Tensor::from_vector(std::vector<float>(1000, 1.0f), {10, 100}, s);
    Tensor b = ops::relu(a, s);
    Tensor view = b.slice(0, 2, 5);  // shares b's block
    EXPECT_GE(cpu_alloc().stats().in_use_bytes, before + 2 * 4000);
    b = Tensor();
    EXPECT_GE(cpu_alloc().stats().in_use_bytes, before + 2 * 4000) << "freed while a view lives";
  }
  EXPECT_EQ(cpu_alloc().stats().in_use_bytes, before);
}

// Device-wide blocks (weights) are reusable, and returnable, only after
// every stream alive at their free has passed it.
TEST(Allocator, DeviceWideBlocksWaitForEveryStream) {
  Stream s(Device::cpu()), t(Device::cpu());
  cpu_alloc().trim();
  const size_t bytes = 6 * 1024 * 1024 + 768;
  void* p = nullptr;
  Block* early = nullptr;
  Block* early_wide = nullptr;
  {
    Gate gate(Device::cpu());
    gate.block(s);
    Block* w = cpu_alloc().allocate_device_wide(bytes);
    EXPECT_EQ(w->stream_id, 0u);
    p = w->ptr;
    cpu_alloc().free(w);  // s, alive and busy, has not passed this point
    early = cpu_alloc().allocate(bytes, t);
    EXPECT_NE(early->ptr, p) << "device-wide block reused while stream s had not passed it";
    early_wide = cpu_alloc().allocate_device_wide(bytes);
    EXPECT_NE(early_wide->ptr, p) << "device-wide block reused while stream s had not passed it";
    cpu_alloc().trim();
    EXPECT_GE(cpu_alloc().stats().cached_bytes, bytes) << "trim returned a block still in use";
    gate.open();
  }
  s.synchronize();
  t.synchronize();
  // early and early_wide stay alive, so the only cached block of this size
  // is the device-wide one.
  const AllocatorStats before = cpu_alloc().stats();
  Block* reused = cpu_alloc().allocate(bytes, t);
  const AllocatorStats after = cpu_alloc().stats();
  EXPECT_EQ(reused->ptr, p) << "device-wide block not reusable after every stream passed it";
  EXPECT_EQ(after.cache_hits, before.cache_hits + 1);
  EXPECT_EQ(after.cross_stream_reuses, before.cross_stream_reuses + 1);
  cpu_alloc().free(early);
  cpu_alloc().free(early_wide);
  cpu_alloc().free(reused);
}

TEST(Allocator, TrimReturnsFinishedMemory) {
  Stream s(Device::cpu());
  cpu_alloc().trim();
  const AllocatorStats base = cpu_alloc().stats();
  Block* b = cpu_alloc().allocate(8 * 1024 * 1024, s);
  const size_t size = b->size;
  cpu_alloc().free(b);
  EXPECT_EQ(cpu_alloc().stats().reserved_bytes, base.reserved_bytes + size);
  s.synchronize();
  cpu_alloc().trim();
  const AllocatorStats after = cpu_alloc().stats();
  EXPECT_EQ(after.reserved_bytes, base.reserved_bytes);
  EXPECT_EQ(after.cached_bytes, base.cached_bytes);
  EXPECT_EQ(after.raw_frees, base.raw_frees + 1);
}

TEST(Allocator, BlocksOfADestroyedStreamGoToEveryStream) {
  Stream t(Device::cpu());
  cpu_alloc().trim();
  const size_t bytes = 9 * 1024 * 1024;
  void* p = nullptr;
  {
    Stream s(Device::cpu());
    Block* b = cpu_alloc().allocate(bytes, s);
    p = b->ptr;
    cpu_alloc().free(b);
  }  // s synchronizes and goes away
  const AllocatorStats before = cpu_alloc().stats();
  Block* r = cpu_alloc().allocate(bytes, t);
  EXPECT_EQ(r->ptr, p);
  EXPECT_EQ(cpu_alloc().stats().cross_stream_reuses, before.cross_stream_reuses + 1);
  cpu_alloc().free(r);
}

TEST(Allocator, ConcurrentAllocateFreeBalances) {
  const size_t before = cpu_alloc().stats().in_use_bytes;
  std::vector<std::thread> threads;
  std::mutex mu;
  std::set<void*> live;
  std::atomic<int> duplicates{0};
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] {
      Stream s(Device::cpu());
      std::vector<Block*> mine;
      for (int k = 0; k < 300; ++k) {
        Block* b = cpu_alloc().allocate(static_cast<size_t>(64 * (1 + (k * 7 + i) % 13)), s);
        {
          std::lock_guard<std::mutex> lock(mu);
          if (!live.insert(b->ptr).second) ++duplicates;
        }
        mine.push_back(b);
        if (mine.size() > 4) {
          Block* f = mine.front();
          mine.erase(mine.begin());
          {
            std::lock_guard<std::mutex> lock(mu);
            live.erase(f->ptr);
          }
          cpu_alloc().free(f);
        }
      }
      for (Block* b : mine) {
        {
          std::lock_guard<std::mutex> lock(mu);
          live.erase(b->ptr);
        }
        cpu_alloc().free(b);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(duplicates.load(), 0) << "a block was handed out twice at once";
  EXPECT_EQ(cpu_alloc().stats().in_use_bytes, before);
}

}  // namespace
}  // namespace fanin
