// Engine under 64 producers with random submits, cancellations, short
// deadlines, bad rows, callbacks and futures, and a shutdown from another
// thread in the middle of the run (issue 5, item 8); on one to three
// logical cpu devices, where a quarter of the way in one device, or every
// device, may fail (issue 7). Every request gets an
// id; each resolution increments that id's counter. At the end: every submit
// either threw (and never resolves) or resolved exactly once; every result
// is right; the metrics agree with the counts. Run under ThreadSanitizer in
// CI. FANIN_STRESS_ITERS sets the submits per producer and round (default 150); FANIN_STRESS_SEED
// picks other random configurations (default 1).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <future>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "../unit/engine_test_model.h"
#include "fanin/fanin.h"

namespace fanin {
namespace {

using namespace std::chrono_literals;
using testing::row_for;
using testing::TestModel;

constexpr int kProducers = 64;

int iterations() {
  const char* env = std::getenv("FANIN_STRESS_ITERS");
  if (env == nullptr) return 150;
  const int n = std::atoi(env);
  return n > 0 ? n : 150;
}

enum class Shutdown {
  kDrainTimeout,    // drain(2 ms) mid-run: the rest is cancelled
  kCancel,          // cancel() mid-run
  kDrainAndCancel,  // drain() and cancel() from two threads at once, mid-run
  kDrain,           // drain() without limit mid-run: everything accepted runs
  kDestructor,      // producers finish, then the engine's destructor drains
};

const char* name(Shutdown s) {
  switch (s) {
    case Shutdown::kDrainTimeout:
      return "drain(2ms)";
    case Shutdown::kCancel:
      return "cancel()";
    case Shutdown::kDrainAndCancel:
      return "drain() + cancel()";
    case Shutdown::kDrain:
      return "drain()";
    case Shutdown::kDestructor:
      return "destructor";
  }
  return "?";
}

enum Outcome : int { kNone = 0, kOk, kCancelled, kDeadline, kDevice, kInvalid, kUnavail, kOther };

Outcome classify(const Error* e) {
  if (e == nullptr) return kOk;
  switch (e->code()) {
    case ErrorCode::kCancelled:
      return kCancelled;
    case ErrorCode::kDeadlineExceeded:
      return kDeadline;
    case ErrorCode::kDeviceError:
      return kDevice;
    case ErrorCode::kInvalidArgument:
      return kInvalid;
    case ErrorCode::kUnavailable:
      return kUnavail;
    default:
      return kOther;
  }
}

// What the test knows about one request id.
struct Slot {
  std::atomic<int> resolutions{0};
  std::atomic<int> outcome{kNone};
  std::atomic<bool> wrong_output{false};
  // Written by the producer before submit; read after the round.
  bool attempted = false, accepted = false, with_token = false, nan_row = false;
};

// A pending future and what it should hold.
struct Pending {
  int id;
  std::vector<float> input;
  std::future<Response> future;
};

void resolve(Slot& slot, const std::vector<float>& input, const Response& r, const Error* e) {
  slot.resolutions.fetch_add(1, std::memory_order_acq_rel);
  const Outcome o = classify(e);
  slot.outcome.store(o, std::memory_order_release);
  if (o == kOk) {
    // A NaN row can only succeed if input checking missed it.
    if (r.output != TestModel::expected(input)) slot.wrong_output.store(true);
  }
}

void run_round(Shutdown mode, uint32_t seed, int iters) {
  SCOPED_TRACE(std::string("shutdown by ") + name(mode) + ", seed " + std::to_string(seed));
  std::mt19937 rng(seed);
  testing::TestModelOptions mo;
  mo.delay = std::chrono::microseconds(rng() % 150);
  // Devices cpu:1..cpu:N; faults: 0 none, 1 one device, 2 all of them.
  const int n_devices = 1 + static_cast<int>(rng() % 3);
  const uint32_t roll = rng() % 8;
  int fault_mode = roll < 4 ? 0 : roll < 7 ? 1 : 2;
  if (fault_mode == 1 && n_devices == 1) fault_mode = 2;  // one device is every device
  std::vector<Device*> devices;
  std::vector<std::shared_ptr<const Model>> replicas;
  for (int d = 0; d < n_devices; ++d) {
    devices.push_back(&Device::get("cpu:" + std::to_string(d + 1)));
    replicas.push_back(std::make_shared<TestModel>(mo, *devices.back()));
  }
  EngineOptions opt;
  opt.workers = 1 + static_cast<int>(rng() % 3);
  opt.max_batch_size = 1 + static_cast<int>(rng() % 16);
  opt.max_queue_delay = std::chrono::microseconds(rng() % 300);
  opt.max_queue_length = 16 + rng() % 128;
  opt.priority_levels = 3;
  opt.check_inputs = true;
  if (rng() % 2 == 0 && opt.max_batch_size >= 4) {
    opt.preferred_batch_sizes = {1, opt.max_batch_size / 2, opt.max_batch_size};
  }
  if (rng() % 3 == 0) opt.max_tokens_per_batch = 8;

  const int total = kProducers * iters;
  std::vector<Slot> slots(static_cast<size_t>(total));
  std::vector<std::vector<Pending>> pending(kProducers);
  std::atomic<int> attempts{0};
  std::atomic<int> unexpected_throw{0};
  std::atomic<bool> shutdown_started{false};

  std::atomic<bool> all_failed{false};
  opt.log = [](const std::string&) {};
  auto engine = std::make_unique<Engine>(replicas, opt);
  Engine* e = engine.get();

  auto producer = [&](int p) {
    std::mt19937 r(seed * 7919u + static_cast<uint32_t>(p));
    auto token = std::make_shared<CancelToken>();
    for (int k = 0; k < iters; ++k) {
      const int id = p * iters + k;
      Slot& slot = slots[static_cast<size_t>(id)];
      std::vector<float> input = row_for(static_cast<float>(id % 1000));
      RequestOptions ro;
      ro.priority = static_cast<int>(r() % 3);
      ro.cost = 1 + static_cast<int64_t>(r() % 4);
      if (r() % 6 == 0) {
        ro.cancel = token;
        slot.with_token = true;
      }
      if (r() % 6 == 0) ro.deadline = Clock::now() + std::chrono::microseconds(r() % 3000);
      const uint32_t bad = r() % 100;
      if (bad < 2) input[0] = TestModel::kMarker;  // fails its whole batch
      if (bad == 2 || bad == 3) {
        input[1] = std::numeric_limits<float>::quiet_NaN();  // fails alone
        slot.nan_row = true;
      }
      if (bad == 4) input.push_back(1.0f);  // malformed: throws at submit
      const bool use_callback = r() % 2 == 0;
      slot.attempted = true;
      // A full queue is retried a few times after a short back-off, as a
      // client would; the last rejection stands.
      for (int attempt = 0; attempt < 4 && !slot.accepted; ++attempt) {
        try {
          if (use_callback) {
            e->submit(input, ro, [&slot, input](Response resp, const Error* err) {
              resolve(slot, input, resp, err);
            });
          } else {
            pending[p].push_back(Pending{id, input, e->submit(input, ro)});
          }
          slot.accepted = true;
        } catch (const Error& err) {
          const bool expected = err.code() == ErrorCode::kQueueFull ||
                                (err.code() == ErrorCode::kInvalidArgument && bad == 4) ||
                                (err.code() == ErrorCode::kCancelled &&
                                 shutdown_started.load(std::memory_order_acquire)) ||
                                (err.code() == ErrorCode::kUnavailable &&
                                 all_failed.load(std::memory_order_acquire));
          if (!expected) unexpected_throw.fetch_add(1);
          if (err.code() != ErrorCode::kQueueFull) break;
          std::this_thread::sleep_for(std::chrono::microseconds(50 + r() % 200));
        }
      }
      if (r() % 16 == 0) {
        token->cancel();
        token = std::make_shared<CancelToken>();
      }
      attempts.fetch_add(1, std::memory_order_relaxed);
      if (r() % 8 == 0) std::this_thread::yield();
    }
  };

  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; ++p) producers.emplace_back(producer, p);
  // A quarter of the way in, one device (or every device) fails.
  std::thread faulter;
  if (fault_mode != 0) {
    faulter = std::thread([&] {
      while (attempts.load(std::memory_order_relaxed) < total / 4)
        std::this_thread::sleep_for(100us);
      if (fault_mode == 2) all_failed.store(true, std::memory_order_release);
      for (int d = 0; d < (fault_mode == 2 ? n_devices : 1); ++d)
        devices[static_cast<size_t>(d)]->set_fault("stress fault (injected)");
    });
  }

