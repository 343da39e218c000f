// Engine and BatchQueue behaviour a caller sees (issue 5): admission,
// deadlines, the three cancellation stages, isolation, priorities, budgets,
// padding, graphs, shutdown, callbacks and metrics. Every wait is bounded so
// that a bug fails the test instead of hanging CI.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <future>
#include <limits>
#include <memory>
#include <numeric>
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
using testing::Outcome;
using testing::row_for;
using testing::succeeded_with;
using testing::TestModel;
using testing::TestModelOptions;
using testing::throws_error;

std::shared_ptr<TestModel> make_model(TestModelOptions o = {}) {
  return std::make_shared<TestModel>(o);
}

TestModelOptions gated() {
  TestModelOptions o;
  o.gated = true;
  return o;
}

// One worker taking every request at once (no waiting for a fuller batch).
EngineOptions eager(int max_batch = 1) {
  EngineOptions o;
  o.workers = 1;
  o.max_batch_size = max_batch;
  o.max_queue_delay = 0us;
  return o;
}

// ---- admission ----

TEST(Engine, QueueFullRejectsAtOnceAndLosesNothingAccepted) {
  auto model = make_model(gated());
  EngineOptions opt = eager(1);
  opt.max_queue_length = 3;
  Engine engine(model, opt);
  std::vector<std::future<Response>> fs;
  std::vector<std::vector<float>> inputs;
  inputs.push_back(row_for(0));
  fs.push_back(engine.submit(inputs.back()));
  ASSERT_TRUE(model->wait_for_calls(1));  // the worker holds request 0; the queue is empty
  // Fill the queue; the next submit throws at once.
  int accepted = 1;
  bool rejected = false;
  for (int i = 1; i < 10 && !rejected; ++i) {
    const auto t0 = Clock::now();
    try {
      fs.push_back(engine.submit(row_for(static_cast<float>(i))));
      inputs.push_back(row_for(static_cast<float>(i)));
      ++accepted;
    } catch (const Error& e) {
      rejected = true;
      EXPECT_EQ(e.code(), ErrorCode::kQueueFull) << e.what();
      EXPECT_NE(e.message().find("max_queue_length 3"), std::string::npos) << e.message();
      EXPECT_LT(Clock::now() - t0, 1s) << "QueueFull must not wait";
    }
  }
  EXPECT_TRUE(rejected);
  EXPECT_EQ(accepted, 4);  // one running + three queued
  EXPECT_EQ(engine.metrics().queue_length, 3u);
  model->open();
  for (size_t i = 0; i < fs.size(); ++i) EXPECT_TRUE(succeeded_with(await(fs[i]), inputs[i])) << i;
  EXPECT_EQ(model->rows(), 4);
  EngineMetrics m = engine.metrics();
  EXPECT_EQ(m.rejected_queue_full, 1u);
  EXPECT_EQ(m.submitted, 4u);
  EXPECT_EQ(m.completed, 4u);
}

TEST(Engine, MalformedRequestsThrowAtSubmit) {
  auto model = make_model();
  EngineOptions opt = eager(4);
  opt.priority_levels = 2;
  Engine engine(model, opt);
  EXPECT_TRUE(throws_error([&] { engine.submit(std::vector<float>(5, 1.0f)); },
                           ErrorCode::kInvalidArgument,
                           {"[Engine::submit]", "5 values", "expects 4"}));
  EXPECT_TRUE(throws_error([&] { engine.submit({}); }, ErrorCode::kInvalidArgument, {"0 values"}));
  RequestOptions bad_priority;
  bad_priority.priority = 2;
  EXPECT_TRUE(throws_error([&] { engine.submit(row_for(1), bad_priority); },
                           ErrorCode::kInvalidArgument, {"priority 2", "0..1"}));
  RequestOptions bad_cost;
  bad_cost.cost = -1;
  EXPECT_TRUE(throws_error([&] { engine.submit(row_for(1), bad_cost); },
                           ErrorCode::kInvalidArgument, {"cost"}));
  EXPECT_TRUE(throws_error([&] { engine.submit(row_for(1), {}, Engine::Callback{}); },
                           ErrorCode::kInvalidArgument, {"callback is empty"}));
  auto f = engine.submit(row_for(7));
  EXPECT_TRUE(succeeded_with(await(f), row_for(7)));
  EXPECT_EQ(model->rows(), 1);
  EngineMetrics m = engine.metrics();
  EXPECT_EQ(m.rejected_invalid, 5u);  // the empty callback counts too
  EXPECT_EQ(m.submitted, 1u);
}

