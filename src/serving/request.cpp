#include "serving/request.h"

#include <algorithm>
#include <cstring>

namespace fanin::serving {

Group::Group(int64_t n, int64_t out_numel, Shape shape, Engine::Callback done)
    : out_numel_(out_numel), remaining_(n), done_(std::move(done)) {
  response_.output.resize(static_cast<size_t>(n * out_numel));
  response_.shape = std::move(shape);
}

void Group::set_text_stats(int64_t tokens, int truncated) noexcept {
  response_.tokens = tokens;
  response_.truncated = truncated;
}

void Group::complete(int64_t i, const float* row, double queue_us, double compute_us,
                     int batch_size) noexcept {
  if (resolved_.load(std::memory_order_acquire)) return;  // failed: nobody reads the rows
  std::memcpy(response_.output.data() + i * out_numel_, row,
              static_cast<size_t>(out_numel_) * sizeof(float));
  {
    std::lock_guard<std::mutex> lock(timing_mu_);
    if (queue_us + compute_us >= response_.queue_us + response_.compute_us) {
      response_.queue_us = queue_us;
      response_.compute_us = compute_us;
      response_.batch_size = batch_size;
    }
  }
  // acq_rel: the last input sees every row the others wrote.
  if (remaining_.fetch_sub(1, std::memory_order_acq_rel) == 1) resolve();
}

void Group::resolve() noexcept {
  if (resolved_.exchange(true, std::memory_order_acq_rel)) return;
  try {
    if (done_) done_(std::move(response_), nullptr);
    else promise_.set_value(std::move(response_));
  } catch (...) {
    // A throwing callback must not take the worker down.
  }
}

void Group::fail(const Error& e) noexcept {
  if (resolved_.exchange(true, std::memory_order_acq_rel)) return;
  dropped_.cancel();
  try {
    if (done_) done_(Response{}, &e);
    else promise_.set_exception(std::make_exception_ptr(e));
  } catch (...) {
  }
}

}  // namespace fanin::serving
