// Engine over several devices (issue 7), tested on the logical cpu devices
// "cpu:1".."cpu:7": routing to the least-loaded device, a failed device
// leaving rotation while the others serve what was queued, the last device
// failing, replica checks, per-device metrics. Each test uses its own
// logical devices so an injected fault never leaks into another test; every
// fault is cleared by a guard. Every wait is bounded.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <tuple>
#include <chrono>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "engine_outcome.h"
#include "engine_test_model.h"
#include "fanin/fanin.h"
#include "test_helpers.h"

namespace fanin {
namespace {

using namespace std::chrono_literals;
using testing::await;
using testing::failed_with;
using testing::row_for;
using testing::succeeded_with;
using testing::TestModel;
using testing::TestModelOptions;
using testing::throws_error;

// Clears an injected fault however the test ends.
struct FaultGuard {
  Device& device;
  ~FaultGuard() { device.set_fault(""); }
};

// Collects the engine's log lines.
struct LogSink {
  std::mutex mu;  // guards lines
  std::vector<std::string> lines;
  std::function<void(const std::string&)> fn() {
    return [this](const std::string& line) {
      std::lock_guard<std::mutex> lock(mu);
      lines.push_back(line);
    };
  }
  std::vector<std::string> snapshot() {
    std::lock_guard<std::mutex> lock(mu);
    return lines;
  }
};

TestModelOptions gated() {
  TestModelOptions o;
  o.gated = true;
  return o;
}

EngineOptions eager(int workers = 1, int max_batch = 1) {
  EngineOptions o;
  o.workers = workers;
  o.max_batch_size = max_batch;
  o.max_queue_delay = 0us;
  return o;
}

std::vector<std::shared_ptr<const Model>> as_replicas(
    const std::vector<std::shared_ptr<TestModel>>& models) {
  return {models.begin(), models.end()};
}

// One TestModel on cpu:1 (`first`) and one on cpu:2 (`second`).
std::vector<std::shared_ptr<TestModel>> on_cpu_1_and_2(TestModelOptions first,
                                                       TestModelOptions second) {
  return {std::make_shared<TestModel>(first, Device::get("cpu:1")),
          std::make_shared<TestModel>(second, Device::get("cpu:2"))};
}

// Waits until the models together have been entered `n` times.
bool wait_total_calls(const std::vector<std::shared_ptr<TestModel>>& models, int n) {
  const auto until = Clock::now() + 10s;
  while (Clock::now() < until) {
    int total = 0;
    for (const auto& m : models) total += m->calls();
    if (total >= n) return total == n;
    std::this_thread::sleep_for(200us);
  }
  return false;
}

TEST(EngineDevices, EveryDeviceServesAndResultsAreRight) {
  TestModelOptions slow;
  slow.delay = 2ms;
  std::vector<std::shared_ptr<TestModel>> models = on_cpu_1_and_2(slow, slow);
  Engine engine(as_replicas(models), eager(1, 1));
  std::vector<std::future<Response>> fs;
  for (int i = 0; i < 40; ++i) fs.push_back(engine.submit(row_for(static_cast<float>(i))));
  for (int i = 0; i < 40; ++i) EXPECT_TRUE(succeeded_with(await(fs[i]), row_for(static_cast<float>(i))));
  // 40 requests of 2 ms each on two free workers: both devices took a share.
  EXPECT_GT(models[0]->calls(), 5);
  EXPECT_GT(models[1]->calls(), 5);
  EngineMetrics m = engine.metrics();
  ASSERT_EQ(m.devices.size(), 2u);
  EXPECT_EQ(m.devices[0].name, "cpu:1");
  EXPECT_EQ(m.devices[1].name, "cpu:2");
  EXPECT_EQ(m.devices[0].requests + m.devices[1].requests, 40u);
  EXPECT_EQ(m.devices[0].requests, static_cast<uint64_t>(models[0]->rows()));
  EXPECT_EQ(m.devices[1].requests, static_cast<uint64_t>(models[1]->rows()));
  EXPECT_TRUE(m.devices[0].healthy && m.devices[1].healthy);
  ASSERT_EQ(m.workers.size(), 2u);
  EXPECT_EQ(m.workers[0].device, 0);
  EXPECT_EQ(m.workers[1].device, 1);
  EXPECT_EQ(m.completed, 40u);
}

// Two workers per device: a device that already runs a batch has a free
// worker too, yet the next batch goes to the device that runs none.
TEST(EngineDevices, TheNextBatchGoesToTheLeastLoadedDevice) {
  std::vector<std::shared_ptr<TestModel>> models = on_cpu_1_and_2(gated(), gated());
  Engine engine(as_replicas(models), eager(2, 1));
  std::vector<std::future<Response>> fs;
  for (int i = 0; i < 4; ++i) {
    fs.push_back(engine.submit(row_for(static_cast<float>(i))));
    ASSERT_TRUE(wait_total_calls(models, i + 1)) << "request " << i;
    // After request 0 and 2 the loads are 1:0; after 1 and 3 they are even.
    const int a = models[0]->calls(), b = models[1]->calls();
    if (i % 2 == 1) EXPECT_EQ(a, b) << "after request " << i;
    else EXPECT_EQ(std::abs(a - b), 1) << "after request " << i;
  }
  for (auto& m : models) m->open();
  for (int i = 0; i < 4; ++i) EXPECT_TRUE(succeeded_with(await(fs[i]), row_for(static_cast<float>(i))));
}

// A faster device takes more of the work: it frees its worker sooner.
TEST(EngineDevices, AFasterDeviceTakesMoreBatches) {
  TestModelOptions fast, slow;
  fast.delay = 500us;
  slow.delay = 8ms;
  std::vector<std::shared_ptr<TestModel>> models = on_cpu_1_and_2(slow, fast);
  Engine engine(as_replicas(models), eager(1, 1));
  std::vector<std::future<Response>> fs;
  for (int i = 0; i < 60; ++i) fs.push_back(engine.submit(row_for(static_cast<float>(i))));
  for (int i = 0; i < 60; ++i) EXPECT_TRUE(await(fs[i]).ok);
  EngineMetrics m = engine.metrics();
  EXPECT_GT(m.devices[1].batches, 2 * m.devices[0].batches)
      << "slow " << m.devices[0].batches << ", fast " << m.devices[1].batches;
}

// Note [Routing by expected finish]: one closed-loop client is served by
// the faster device once both are measured; the slower one is not handed
// requests the faster one would finish sooner.
TEST(EngineDevices, OneClientStaysOnTheFasterDevice) {
  TestModelOptions fast, slow;
  // 60x apart: the slow device's estimate halves every 320 ms idle and needs
  // about six halvings to look faster, far longer than the 100 requests take
  // even on a loaded machine (5 ms here once let a third probe in).
  fast.delay = 300us;
  slow.delay = 20ms;
  std::vector<std::shared_ptr<TestModel>> models = on_cpu_1_and_2(slow, fast);
  Engine engine(as_replicas(models), eager(1, 1));
  for (int i = 0; i < 100; ++i) {
    auto f = engine.submit(row_for(static_cast<float>(i)));
    ASSERT_TRUE(succeeded_with(await(f), row_for(static_cast<float>(i))));
  }
  // The slow device runs its warm-up batch (no sample) and its measuring
  // batch, then only a probe once its idle estimate has decayed (>= 100 ms
  // per halving): 2 calls in 38 of 40 runs here, 3 and 4 in the others.
  // With no routing rule it took about 40 of the 100.
  EXPECT_LE(models[0]->calls(), 5)
      << "fast device: " << models[1]->calls()
      << ", slow saw: " << ::testing::PrintToString(models[0]->first_values());
}

// Many clients, a device 60x slower than the other (as a CPU next to a
// GPU): it takes a small share, not a batch whenever it is free.
TEST(EngineDevices, ASlowDeviceDoesNotTakeWorkTheFastOneFinishesSooner) {
  TestModelOptions fast, slow;
  // Far apart, so that sleeps stretched by a loaded machine (the fast
  // device's 1 ms measured at several ms) do not make the slow one look as
  // soon: 20 ms there once let it take real batches.
  fast.delay = 1ms;
  slow.delay = 60ms;
  std::vector<std::shared_ptr<TestModel>> models = on_cpu_1_and_2(slow, fast);
  EngineOptions opt = eager(1, 16);
  Engine engine(as_replicas(models), opt);
  std::atomic<bool> stop{false};
  std::atomic<int> failures{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < 32; ++c) {
    clients.emplace_back([&, c] {
      for (int i = 0; !stop.load(); ++i) {
        const float id = static_cast<float>(c * 1000 + i % 1000);
        auto f = engine.submit(row_for(id));
        if (!succeeded_with(await(f), row_for(id))) failures.fetch_add(1);
      }
    });
  }
  std::this_thread::sleep_for(1200ms);
  stop.store(true);
  for (auto& t : clients) t.join();
  EXPECT_EQ(failures.load(), 0);
  EngineMetrics m = engine.metrics();
  ASSERT_GT(m.devices[0].batches, 0u);
  ASSERT_GT(m.devices[1].batches, 0u);
  // The premise is two devices far apart. On a heavily loaded machine the
  // fast device's cycle (its batch, then waking the worker and the clients
  // that resubmit) stretches from ~1.5 ms to 4-17 ms (seen under ctest -j3
  // with builds running), the two come within 20x of each other, and
  // sending the slow one work becomes right: then there is nothing to check.
  const double slow_us = m.devices[0].busy_us / static_cast<double>(m.devices[0].batches);
  const double fast_cycle_us = 1.2e6 / static_cast<double>(m.devices[1].batches);
  if (slow_us < 20 * fast_cycle_us)
    GTEST_SKIP() << "devices only " << slow_us / fast_cycle_us << "x apart (fast: a batch every "
                 << fast_cycle_us << " us, slow " << slow_us << " us a batch): machine too loaded";
  EXPECT_GT(m.devices[1].batches, 100u);
  // Busy whenever free, the slow device would run ~20 batches in 1.2 s (at
  // 20 ms it ran ~30 in 600 ms before the routing rule); now its warm-up and
  // measuring batches, and a probe or two (its estimate halves every 960 ms
  // idle).
  EXPECT_LE(m.devices[0].batches, 8u)
      << "slow " << m.devices[0].batches << " batches, fast " << m.devices[1].batches;
}

// A device is measured with small batches first: one request while it is
// unmeasured (its first batch is warm-up, its second the first sample),
// then at most twice its largest measured batch.
TEST(EngineDevices, NewDevicesRampUpTheirBatchSize) {
  TestModelOptions o;
  o.delay = 200us;
  std::vector<std::shared_ptr<TestModel>> models = on_cpu_1_and_2(o, o);
  Engine engine(as_replicas(models), eager(1, 16));
  std::vector<std::future<Response>> fs;
  for (int i = 0; i < 200; ++i) fs.push_back(engine.submit(row_for(static_cast<float>(i))));
  for (int i = 0; i < 200; ++i) EXPECT_TRUE(await(fs[i]).ok);
  int64_t largest_anywhere = 0;
  size_t ran = 0;
  for (const auto& m : models) {
    const std::vector<int64_t> sizes = m->batch_sizes();
    // On a loaded machine one device's worker may be descheduled while the
    // other serves all 200: it then ran its first batch only, or none.
    if (sizes.empty()) continue;
    ++ran;
    EXPECT_EQ(sizes[0], 1);
    if (sizes.size() < 2) continue;
    EXPECT_EQ(sizes[1], 1);
    int64_t largest = sizes[1];
    for (size_t i = 2; i < sizes.size(); ++i) {
      EXPECT_LE(sizes[i], 2 * largest) << "batch " << i << " of "
                                       << ::testing::PrintToString(sizes);
      largest = std::max(largest, sizes[i]);
    }
    largest_anywhere = std::max(largest_anywhere, largest);
  }
  // Full batches come (on a busy machine one device may take most of them).
  EXPECT_GE(ran, 1u);
  EXPECT_EQ(largest_anywhere, 16);
}

// EngineOptions::warmup: graphs are captured, and each device measured,
// before the constructor returns.
TEST(EngineDevices, WarmupCapturesEveryPreferredSizeBeforeServing) {
  TestModelOptions o;
  o.inspect = false;  // graphs: no host reads in forward
  auto model = std::make_shared<TestModel>(o, Device::get("cpu:1"));
  EngineOptions opt = eager(2, 4);
  opt.use_graphs = true;
  opt.preferred_batch_sizes = {1, 2, 4};
  opt.warmup = true;
  Engine engine(model, opt);
  // Two workers x three sizes, one capture each (replays do not call forward).
  EXPECT_EQ(model->calls(), 6);
  std::vector<int64_t> sizes = model->batch_sizes();
  std::sort(sizes.begin(), sizes.end());
  EXPECT_EQ(sizes, (std::vector<int64_t>{1, 1, 2, 2, 4, 4}));
  std::vector<std::future<Response>> fs;
  for (int i = 0; i < 20; ++i) fs.push_back(engine.submit(row_for(static_cast<float>(i))));
  for (int i = 0; i < 20; ++i) EXPECT_TRUE(succeeded_with(await(fs[i]), row_for(static_cast<float>(i))));
  EXPECT_EQ(model->calls(), 6) << "a request captured a graph after warm-up";
  EXPECT_EQ(engine.metrics().submitted, 20u);  // warm-up batches are not requests
}

TEST(EngineDevices, WarmupMeasuresDevicesSoTheFirstRequestsGoToTheFastOne) {
  TestModelOptions fast, slow;
  // 60x apart: under a sanitizer on a loaded machine the fast device's
  // batches slow down, and at 5 ms the slow one's decaying idle estimate
  // (Note [Routing by expected finish]) earned it a probe within 50 requests.
  fast.delay = 300us;
  slow.delay = 20ms;
  std::vector<std::shared_ptr<TestModel>> models = on_cpu_1_and_2(slow, fast);
  EngineOptions opt = eager(1, 1);
  opt.warmup = true;
  Engine engine(as_replicas(models), opt);
  const int slow_warmup = models[0]->calls();
  EXPECT_EQ(slow_warmup, 2);  // batch size 1, twice
  for (int i = 0; i < 50; ++i) {
    auto f = engine.submit(row_for(static_cast<float>(i)));
    ASSERT_TRUE(succeeded_with(await(f), row_for(static_cast<float>(i))));
  }
  EXPECT_EQ(models[0]->calls(), slow_warmup) << "the slow device served requests";
}

TEST(EngineDevices, ADeviceThatFailsItsWarmupLeavesRotation) {
  Device& bad = Device::get("cpu:5");
  FaultGuard guard{bad};
  std::vector<std::shared_ptr<TestModel>> models{
      std::make_shared<TestModel>(TestModelOptions{}, bad),
      std::make_shared<TestModel>(TestModelOptions{}, Device::get("cpu:6"))};
  bad.set_fault("dead on arrival (injected)");
  LogSink log;
  EngineOptions opt = eager(2, 2);
  opt.warmup = true;
  opt.log = log.fn();
  Engine engine(as_replicas(models), opt);
  EngineMetrics m = engine.metrics();
  EXPECT_EQ(m.device_failures, 1u);
  EXPECT_FALSE(m.devices[0].healthy);
  ASSERT_EQ(log.snapshot().size(), 1u);
  EXPECT_NE(log.snapshot()[0].find("device cpu:5 failed and is out of rotation"), std::string::npos);
  for (int i = 0; i < 10; ++i) {
    auto f = engine.submit(row_for(static_cast<float>(i)));
    EXPECT_TRUE(succeeded_with(await(f), row_for(static_cast<float>(i))));
  }
  // And with no device left the constructor says why.
  EXPECT_TRUE(throws_error(
      [&] {
        Engine e(std::vector<std::shared_ptr<const Model>>{models[0]}, opt);
      },
      ErrorCode::kUnavailable,
      {"[Engine] every device failed its warm-up", "cpu:5", "dead on arrival"}));
}

// An idle slow device is re-measured with one request, not a batch: a
// probe must not hold many clients on the slow device.
TEST(EngineDevices, AnIdleSlowDeviceIsProbedWithOneRequest) {
  TestModelOptions fast, slow;
  // 80x apart, so that only a probe can send it work: a batch would need
  // the fast device's measured time off by more than 10x (on a loaded
  // 2-core CI machine a 2 ms vs 200 us pair was not far enough apart).
  fast.delay = 100us;
  slow.delay = 8ms;
  std::vector<std::shared_ptr<TestModel>> models = on_cpu_1_and_2(slow, fast);
  EngineOptions opt = eager(1, 16);
  opt.warmup = true;  // both measured at batch 1 and 16
  Engine engine(as_replicas(models), opt);
  const size_t warmup_calls = models[0]->batch_sizes().size();
  // Idle long enough for the slow device's estimate to decay (128 ms per
  // halving at 8 ms a batch; it needs about four).
  std::this_thread::sleep_for(700ms);
  std::vector<std::future<Response>> fs;
  for (int i = 0; i < 64; ++i) fs.push_back(engine.submit(row_for(static_cast<float>(i))));
  for (int i = 0; i < 64; ++i) EXPECT_TRUE(succeeded_with(await(fs[i]), row_for(static_cast<float>(i))));
  const std::vector<int64_t> sizes = models[0]->batch_sizes();
  ASSERT_GE(sizes.size(), warmup_calls);
  for (size_t i = warmup_calls; i < sizes.size(); ++i)
    EXPECT_EQ(sizes[i], 1) << "a batch of " << sizes[i] << " went to the slow device";
  EXPECT_LE(sizes.size() - warmup_calls, 2u);
}

// The acceptance case: one device fails; only its in-flight batch fails,
// it leaves rotation with a log line and a metric, and the requests that
// were queued meanwhile run on the other device.
TEST(EngineDevices, AFailedDeviceFailsOnlyItsBatchAndLeavesRotation) {
  Device& bad = Device::get("cpu:3");
  Device& good = Device::get("cpu:4");
  FaultGuard guard{bad};
  auto model_bad = std::make_shared<TestModel>(gated(), bad);
  auto model_good = std::make_shared<TestModel>(gated(), good);
  LogSink log;
  EngineOptions opt = eager(1, 1);
  opt.log = log.fn();
  Engine engine(std::vector<std::shared_ptr<const Model>>{model_bad, model_good}, opt);
  // One request in flight on each device, then four queued behind them.
  std::vector<std::shared_ptr<TestModel>> models{model_bad, model_good};
  auto f0 = engine.submit(row_for(0));
  ASSERT_TRUE(wait_total_calls(models, 1));
  const bool zero_on_bad = model_bad->calls() == 1;
  auto f1 = engine.submit(row_for(1));
  ASSERT_TRUE(wait_total_calls(models, 2));
  std::vector<std::future<Response>> queued;
  for (int i = 2; i < 6; ++i) queued.push_back(engine.submit(row_for(static_cast<float>(i))));
  bad.set_fault("uncorrectable ECC error (injected)");
  model_bad->open();
  auto& f_bad = zero_on_bad ? f0 : f1;
  auto& f_good = zero_on_bad ? f1 : f0;
  EXPECT_TRUE(failed_with(await(f_bad), ErrorCode::kDeviceError, "uncorrectable ECC error"));
  // The device is out before the other worker frees up: everything queued
  // goes to the good device.
  const auto until = Clock::now() + 10s;
  while (engine.metrics().device_failures == 0 && Clock::now() < until)
    std::this_thread::sleep_for(100us);
  model_good->open();
  EXPECT_TRUE(succeeded_with(await(f_good), row_for(zero_on_bad ? 1.0f : 0.0f)));
  for (int i = 0; i < 4; ++i)
    EXPECT_TRUE(succeeded_with(await(queued[i]), row_for(static_cast<float>(i + 2))));
  // And it keeps serving on what is left.
  for (int i = 0; i < 10; ++i) {
    auto f = engine.submit(row_for(100.0f + i));
    EXPECT_TRUE(succeeded_with(await(f), row_for(100.0f + i)));
  }
  EXPECT_EQ(model_bad->calls(), 1);
  EXPECT_EQ(model_good->calls(), 1 + 4 + 10);

  EngineMetrics m = engine.metrics();
  EXPECT_EQ(m.device_failures, 1u);
  EXPECT_FALSE(m.devices[0].healthy);
  EXPECT_TRUE(m.devices[1].healthy);
  EXPECT_EQ(m.devices[0].failed_batches, 1u);
  EXPECT_NE(m.devices[0].failure.find("uncorrectable ECC error"), std::string::npos);
  EXPECT_EQ(m.devices[1].requests, 15u);
  EXPECT_EQ(m.device_errors, 1u);
  EXPECT_EQ(m.completed, 15u);
  const std::vector<std::string> lines = log.snapshot();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_NE(lines[0].find("device cpu:3 failed and is out of rotation (1 of 2 devices left)"),
            std::string::npos)
      << lines[0];
  EXPECT_NE(lines[0].find("uncorrectable ECC error"), std::string::npos) << lines[0];
  const std::string text = engine.prometheus();
  for (const char* needle :
       {"fanin_device_healthy{device=\"cpu:3\"} 0", "fanin_device_healthy{device=\"cpu:4\"} 1",
        "fanin_device_failures_total 1", "fanin_device_requests_total{device=\"cpu:4\"} 15",
        "fanin_device_failed_batches_total{device=\"cpu:3\"} 1",
        "fanin_worker_batches_total{worker=\"1\",stream="}) {
    EXPECT_NE(text.find(needle), std::string::npos) << "missing: " << needle << "\n" << text;
  }
  EXPECT_TRUE(engine.drain(10s));
}

// A batch that fails while its device still works (a model error) leaves
// the device in rotation.
TEST(EngineDevices, ABatchFailureOnAWorkingDeviceKeepsItInRotation) {
  std::vector<std::shared_ptr<TestModel>> models = on_cpu_1_and_2(TestModelOptions{}, TestModelOptions{});
  LogSink log;
  EngineOptions opt = eager(1, 1);
  opt.log = log.fn();
  Engine engine(as_replicas(models), opt);
  auto bad = engine.submit(row_for(TestModel::kMarker));
  EXPECT_TRUE(failed_with(await(bad), ErrorCode::kDeviceError, "simulated device fault"));
  for (int i = 0; i < 20; ++i) {
    auto f = engine.submit(row_for(static_cast<float>(i)));
    EXPECT_TRUE(succeeded_with(await(f), row_for(static_cast<float>(i))));
  }
  EngineMetrics m = engine.metrics();
  EXPECT_EQ(m.device_failures, 0u);
  EXPECT_TRUE(m.devices[0].healthy && m.devices[1].healthy);
  EXPECT_EQ(m.devices[0].failed_batches + m.devices[1].failed_batches, 1u);
  EXPECT_TRUE(log.snapshot().empty());
}

// With no device left, what was queued fails with Unavailable (nothing
// waits forever) and new requests are refused with the reason.
TEST(EngineDevices, WhenTheLastDeviceFailsQueuedRequestsFailAndSubmitRefuses) {
  Device& d1 = Device::get("cpu:5");
  Device& d2 = Device::get("cpu:6");
  FaultGuard g1{d1}, g2{d2};
  std::vector<std::shared_ptr<TestModel>> models{std::make_shared<TestModel>(gated(), d1),
                                                 std::make_shared<TestModel>(gated(), d2)};
  LogSink log;
  EngineOptions opt = eager(1, 1);
  opt.log = log.fn();
  Engine engine(as_replicas(models), opt);
  auto f0 = engine.submit(row_for(0));
  auto f1 = engine.submit(row_for(1));
  ASSERT_TRUE(wait_total_calls(models, 2));
  std::vector<std::future<Response>> queued;
  for (int i = 2; i < 7; ++i) queued.push_back(engine.submit(row_for(static_cast<float>(i))));
  d1.set_fault("lost (injected)");
  d2.set_fault("lost (injected)");
  for (auto& m : models) m->open();
  EXPECT_TRUE(failed_with(await(f0), ErrorCode::kDeviceError, "lost (injected)"));
  EXPECT_TRUE(failed_with(await(f1), ErrorCode::kDeviceError, "lost (injected)"));
  for (auto& f : queued)
    EXPECT_TRUE(failed_with(await(f), ErrorCode::kUnavailable, "no healthy device left"));
  EXPECT_TRUE(throws_error([&] { engine.submit(row_for(9)); }, ErrorCode::kUnavailable,
                           {"no healthy device left", "lost (injected)"}));
  EngineMetrics m = engine.metrics();
  EXPECT_EQ(m.device_failures, 2u);
  EXPECT_FALSE(m.devices[0].healthy || m.devices[1].healthy);
  EXPECT_EQ(m.failed, 7u);
  EXPECT_EQ(m.completed, 0u);
  EXPECT_EQ(log.snapshot().size(), 2u);
  EXPECT_TRUE(engine.drain(10s));
}

TEST(EngineDevices, ReplicasMustBeOnDistinctDevicesAndAgree) {
  auto a = std::make_shared<TestModel>(TestModelOptions{}, Device::get("cpu:1"));
  auto b = std::make_shared<TestModel>(TestModelOptions{}, Device::get("cpu:1"));
  EXPECT_TRUE(throws_error([&] { Engine e(std::vector<std::shared_ptr<const Model>>{a, b}); },
                           ErrorCode::kInvalidArgument, {"[Engine]", "both on cpu:1"}));
  MlpConfig cfg;
  cfg.dims = {4, 8, 4};
  auto mlp = Mlp::random(cfg, 1, Device::get("cpu:2"));
  cfg.dims = {4, 8, 5};
  auto other = Mlp::random(cfg, 1, Device::get("cpu:2"));
  EXPECT_TRUE(
      throws_error([&] { Engine e(std::vector<std::shared_ptr<const Model>>{a, other}); },
                   ErrorCode::kInvalidArgument, {"[Engine] model replica 1", "differs from replica 0"}));
  // Same shapes, different models: allowed (e.g. two builds of one net).
  EXPECT_NO_THROW(Engine e(std::vector<std::shared_ptr<const Model>>{a, mlp}));
  EXPECT_TRUE(throws_error([&] { Engine e(std::vector<std::shared_ptr<const Model>>{a, nullptr}); },
                           ErrorCode::kInvalidArgument, {"[Engine] model replica 1 is null"}));
  EXPECT_TRUE(throws_error([&] { Engine e(std::vector<std::shared_ptr<const Model>>{}); },
                           ErrorCode::kInvalidArgument, {"[Engine] no model replicas"}));
}

TEST(EngineDevices, LoadReplicasLoadsOncePerDeviceAndRethrows) {
  std::vector<Device*> devices = Device::list("cpu:1,cpu:2,cpu:3");
  std::atomic<int> loads{0};
  MlpConfig cfg;
  cfg.dims = {8, 16, 8};
  auto replicas = load_replicas<Model>(devices, [&](Device& d) {
    loads.fetch_add(1);
    return Mlp::random(cfg, 7, d);
  });
  ASSERT_EQ(replicas.size(), 3u);
  EXPECT_EQ(loads.load(), 3);
  for (size_t i = 0; i < 3; ++i) EXPECT_EQ(&replicas[i]->device(), devices[i]);
  // Same seed, same weights: every device gives the same answer (to float
  // rounding: batches of different sizes may take other GEMM kernels).
  Engine engine(replicas, eager(1, 4));
  std::vector<float> x(8, 0.5f);
  std::vector<std::future<Response>> fs;
  for (int i = 0; i < 30; ++i) fs.push_back(engine.submit(x));
  Response first = fs[0].get();
  for (size_t i = 1; i < fs.size(); ++i) {
    const std::vector<float> out = fs[i].get().output;
    ASSERT_EQ(out.size(), first.output.size());
    for (size_t k = 0; k < out.size(); ++k) EXPECT_NEAR(out[k], first.output[k], 1e-5f);
  }
  EXPECT_TRUE(throws_error(
      [&] {
        load_replicas<Model>(devices, [&](Device& d) -> std::shared_ptr<Model> {
          if (d.name() == "cpu:2")
            throw Error(ErrorCode::kInvalidArgument, "[test] no weights for cpu:2");
          return Mlp::random(cfg, 7, d);
        });
      },
      ErrorCode::kInvalidArgument, {"no weights for cpu:2"}));
}

TEST(EngineDevices, GraphsArePerWorkerOnEachDevice) {
  MlpConfig cfg;
  cfg.dims = {8, 16, 8};
  auto replicas = load_replicas<Model>(Device::list("cpu:1,cpu:2"),
                                       [&](Device& d) { return Mlp::random(cfg, 3, d); });
  EngineOptions opt = eager(2, 4);
  opt.use_graphs = true;
  opt.preferred_batch_sizes = {1, 2, 4};
  Engine engine(replicas, opt);
  StreamLease lease = Device::cpu().stream_pool().acquire();
  auto reference = Mlp::random(cfg, 3, Device::cpu());
  std::vector<std::future<Response>> fs;
  std::vector<std::vector<float>> inputs;
  for (int i = 0; i < 64; ++i) {
    inputs.push_back(std::vector<float>(8, 0.01f * static_cast<float>(i)));
    fs.push_back(engine.submit(inputs.back()));
  }
  for (int i = 0; i < 64; ++i) {
    Response r = fs[i].get();
    Tensor x = Tensor::from_vector(inputs[i], {1, 8}, lease.stream());
    std::vector<float> want = reference->forward(x, lease.stream()).to_vector(lease.stream());
    ASSERT_EQ(r.output.size(), want.size());
    for (size_t k = 0; k < want.size(); ++k) EXPECT_NEAR(r.output[k], want[k], 1e-5f);
  }
}

}  // namespace
}  // namespace fanin

