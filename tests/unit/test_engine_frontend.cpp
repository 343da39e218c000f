// The Engine API that front ends (the HTTP server, the Python module) sit
// on: requests of several inputs as one admission, what the engine serves,
// readiness, and values at their limits (issue 11 item 1).
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <future>
#include <limits>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "engine_outcome.h"
#include "engine_test_model.h"
#include "fanin/fanin.h"
#include "fanin/sentence_encoder.h"
#include "test_helpers.h"

namespace fanin {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using testing::await;
using testing::row_for;
using testing::TestModel;
using testing::TestModelOptions;
using testing::throws_error;

EngineOptions eager(int max_batch = 8) {
  EngineOptions o;
  o.max_batch_size = max_batch;
  o.max_queue_delay = 0us;
  return o;
}

std::vector<float> rows_for(std::initializer_list<float> ids) {
  std::vector<float> out;
  for (float id : ids) {
    const std::vector<float> r = row_for(id);
    out.insert(out.end(), r.begin(), r.end());
  }
  return out;
}

TEST(EngineFrontend, ABatchRequestIsOneAdmissionWithRowsInOrder) {
  auto model = std::make_shared<TestModel>();
  Engine engine(model, eager(2));  // 5 inputs: at least three batches
  auto f = engine.submit_batch(rows_for({1, 2, 3, 4, 5}), 5);
  testing::Outcome o = await(f);
  ASSERT_TRUE(o.ok) << o.message;
  EXPECT_EQ(o.response.shape, (Shape{5, TestModel::kWidth}));
  std::vector<float> want;
  for (float id : {1, 2, 3, 4, 5}) {
    const std::vector<float> y = TestModel::expected(row_for(id));
    want.insert(want.end(), y.begin(), y.end());
  }
  EXPECT_EQ(o.response.output, want);
  EXPECT_EQ(o.response.tokens, 0);
  EngineMetrics m = engine.metrics();
  EXPECT_EQ(m.submitted, 5u);  // counted per input
  EXPECT_EQ(m.completed, 5u);
  EXPECT_EQ(m.in_flight, 0u);
  EXPECT_GE(m.batches, 3u);
}

TEST(EngineFrontend, BadBatchesAreRejectedAndCounted) {
  auto model = std::make_shared<TestModel>();
  Engine engine(model, eager());
  EXPECT_TRUE(throws_error([&] { engine.submit_batch(rows_for({1, 2}), 3); },
                           ErrorCode::kInvalidArgument, {"[Engine::submit_batch]", "8 values", "3 x 4"}));
  EXPECT_TRUE(throws_error([&] { engine.submit_batch({}, 0); }, ErrorCode::kInvalidArgument,
                           {"at least one input"}));
  EXPECT_TRUE(throws_error([&] { engine.submit_batch(rows_for({1}), -1); },
                           ErrorCode::kInvalidArgument, {"at least one input"}));
  EXPECT_TRUE(throws_error([&] { engine.submit_batch(rows_for({1}), 1, {}, Engine::Callback{}); },
                           ErrorCode::kInvalidArgument, {"callback is empty"}));
  EXPECT_TRUE(throws_error([&] { engine.submit_texts({"a"}); }, ErrorCode::kInvalidArgument,
                           {"serves a model"}));
  EXPECT_TRUE(throws_error([&] { engine.tokenize("a"); }, ErrorCode::kInvalidArgument,
                           {"serves a model"}));
  EngineMetrics m = engine.metrics();
  EXPECT_EQ(m.rejected_invalid, 5u);
  EXPECT_EQ(m.submitted, 0u);
}

TEST(EngineFrontend, AdmissionIsAllOrNothing) {
  TestModelOptions gated;
  gated.gated = true;
  auto model = std::make_shared<TestModel>(gated);
  EngineOptions o = eager(1);
  o.max_queue_length = 3;
  Engine engine(model, o);
  auto running = engine.submit(row_for(0));  // held at the gate, out of the queue
  ASSERT_TRUE(model->wait_for_calls(1));
  EXPECT_TRUE(throws_error([&] { engine.submit_batch(rows_for({1, 2, 3, 4}), 4); },
                           ErrorCode::kQueueFull, {"queue is full", "4 inputs"}));
  EXPECT_EQ(engine.metrics().queue_length, 0u);  // none of the four was queued
  auto fits = engine.submit_batch(rows_for({1, 2, 3}), 3);
  model->open();
  EXPECT_TRUE(await(running).ok);
  testing::Outcome o3 = await(fits);
  ASSERT_TRUE(o3.ok) << o3.message;
  EXPECT_EQ(o3.response.output.size(), 12u);
  EXPECT_EQ(engine.metrics().rejected_queue_full, 1u);
}

TEST(EngineFrontend, OneBadInputFailsItsRequestOnly) {
  auto model = std::make_shared<TestModel>();
  EngineOptions o = eager(8);
  o.check_inputs = true;
  o.max_queue_delay = 2ms;  // both requests in one batch, most of the time
  Engine engine(model, o);
  std::vector<float> bad = rows_for({1, 2, 3});
  bad[5] = std::numeric_limits<float>::quiet_NaN();
  auto f_bad = engine.submit_batch(std::move(bad), 3);
  auto f_good = engine.submit_batch(rows_for({4, 5}), 2);
  testing::Outcome ob = await(f_bad), og = await(f_good);
  EXPECT_FALSE(ob.ok);
  EXPECT_EQ(ob.code, ErrorCode::kInvalidArgument);
  EXPECT_NE(ob.message.find("NaN"), std::string::npos) << ob.message;
  ASSERT_TRUE(og.ok) << og.message;
  EXPECT_EQ(og.response.shape, (Shape{2, TestModel::kWidth}));
}

TEST(EngineFrontend, CallbackOfABatchRequestRunsOnce) {
  auto model = std::make_shared<TestModel>();
  Engine engine(model, eager(3));
  std::promise<Response> p;
  std::atomic<int> calls{0};
  engine.submit_batch(rows_for({1, 2, 3, 4, 5, 6, 7}), 7, {},
                      [&](Response r, const Error* e) {
                        if (calls.fetch_add(1) == 0) {
                          if (e) p.set_exception(std::make_exception_ptr(*e));
                          else p.set_value(std::move(r));
                        }
                      });
  auto f = p.get_future();
  testing::Outcome o = await(f);
  ASSERT_TRUE(o.ok) << o.message;
  EXPECT_EQ(o.response.shape, (Shape{7, TestModel::kWidth}));
  engine.drain();
  EXPECT_EQ(calls.load(), 1);
}

TEST(EngineFrontend, InfoAndReadiness) {
  auto model = std::make_shared<TestModel>();
  EngineOptions o = eager(16);
  o.max_tokens_per_batch = 100;
  Engine engine(model, o);
  const EngineInfo& info = engine.info();
  EXPECT_EQ(info.kind, PayloadKind::kTensor);
  EXPECT_STREQ(to_string(info.kind), "tensor");
  EXPECT_EQ(info.model_name, "test-add4");
  EXPECT_EQ(info.input_shape, Shape{4});
  EXPECT_EQ(info.output_shape, Shape{4});
  EXPECT_EQ(info.dtype, DType::kF32);
  EXPECT_EQ(info.max_batch_size, 16);
  EXPECT_EQ(info.max_tokens_per_batch, 100);
  EXPECT_EQ(info.devices, std::vector<std::string>{"cpu"});
  EXPECT_TRUE(engine.ready());
  engine.drain();
  EXPECT_FALSE(engine.ready());
}

// ---- values at their limits ----

TEST(EngineFrontend, DeadlineAfterSaturates) {
  const Clock::time_point now = Clock::now();
  EXPECT_EQ(deadline_after(std::chrono::microseconds::max(), now),
            Clock::time_point::max() - Clock::duration(1));
  EXPECT_EQ(deadline_after(-5us, now), now);
  EXPECT_EQ(deadline_after(0us, now), now);
  EXPECT_EQ(deadline_after(7us, now), now + 7us);
  const Clock::time_point late = Clock::time_point::max() - Clock::duration(10);
  EXPECT_EQ(deadline_after(1s, late), Clock::time_point::max() - Clock::duration(1));
}

TEST(EngineFrontend, HugeDefaultTimeoutMeansNoDeadline) {
  auto model = std::make_shared<TestModel>();
  EngineOptions o = eager();
  o.default_timeout = std::chrono::microseconds::max();
  Engine engine(model, o);
  auto f = engine.submit(row_for(3));
  EXPECT_TRUE(testing::succeeded_with(await(f), row_for(3)));
  EXPECT_EQ(engine.metrics().deadline_exceeded, 0u);
}

TEST(EngineFrontend, HugeQueueDelayWaitsForAFullBatch) {
  auto model = std::make_shared<TestModel>();
  EngineOptions o;
  o.max_batch_size = 2;
  o.max_queue_delay = std::chrono::microseconds::max();
  Engine engine(model, o);
  auto a = engine.submit(row_for(1));
  EXPECT_EQ(a.wait_for(100ms), std::future_status::timeout);  // a lone request waits
  EXPECT_EQ(model->calls(), 0);
  auto b = engine.submit(row_for(2));  // the batch is full: both run
  EXPECT_TRUE(testing::succeeded_with(await(a), row_for(1)));
  EXPECT_TRUE(testing::succeeded_with(await(b), row_for(2)));
  EXPECT_EQ(model->batch_sizes(), std::vector<int64_t>{2});
  auto c = engine.submit(row_for(3));
  EXPECT_TRUE(engine.drain(10s));  // drain runs what waits
  EXPECT_TRUE(testing::succeeded_with(await(c), row_for(3)));
}

TEST(EngineFrontend, CostsAtTheirLimitDoNotShareABatch) {
  TestModelOptions gated;
  gated.gated = true;
  auto model = std::make_shared<TestModel>(gated);
  EngineOptions o = eager(8);
  o.max_tokens_per_batch = 10;
  Engine engine(model, o);
  RequestOptions over;
  over.cost = kMaxRequestCost + 1;
  EXPECT_TRUE(throws_error([&] { engine.submit(row_for(1), over); }, ErrorCode::kInvalidArgument,
                           {"cost", "outside"}));
  over.cost = std::numeric_limits<int64_t>::max();
  EXPECT_TRUE(throws_error([&] { engine.submit(row_for(1), over); }, ErrorCode::kInvalidArgument,
                           {"cost"}));
  RequestOptions big;
  big.cost = kMaxRequestCost;
  auto first = engine.submit(row_for(0), big);  // held at the gate
  ASSERT_TRUE(model->wait_for_calls(1));
  auto a = engine.submit(row_for(1), big);
  auto b = engine.submit(row_for(2), big);
  model->open();
  EXPECT_TRUE(testing::succeeded_with(await(first), row_for(0)));
  EXPECT_TRUE(testing::succeeded_with(await(a), row_for(1)));
  EXPECT_TRUE(testing::succeeded_with(await(b), row_for(2)));
  EXPECT_EQ(model->batch_sizes(), (std::vector<int64_t>{1, 1, 1}));
}

TEST(EngineFrontend, MoreWorkersThanStreamSlotsIsInvalid) {
  auto model = std::make_shared<TestModel>();
  EngineOptions o;
  o.workers = Device::cpu().stream_pool().size() + 1;
  const auto t0 = Clock::now();
  EXPECT_TRUE(throws_error([&] { Engine e(model, o); }, ErrorCode::kInvalidArgument,
                           {"workers", "stream slots"}));
  EXPECT_LT(Clock::now() - t0, 2s);  // at once, not after the lease timeout
}

// ---- text engines ----

const fs::path kModel = fs::path(FANIN_SOURCE_DIR) / "models" / "all-MiniLM-L6-v2";

class EngineFrontendText : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (fs::exists(kModel / "model.safetensors"))
      encoder_ = SentenceEncoder::load(kModel.string(), Device::get("cpu"));
  }
  static void TearDownTestSuite() { encoder_.reset(); }
  void SetUp() override {
    if (!encoder_) GTEST_SKIP() << kModel.string() << " is missing: run scripts/fetch_models.sh";
  }
  static std::shared_ptr<SentenceEncoder> encoder_;
};
std::shared_ptr<SentenceEncoder> EngineFrontendText::encoder_;

