// Requests of several inputs (Note [Request groups]) under 32 producers:
// groups split across batches and three workers, with NaN rows, cancel
// tokens, short deadlines, callbacks and futures, and a shutdown in the
// middle. Every accepted request resolves exactly once; a successful one
// holds every row, in order; one with a NaN row never succeeds. Run under
// ThreadSanitizer in CI (FANIN_STRESS_ITERS scales it).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <future>
#include <limits>
#include <memory>
#include <random>
#include <thread>
#include <vector>

#include "../unit/engine_test_model.h"
#include "fanin/fanin.h"

namespace fanin {
namespace {

using namespace std::chrono_literals;
using testing::row_for;
using testing::TestModel;

struct GroupSlot {
  std::atomic<int> resolutions{0};
  std::atomic<bool> ok{false}, wrong{false};
  bool accepted = false, has_nan = false;
  std::vector<float> input;
  int64_t n = 0;
};

void check(GroupSlot& s, const Response& r, const Error* e) {
  if (e == nullptr) {
    std::vector<float> want;
    for (int64_t i = 0; i < s.n; ++i) {
      std::vector<float> row(s.input.begin() + i * 4, s.input.begin() + (i + 1) * 4);
      const std::vector<float> y = TestModel::expected(row);
      want.insert(want.end(), y.begin(), y.end());
    }
    if (r.output != want || r.shape != Shape{s.n, 4}) s.wrong.store(true);
    s.ok.store(true);
  }
  s.resolutions.fetch_add(1, std::memory_order_acq_rel);
}

void run(uint32_t seed, int iters, bool cancel_midway) {
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937 rng(seed);
  testing::TestModelOptions mo;
  mo.delay = std::chrono::microseconds(rng() % 100);
  mo.inspect = false;
  EngineOptions opt;
  opt.workers = 3;
  opt.max_batch_size = 2 + static_cast<int>(rng() % 7);
  opt.max_queue_delay = std::chrono::microseconds(rng() % 200);
  opt.max_queue_length = 64 + rng() % 256;
  opt.check_inputs = true;
  auto engine = std::make_unique<Engine>(std::make_shared<TestModel>(mo), opt);
  constexpr int kProducers = 32;
  const int total = kProducers * iters;
  std::vector<GroupSlot> slots(static_cast<size_t>(total));
  std::vector<std::vector<std::pair<int, std::future<Response>>>> futures(kProducers);
  std::atomic<int> attempts{0}, unexpected{0};
  std::atomic<bool> stopping{false};
  auto producer = [&](int p) {
    std::mt19937 r(seed * 31u + static_cast<uint32_t>(p));
    for (int k = 0; k < iters; ++k) {
      GroupSlot& s = slots[static_cast<size_t>(p * iters + k)];
      s.n = 1 + static_cast<int64_t>(r() % 8);
      for (int64_t i = 0; i < s.n; ++i) {
        const std::vector<float> row = row_for(static_cast<float>((p * 7 + k * 3 + i) % 500));
        s.input.insert(s.input.end(), row.begin(), row.end());
      }
      if (r() % 10 == 0) {
        s.input[static_cast<size_t>((r() % s.n) * 4 + 1)] = std::numeric_limits<float>::quiet_NaN();
        s.has_nan = true;
      }
      RequestOptions ro;
      auto token = std::make_shared<CancelToken>();
      if (r() % 8 == 0) ro.cancel = token;
      if (r() % 8 == 0) ro.deadline = Clock::now() + std::chrono::microseconds(r() % 2000);
      try {
        if (r() % 2 == 0) {
          engine->submit_batch(s.input, s.n, ro, [&s](Response resp, const Error* e) { check(s, resp, e); });
        } else {
          futures[p].emplace_back(p * iters + k, engine->submit_batch(s.input, s.n, ro));
        }
        s.accepted = true;
      } catch (const Error& e) {
        const bool expected = e.code() == ErrorCode::kQueueFull ||
                              (e.code() == ErrorCode::kCancelled && stopping.load());
        if (!expected) unexpected.fetch_add(1);
      }
      if (r() % 4 == 0) token->cancel();
      attempts.fetch_add(1);
    }
  };
  std::vector<std::thread> threads;
  for (int p = 0; p < kProducers; ++p) threads.emplace_back(producer, p);
  if (cancel_midway) {
    // Midway: half the submits made and some requests done (producers that
    // meet a full queue can make half their attempts before any batch ran,
    // and a cancel then would leave nothing that succeeded to check).
    const auto give_up = Clock::now() + 10s;
    while ((attempts.load() < total / 2 || engine->metrics().completed < 8) &&
           Clock::now() < give_up)
      std::this_thread::sleep_for(100us);
    stopping.store(true);
    engine->cancel();
  }
  for (std::thread& t : threads) t.join();
  for (auto& list : futures)
    for (auto& [id, f] : list) {
      ASSERT_EQ(f.wait_for(20s), std::future_status::ready) << "request " << id << " hangs";
      GroupSlot& s = slots[static_cast<size_t>(id)];
      try {
        Response r = f.get();
        check(s, r, nullptr);
      } catch (const Error& e) {
        check(s, Response{}, &e);
      }
    }
  engine.reset();  // drains: every callback has run
  int lost = 0, twice = 0, wrong = 0, nan_ok = 0, ok = 0;
  for (GroupSlot& s : slots) {
    if (!s.accepted) {
      EXPECT_EQ(s.resolutions.load(), 0);
      continue;
    }
    const int n = s.resolutions.load();
    lost += n == 0;
    twice += n > 1;
    wrong += s.wrong.load();
    nan_ok += s.has_nan && s.ok.load();
    ok += s.ok.load();
  }
  EXPECT_EQ(unexpected.load(), 0);
  EXPECT_EQ(lost, 0) << "accepted requests never resolved";
  EXPECT_EQ(twice, 0) << "requests resolved more than once";
  EXPECT_EQ(wrong, 0) << "successful requests with wrong rows";
  EXPECT_EQ(nan_ok, 0) << "requests with a NaN row succeeded";
  EXPECT_GT(ok, 0);
}

int iterations() {
  const char* env = std::getenv("FANIN_STRESS_ITERS");
  const int n = env ? std::atoi(env) : 0;
  return n > 0 ? std::max(20, n / 4) : 40;
}

TEST(GroupStress, ProducersOfBatchRequestsLoseNothing) {
  for (uint32_t seed = 1; seed <= 3; ++seed) run(seed, iterations(), false);
}

TEST(GroupStress, CancelMidwayResolvesEveryGroupOnce) {
  for (uint32_t seed = 4; seed <= 6; ++seed) run(seed, iterations(), true);
}

}  // namespace
}  // namespace fanin