  // Shut down from this thread (and a helper) once half the submits went in.
  if (mode != Shutdown::kDestructor) {
    while (attempts.load(std::memory_order_relaxed) < total / 2) std::this_thread::sleep_for(100us);
    shutdown_started.store(true, std::memory_order_release);
    switch (mode) {
      case Shutdown::kDrainTimeout:
        e->drain(2ms);
        break;
      case Shutdown::kCancel:
        e->cancel();
        break;
      case Shutdown::kDrain:
        EXPECT_TRUE(e->drain(60s));
        break;
      case Shutdown::kDrainAndCancel: {
        std::thread drainer([e] { e->drain(); });
        std::this_thread::sleep_for(std::chrono::microseconds(rng() % 500));
        e->cancel();
        drainer.join();
        break;
      }
      case Shutdown::kDestructor:
        break;
    }
  }
  for (auto& t : producers) t.join();
  if (faulter.joinable()) faulter.join();
  const EngineMetrics before_destruction = e->metrics();
  if (mode == Shutdown::kDestructor) shutdown_started.store(true);
  engine.reset();  // drains (a no-op after an explicit shutdown)
  for (Device* d : devices) d->set_fault("");

  // Every accepted future is resolved now: shutdown has returned.
  int not_ready = 0, broken = 0;
  for (auto& list : pending) {
    for (Pending& pd : list) {
      Slot& slot = slots[static_cast<size_t>(pd.id)];
      if (pd.future.wait_for(0s) != std::future_status::ready) {
        ++not_ready;
        continue;
      }
      try {
        Response resp = pd.future.get();
        resolve(slot, pd.input, resp, nullptr);
      } catch (const Error& err) {
        resolve(slot, pd.input, Response{}, &err);
      } catch (...) {
        ++broken;  // std::future_error: the promise died unresolved
      }
    }
  }
  EXPECT_EQ(not_ready, 0) << "futures unresolved after shutdown returned";
  EXPECT_EQ(broken, 0) << "promises destroyed without a result";
  EXPECT_EQ(unexpected_throw.load(), 0) << "submit threw something it should not have";

