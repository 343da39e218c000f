// How an Engine future resolved, and gtest predicates over it: shared by the
// Engine test files. Header only (the test globs take *.cpp).
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <string>
#include <vector>

#include "engine_test_model.h"
#include "fanin/fanin.h"

namespace fanin::testing {

// How one future resolved.
struct Outcome {
  bool resolved = false;  // false: still pending after the wait (a bug)
  bool ok = false;
  ErrorCode code = ErrorCode::kInvalidArgument;
  std::string message;
  Response response;
};

inline Outcome await(std::future<Response>& f, std::chrono::milliseconds limit = std::chrono::seconds(10)) {
  Outcome o;
  if (f.wait_for(limit) != std::future_status::ready) {
    ADD_FAILURE() << "a future did not resolve within " << limit.count() << " ms";
    return o;
  }
  o.resolved = true;
  try {
    o.response = f.get();
    o.ok = true;
  } catch (const Error& e) {
    o.code = e.code();
    o.message = e.message();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "a future failed with a non-fanin exception: " << e.what();
  }
  return o;
}

inline ::testing::AssertionResult succeeded_with(const Outcome& o, const std::vector<float>& input) {
  if (!o.resolved) return ::testing::AssertionFailure() << "not resolved";
  if (!o.ok)
    return ::testing::AssertionFailure() << "failed: " << to_string(o.code) << ": " << o.message;
  const std::vector<float> want = TestModel::expected(input);
  if (o.response.output != want) {
    ::testing::AssertionResult r = ::testing::AssertionFailure() << "output";
    for (float v : o.response.output) r << " " << v;
    r << " != expected";
    for (float v : want) r << " " << v;
    return r;
  }
  if (o.response.shape != Shape{TestModel::kWidth})
    return ::testing::AssertionFailure() << "shape " << to_string(o.response.shape);
  return ::testing::AssertionSuccess();
}

inline ::testing::AssertionResult failed_with(const Outcome& o, ErrorCode code, const std::string& part) {
  if (!o.resolved) return ::testing::AssertionFailure() << "not resolved";
  if (o.ok) return ::testing::AssertionFailure() << "succeeded; expected " << to_string(code);
  if (o.code != code)
    return ::testing::AssertionFailure() << "failed with " << to_string(o.code) << " (" << o.message
                                         << "), expected " << to_string(code);
  if (o.message.find(part) == std::string::npos)
    return ::testing::AssertionFailure() << "message lacks '" << part << "': " << o.message;
  return ::testing::AssertionSuccess();
}

}  // namespace fanin::testing