namespace fanin {
namespace {

// The Engine's launch paths (plain forward, graphs per padded size) on each
// backend, against the MLP run directly on the cpu.
class EngineOnDevice : public ::testing::TestWithParam<std::tuple<const char*, bool>> {};

TEST_P(EngineOnDevice, ResultsMatchTheDirectForward) {
  const auto [name, graphs] = GetParam();
  if (!Device::is_available(name))
    GTEST_SKIP() << "no " << name << " device: this case runs on the GPU machine";
  MlpConfig cfg;
  cfg.dims = {16, 64, 16};
  auto model = Mlp::random(cfg, 11, Device::get(name));
  auto reference = Mlp::random(cfg, 11, Device::cpu());
  EngineOptions opt;
  opt.workers = 2;
  opt.max_batch_size = 8;
  opt.max_queue_delay = std::chrono::microseconds(200);
  opt.use_graphs = graphs;
  if (graphs) opt.preferred_batch_sizes = {1, 2, 4, 8};
  Engine engine(model, opt);
  std::vector<std::vector<float>> inputs;
  std::vector<std::future<Response>> fs;
  for (int i = 0; i < 100; ++i) {
    std::vector<float> x(16);
    for (int k = 0; k < 16; ++k) x[k] = 0.05f * static_cast<float>((i * 7 + k * 3) % 29) - 0.7f;
    inputs.push_back(x);
    fs.push_back(engine.submit(x));
  }
  StreamLease lease = Device::cpu().stream_pool().acquire();
  double worst = 0;
  for (int i = 0; i < 100; ++i) {
    const Response r = fs[i].get();
    Tensor x = Tensor::from_vector(inputs[i], {1, 16}, lease.stream());
    const std::vector<float> want = reference->forward(x, lease.stream()).to_vector(lease.stream());
    ASSERT_EQ(r.output.size(), want.size());
    for (size_t k = 0; k < want.size(); ++k)
      worst = std::max(worst, static_cast<double>(std::fabs(r.output[k] - want[k])));
  }
  // f32 on both; the GPU's GEMM may round differently (TF32 is off).
  EXPECT_LT(worst, 1e-4) << name << (graphs ? " with graphs" : "");
  EXPECT_GT(engine.metrics().batches, 0u);
}

INSTANTIATE_TEST_SUITE_P(AllBackends, EngineOnDevice,
                         ::testing::Combine(::testing::Values("cpu", "cuda:0"), ::testing::Bool()),
                         [](const auto& info) {
                           std::string n = std::get<0>(info.param);
                           for (char& c : n)
                             if (c == ':') c = '_';
                           return n + (std::get<1>(info.param) ? "_graphs" : "_plain");
                         });

}  // namespace
}  // namespace fanin
