// `fanin race`: the seed report's three command-buffer experiments on
// fanin's API (see race.h for what each test expects).
//
// Note [Race tests never hang]
// Threads meet at a Gate that waits at most kMeetTimeout; every thread
// arrives exactly once, also when its set-up failed. In Test 2 the winner
// holds its encoder until every thread has attempted, or at most
// kHoldTimeout; a late thread could then win a second time, which the test
// reports as a FAIL instead of waiting forever.
#include "race.h"

#include <CLI/CLI.hpp>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "cli.h"
#include "fanin/device.h"
#include "fanin/error.h"
#include "fanin/ops.h"
#include "fanin/stream.h"
#include "fanin/tensor.h"

namespace fanin::cli {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr auto kMeetTimeout = 10s;
constexpr auto kHoldTimeout = 2s;
constexpr auto kHold = 1ms;  // the seed's [NSThread sleepForTimeInterval:0.001]
constexpr int kRounds = 3;   // encoders per thread in Tests 1 and 3
const Shape kShape{4, 8};

// n threads meet here; waits at most kMeetTimeout (Note [Race tests never hang]).
class Gate {
 public:
  explicit Gate(int n) : n_(n) {}
  void arrive_and_wait() {
    std::unique_lock<std::mutex> lock(mu_);
    if (++arrived_ >= n_) {
      cv_.notify_all();
      return;
    }
    cv_.wait_for(lock, kMeetTimeout, [&] { return arrived_ >= n_; });
  }

 private:
  const int n_;
  std::mutex mu_;  // guards arrived_
  std::condition_variable cv_;
  int arrived_ = 0;
};

// Test inputs a and b, and host references.
std::vector<float> values_a() {
  std::vector<float> v(32);
  for (size_t i = 0; i < v.size(); ++i) v[i] = 0.25f * static_cast<float>(i);
  return v;
}
std::vector<float> values_b() {
  std::vector<float> v(32);
  for (size_t i = 0; i < v.size(); ++i) v[i] = 1.0f + static_cast<float>(i % 3);
  return v;
}

// True when `got` is a + k * b, element by element.
bool equals_a_plus_kb(const std::vector<float>& got, float k) {
  const auto a = values_a(), b = values_b();
  if (got.size() != a.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::fabs(got[i] - (a[i] + k * b[i])) > 1e-4f * (1.0f + std::fabs(got[i]))) return false;
  return true;
}

// Failures seen by any thread of one test; keeps the first message.
struct Failures {
  std::atomic<int> count{0};
  std::mutex mu;  // guards first
  std::string first;
  void add(const std::string& what) {
    if (count.fetch_add(1) == 0) {
      std::lock_guard<std::mutex> lock(mu);
      first = what;
    }
  }
  std::string first_message() {
    std::lock_guard<std::mutex> lock(mu);
    return first;
  }
};

std::string describe(std::exception_ptr e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    return x.what();
  } catch (...) {
    return "unknown exception";
  }
}

void run_threads(int n, const std::function<void(int)>& body) {
  std::vector<std::thread> threads;
  threads.reserve(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) threads.emplace_back(body, i);
  for (auto& t : threads) t.join();
}

struct Outcome {
  bool pass;
  std::string line;
};

std::string plural(int n, const char* word) {
  return std::to_string(n) + " " + word + (n == 1 ? "" : "s");
}