TEST(Engine, BadOptionsThrowInvalidArgument) {
  auto model = make_model();
  auto with = [&](auto change) {
    EngineOptions o;
    change(o);
    return [model, o] { Engine e(model, o); };
  };
  EXPECT_TRUE(throws_error(with([](EngineOptions& o) { o.workers = 0; }),
                           ErrorCode::kInvalidArgument, {"workers"}));
  EXPECT_TRUE(throws_error(with([](EngineOptions& o) { o.max_batch_size = 0; }),
                           ErrorCode::kInvalidArgument, {"max_batch_size"}));
  EXPECT_TRUE(throws_error(with([](EngineOptions& o) {
                             o.preferred_batch_sizes = {4, 2};
                           }),
                           ErrorCode::kInvalidArgument, {"preferred_batch_sizes"}));
  EXPECT_TRUE(throws_error(with([](EngineOptions& o) { o.preferred_batch_sizes = {128}; }),
                           ErrorCode::kInvalidArgument, {"preferred_batch_sizes"}));
  EXPECT_TRUE(throws_error(with([](EngineOptions& o) { o.priority_levels = 0; }),
                           ErrorCode::kInvalidArgument, {"priority_levels"}));
  EXPECT_TRUE(
      throws_error([] { Engine e(nullptr, {}); }, ErrorCode::kInvalidArgument, {"model is null"}));
}

// ---- deadlines ----

TEST(Engine, DeadlineExceededRequestsNeverRun) {
  auto model = make_model(gated());
  EngineOptions opt = eager(8);
  opt.default_timeout = 40ms;
  Engine engine(model, opt);
  RequestOptions later;
  later.deadline = Clock::now() + 60s;  // not the default: the worker may be slow to start
  auto f0 = engine.submit(row_for(0), later);
  ASSERT_TRUE(model->wait_for_calls(1));
  RequestOptions soon;
  soon.deadline = Clock::now() + 30ms;
  RequestOptions past;
  past.deadline = Clock::now() - 1ms;
  auto f1 = engine.submit(row_for(1), soon);
  auto f2 = engine.submit(row_for(2), past);
  auto f3 = engine.submit(row_for(3));  // default_timeout
  auto f4 = engine.submit(row_for(4), later);
  std::this_thread::sleep_for(100ms);
  model->open();
  EXPECT_TRUE(succeeded_with(await(f0), row_for(0)));
  EXPECT_TRUE(failed_with(await(f1), ErrorCode::kDeadlineExceeded, "it never ran"));
  EXPECT_TRUE(failed_with(await(f2), ErrorCode::kDeadlineExceeded, "it never ran"));
  EXPECT_TRUE(failed_with(await(f3), ErrorCode::kDeadlineExceeded, "it never ran"));
  EXPECT_TRUE(succeeded_with(await(f4), row_for(4)));
  // Only requests 0 and 4 reached the model.
  EXPECT_EQ(model->rows(), 2);
  EXPECT_EQ(engine.metrics().deadline_exceeded, 3u);
}

// ---- cancellation at each stage ----

TEST(Engine, CancelledWhileQueuedIsDroppedBeforeBatching) {
  auto model = make_model(gated());
  Engine engine(model, eager(8));
  auto f0 = engine.submit(row_for(0));
  ASSERT_TRUE(model->wait_for_calls(1));  // a slow batch holds the only worker
  auto token = std::make_shared<CancelToken>();
  RequestOptions opt;
  opt.cancel = token;
  auto f1 = engine.submit(row_for(1), opt);
  auto f2 = engine.submit(row_for(2));
  token->cancel();
  model->open();
  EXPECT_TRUE(succeeded_with(await(f0), row_for(0)));
  EXPECT_TRUE(failed_with(await(f1), ErrorCode::kCancelled, "before batching"));
  EXPECT_TRUE(succeeded_with(await(f2), row_for(2)));
  EXPECT_EQ(model->rows(), 2);
  EXPECT_EQ((model->batch_sizes()), (std::vector<int64_t>{1, 1}));
  EXPECT_EQ(engine.metrics().cancelled, 1u);
}

TEST(Engine, CancelledAfterFormationIsSkippedBeforeLaunch) {
  auto model = make_model();
  auto token = std::make_shared<CancelToken>();
  EngineOptions opt;
  opt.max_batch_size = 2;
  opt.max_queue_delay = 200ms;  // the two requests go as one full batch
  opt.on_batch_formed = [token](int) { token->cancel(); };
  Engine engine(model, opt);
  RequestOptions with_token;
  with_token.cancel = token;
  auto f1 = engine.submit(row_for(1), with_token);
  auto f2 = engine.submit(row_for(2));
  EXPECT_TRUE(failed_with(await(f1), ErrorCode::kCancelled, "before launch"));
  EXPECT_TRUE(succeeded_with(await(f2), row_for(2)));
  EXPECT_EQ(model->rows(), 1);  // request 1 never reached the model
}