std::string long_text(int words) {
  std::string s;
  for (int i = 0; i < words; ++i) s += i ? " word" : "word";
  return s;
}

TEST_F(EngineFrontendText, TextsAreOneRequestWithSingleSubmitVectors) {
  Engine engine(encoder_, eager(2));
  const std::vector<std::string> texts{"hello world", "a cat sat on the mat", long_text(300)};
  auto f = engine.submit_texts(texts);
  testing::Outcome o = await(f, 30s);
  ASSERT_TRUE(o.ok) << o.message;
  EXPECT_EQ(o.response.shape, (Shape{3, 384}));
  EXPECT_EQ(o.response.truncated, 1);
  int64_t tokens = 0;
  for (size_t i = 0; i < texts.size(); ++i) {
    auto one = engine.submit_text(texts[i]);
    testing::Outcome s = await(one, 30s);
    ASSERT_TRUE(s.ok) << s.message;
    EXPECT_EQ(s.response.shape, Shape{384});
    tokens += s.response.tokens;
    const std::vector<float> row(o.response.output.begin() + static_cast<long>(i * 384),
                                 o.response.output.begin() + static_cast<long>((i + 1) * 384));
    EXPECT_GT(testing::cosine(row, s.response.output), 0.99999) << "text " << i;
  }
  EXPECT_EQ(o.response.tokens, tokens);
  EXPECT_EQ(o.response.tokens, 4 + 8 + 256);  // [CLS] + pieces + [SEP], the long one cut
}