// Test 1: every thread encodes on its own leased stream, all at once.
Outcome separate_buffers(Device& device, int n) {
  Gate gate(n);
  Failures fail;
  std::atomic<int> succeeded{0}, open_now{0}, open_max{0};
  run_threads(n, [&](int) {
    StreamLease lease;
    Tensor a, b;
    bool ready = false;
    try {
      lease = device.stream_pool().acquire();
      a = Tensor::from_vector(values_a(), kShape, lease.stream());
      b = Tensor::from_vector(values_b(), kShape, lease.stream());
      ready = true;
    } catch (...) {
      fail.add(describe(std::current_exception()));
    }
    gate.arrive_and_wait();
    if (!ready) return;
    try {
      Stream& s = lease.stream();
      Tensor c;
      for (int r = 0; r < kRounds; ++r) {
        Encoder enc = s.command_buffer().begin_encoding();
        const int open = open_now.fetch_add(1) + 1;
        for (int m = open_max.load(); open > m && !open_max.compare_exchange_weak(m, open);) {
        }
        c = ops::add(r == 0 ? a : c, b, s);
        std::this_thread::sleep_for(kHold);
        open_now.fetch_sub(1);
        enc.end();
        succeeded.fetch_add(1);
      }
      if (!equals_a_plus_kb(c.to_vector(s), kRounds)) fail.add("wrong result on a thread's stream");
    } catch (...) {
      fail.add(describe(std::current_exception()));
    }
  });
  const int total = n * kRounds;
  const bool pass = fail.count == 0 && succeeded == total;
  std::string line = std::to_string(succeeded) + "/" + std::to_string(total) +
                     " encoders succeeded, " + plural(n, "thread") +
                     " on their own leased streams, up to " + std::to_string(open_max.load()) +
                     " open at once";
  if (pass) line += ", results correct";
  else line += "; " + plural(fail.count, "failure") + ", first: " + fail.first_message();
  return {pass, line};
}

// Test 2: threads released together begin encoding on one shared stream.
Outcome shared_buffer(Device& device, int n) {
  Stream shared(device, StreamOptions{EncodingPolicy::kThrow});
  CommandBuffer& cb = shared.command_buffer();
  const Tensor a = Tensor::from_vector(values_a(), kShape, shared);
  const Tensor b = Tensor::from_vector(values_b(), kShape, shared);
  shared.synchronize();
  const uint64_t conflicts_before = cb.conflicts();

  Gate gate(n);
  Failures other;  // anything but the one winner and ConcurrentEncoding
  std::atomic<int> attempts{0}, winners{0}, refused{0};
  std::atomic<bool> hold_timed_out{false};
  std::mutex result_mu;  // guards c and refusal
  Tensor c;
  std::string refusal;
  run_threads(n, [&](int) {
    gate.arrive_and_wait();
    try {
      Encoder enc = cb.begin_encoding();
      winners.fetch_add(1);
      Tensor mine = ops::add(a, b, shared);  // real work inside the winner's encoder
      attempts.fetch_add(1);
      // Hold the encoder until every other thread has tried to open one.
      const auto deadline = Clock::now() + kHoldTimeout;
      while (attempts.load() < n) {
        if (Clock::now() > deadline) {
          hold_timed_out = true;
          break;
        }
        std::this_thread::yield();
      }
      std::this_thread::sleep_for(kHold);
      enc.end();
      std::lock_guard<std::mutex> lock(result_mu);
      c = mine;
    } catch (const Error& e) {
      attempts.fetch_add(1);
      if (e.code() == ErrorCode::kConcurrentEncoding) {
        if (refused.fetch_add(1) == 0) {
          std::lock_guard<std::mutex> lock(result_mu);
          refusal = e.what();
        }
      } else {
        other.add(e.what());
      }
    } catch (...) {
      attempts.fetch_add(1);
      other.add(describe(std::current_exception()));
    }
  });

  // The process lives; is the buffer still usable? Encode on it and check.
  bool usable = false;
  std::string usable_error;
  try {
    if (!c.defined()) throw std::runtime_error("no winner produced a result");
    if (!equals_a_plus_kb(c.to_vector(shared), 1)) throw std::runtime_error("winner's a+b wrong");
    Tensor d = ops::add(c, b, shared);
    if (!equals_a_plus_kb(d.to_vector(shared), 2)) throw std::runtime_error("a+2b afterwards wrong");
    usable = !cb.is_encoding();
  } catch (...) {
    usable_error = describe(std::current_exception());
  }
  const uint64_t counted = cb.conflicts() - conflicts_before;
  const bool pass = winners == 1 && refused == n - 1 && other.count == 0 && !hold_timed_out &&
                    counted == static_cast<uint64_t>(n - 1) && usable;
  std::string line = plural(winners, "winner") + ", " + std::to_string(refused) +
                     " ConcurrentEncoding, buffer " + (usable ? "usable" : "NOT usable") +
                     " afterwards";
  if (!pass) {
    line += " (expected 1 winner and " + std::to_string(n - 1) + " ConcurrentEncoding";
    if (counted != static_cast<uint64_t>(refused))
      line += "; CommandBuffer::conflicts() counted " + std::to_string(counted);
    if (hold_timed_out) line += "; the winner stopped holding after 2 s";
    if (other.count > 0) line += "; other error: " + other.first_message();
    if (!usable_error.empty()) line += "; reuse failed: " + usable_error;
    line += ")";
  } else {
    line += "\n  losers got: " + refusal;
  }
  return {pass, line};
}

