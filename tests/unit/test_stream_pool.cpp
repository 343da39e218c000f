// StreamPool and StreamLease: exclusive leases, waiting, thread streams.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <latch>
#include <memory>
#include <optional>
#include <set>
#include <thread>
#include <vector>

#include "fanin/fanin.h"
#include "test_helpers.h"

namespace fanin {
namespace {

using fanin::testing::ms_since;
using fanin::testing::throws_error;

PoolOptions slots(int n, std::chrono::milliseconds timeout = std::chrono::milliseconds(10000)) {
  PoolOptions o;
  o.slots = n;
  o.acquire_timeout = timeout;
  return o;
}

TEST(StreamPool, OptionsAreChecked) {
  Device& cpu = Device::cpu();
  EXPECT_TRUE(throws_error([&] { StreamPool(cpu, slots(0)); }, ErrorCode::kInvalidArgument,
                           {"[StreamPool]", "1..4096", "got 0"}));
  EXPECT_TRUE(throws_error([&] { StreamPool(cpu, slots(4097)); }, ErrorCode::kInvalidArgument,
                           {"got 4097"}));
  EXPECT_TRUE(throws_error([&] { StreamPool(cpu, slots(2, std::chrono::milliseconds(-1))); },
                           ErrorCode::kInvalidArgument, {"acquire_timeout", "-1 ms"}));
  StreamPool pool(cpu, slots(2));
  EXPECT_TRUE(throws_error([&] { pool.acquire_for(std::chrono::milliseconds(-5)); },
                           ErrorCode::kInvalidArgument, {"[StreamPool::acquire_for]", "-5 ms"}));
  EXPECT_EQ(pool.size(), 2);
  EXPECT_EQ(pool.leased(), 0);
  EXPECT_EQ(&pool.device(), &cpu);
}

TEST(StreamPool, LeasesAreExclusive) {
  // 70 slots: more than one 64-bit word of the free bitmask.
  StreamPool pool(Device::cpu(), slots(70));
  std::vector<StreamLease> leases;
  std::set<int> slot_ids;
  std::set<Stream*> streams;
  std::set<uint32_t> stream_ids;
  for (int i = 0; i < 70; ++i) {
    leases.push_back(pool.acquire_for(std::chrono::milliseconds(0)));
    ASSERT_TRUE(leases.back().valid());
    slot_ids.insert(leases.back().slot());
    streams.insert(&leases.back().stream());
    stream_ids.insert(leases.back()->id());
  }
  EXPECT_EQ(slot_ids.size(), 70u);
  EXPECT_EQ(*slot_ids.begin(), 0);
  EXPECT_EQ(*slot_ids.rbegin(), 69);
  EXPECT_EQ(streams.size(), 70u);
  EXPECT_EQ(stream_ids.size(), 70u);
  EXPECT_EQ(pool.leased(), 70);
  EXPECT_FALSE(pool.try_acquire().has_value()) << "a 71st lease on a 70-slot pool";
  EXPECT_TRUE(throws_error([&] { pool.acquire_for(std::chrono::milliseconds(0)); },
                           ErrorCode::kPoolExhausted, {"70 stream slots", "0 ms"}));
}

TEST(StreamPool, ReleasedSlotIsReusable) {
  StreamPool pool(Device::cpu(), slots(2));
  StreamLease a = pool.acquire();
  StreamLease b = pool.acquire();
  ASSERT_FALSE(pool.try_acquire().has_value());
  const int slot = a.slot();
  Stream* stream = &a.stream();
  a.release();
  EXPECT_FALSE(a.valid());
  EXPECT_EQ(pool.leased(), 1);
  std::optional<StreamLease> c = pool.try_acquire();
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->slot(), slot);
  EXPECT_EQ(&c->stream(), stream);
  // Releasing twice, or destroying a released lease, returns nothing twice.
  a.release();
  EXPECT_EQ(pool.leased(), 2);
}

TEST(StreamPool, MovedLeaseKeepsTheSlot) {
  StreamPool pool(Device::cpu(), slots(1));
  StreamLease a = pool.acquire();
  const int slot = a.slot();
  StreamLease b = std::move(a);
  EXPECT_FALSE(a.valid());
  EXPECT_TRUE(b.valid());
  EXPECT_EQ(b.slot(), slot);
  EXPECT_EQ(pool.leased(), 1);
  EXPECT_TRUE(throws_error([&] { a.stream(); }, ErrorCode::kInvalidArgument,
                           {"[StreamLease::stream]", "empty"}));
  StreamLease c;
  c = std::move(b);
  EXPECT_EQ(pool.leased(), 1);
  c = StreamLease();  // move-assigning an empty lease returns the slot
  EXPECT_EQ(pool.leased(), 0);
  EXPECT_TRUE(pool.try_acquire().has_value());
}

TEST(StreamPool, LeasedStreamRunsWork) {
  StreamPool pool(Device::cpu(), slots(2));
  StreamLease lease = pool.acquire();
  Tensor x = Tensor::from_vector({-1, 2, -3, 4}, {4}, lease.stream());
  EXPECT_EQ(ops::relu(x, lease.stream()).to_vector(lease.stream()),
            (std::vector<float>{0, 2, 0, 4}));
}

// Releasing a lease while some other thread (wrongly) encodes into its
// stream is a user mistake: it must not abort the process, and the next
// holder is still protected by the one-encoder rule.
TEST(StreamPool, ReleaseWhileAnotherThreadEncodesDoesNotAbort) {
  StreamPool pool(Device::cpu(), slots(1));
  StreamLease lease = pool.acquire();
  Stream& s = lease.stream();
  std::latch began(1), finish(1);
  std::thread intruder([&] {
    Encoder enc = s.command_buffer().begin_encoding();
    began.count_down();
    finish.wait();
  });
  began.wait();
  lease.release();
  std::optional<StreamLease> next = pool.try_acquire();
  ASSERT_TRUE(next.has_value());
  ASSERT_EQ(&next->stream(), &s);
  EXPECT_TRUE(throws_error([&] { next->stream().command_buffer().begin_encoding(); },
                           ErrorCode::kConcurrentEncoding));
  finish.count_down();
  intruder.join();
  Tensor x = Tensor::from_vector({-1, 1}, {2}, next->stream());
  EXPECT_EQ(ops::relu(x, next->stream()).to_vector(next->stream()), (std::vector<float>{0, 1}));
}

TEST(StreamPool, AcquireUsesTheConfiguredTimeout) {
  StreamPool pool(Device::cpu(), slots(1, std::chrono::milliseconds(150)));
  StreamLease held = pool.acquire();
  auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(throws_error([&] { pool.acquire(); }, ErrorCode::kPoolExhausted,
                           {"all 1 stream slots", "150 ms"}));
  const double waited = ms_since(start);
  EXPECT_GE(waited, 140.0);
  EXPECT_LT(waited, 5000.0);
}

TEST(StreamPool, WaitingAcquireWakesOnRelease) {
  StreamPool pool(Device::cpu(), slots(1));
  std::optional<StreamLease> held = pool.acquire();
  const int slot = held->slot();
  std::atomic<bool> waiting{false};
  int got_slot = -1;
  double waited = 0;
  std::thread waiter([&] {
    waiting = true;
    auto start = std::chrono::steady_clock::now();
    StreamLease l = pool.acquire_for(std::chrono::seconds(20));
    waited = ms_since(start);
    got_slot = l.slot();
  });
  while (!waiting) std::this_thread::yield();
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  held.reset();  // releases
  waiter.join();
  EXPECT_EQ(got_slot, slot);
  EXPECT_GE(waited, 50.0) << "acquired while the only slot was held";
  EXPECT_LT(waited, 5000.0) << "the release did not wake the waiter";
}

// A timeout of milliseconds::max() means "wait as long as it takes"; it must
// not overflow the deadline into the past and fail at once.
TEST(StreamPool, HugeTimeoutWaitsForARelease) {
  PoolOptions opts = slots(1, std::chrono::milliseconds::max());
  StreamPool pool(Device::cpu(), opts);
  for (int use_acquire = 0; use_acquire < 2; ++use_acquire) {
    std::optional<StreamLease> held = pool.acquire_for(std::chrono::milliseconds(0));
    std::thread releaser([&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(150));
      held.reset();
    });
    auto start = std::chrono::steady_clock::now();
    bool got = false;
    try {
      StreamLease l = use_acquire ? pool.acquire() : pool.acquire_for(std::chrono::milliseconds::max());
      got = l.valid();
    } catch (const Error& e) {
      ADD_FAILURE() << e.what() << " after " << ms_since(start) << " ms";
    }
    releaser.join();
    EXPECT_TRUE(got) << (use_acquire ? "acquire()" : "acquire_for(max)");
    EXPECT_GE(ms_since(start), 100.0);
  }
}

