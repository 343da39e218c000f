// Shared helpers of the unit, stress and conformance tests (header only; the
// test globs pick up *.cpp files).
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <random>
#include <string>
#include <vector>

#include "fanin/fanin.h"

namespace fanin::testing {

// Runs `fn` and checks that it throws fanin::Error with `code` and a
// message containing every string of `parts`. Use as
//   EXPECT_TRUE(throws_error([&] { ... }, ErrorCode::kInvalidArgument, {"[linear]", "513"}));
inline ::testing::AssertionResult throws_error(const std::function<void()>& fn, ErrorCode code,
                                               std::initializer_list<std::string> parts = {}) {
  try {
    fn();
  } catch (const Error& e) {
    if (e.code() != code) {
      return ::testing::AssertionFailure()
             << "threw " << to_string(e.code()) << " instead of " << to_string(code) << ": "
             << e.what();
    }
    const std::string what = e.what();
    if (what != std::string(to_string(code)) + ": " + e.message()) {
      return ::testing::AssertionFailure() << "what() is not '<Code>: <message>': " << what;
    }
    for (const std::string& p : parts) {
      if (e.message().find(p) == std::string::npos) {
        return ::testing::AssertionFailure()
               << "message lacks '" << p << "': " << e.message();
      }
    }
    return ::testing::AssertionSuccess() << e.what();
  } catch (const std::exception& e) {
    return ::testing::AssertionFailure() << "threw a non-fanin exception: " << e.what();
  } catch (...) {
    return ::testing::AssertionFailure() << "threw something that is not an exception";
  }
  return ::testing::AssertionFailure() << "did not throw (expected " << to_string(code) << ")";
}

// Uniform values in [lo, hi) from a fixed seed.
inline std::vector<float> random_values(size_t n, uint32_t seed, float lo = -2.0f,
                                        float hi = 2.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

// Holds streams back until open() (or destruction), through the public API:
// the gate's own stream records an event inside an encoder the calling
// thread keeps open, so the event's task is not submitted yet; a stream made
// to wait on that event stops there until open() ends the encoder.
// open() and the destructor must run on the thread that built the gate.
class Gate {
 public:
  explicit Gate(Device& device) : stream_(device), event_(device) {
    encoder_ = stream_.command_buffer().begin_encoding();
    event_.record(stream_);
  }
  Gate(const Gate&) = delete;
  Gate& operator=(const Gate&) = delete;
  ~Gate() { open(); }

  // Later work on `s` waits until the gate opens.
  void block(Stream& s) { s.wait(event_); }
  void open() { encoder_.end(); }

 private:
  Stream stream_;
  Event event_;
  Encoder encoder_;  // last: ended first
};

// Milliseconds since `start`.
inline double ms_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
      .count();
}

// Cosine similarity of two vectors of one length (embeddings).
inline double cosine(const std::vector<float>& a, const std::vector<float>& b) {
  double ab = 0, aa = 0, bb = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    ab += double(a[i]) * b[i];
    aa += double(a[i]) * a[i];
    bb += double(b[i]) * b[i];
  }
  return ab / std::sqrt(aa * bb);
}

}  // namespace fanin::testing
