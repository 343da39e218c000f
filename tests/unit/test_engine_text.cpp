// The sentence encoder behind the Engine (issue 6 item 7): texts submitted
// from many threads give SentenceEncoder::embed's vectors; the token budget
// bounds a batch; invalid UTF-8 is rejected at submit; drain resolves all.
// Needs the fetched model (models/all-MiniLM-L6-v2); skipped without it.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "fanin/fanin.h"
#include "fanin/sentence_encoder.h"
#include "test_helpers.h"

#ifndef FANIN_SOURCE_DIR
#error "FANIN_SOURCE_DIR must name the source tree (tests/CMakeLists.txt sets it)"
#endif

namespace fanin {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using testing::throws_error;

const fs::path kModel = fs::path(FANIN_SOURCE_DIR) / "models" / "all-MiniLM-L6-v2";

using testing::cosine;

// Deterministic texts of 1..40 words.
std::string text_for(int thread, int i) {
  static const char* const kWords[] = {
      "the",   "quick", "brown",   "fox",      "jumps", "over",     "lazy",  "dog",
      "search", "engine", "returns", "results", "fast",  "embedding", "vector", "café",
      "naïve", "tokyo", "東京",     "weather",  "is",    "nice",     "today", "running",
      "models", "on",    "many",    "threads",  "at",    "once",     "!",     "?"};
  constexpr int kN = sizeof(kWords) / sizeof(kWords[0]);
  const int words = 1 + (thread * 13 + i * 7) % 40;
  std::string s;
  for (int w = 0; w < words; ++w) {
    if (w) s += ' ';
    s += kWords[(thread * 5 + i * 3 + w * 11) % kN];
  }
  return s;
}

class EngineText : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!fs::exists(kModel / "model.safetensors")) return;
    encoder_ = SentenceEncoder::load(kModel.string(), Device::get("cpu"));
  }
  static void TearDownTestSuite() { encoder_.reset(); }
  void SetUp() override {
    if (!encoder_) GTEST_SKIP() << kModel.string() << " is missing: run scripts/fetch_models.sh";
  }
  static std::shared_ptr<SentenceEncoder> encoder_;
};
std::shared_ptr<SentenceEncoder> EngineText::encoder_;

TEST_F(EngineText, ConcurrentProducersMatchEmbed) {
  constexpr int kThreads = 8, kPerThread = 20;
  std::vector<std::string> texts;
  for (int t = 0; t < kThreads; ++t)
    for (int i = 0; i < kPerThread; ++i) texts.push_back(text_for(t, i));
  StreamLease lease = Device::get("cpu").stream_pool().acquire();
  const auto want = encoder_->embed(texts, lease.stream(), 32);

  EngineOptions eo;
  eo.workers = 2;
  eo.max_batch_size = 16;
  eo.max_queue_delay = 1ms;
  Engine engine(encoder_, eo);
  std::vector<std::vector<std::future<Response>>> futures(kThreads);
  std::vector<std::thread> producers;
  for (int t = 0; t < kThreads; ++t)
    producers.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i)
        futures[t].push_back(engine.submit_text(texts[static_cast<size_t>(t * kPerThread + i)]));
    });
  for (auto& p : producers) p.join();
  double worst = 1.0;
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kPerThread; ++i) {
      auto& f = futures[t][static_cast<size_t>(i)];
      ASSERT_EQ(f.wait_for(30s), std::future_status::ready);
      Response r = f.get();
      const auto& w = want[static_cast<size_t>(t * kPerThread + i)];
      ASSERT_EQ(r.output.size(), w.size());
      EXPECT_EQ(r.shape, Shape{encoder_->dim()});
      EXPECT_GE(r.batch_size, 1);
      const double c = cosine(r.output, w);
      worst = std::min(worst, c);
      EXPECT_GE(c, 0.99999) << "thread " << t << " text " << i << ": '"
                            << texts[static_cast<size_t>(t * kPerThread + i)] << "'";
    }
  }
  EXPECT_TRUE(engine.drain(10s));
  const EngineMetrics m = engine.metrics();
  EXPECT_EQ(m.submitted, uint64_t{kThreads * kPerThread});
  EXPECT_EQ(m.completed, uint64_t{kThreads * kPerThread});
  EXPECT_EQ(m.failed, 0u);
  std::printf("[engine text] worst cosine %.8f over %zu texts in %llu batches\n", worst,
              texts.size(), static_cast<unsigned long long>(m.batches));
}