TEST(Engine, CancelledDuringComputeHasItsResultDiscarded) {
  auto model = make_model();
  auto token = std::make_shared<CancelToken>();
  EngineOptions opt;
  opt.max_batch_size = 2;
  opt.max_queue_delay = 200ms;
  opt.on_batch_computed = [token](int) { token->cancel(); };
  Engine engine(model, opt);
  RequestOptions with_token;
  with_token.cancel = token;
  auto f1 = engine.submit(row_for(1), with_token);
  auto f2 = engine.submit(row_for(2));
  EXPECT_TRUE(failed_with(await(f1), ErrorCode::kCancelled, "result discarded"));
  EXPECT_TRUE(succeeded_with(await(f2), row_for(2)));
  EXPECT_EQ(model->rows(), 2);  // both were computed
  EngineMetrics m = engine.metrics();
  EXPECT_EQ(m.cancelled, 1u);
  EXPECT_EQ(m.completed, 1u);
}

// ---- isolation ----

TEST(Engine, NanInputFailsAloneAndItsBatchSucceeds) {
  auto model = make_model(gated());
  EngineOptions opt = eager(8);
  opt.check_inputs = true;
  Engine engine(model, opt);
  auto f0 = engine.submit(row_for(0));
  ASSERT_TRUE(model->wait_for_calls(1));
  std::vector<std::vector<float>> in{row_for(1), row_for(2), row_for(3), row_for(4)};
  in[2][1] = std::numeric_limits<float>::quiet_NaN();
  std::vector<std::future<Response>> fs;
  for (auto& r : in) fs.push_back(engine.submit(r));
  model->open();
  EXPECT_TRUE(succeeded_with(await(f0), row_for(0)));
  for (size_t i = 0; i < fs.size(); ++i) {
    Outcome o = await(fs[i]);
    if (i == 2) {
      EXPECT_TRUE(failed_with(o, ErrorCode::kInvalidArgument, "NaN or Inf"));
    } else {
      EXPECT_TRUE(succeeded_with(o, in[i])) << i;
      EXPECT_EQ(o.response.batch_size, 3);
    }
  }
  // The three good requests ran as one batch, without the bad one.
  EXPECT_EQ((model->batch_sizes()), (std::vector<int64_t>{1, 3}));
  EXPECT_EQ(engine.metrics().invalid_in_batch, 1u);
}

TEST(Engine, DeviceErrorFailsExactlyItsBatchAndServingContinues) {
  auto model = make_model(gated());
  Engine engine(model, eager(2));
  auto f0 = engine.submit(row_for(0));
  ASSERT_TRUE(model->wait_for_calls(1));
  // Queued as two batches of two: [marker, 1] and [2, 3].
  auto fa = engine.submit(row_for(TestModel::kMarker));
  auto fb = engine.submit(row_for(1));
  auto fc = engine.submit(row_for(2));
  auto fd = engine.submit(row_for(3));
  model->open();
  EXPECT_TRUE(succeeded_with(await(f0), row_for(0)));
  EXPECT_TRUE(failed_with(await(fa), ErrorCode::kDeviceError, "simulated device fault"));
  EXPECT_TRUE(failed_with(await(fb), ErrorCode::kDeviceError, "simulated device fault"));
  EXPECT_TRUE(succeeded_with(await(fc), row_for(2)));
  EXPECT_TRUE(succeeded_with(await(fd), row_for(3)));
  EXPECT_EQ((model->batch_sizes()), (std::vector<int64_t>{1, 2, 2}));
  // The engine keeps serving.
  for (int i = 0; i < 5; ++i) {
    auto f = engine.submit(row_for(10.0f + i));
    EXPECT_TRUE(succeeded_with(await(f), row_for(10.0f + i)));
  }
  EngineMetrics m = engine.metrics();
  EXPECT_EQ(m.device_errors, 2u);
  EXPECT_EQ(m.completed, 8u);
}

// Nothing a hook or a model throws may take a worker (and the process) down.
TEST(Engine, ThrowingHooksAndNonStdExceptionsFailOnlyTheirBatch) {
  TestModelOptions mo;
  mo.marker_throws_int = true;
  auto model = make_model(mo);
  EngineOptions opt = eager(1);
  opt.on_batch_formed = [](int) { throw std::runtime_error("hook failure"); };
  opt.on_batch_computed = [](int) { throw 7; };
  Engine engine(model, opt);
  auto bad = engine.submit(row_for(TestModel::kMarker));
  EXPECT_TRUE(failed_with(await(bad), ErrorCode::kDeviceError, "unknown exception"));
  auto good = engine.submit(row_for(3));
  EXPECT_TRUE(succeeded_with(await(good), row_for(3)));
}

// ---- batch composition ----

TEST(Engine, MoreUrgentPriorityRunsFirst) {
  auto model = make_model(gated());
  EngineOptions opt = eager(1);
  opt.priority_levels = 2;
  Engine engine(model, opt);
  auto f0 = engine.submit(row_for(0));
  ASSERT_TRUE(model->wait_for_calls(1));
  std::vector<std::future<Response>> fs;
  RequestOptions low;
  low.priority = 1;
  for (float id : {11.0f, 12.0f, 13.0f}) fs.push_back(engine.submit(row_for(id), low));
  for (float id : {1.0f, 2.0f}) fs.push_back(engine.submit(row_for(id)));
  model->open();
  for (auto& f : fs) EXPECT_TRUE(await(f).ok);
  EXPECT_TRUE(await(f0).ok);
  EXPECT_EQ((model->first_values()), (std::vector<float>{0, 1, 2, 11, 12, 13}));
}

