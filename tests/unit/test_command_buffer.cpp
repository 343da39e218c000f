// Stream, CommandBuffer and Encoder: the one-encoder rule (Note [One encoder]).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <latch>
#include <set>
#include <thread>
#include <vector>

#include "backends/cpu/cpu_stream.h"
#include "fanin/fanin.h"
#include "test_helpers.h"

namespace fanin {
namespace {

using fanin::testing::Gate;
using fanin::testing::ms_since;
using fanin::testing::throws_error;

StreamOptions serialize() {
  StreamOptions o;
  o.policy = EncodingPolicy::kSerialize;
  return o;
}

TEST(Stream, IdsAreUniqueAndNonZero) {
  std::set<uint32_t> ids;
  std::vector<std::unique_ptr<Stream>> streams;
  for (int i = 0; i < 8; ++i) {
    streams.push_back(std::make_unique<Stream>(Device::cpu()));
    EXPECT_NE(streams.back()->id(), 0u);
    ids.insert(streams.back()->id());
    EXPECT_EQ(&streams.back()->command_buffer().stream(), streams.back().get());
    EXPECT_EQ(&streams.back()->device(), &Device::cpu());
  }
  EXPECT_EQ(ids.size(), 8u);
  EXPECT_EQ(streams[0]->options().policy, EncodingPolicy::kThrow);
  EXPECT_EQ(Stream(Device::cpu(), serialize()).options().policy, EncodingPolicy::kSerialize);
}

TEST(CommandBuffer, SecondThreadGetsConcurrentEncoding) {
  Stream s(Device::cpu());
  CommandBuffer& cb = s.command_buffer();
  Tensor x = Tensor::from_vector({1, -2}, {2}, s);
  s.synchronize();
  std::latch began(1), finish(1);
  std::thread holder([&] {
    Encoder enc = cb.begin_encoding();
    EXPECT_TRUE(cb.encoding_on_this_thread());
    began.count_down();
    finish.wait();
  });
  began.wait();
  EXPECT_TRUE(cb.is_encoding());
  EXPECT_FALSE(cb.encoding_on_this_thread());
  const uint64_t conflicts = cb.conflicts();
  EXPECT_TRUE(throws_error([&] { cb.begin_encoding(); }, ErrorCode::kConcurrentEncoding,
                           {"stream " + std::to_string(s.id())}));
  // Ops open an encoder implicitly, so they obey the rule too.
  EXPECT_TRUE(throws_error([&] { ops::relu(x, s); }, ErrorCode::kConcurrentEncoding));
  EXPECT_TRUE(throws_error([&] { Event e(Device::cpu()); e.record(s); },
                           ErrorCode::kConcurrentEncoding));
  EXPECT_EQ(cb.conflicts(), conflicts + 3);
  // try_begin_encoding neither throws nor waits.
  Encoder tried = cb.try_begin_encoding();
  EXPECT_FALSE(tried.active());
  EXPECT_EQ(cb.conflicts(), conflicts + 3);
  finish.count_down();
  holder.join();
  // Once the holder is done the buffer is usable from this thread.
  EXPECT_FALSE(cb.is_encoding());
  EXPECT_EQ(ops::relu(x, s).to_vector(s), (std::vector<float>{1, 0}));
}

TEST(CommandBuffer, SerializePolicyWaitsInsteadOfThrowing) {
  Stream s(Device::cpu(), serialize());
  CommandBuffer& cb = s.command_buffer();
  std::latch began(1);
  std::atomic<bool> holder_ended{false};
  std::thread holder([&] {
    Encoder enc = cb.begin_encoding();
    began.count_down();
    std::this_thread::sleep_for(std::chrono::milliseconds(150));
    holder_ended = true;
    enc.end();
  });
  began.wait();
  auto start = std::chrono::steady_clock::now();
  {
    Encoder enc = cb.begin_encoding();  // waits for the holder
    EXPECT_TRUE(enc.active());
    EXPECT_TRUE(holder_ended.load()) << "got the encoder while the holder still had it";
    EXPECT_GE(ms_since(start), 100.0);
  }
  holder.join();
  EXPECT_EQ(cb.conflicts(), 0u);
  EXPECT_EQ(cb.commits(), 2u);
}

TEST(CommandBuffer, SerializePolicyOpsFromManyThreadsAllSucceed) {
  Stream s(Device::cpu(), serialize());
  constexpr int kThreads = 8;
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 20; ++i) {
        const float v = static_cast<float>(t * 100 + i);
        Tensor x = Tensor::from_vector({v, -v}, {2}, s);
        if (ops::add(x, x, s).to_vector(s) == std::vector<float>{2 * v, -2 * v}) ++ok;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), kThreads * 20);
  EXPECT_EQ(s.command_buffer().conflicts(), 0u);
}