TEST_F(EngineText, TokenBudgetBoundsBatches) {
  const std::string text = "a short sentence about batching";
  const int64_t tokens = static_cast<int64_t>(encoder_->tokenize(text).size());
  ASSERT_GE(tokens, 3);
  std::string long_text;
  while (static_cast<int64_t>(encoder_->tokenize(long_text).size()) <= 3 * tokens)
    long_text += "many more words ";
  std::atomic<int> max_formed{0}, over_budget{0};
  EngineOptions eo;
  eo.max_batch_size = 64;
  eo.max_tokens_per_batch = 3 * tokens;  // three of `text` fit, a fourth does not
  eo.max_queue_delay = 50ms;             // batches leave when the budget is full
  eo.on_batch_formed = [&](int n) {
    int cur = max_formed.load();
    while (n > cur && !max_formed.compare_exchange_weak(cur, n)) {
    }
    if (n > 3) ++over_budget;
  };
  Engine engine(encoder_, eo);
  std::vector<std::future<Response>> fs;
  for (int i = 0; i < 30; ++i) fs.push_back(engine.submit_text(text));
  // Alone over the budget: it still runs, in a batch of its own.
  std::future<Response> big = engine.submit_text(long_text);
  for (auto& f : fs) {
    ASSERT_EQ(f.wait_for(30s), std::future_status::ready);
    EXPECT_LE(f.get().batch_size, 3);
  }
  ASSERT_EQ(big.wait_for(30s), std::future_status::ready);
  EXPECT_EQ(big.get().batch_size, 1);
  EXPECT_TRUE(engine.drain(10s));
  EXPECT_EQ(over_budget.load(), 0);
  EXPECT_EQ(max_formed.load(), 3) << "the budget should let three requests share a batch";
  const EngineMetrics m = engine.metrics();
  for (size_t n = 4; n < m.batch_fill.size(); ++n) EXPECT_EQ(m.batch_fill[n], 0u) << n;
  EXPECT_EQ(m.completed, 31u);

  // An explicit cost overrides the token count: cost 1 each, budget 3*tokens
  // lets more than three share a batch.
  std::atomic<int> max_formed2{0};
  EngineOptions eo2 = eo;
  eo2.max_batch_size = 8;
  eo2.on_batch_formed = [&](int n) {
    int cur = max_formed2.load();
    while (n > cur && !max_formed2.compare_exchange_weak(cur, n)) {
    }
  };
  Engine engine2(encoder_, eo2);
  RequestOptions ro;
  ro.cost = 1;
  std::vector<std::future<Response>> fs2;
  for (int i = 0; i < 16; ++i) fs2.push_back(engine2.submit_text(text, ro));
  for (auto& f : fs2) ASSERT_EQ(f.wait_for(30s), std::future_status::ready);
  EXPECT_TRUE(engine2.drain(10s));
  EXPECT_GT(max_formed2.load(), 3);
}

TEST_F(EngineText, RejectsInvalidInputsAtSubmit) {
  Engine engine(encoder_);
  EXPECT_TRUE(throws_error([&] { (void)engine.submit_text("caf\xc3 ok"); },
                           ErrorCode::kInvalidArgument, {"[Engine::submit_text]"}));
  EXPECT_TRUE(throws_error([&] { (void)engine.submit_text("\xff\xfe"); },
                           ErrorCode::kInvalidArgument));
  EXPECT_TRUE(throws_error([&] { (void)engine.submit(std::vector<float>(4, 0.f)); },
                           ErrorCode::kInvalidArgument, {"submit_text"}));
  RequestOptions bad;
  bad.priority = 1;
  EXPECT_TRUE(throws_error([&] { (void)engine.submit_text("fine", bad); },
                           ErrorCode::kInvalidArgument, {"priority"}));
  EngineMetrics m = engine.metrics();
  EXPECT_EQ(m.submitted, 0u);
  EXPECT_EQ(m.rejected_invalid, 4u);
  // Empty and whitespace-only texts are valid: [CLS] [SEP].
  auto f = engine.submit_text("   ");
  ASSERT_EQ(f.wait_for(30s), std::future_status::ready);
  EXPECT_EQ(f.get().output.size(), static_cast<size_t>(encoder_->dim()));

  EngineOptions graphs;
  graphs.use_graphs = true;
  EXPECT_TRUE(throws_error([&] { Engine e(encoder_, graphs); }, ErrorCode::kInvalidArgument,
                           {"use_graphs"}));
  EngineOptions padded;
  padded.preferred_batch_sizes = {1, 2, 4};
  EXPECT_TRUE(throws_error([&] { Engine e(encoder_, padded); }, ErrorCode::kInvalidArgument,
                           {"preferred_batch_sizes"}));
  EXPECT_TRUE(throws_error([&] { Engine e(std::shared_ptr<const SentenceEncoder>{}); },
                           ErrorCode::kInvalidArgument));
}

TEST_F(EngineText, CancelledAndExpiredNeverRun) {
  Engine engine(encoder_);
  RequestOptions cancelled;
  auto token = std::make_shared<CancelToken>();
  token->cancel();
  cancelled.cancel = token;
  RequestOptions expired;
  expired.deadline = Clock::now() - 1ms;
  auto a = engine.submit_text("never runs", cancelled);
  auto b = engine.submit_text("too late", expired);
  auto c = engine.submit_text("runs");
  ASSERT_EQ(a.wait_for(30s), std::future_status::ready);
  ASSERT_EQ(b.wait_for(30s), std::future_status::ready);
  EXPECT_TRUE(throws_error([&] { a.get(); }, ErrorCode::kCancelled));
  EXPECT_TRUE(throws_error([&] { b.get(); }, ErrorCode::kDeadlineExceeded));
  EXPECT_EQ(c.get().output.size(), static_cast<size_t>(encoder_->dim()));
}

TEST_F(EngineText, DrainResolvesEveryCallback) {
  EngineOptions eo;
  eo.max_batch_size = 8;
  eo.max_tokens_per_batch = 128;
  Engine engine(encoder_, eo);
  std::atomic<int> ok{0}, failed{0};
  for (int i = 0; i < 40; ++i)
    engine.submit_text(text_for(3, i), {}, [&](Response r, const Error* e) {
      if (e == nullptr && r.output.size() == static_cast<size_t>(encoder_->dim())) ++ok;
      else ++failed;
    });
  EXPECT_TRUE(engine.drain(30s));
  EXPECT_EQ(ok.load(), 40);
  EXPECT_EQ(failed.load(), 0);
  EXPECT_TRUE(throws_error([&] { (void)engine.submit_text("after drain"); },
                           ErrorCode::kCancelled));
  EXPECT_EQ(engine.metrics().completed, 40u);
}

}  // namespace
}  // namespace fanin