TEST(Engine, TokenBudgetLimitsBatchComposition) {
  auto model = make_model(gated());
  EngineOptions opt = eager(8);
  opt.max_tokens_per_batch = 10;
  Engine engine(model, opt);
  auto f0 = engine.submit(row_for(0));
  ASSERT_TRUE(model->wait_for_calls(1));
  RequestOptions four;
  four.cost = 4;
  RequestOptions big;
  big.cost = 25;  // over the budget alone: runs alone
  std::vector<std::future<Response>> fs;
  for (int i = 1; i <= 5; ++i) fs.push_back(engine.submit(row_for(static_cast<float>(i)), four));
  fs.push_back(engine.submit(row_for(6), big));
  fs.push_back(engine.submit(row_for(7), four));
  model->open();
  EXPECT_TRUE(await(f0).ok);
  for (size_t i = 0; i < fs.size(); ++i)
    EXPECT_TRUE(succeeded_with(await(fs[i]), row_for(static_cast<float>(i + 1)))) << i;
  // 4+4 fit in 10, a third 4 does not; 4 then 25 does not; 25 alone; 4.
  EXPECT_EQ((model->batch_sizes()), (std::vector<int64_t>{1, 2, 2, 1, 1, 1}));
}

TEST(Engine, PreferredBatchSizesPadAndKeepResults) {
  auto model = make_model(gated());
  EngineOptions opt = eager(8);
  opt.preferred_batch_sizes = {2, 4, 8};
  Engine engine(model, opt);
  auto f0 = engine.submit(row_for(0));
  ASSERT_TRUE(model->wait_for_calls(1));
  std::vector<std::future<Response>> fs;
  for (int i = 1; i <= 5; ++i) fs.push_back(engine.submit(row_for(static_cast<float>(i))));
  model->open();
  EXPECT_TRUE(succeeded_with(await(f0), row_for(0)));
  for (size_t i = 0; i < fs.size(); ++i) {
    Outcome o = await(fs[i]);
    EXPECT_TRUE(succeeded_with(o, row_for(static_cast<float>(i + 1)))) << i;
    EXPECT_EQ(o.response.batch_size, 5);  // before padding
  }
  // 1 padded to 2, 5 padded to 8.
  EXPECT_EQ((model->batch_sizes()), (std::vector<int64_t>{2, 8}));
  // Padding rows are zeros and were dropped.
  EXPECT_EQ((model->first_values()), (std::vector<float>{0, 0, 1, 2, 3, 4, 5, 0, 0, 0}));
}

// A batch that is as good as full (token budget reached, largest preferred
// size reached) leaves at once instead of waiting out max_queue_delay.
TEST(Engine, ABatchThatIsReadyLeavesWithoutWaitingForTheDelay) {
  for (int variant = 0; variant < 2; ++variant) {
    SCOPED_TRACE(variant == 0 ? "token budget" : "preferred size");
    auto model = make_model();
    EngineOptions opt;
    opt.max_batch_size = 16;
    opt.max_queue_delay = 5s;
    if (variant == 0)
      opt.max_tokens_per_batch = 8;
    else
      opt.preferred_batch_sizes = {1, 2};
    Engine engine(model, opt);
    RequestOptions ro;
    ro.cost = 4;
    const auto t0 = Clock::now();
    auto f1 = engine.submit(row_for(1), ro);
    std::this_thread::sleep_for(20ms);  // the worker now waits for a fuller batch
    auto f2 = engine.submit(row_for(2), ro);
    EXPECT_TRUE(succeeded_with(await(f1), row_for(1)));
    EXPECT_TRUE(succeeded_with(await(f2), row_for(2)));
    EXPECT_LT(Clock::now() - t0, 2s) << "the ready batch waited for max_queue_delay";
    EXPECT_EQ((model->batch_sizes()), (std::vector<int64_t>{2}));
  }
}

// Note [Adaptive queue delay]: a client whose requests come further apart
// than max_queue_delay does not wait for it (the first request, with no gap
// known yet, does); with adaptive_queue_delay off every one waits.
TEST(Engine, SparseRequestsDoNotWaitOutTheQueueDelay) {
  for (const bool adaptive : {true, false}) {
    SCOPED_TRACE(adaptive ? "adaptive" : "fixed");
    auto model = make_model();
    EngineOptions opt;
    opt.max_batch_size = 8;
    opt.max_queue_delay = 100ms;
    opt.adaptive_queue_delay = adaptive;
    Engine engine(model, opt);
    auto t0 = Clock::now();
    auto first = engine.submit(row_for(1));
    EXPECT_TRUE(succeeded_with(await(first), row_for(1)));
    EXPECT_GE(Clock::now() - t0, 90ms) << "the first request has no gap to go by: it waits";
    for (int i = 2; i <= 3; ++i) {
      std::this_thread::sleep_for(150ms);  // gaps ~250, ~150 ms: each > the 100 ms delay
      t0 = Clock::now();
      auto f = engine.submit(row_for(static_cast<float>(i)));
      EXPECT_TRUE(succeeded_with(await(f), row_for(static_cast<float>(i))));
      const auto waited = Clock::now() - t0;
      if (adaptive)
        EXPECT_LT(waited, 60ms) << "a lone request waited out the delay";
      else
        EXPECT_GE(waited, 90ms) << "the fixed delay was skipped";
    }
    EXPECT_EQ((model->batch_sizes()), (std::vector<int64_t>{1, 1, 1}));
  }
}