  int accepted = 0, lost = 0, twice = 0, phantom = 0, wrong = 0, bad_code = 0;
  int counts[kOther + 1] = {};
  for (int id = 0; id < total; ++id) {
    const Slot& s = slots[static_cast<size_t>(id)];
    ASSERT_TRUE(s.attempted) << id;
    const int n = s.resolutions.load();
    if (!s.accepted) {
      if (n != 0) ++phantom;
      continue;
    }
    ++accepted;
    if (n == 0) ++lost;
    if (n > 1) ++twice;
    if (s.wrong_output.load()) ++wrong;
    const int o = s.outcome.load();
    ++counts[o];
    if (o == kOther || (o == kInvalid && !s.nan_row) || (o == kOk && s.nan_row)) ++bad_code;
    // Unavailable only once no device is left.
    if (o == kUnavail && fault_mode != 2) ++bad_code;
    // Without a cancelling shutdown, Cancelled comes only from a token.
    if ((mode == Shutdown::kDrain || mode == Shutdown::kDestructor) && o == kCancelled &&
        !s.with_token) {
      ++bad_code;
    }
  }
  EXPECT_EQ(lost, 0) << "accepted requests never resolved";
  EXPECT_EQ(twice, 0) << "requests resolved more than once";
  EXPECT_EQ(phantom, 0) << "rejected requests resolved";
  EXPECT_EQ(wrong, 0) << "wrong outputs";
  EXPECT_EQ(bad_code, 0) << "unexpected failure codes";
  EXPECT_GT(accepted, 0);
  EXPECT_GT(counts[kOk], 0);

  // The engine's own books agree (all work ended before the snapshot, except
  // in destructor mode, where the snapshot is taken after the producers).
  if (mode != Shutdown::kDestructor) {
    const EngineMetrics& m = before_destruction;
    EXPECT_EQ(m.submitted, static_cast<uint64_t>(accepted));
    EXPECT_EQ(m.completed, static_cast<uint64_t>(counts[kOk]));
    EXPECT_EQ(m.completed + m.failed, m.submitted);
    EXPECT_EQ(m.cancelled, static_cast<uint64_t>(counts[kCancelled]));
    EXPECT_EQ(m.deadline_exceeded, static_cast<uint64_t>(counts[kDeadline]));
    EXPECT_EQ(m.device_errors, static_cast<uint64_t>(counts[kDevice] + counts[kUnavail]));
    // A faulted device leaves rotation when a batch next runs there (if
    // one does before shutdown); a healthy one never does.
    uint64_t out = 0;
    for (const auto& d : m.devices) out += d.healthy ? 0 : 1;
    EXPECT_EQ(m.device_failures, out);
    EXPECT_LE(out, static_cast<uint64_t>(fault_mode == 2 ? n_devices : fault_mode));
    EXPECT_EQ(m.invalid_in_batch, static_cast<uint64_t>(counts[kInvalid]));
    EXPECT_EQ(m.queue_length, 0u);
  }
  std::printf(
      "  %-20s devices %d fault %d workers %d batch %2d queue %3zu: %5d accepted, %5d ok, "
      "%4d cancelled, %4d deadline, %4d device, %4d unavailable, %3d invalid, %d rejected\n",
      name(mode), n_devices, fault_mode, opt.workers, opt.max_batch_size, opt.max_queue_length,
      accepted, counts[kOk], counts[kCancelled], counts[kDeadline], counts[kDevice],
      counts[kUnavail], counts[kInvalid], total - accepted);
}

TEST(EngineStress, ProducersWithConcurrentShutdownLoseNothing) {
  const int iters = iterations();
  const auto t0 = std::chrono::steady_clock::now();
  const char* seed_env = std::getenv("FANIN_STRESS_SEED");
  uint32_t seed =
      seed_env != nullptr ? static_cast<uint32_t>(std::strtoul(seed_env, nullptr, 10)) : 1u;
  constexpr int kReps = 4;
  for (int rep = 0; rep < kReps; ++rep) {
    for (Shutdown mode : {Shutdown::kDrainTimeout, Shutdown::kCancel, Shutdown::kDrainAndCancel,
                          Shutdown::kDrain, Shutdown::kDestructor}) {
      run_round(mode, seed++, iters);
      if (HasFatalFailure()) return;
    }
  }
  std::printf("  %d rounds x %d producers x %d submits in %.1f s\n", kReps * 5, kProducers, iters,
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
}

}  // namespace
}  // namespace fanin
