// Event: record on a stream, host wait and poll, cross-stream waits.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <latch>
#include <memory>
#include <thread>
#include <vector>

#include "fanin/fanin.h"
#include "test_helpers.h"

namespace fanin {
namespace {

using fanin::testing::Gate;
using fanin::testing::random_values;

void settle() { std::this_thread::sleep_for(std::chrono::milliseconds(20)); }

TEST(Event, NeverRecordedIsComplete) {
  Event ev(Device::cpu());
  EXPECT_EQ(&ev.device(), &Device::cpu());
  EXPECT_TRUE(ev.query());
  ev.synchronize();  // returns at once
  // Waiting on it holds nothing back.
  Stream s(Device::cpu());
  s.wait(ev);
  Tensor x = Tensor::from_vector({2, -2}, {2}, s);
  EXPECT_EQ(ops::relu(x, s).to_vector(s), (std::vector<float>{2, 0}));
}

TEST(Event, RecordQuerySynchronize) {
  Stream s(Device::cpu());
  Event ev(Device::cpu());
  Gate gate(Device::cpu());
  gate.block(s);
  ev.record(s);
  settle();
  EXPECT_FALSE(ev.query()) << "event complete while its stream is held back";
  gate.open();
  ev.synchronize();
  EXPECT_TRUE(ev.query());
}

TEST(Event, RecordMarksOnlyEarlierWork) {
  Stream s(Device::cpu());
  Event ev(Device::cpu());
  std::vector<float> out(4, 0.0f);
  Tensor x = Tensor::from_vector({1, 2, 3, 4}, {4}, s);
  Tensor y = ops::add(x, x, s);
  y.copy_to_host(out.data(), out.size() * sizeof(float), s);
  ev.record(s);
  ev.synchronize();
  // The copy encoded before the record has landed.
  EXPECT_EQ(out, (std::vector<float>{2, 4, 6, 8}));
}

TEST(Event, ReRecordRefersToTheLatestRecord) {
  Stream s(Device::cpu());
  Event ev(Device::cpu());
  ev.record(s);
  ev.synchronize();
  EXPECT_TRUE(ev.query());
  Gate gate(Device::cpu());
  gate.block(s);
  ev.record(s);
  settle();
  EXPECT_FALSE(ev.query()) << "query answered for the first record, not the latest";
  gate.open();
  ev.synchronize();
  EXPECT_TRUE(ev.query());
}

// Stream B waits on an event recorded on A after A's (held back) work: B's
// later result sees A's data.
TEST(Event, CrossStreamWaitSeesTheOtherStreamsData) {
  Stream a(Device::cpu()), b(Device::cpu());
  const std::vector<float> values = random_values(4096, 7);
  Tensor t = Tensor::empty({4096}, DType::kF32, a);
  Event ev(Device::cpu());
  Gate gate(Device::cpu());
  gate.block(a);
  t.copy_from_host(values.data(), values.size() * sizeof(float), a);  // runs after the gate
  ev.record(a);
  b.wait(ev);
  Tensor r = ops::relu(t, b);
  std::vector<float> out(4096, -1.0f);
  r.copy_to_host(out.data(), out.size() * sizeof(float), b);
  settle();
  EXPECT_FALSE(b.query()) << "b ran past its wait while a was held back";
  EXPECT_FALSE(ev.query());
  gate.open();
  b.synchronize();
  for (size_t i = 0; i < values.size(); ++i) ASSERT_EQ(out[i], std::max(values[i], 0.0f)) << i;
}

TEST(Event, WaitDoesNotBlockTheHost) {
  Stream a(Device::cpu()), b(Device::cpu());
  Event ev(Device::cpu());
  Gate gate(Device::cpu());
  gate.block(a);
  ev.record(a);
  auto start = std::chrono::steady_clock::now();
  b.wait(ev);  // device-side: returns at once
  EXPECT_LT(fanin::testing::ms_since(start), 1000.0);
  gate.open();
  b.synchronize();
  EXPECT_TRUE(ev.query());
}

TEST(Event, HostWaitFromAnotherThread) {
  Stream s(Device::cpu());
  Event ev(Device::cpu());
  Gate gate(Device::cpu());
  gate.block(s);
  ev.record(s);
  std::latch waiting(1);
  std::atomic<bool> woke{false};
  std::thread waiter([&] {
    waiting.count_down();
    ev.synchronize();
    woke = true;
  });
  waiting.wait();
  settle();
  EXPECT_FALSE(woke.load()) << "synchronize returned before the event was reached";
  gate.open();
  waiter.join();
  EXPECT_TRUE(woke.load());
}

TEST(Event, DestroyedWhileItsWorkIsQueued) {
  Stream a(Device::cpu()), b(Device::cpu());
  Gate gate(Device::cpu());
  gate.block(a);
  {
    Event ev(Device::cpu());
    ev.record(a);
    b.wait(ev);
  }  // the event object is gone; its queued record and wait must still work
  Tensor x = Tensor::from_vector({-1, 1}, {2}, b);
  Tensor y = ops::relu(x, b);
  gate.open();
  EXPECT_EQ(y.to_vector(b), (std::vector<float>{0, 1}));
  a.synchronize();
}

// A thread that records an event inside its own open encoder and then waits
// on it must not block forever: the record sits in work only this thread can
// submit, so host waits submit the thread's open encoders first (Note [Flush
// before a host wait] in src/core/stream.cpp). Runs in a child process with
// an alarm so a regression fails instead of hanging.
void synchronize_inside_the_recording_encoder() {
  alarm(5);
  Stream s(Device::cpu());
  Event ev(Device::cpu());
  Encoder enc = s.command_buffer().begin_encoding();
  ev.record(s);
  try {
    ev.synchronize();
  } catch (const Error&) {
    // Refusing with an error is an acceptable fix too.
  }
  std::_Exit(0);
}

TEST(EventDeathTest, SynchronizeInsideTheRecordingEncoderReturns) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(synchronize_inside_the_recording_encoder(), ::testing::ExitedWithCode(0), "");
}

// The same across streams: stream b waits on an event that this thread
// recorded on stream a inside a still-open encoder; synchronizing b must
// submit a's work too.
void synchronize_other_stream_waiting_on_open_record() {
  alarm(5);
  Stream a(Device::cpu());
  Stream b(Device::cpu());
  Event ev(Device::cpu());
  Encoder enc = a.command_buffer().begin_encoding();
  ev.record(a);
  b.wait(ev);
  b.synchronize();
  std::_Exit(0);
}

TEST(EventDeathTest, SynchronizeOfAStreamWaitingOnAnOpenRecordReturns) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(synchronize_other_stream_waiting_on_open_record(), ::testing::ExitedWithCode(0), "");
}

}  // namespace
}  // namespace fanin