// A steady stream still batches, and so does a burst after a pause: one
// long gap moves the mean by an eighth of it.
TEST(Engine, BurstsStillBatchWithTheAdaptiveDelay) {
  auto model = make_model();
  EngineOptions opt;
  opt.max_batch_size = 64;
  opt.max_queue_delay = 200ms;
  Engine engine(model, opt);
  for (int burst = 0; burst < 2; ++burst) {
    if (burst == 1) std::this_thread::sleep_for(400ms);  // a pause of twice the delay
    std::vector<std::future<Response>> fs;
    for (int i = 0; i < 16; ++i) fs.push_back(engine.submit(row_for(static_cast<float>(i))));
    for (size_t i = 0; i < fs.size(); ++i)
      EXPECT_TRUE(succeeded_with(await(fs[i]), row_for(static_cast<float>(i))));
  }
  EXPECT_EQ((model->batch_sizes()), (std::vector<int64_t>{16, 16}));
}

// After a sparse spell the mean gap is long, but a burst's short gaps make
// its requests batch from the second on (the expected gap is the shorter of
// the mean and the newest one): at most two batches for the burst.
TEST(Engine, ABurstAfterSparseRequestsBatches) {
  auto model = make_model();
  EngineOptions opt;
  opt.max_batch_size = 64;
  opt.max_queue_delay = 100ms;
  Engine engine(model, opt);
  for (int i = 0; i < 3; ++i) {  // gaps of ~250 ms: a mean far above the delay
    if (i > 0) std::this_thread::sleep_for(150ms);
    auto f = engine.submit(row_for(static_cast<float>(i)));
    EXPECT_TRUE(succeeded_with(await(f), row_for(static_cast<float>(i))));
  }
  std::vector<std::future<Response>> fs;
  for (int i = 0; i < 16; ++i) {
    if (i > 0) std::this_thread::sleep_for(1ms);  // 16 ms in all, well inside the delay
    fs.push_back(engine.submit(row_for(static_cast<float>(i))));
  }
  for (size_t i = 0; i < fs.size(); ++i)
    EXPECT_TRUE(succeeded_with(await(fs[i]), row_for(static_cast<float>(i))));
  const std::vector<int64_t> sizes = model->batch_sizes();
  ASSERT_GE(sizes.size(), 4u);
  EXPECT_EQ((std::vector<int64_t>(sizes.begin(), sizes.begin() + 3)),
            (std::vector<int64_t>{1, 1, 1}));
  EXPECT_LE(sizes.size(), 5u) << "the burst ran in " << sizes.size() - 3 << " batches";
}

// max_queue_delay = microseconds::max() waits for a full batch even when
// requests come far apart.
TEST(Engine, AnUnboundedQueueDelayIgnoresSparseArrivals) {
  auto model = make_model();
  EngineOptions opt;
  opt.max_batch_size = 3;
  opt.max_queue_delay = std::chrono::microseconds::max();
  Engine engine(model, opt);
  std::vector<std::future<Response>> fs;
  for (int i = 0; i < 3; ++i) {
    if (i > 0) std::this_thread::sleep_for(50ms);
    fs.push_back(engine.submit(row_for(static_cast<float>(i))));
  }
  for (size_t i = 0; i < fs.size(); ++i)
    EXPECT_TRUE(succeeded_with(await(fs[i]), row_for(static_cast<float>(i))));
  EXPECT_EQ((model->batch_sizes()), (std::vector<int64_t>{3}));
}

// Submits `n` rows from 4 threads; returns every outcome in id order.
std::vector<Outcome> run_many(Engine& engine, int n) {
  std::vector<std::future<Response>> fs(static_cast<size_t>(n));
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = t; i < n; i += 4)
        fs[static_cast<size_t>(i)] = engine.submit(row_for(static_cast<float>(i)));
    });
  }
  for (auto& th : threads) th.join();
  std::vector<Outcome> out;
  for (auto& f : fs) out.push_back(await(f));
  return out;
}