TEST_F(EngineFrontendText, TruncationOffRejectsLongInputsByIndex) {
  Engine engine(encoder_, eager());
  RequestOptions strict;
  strict.truncate = false;
  EXPECT_TRUE(throws_error([&] { engine.submit_texts({"short", long_text(300)}, strict); },
                           ErrorCode::kInvalidArgument, {"input 1", "more than 256 tokens"}));
  EXPECT_TRUE(throws_error([&] { engine.submit_texts({"ok", "caf\xc3"}); },
                           ErrorCode::kInvalidArgument, {"text 1"}));
  EXPECT_TRUE(throws_error([&] { engine.submit_texts({}); }, ErrorCode::kInvalidArgument,
                           {"at least one input"}));
  EXPECT_EQ(engine.metrics().rejected_invalid, 3u);
}

TEST_F(EngineFrontendText, TokenIdsMatchTexts) {
  Engine engine(encoder_, eager());
  const Tokenized t = engine.tokenize("the weather is nice today");
  ASSERT_GE(t.ids.size(), 3u);
  EXPECT_FALSE(t.truncated);
  const std::vector<int32_t> pieces(t.ids.begin() + 1, t.ids.end() - 1);
  auto framed = engine.submit_token_ids({t.ids, pieces});
  auto text = engine.submit_text("the weather is nice today");
  testing::Outcome of = await(framed, 30s), ot = await(text, 30s);
  ASSERT_TRUE(of.ok) << of.message;
  ASSERT_TRUE(ot.ok) << ot.message;
  for (int i = 0; i < 2; ++i) {
    const std::vector<float> row(of.response.output.begin() + i * 384,
                                 of.response.output.begin() + (i + 1) * 384);
    EXPECT_GT(testing::cosine(row, ot.response.output), 0.99999) << "input " << i;
  }
  EXPECT_EQ(of.response.tokens, 2 * static_cast<int64_t>(t.ids.size()));
  EXPECT_TRUE(throws_error([&] { engine.submit_token_ids({{101, 30522}}); },
                           ErrorCode::kInvalidArgument, {"input 0", "id 30522", "vocabulary"}));
  std::vector<int32_t> many(400, pieces.front());
  auto cut = engine.submit_token_ids({many});
  testing::Outcome oc = await(cut, 30s);
  ASSERT_TRUE(oc.ok) << oc.message;
  EXPECT_EQ(oc.response.truncated, 1);
  EXPECT_EQ(oc.response.tokens, 256);
}