// Test 3: encoders begin and end on one stream from n threads in turn.
Outcome sequential(Device& device, int n) {
  Stream s(device, StreamOptions{EncodingPolicy::kThrow});
  Tensor acc = Tensor::from_vector(values_a(), kShape, s);
  const Tensor b = Tensor::from_vector(values_b(), kShape, s);
  s.synchronize();
  std::mutex mu;  // guards turn and acc: orders the threads' encoders
  std::condition_variable cv;
  int turn = 0;
  Failures fail;
  std::atomic<int> succeeded{0};
  const int total = n * kRounds;
  run_threads(n, [&](int index) {
    for (int r = 0; r < kRounds; ++r) {
      const int mine = r * n + index;
      std::unique_lock<std::mutex> lock(mu);
      if (!cv.wait_for(lock, kMeetTimeout, [&] { return turn >= mine; })) {
        fail.add("thread " + std::to_string(index) + " timed out waiting for its turn");
        return;
      }
      try {
        Encoder enc = s.command_buffer().begin_encoding();
        acc = ops::add(acc, b, s);
        enc.end();
        succeeded.fetch_add(1);
      } catch (...) {
        fail.add(describe(std::current_exception()));
      }
      ++turn;
      cv.notify_all();
    }
  });
  bool correct = false;
  try {
    correct = equals_a_plus_kb(acc.to_vector(s), static_cast<float>(total));
  } catch (...) {
    fail.add(describe(std::current_exception()));
  }
  const bool pass = fail.count == 0 && succeeded == total && correct;
  std::string line = std::to_string(succeeded) + "/" + std::to_string(total) +
                     " encoders succeeded, " + plural(n, "thread") +
                     " taking turns on one buffer, result " + (correct ? "correct" : "WRONG");
  if (fail.count > 0) line += "; first failure: " + fail.first_message();
  return {pass, line};
}

}  // namespace

CLI::App* add_race_command(CLI::App& app, RaceOptions& o) {
  CLI::App* cmd = app.add_subcommand(
      "race",
      "Run the seed's three command-buffer experiments (separate, shared, sequential) on "
      "fanin's API; exit 0 only if all behave");
  cmd->add_option("--backend", o.backend, "Device: cpu, cuda or cuda:N (default cpu)");
  cmd->add_option("--threads", o.threads, "Threads per test, >= 2 (default 8)");
  return cmd;
}

int run_race(const RaceOptions& o) {
  check_backend_name(o.backend);
  if (o.threads < 2)
    throw UsageError("--threads must be >= 2 (Test 2 needs a loser), got " +
                     std::to_string(o.threads));
  Device& device = Device::get(o.backend);  // Unavailable when not built / not present
  const int pool_size = device.stream_pool().size();
  if (o.threads > pool_size)
    throw UsageError("--threads: Test 1 leases one stream per thread, but the stream pool of " +
                     device.name() + " has " + std::to_string(pool_size) + " slots, got " +
                     std::to_string(o.threads));
  std::printf("fanin race: %s (%s), %d threads\n", device.name().c_str(),
              device.description().c_str(), o.threads);
  std::fflush(stdout);

  struct Test {
    const char* name;
    Outcome (*run)(Device&, int);
  };
  const Test tests[] = {{"Test 1 separate command buffers", separate_buffers},
                        {"Test 2 shared command buffer", shared_buffer},
                        {"Test 3 sequential", sequential}};
  int failed = 0;
  for (const Test& t : tests) {
    Outcome r = t.run(device, o.threads);
    if (!r.pass) ++failed;
    std::printf("%s: %s \u2014 %s\n", t.name, r.pass ? "PASS" : "FAIL", r.line.c_str());
    std::fflush(stdout);
  }
  if (failed == 0) std::printf("fanin race: all 3 tests PASS\n");
  else std::printf("fanin race: %d of 3 tests FAILED\n", failed);
  return failed == 0 ? kExitOk : kExitFailure;
}

}  // namespace fanin::cli