TEST(Engine, GraphsOnCpuGiveTheSameResults) {
  TestModelOptions mo;
  mo.inspect = false;  // no host reads under capture
  EngineOptions opt;
  opt.workers = 2;
  opt.max_batch_size = 8;
  opt.max_queue_delay = 200us;
  opt.preferred_batch_sizes = {1, 2, 4, 8};
  auto plain_model = make_model(mo);
  auto graph_model = make_model(mo);
  std::vector<Outcome> plain, graphed;
  {
    Engine engine(plain_model, opt);
    plain = run_many(engine, 200);
  }
  opt.use_graphs = true;
  {
    Engine engine(graph_model, opt);
    graphed = run_many(engine, 200);
    EXPECT_EQ(engine.metrics().completed, 200u);
  }
  for (size_t i = 0; i < plain.size(); ++i) {
    EXPECT_TRUE(succeeded_with(plain[i], row_for(static_cast<float>(i)))) << i;
    EXPECT_TRUE(succeeded_with(graphed[i], row_for(static_cast<float>(i)))) << i;
  }
  // Captured once per (worker, padded size), replayed afterwards.
  EXPECT_LE(graph_model->calls(), 2 * 4);
  EXPECT_GE(graph_model->calls(), 1);
}

// ---- shutdown ----

TEST(Engine, DrainFinishesAllAcceptedWork) {
  TestModelOptions mo;
  mo.delay = 1ms;
  auto model = make_model(mo);
  EngineOptions opt;
  opt.workers = 2;
  opt.max_batch_size = 4;
  Engine engine(model, opt);
  std::vector<std::future<Response>> fs;
  for (int i = 0; i < 60; ++i) fs.push_back(engine.submit(row_for(static_cast<float>(i))));
  EXPECT_TRUE(engine.drain());
  for (size_t i = 0; i < fs.size(); ++i) {
    ASSERT_EQ(fs[i].wait_for(0s), std::future_status::ready)
        << "drain returned before request " << i;
    EXPECT_TRUE(succeeded_with(await(fs[i]), row_for(static_cast<float>(i))));
  }
  EXPECT_EQ(model->rows(), 60);
  EXPECT_TRUE(
      throws_error([&] { engine.submit(row_for(1)); }, ErrorCode::kCancelled, {"shutting down"}));
  EXPECT_TRUE(engine.drain());  // idempotent
  EngineMetrics m = engine.metrics();
  EXPECT_EQ(m.completed, 60u);
  EXPECT_EQ(m.rejected_shutdown, 1u);
}

// A timeout too long to add to the clock's now() means "no limit" (it
// used to overflow inside wait_for and cancel everything at once).
TEST(Engine, DrainWithAHugeTimeoutWaitsForTheWork) {
  TestModelOptions mo;
  mo.delay = 2ms;
  auto model = make_model(mo);
  Engine engine(model, eager(1));
  std::vector<std::future<Response>> fs;
  for (int i = 0; i < 20; ++i) fs.push_back(engine.submit(row_for(static_cast<float>(i))));
  EXPECT_TRUE(engine.drain(std::chrono::milliseconds::max() / 2));
  for (size_t i = 0; i < fs.size(); ++i)
    EXPECT_TRUE(succeeded_with(await(fs[i]), row_for(static_cast<float>(i)))) << i;
  EXPECT_EQ(model->rows(), 20);
}

TEST(Engine, DrainTimeoutCancelsTheRestAndResolvesEveryFuture) {
  TestModelOptions mo;
  mo.delay = 40ms;
  auto model = make_model(mo);
  Engine engine(model, eager(1));
  std::vector<std::future<Response>> fs;
  for (int i = 0; i < 20; ++i) fs.push_back(engine.submit(row_for(static_cast<float>(i))));
  const auto t0 = Clock::now();
  EXPECT_FALSE(engine.drain(50ms));
  // At most the running batch finishes after the timeout.
  EXPECT_LT(Clock::now() - t0, 2s);
  int ok = 0, cancelled = 0;
  for (size_t i = 0; i < fs.size(); ++i) {
    ASSERT_EQ(fs[i].wait_for(0s), std::future_status::ready) << "request " << i << " unresolved";
    Outcome o = await(fs[i]);
    if (o.ok) {
      EXPECT_TRUE(succeeded_with(o, row_for(static_cast<float>(i))));
      ++ok;
    } else {
      EXPECT_TRUE(failed_with(o, ErrorCode::kCancelled, "cancelled"));
      ++cancelled;
    }
  }
  EXPECT_EQ(ok + cancelled, 20);
  EXPECT_GE(cancelled, 15);
  EXPECT_LE(ok, model->rows());  // a request computed while cancelling is discarded
  EngineMetrics m = engine.metrics();
  EXPECT_EQ(m.completed, static_cast<uint64_t>(ok));
  EXPECT_EQ(m.cancelled, static_cast<uint64_t>(cancelled));
}