TEST(CommandBuffer, NestedBeginOnTheSameThreadCommitsOnce) {
  Stream s(Device::cpu());
  CommandBuffer& cb = s.command_buffer();
  Event ev(Device::cpu());
  const uint64_t commits = cb.commits();
  {
    Encoder outer = cb.begin_encoding();
    {
      Encoder inner = cb.begin_encoding();
      EXPECT_TRUE(inner.active());
      ev.record(s);  // a third, implicit level
    }
    EXPECT_EQ(cb.commits(), commits) << "an inner encoder committed";
    EXPECT_TRUE(cb.encoding_on_this_thread());
    // Uncommitted work has not been handed to the device.
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    EXPECT_FALSE(ev.query()) << "work ran before its encoder was committed";
  }
  EXPECT_EQ(cb.commits(), commits + 1);
  EXPECT_FALSE(cb.is_encoding());
  ev.synchronize();
  EXPECT_TRUE(ev.query());
}

TEST(CommandBuffer, SequentialEncodersFromDifferentThreads) {
  Stream s(Device::cpu());
  CommandBuffer& cb = s.command_buffer();
  std::vector<float> got;
  Tensor x = Tensor::from_vector({1, 2, 3}, {3}, s);
  for (int round = 0; round < 4; ++round) {
    std::thread t([&] {
      Encoder enc = cb.begin_encoding();
      x = ops::add(x, x, s);
      enc.end();
      EXPECT_FALSE(enc.active());
      enc.end();  // idempotent
    });
    t.join();
    Encoder mine = cb.begin_encoding();  // main thread, after the other ended
    EXPECT_TRUE(mine.active());
  }
  EXPECT_EQ(cb.conflicts(), 0u);
  EXPECT_EQ(x.to_vector(s), (std::vector<float>{16, 32, 48}));
}

TEST(CommandBuffer, EncoderMoves) {
  Stream s(Device::cpu());
  CommandBuffer& cb = s.command_buffer();
  Encoder a = cb.begin_encoding();
  Encoder b = std::move(a);
  EXPECT_FALSE(a.active());
  EXPECT_TRUE(b.active());
  EXPECT_TRUE(cb.is_encoding());
  Encoder c;
  EXPECT_FALSE(c.active());
  c = std::move(b);
  EXPECT_TRUE(cb.is_encoding());
  const uint64_t commits = cb.commits();
  c = Encoder();  // move-assigning ends the encoder it held
  EXPECT_FALSE(cb.is_encoding());
  EXPECT_EQ(cb.commits(), commits + 1);
}

TEST(Stream, SynchronizeFromTheEncodingThreadCommitsFirst) {
  Stream s(Device::cpu());
  Tensor x = Tensor::from_vector({-4, 4}, {2}, s);
  Encoder enc = s.command_buffer().begin_encoding();
  Tensor y = ops::relu(x, s);
  std::vector<float> out(2, -1.0f);
  y.copy_to_host(out.data(), 2 * sizeof(float), s);
  s.synchronize();  // must not deadlock on our own open encoder
  EXPECT_EQ(out, (std::vector<float>{0, 4}));
  EXPECT_TRUE(enc.active());
}

TEST(Stream, QueryReportsUnfinishedWork) {
  Stream s(Device::cpu());
  EXPECT_TRUE(s.query());
  {
    Gate gate(Device::cpu());
    gate.block(s);
    Tensor x = Tensor::from_vector({1}, {1}, s);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    EXPECT_FALSE(s.query()) << "a stream waiting on a closed gate reports done";
  }
  s.synchronize();
  EXPECT_TRUE(s.query());
}

TEST(Stream, DestructorWaitsForWork) {
  std::vector<float> out(1024, 0.0f);
  {
    Stream s(Device::cpu());
    Tensor x = Tensor::from_vector(std::vector<float>(1024, 7.0f), {1024}, s);
    Tensor y = ops::add(x, x, s);
    y.copy_to_host(out.data(), out.size() * sizeof(float), s);
  }  // no synchronize: ~Stream waits
  for (float v : out) ASSERT_EQ(v, 14.0f);
}

// Note [Errors]: an error raised inside asynchronous stream work reaches the
// caller at the next synchronize, once; later work still runs.
TEST(Stream, AsyncErrorReachesSynchronize) {
  Stream s(Device::cpu());
  {
    Encoder enc = s.command_buffer().begin_encoding();
    static_cast<backend::cpu::CpuStream&>(s.impl()).encode([] {
      throw Error(ErrorCode::kDeviceError, "[test] injected device failure");
    });
  }
  Tensor x = Tensor::from_vector({1, -1}, {2}, s);
  Tensor y = ops::relu(x, s);
  EXPECT_TRUE(throws_error([&] { s.synchronize(); }, ErrorCode::kDeviceError,
                           {"injected device failure"}));
  s.synchronize();  // reported once, then cleared
  EXPECT_EQ(y.to_vector(s), (std::vector<float>{1, 0}));
}

}  // namespace
}  // namespace fanin
