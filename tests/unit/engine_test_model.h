// A small Model for the Engine tests (unit and stress): y = x + [1, 2, 3, 4]
// on rows of 4 f32 values, with knobs to make it slow, hold it at a gate,
// and fail it on a marker value. Header only (the test globs take *.cpp).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

#include "fanin/fanin.h"

namespace fanin::testing {

struct TestModelOptions {
  // Sleep this long in every forward (on the worker thread, before encoding).
  std::chrono::microseconds delay{0};
  // Read each batch's rows on the host (records them, finds the marker).
  // Must be off under use_graphs: capture forbids host reads.
  bool inspect = true;
  // Every forward waits (at most 20 s) until open() while the gate is shut.
  bool gated = false;
  // A marker row makes forward throw an int instead of fanin::Error.
  bool marker_throws_int = false;
};

class TestModel final : public Model {
 public:
  // A row holding this value makes forward throw Error{DeviceError}.
  static constexpr float kMarker = 9999.0f;
  static constexpr int64_t kWidth = 4;

  explicit TestModel(TestModelOptions options = {}, Device& device = Device::cpu())
      : options_(options), device_(&device), open_(!options.gated) {
    StreamLease lease = device.stream_pool().acquire();
    const std::vector<float> b = bias_values();
    bias_ = Tensor::empty_device_wide({kWidth}, DType::kF32, device);
    bias_.copy_from_host(b.data(), b.size() * sizeof(float), lease.stream());
    lease->synchronize();
  }

  static std::vector<float> bias_values() { return {1.0f, 2.0f, 3.0f, 4.0f}; }
  // The expected output for `row`.
  static std::vector<float> expected(const std::vector<float>& row) {
    std::vector<float> y = row;
    const std::vector<float> b = bias_values();
    for (size_t i = 0; i < y.size(); ++i) y[i] += b[i % b.size()];
    return y;
  }

  std::string name() const override { return "test-add4"; }
  Device& device() const override { return *device_; }
  Shape input_shape() const override { return {kWidth}; }
  Shape output_shape() const override { return {kWidth}; }
  DType dtype() const override { return DType::kF32; }

  Tensor forward(const Tensor& x, Stream& stream) const override {
    const int64_t b = x.dim(0);
    rows_.fetch_add(b, std::memory_order_relaxed);
    {
      std::unique_lock<std::mutex> lock(mu_);
      batch_sizes_.push_back(b);
      ++calls_;
      cv_.notify_all();
      cv_.wait_for(lock, std::chrono::seconds(20), [&] { return open_; });
    }
    if (options_.delay.count() > 0) std::this_thread::sleep_for(options_.delay);
    if (options_.inspect) {
      const std::vector<float> v = x.to_vector(stream);
      bool marked = false;
      {
        std::lock_guard<std::mutex> lock(mu_);
        for (int64_t r = 0; r < b; ++r) first_values_.push_back(v[static_cast<size_t>(r * kWidth)]);
      }
      for (float value : v) marked = marked || value == kMarker;
      if (marked && options_.marker_throws_int) throw 42;
      if (marked)
        throw Error(ErrorCode::kDeviceError, "[test-add4] marker row: simulated device fault");
    }
    return ops::add(x, bias_, stream);
  }

  // Lets gated forwards through (now and later).
  void open() {
    std::lock_guard<std::mutex> lock(mu_);
    open_ = true;
    cv_.notify_all();
  }
  // Waits until forward has been entered `n` times; false after `limit`.
  bool wait_for_calls(int n, std::chrono::milliseconds limit = std::chrono::seconds(10)) const {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, limit, [&] { return calls_ >= n; });
  }

  // Rows forward was called with (padding included).
  int64_t rows() const { return rows_.load(std::memory_order_relaxed); }
  int calls() const {
    std::lock_guard<std::mutex> lock(mu_);
    return calls_;
  }
  // The batch size of each forward call, in order.
  std::vector<int64_t> batch_sizes() const {
    std::lock_guard<std::mutex> lock(mu_);
    return batch_sizes_;
  }
  // First value of every row seen (inspect only), in execution order.
  std::vector<float> first_values() const {
    std::lock_guard<std::mutex> lock(mu_);
    return first_values_;
  }

 private:
  const TestModelOptions options_;
  Device* device_;
  Tensor bias_;
  mutable std::atomic<int64_t> rows_{0};
  mutable std::mutex mu_;  // guards open_, calls_, batch_sizes_, first_values_
  mutable std::condition_variable cv_;
  bool open_;
  mutable int calls_ = 0;
  mutable std::vector<int64_t> batch_sizes_;
  mutable std::vector<float> first_values_;
};

// A request row whose values are id, id + 0.25, id + 0.5, id + 0.75.
inline std::vector<float> row_for(float id) { return {id, id + 0.25f, id + 0.5f, id + 0.75f}; }

}  // namespace fanin::testing