TEST(Engine, CancelFailsQueuedAndRunningRequests) {
  auto model = make_model(gated());
  Engine engine(model, eager(1));
  auto f0 = engine.submit(row_for(0));
  ASSERT_TRUE(model->wait_for_calls(1));
  std::vector<std::future<Response>> fs;
  for (int i = 1; i <= 5; ++i) fs.push_back(engine.submit(row_for(static_cast<float>(i))));
  // cancel() waits for the running batch; let it finish a little later.
  std::thread opener([&] {
    std::this_thread::sleep_for(50ms);
    model->open();
  });
  engine.cancel();
  opener.join();
  for (auto& f : fs) EXPECT_TRUE(failed_with(await(f), ErrorCode::kCancelled, "before it ran"));
  EXPECT_TRUE(failed_with(await(f0), ErrorCode::kCancelled, "result discarded"));
  EXPECT_EQ(model->rows(), 1);
  EXPECT_TRUE(throws_error([&] { engine.submit(row_for(1)); }, ErrorCode::kCancelled));
  engine.cancel();  // idempotent
  EXPECT_EQ(engine.metrics().cancelled, 6u);
}

// cancel() must not wait behind a drain that is still waiting for work.
TEST(Engine, CancelInterruptsAnUnboundedDrain) {
  TestModelOptions mo;
  mo.delay = 30ms;
  auto model = make_model(mo);
  Engine engine(model, eager(1));
  std::vector<std::future<Response>> fs;
  for (int i = 0; i < 100; ++i) fs.push_back(engine.submit(row_for(static_cast<float>(i))));
  std::thread drainer([&] { engine.drain(); });
  std::this_thread::sleep_for(50ms);
  const auto t0 = Clock::now();
  engine.cancel();
  const auto took = Clock::now() - t0;
  drainer.join();
  EXPECT_LT(took, 1s) << "cancel() waited for the drain to finish the queue";
  int cancelled = 0;
  for (auto& f : fs) {
    Outcome o = await(f);
    if (!o.ok) {
      EXPECT_TRUE(failed_with(o, ErrorCode::kCancelled, "cancelled"));
      ++cancelled;
    }
  }
  EXPECT_GE(cancelled, 80);
}

TEST(Engine, DestructorDrains) {
  TestModelOptions mo;
  mo.delay = 1ms;
  auto model = make_model(mo);
  std::vector<std::future<Response>> fs;
  {
    EngineOptions opt;
    opt.workers = 2;
    opt.max_batch_size = 3;
    Engine engine(model, opt);
    for (int i = 0; i < 30; ++i) fs.push_back(engine.submit(row_for(static_cast<float>(i))));
  }
  for (size_t i = 0; i < fs.size(); ++i) {
    ASSERT_EQ(fs[i].wait_for(0s), std::future_status::ready) << i;
    EXPECT_TRUE(succeeded_with(await(fs[i]), row_for(static_cast<float>(i))));
  }
  EXPECT_EQ(model->rows(), 30);
}

// ---- callbacks ----

TEST(Engine, CallbackResolvesExactlyOnce) {
  TestModelOptions mo;
  mo.delay = 200us;
  auto model = make_model(mo);
  EngineOptions opt;
  opt.workers = 2;
  opt.max_batch_size = 4;
  opt.max_queue_delay = 100us;
  constexpr int kN = 300;
  std::vector<std::atomic<int>> calls(kN);
  std::vector<std::atomic<int>> oks(kN);
  std::atomic<int> throwing_calls{0};
  auto token = std::make_shared<CancelToken>();
  {
    Engine engine(model, opt);
    for (int i = 0; i < kN; ++i) {
      RequestOptions ro;
      if (i % 7 == 0) ro.cancel = token;
      if (i % 11 == 0) ro.deadline = Clock::now() - 1ms;
      std::vector<float> in = row_for(static_cast<float>(i % 50));
      if (i % 13 == 0) in[0] = TestModel::kMarker;
      engine.submit(in, ro, [&, i, in](Response r, const Error* e) {
        calls[i].fetch_add(1);
        if (e == nullptr) {
          EXPECT_EQ(r.output, TestModel::expected(in));
          oks[i].fetch_add(1);
        } else {
          EXPECT_TRUE(e->code() == ErrorCode::kCancelled ||
                      e->code() == ErrorCode::kDeadlineExceeded ||
                      e->code() == ErrorCode::kDeviceError)
              << e->what();
          EXPECT_TRUE(r.output.empty());
        }
      });
      if (i == kN / 2) token->cancel();
    }
    // Every callback ran (bounded wait), then: a throwing callback does not
    // take a worker down.
    const auto until = Clock::now() + 10s;
    auto total = [&] {
      int t = 0;
      for (auto& c : calls) t += c.load();
      return t;
    };
    while (total() < kN && Clock::now() < until) std::this_thread::sleep_for(1ms);
    ASSERT_EQ(total(), kN);
    engine.submit(row_for(1), {}, [&](Response, const Error*) {
      throwing_calls.fetch_add(1);
      throw std::runtime_error("callback failure");
    });
    auto after = engine.submit(row_for(2));
    EXPECT_TRUE(succeeded_with(await(after), row_for(2)));
    EXPECT_TRUE(engine.drain(10s));
  }
  int ok = 0;
  for (int i = 0; i < kN; ++i) {
    EXPECT_EQ(calls[i].load(), 1) << "request " << i;
    ok += oks[i].load();
    if (i % 11 == 0 || i % 13 == 0 || (i % 7 == 0 && i > kN / 2)) {
      EXPECT_EQ(oks[i].load(), 0) << i;
    }
  }
  EXPECT_GT(ok, kN / 3);
  EXPECT_EQ(throwing_calls.load(), 1);
}