TEST(StreamPool, EveryWaiterWakesAsSlotsComeBack) {
  // 4 slots held, 8 waiters; releasing the 4 and each waiter releasing
  // after use must let all 8 through well before their timeout.
  StreamPool pool(Device::cpu(), slots(4));
  std::vector<StreamLease> held;
  for (int i = 0; i < 4; ++i) held.push_back(pool.acquire());
  std::atomic<int> done{0};
  std::vector<std::thread> waiters;
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 8; ++i) {
    waiters.emplace_back([&] {
      StreamLease l = pool.acquire_for(std::chrono::seconds(20));
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      ++done;
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  held.clear();
  for (auto& t : waiters) t.join();
  EXPECT_EQ(done.load(), 8);
  EXPECT_LT(ms_since(start), 10000.0);
  EXPECT_EQ(pool.leased(), 0);
}

TEST(StreamPool, ThreadStreamIsCachedPerThreadAndReturnedAtExit) {
  StreamPool pool(Device::cpu(), slots(4));
  Stream* main_stream = &pool.thread_stream();
  EXPECT_EQ(&pool.thread_stream(), main_stream) << "not cached for the calling thread";
  EXPECT_EQ(pool.leased(), 1);

  std::latch ready(2), finish(1);
  Stream* seen[2] = {nullptr, nullptr};
  std::vector<std::thread> threads;
  for (int i = 0; i < 2; ++i) {
    threads.emplace_back([&, i] {
      seen[i] = &pool.thread_stream();
      EXPECT_EQ(&pool.thread_stream(), seen[i]);
      // Usable like any stream.
      Tensor x = Tensor::from_vector({1, -1}, {2}, *seen[i]);
      EXPECT_EQ(ops::relu(x, *seen[i]).to_vector(*seen[i]), (std::vector<float>{1, 0}));
      ready.count_down();
      finish.wait();
    });
  }
  ready.wait();
  EXPECT_EQ(pool.leased(), 3);
  EXPECT_NE(seen[0], seen[1]);
  EXPECT_NE(seen[0], main_stream);
  EXPECT_NE(seen[1], main_stream);
  finish.count_down();
  for (auto& t : threads) t.join();
  EXPECT_EQ(pool.leased(), 1) << "a thread's stream was not returned when it exited";
  // Both returned slots can be leased again.
  auto a = pool.try_acquire();
  auto b = pool.try_acquire();
  EXPECT_TRUE(a.has_value() && b.has_value());
}

TEST(StreamPool, ThreadStreamOfTwoPoolsAreDistinct) {
  StreamPool p1(Device::cpu(), slots(1));
  StreamPool p2(Device::cpu(), slots(1));
  std::thread t([&] {
    Stream* s1 = &p1.thread_stream();
    Stream* s2 = &p2.thread_stream();
    EXPECT_NE(s1, s2);
    EXPECT_EQ(&p1.thread_stream(), s1);
    EXPECT_EQ(&p2.thread_stream(), s2);
    EXPECT_EQ(p1.leased(), 1);
    EXPECT_EQ(p2.leased(), 1);
  });
  t.join();
  EXPECT_EQ(p1.leased(), 0);
  EXPECT_EQ(p2.leased(), 0);
}

TEST(StreamPool, ThreadStreamOnAFullPoolThrowsPoolExhausted) {
  StreamPool pool(Device::cpu(), slots(1, std::chrono::milliseconds(50)));
  StreamLease held = pool.acquire();
  std::thread t([&] {
    EXPECT_TRUE(throws_error([&] { pool.thread_stream(); }, ErrorCode::kPoolExhausted,
                             {"all 1 stream slots", "50 ms"}));
  });
  t.join();
  EXPECT_EQ(pool.leased(), 1);
}

TEST(StreamPool, DestroyingThePoolWithAnOutstandingLeaseIsSafe) {
  auto pool = std::make_unique<StreamPool>(Device::cpu(), slots(2));
  StreamLease lease = pool->acquire();
  Tensor x = Tensor::from_vector({3, -3}, {2}, lease.stream());
  Tensor y = ops::relu(x, lease.stream());
  pool.reset();  // the lease keeps its stream alive
  Tensor z = ops::add(y, y, lease.stream());
  EXPECT_EQ(z.to_vector(lease.stream()), (std::vector<float>{6, 0}));
  lease.release();
}

TEST(StreamPool, DestroyingThePoolBeforeAThreadExitsIsSafe) {
  auto pool = std::make_unique<StreamPool>(Device::cpu(), slots(2));
  std::latch leased(1), destroyed(1);
  std::thread t([&] {
    Stream& s = pool->thread_stream();
    leased.count_down();
    destroyed.wait();
    Tensor x = Tensor::from_vector({-1, 5}, {2}, s);
    EXPECT_EQ(ops::relu(x, s).to_vector(s), (std::vector<float>{0, 5}));
  });  // the cached lease, the last owner of the pool's streams, goes here
  leased.wait();
  pool.reset();
  destroyed.count_down();
  t.join();
}

}  // namespace
}  // namespace fanin