TEST_F(EngineFrontendText, TokenizeDecodeAndInfo) {
  Engine engine(encoder_, eager());
  const Tokenized t = engine.tokenize("Hello, world! It's running.");
  EXPECT_EQ(engine.decode(t.ids), "hello, world! it's running.");
  const std::vector<std::string> tokens = engine.id_to_tokens(t.ids);
  EXPECT_EQ(tokens.front(), "[CLS]");
  EXPECT_EQ(tokens.back(), "[SEP]");
  EXPECT_NE(engine.decode(t.ids, /*skip_special=*/false).find("[CLS]"), std::string::npos);
  EXPECT_TRUE(throws_error([&] { engine.decode({-1}); }, ErrorCode::kInvalidArgument, {"-1"}));
  EXPECT_TRUE(engine.tokenize(long_text(300)).truncated);
  const EngineInfo& info = engine.info();
  EXPECT_EQ(info.kind, PayloadKind::kText);
  EXPECT_EQ(info.max_length, 256);
  EXPECT_EQ(info.vocab_size, 30522);
  EXPECT_EQ(info.output_shape, Shape{384});
  EXPECT_EQ(info.input_dtype, DType::kI32);
  EXPECT_TRUE(throws_error([&] { engine.submit(std::vector<float>(4)); },
                           ErrorCode::kInvalidArgument, {"sentence encoder"}));
}

}  // namespace
}  // namespace fanin