// ---- metrics ----

TEST(Engine, MetricsCountOutcomesAndExportPrometheusText) {
  auto model = make_model(gated());
  EngineOptions opt = eager(4);
  opt.max_queue_length = 5;
  opt.check_inputs = true;
  Engine engine(model, opt);
  auto f0 = engine.submit(row_for(0));
  ASSERT_TRUE(model->wait_for_calls(1));
  auto token = std::make_shared<CancelToken>();
  RequestOptions cancelled;
  cancelled.cancel = token;
  RequestOptions expired;
  expired.deadline = Clock::now() - 1ms;
  std::vector<float> nan_row = row_for(3);
  nan_row[0] = std::nanf("");
  std::vector<std::future<Response>> fs;
  fs.push_back(engine.submit(row_for(1)));
  fs.push_back(engine.submit(row_for(2)));
  fs.push_back(engine.submit(row_for(3), cancelled));
  fs.push_back(engine.submit(row_for(4), expired));
  fs.push_back(engine.submit(nan_row));
  EXPECT_TRUE(throws_error([&] { engine.submit(row_for(5)); }, ErrorCode::kQueueFull));
  EXPECT_TRUE(throws_error([&] { engine.submit({1.0f}); }, ErrorCode::kInvalidArgument));
  token->cancel();
  model->open();
  EXPECT_TRUE(await(f0).ok);
  for (auto& f : fs) await(f);
  auto fe = engine.submit(row_for(TestModel::kMarker));
  EXPECT_EQ(await(fe).code, ErrorCode::kDeviceError);
  EXPECT_TRUE(engine.drain(10s));

  EngineMetrics m = engine.metrics();
  EXPECT_EQ(m.submitted, 7u);
  EXPECT_EQ(m.completed, 3u);  // 0, 1, 2
  EXPECT_EQ(m.failed, 4u);
  EXPECT_EQ(m.cancelled, 1u);
  EXPECT_EQ(m.deadline_exceeded, 1u);
  EXPECT_EQ(m.invalid_in_batch, 1u);
  EXPECT_EQ(m.device_errors, 1u);
  EXPECT_EQ(m.rejected_queue_full, 1u);
  EXPECT_EQ(m.rejected_invalid, 1u);
  EXPECT_EQ(m.batches, 2u);  // [0] and [1, 2]; the device-error batch produced nothing
  ASSERT_EQ(m.batch_fill.size(), 5u);
  EXPECT_EQ(m.batch_fill[1], 1u);
  EXPECT_EQ(m.batch_fill[2], 1u);
  EXPECT_EQ(std::accumulate(m.batch_fill.begin(), m.batch_fill.end(), uint64_t{0}), m.batches);
  EXPECT_EQ(std::accumulate(m.queue_us_hist.begin(), m.queue_us_hist.end(), uint64_t{0}), 3u);
  ASSERT_EQ(m.workers.size(), 1u);
  EXPECT_EQ(m.workers[0].batches, 2u);
  EXPECT_EQ(m.workers[0].requests, 3u);
  EXPECT_NE(m.workers[0].stream_id, 0u);
  EXPECT_EQ(m.queue_length, 0u);

  const std::string text = engine.prometheus();
  for (const char* needle :
       {"# TYPE fanin_requests_total counter", "fanin_requests_total{outcome=\"completed\"} 3",
        "fanin_requests_total{outcome=\"submitted\"} 7",
        "fanin_requests_total{outcome=\"failed\"} 4",
        "fanin_rejections_total{reason=\"queue_full\"} 1",
        "fanin_rejections_total{reason=\"invalid_argument\"} 2",
        "fanin_rejections_total{reason=\"deadline_exceeded\"} 1",
        "fanin_rejections_total{reason=\"cancelled\"} 1",
        "fanin_rejections_total{reason=\"device_error\"} 1", "fanin_batches_total 2",
        "# TYPE fanin_batch_fill histogram", "fanin_batch_fill_bucket{le=\"2\"} 2",
        "fanin_batch_fill_count 2", "fanin_queue_time_us_bucket{le=\"+Inf\"} 3",
        "fanin_compute_time_us_count 3", "fanin_queue_length 0",
        "fanin_worker_batches_total{worker=\"0\"", "fanin_worker_busy_us_total{worker=\"0\""}) {
    EXPECT_NE(text.find(needle), std::string::npos) << "missing: " << needle << "\n" << text;
  }
}

}  // namespace
}  // namespace fanin
