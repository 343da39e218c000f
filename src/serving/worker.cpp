// Engine workers: the loop that takes batches from the queue, the batch's
// launch-time checks, launch and result split, warm-up, and failover
// (Note [Engine devices]).
#include <cstdio>

#include "core/check.h"
#include "core/thread_name.h"
#include "fanin/device.h"
#include "serving/engine_impl.h"
#include "serving/metrics.h"

namespace fanin::serving {
namespace {

double micros(Clock::duration d) { return std::chrono::duration<double, std::micro>(d).count(); }

// Test and observability hooks must not take the worker down.
void call_hook(const std::function<void(int)>& hook, int n) noexcept {
  if (!hook) return;
  try {
    hook(n);
  } catch (...) {
  }
}

std::string deadline_passed(Clock::time_point now, const Request& r) {
  return detail::str("[Engine] request deadline passed after ",
                     static_cast<int64_t>(micros(now - r.enqueued)), " us in the queue; it never ran");
}

}  // namespace

void EngineImpl::run_worker(int w) {
  Worker& wk = workers_[static_cast<size_t>(w)];
  detail::set_thread_name("fanin-wk-" + std::to_string(w));
  if (options_.warmup) {
    warm_up(wk);
    {
      std::lock_guard<std::mutex> lock(warm_mu_);
      --warming_;
    }
    warm_cv_.notify_all();
  }
  const int lane = static_cast<int>(wk.replica);
  bool had_batch = false;
  for (;;) {
    Formed f = queue_.next_batch(lane, had_batch, wk.last_batch_us, wk.last_batch_units);
    had_batch = !f.batch.empty();
    wk.last_batch_us = 0;
    wk.last_batch_units = 0;
    const Clock::time_point now = Clock::now();
    for (const RequestPtr& r : f.expired)
      fail(r, ErrorCode::kDeadlineExceeded, deadline_passed(now, *r));
    for (const RequestPtr& r : f.dropped)
      fail(r, ErrorCode::kCancelled, "[Engine] request cancelled before batching; it never ran");
    if (!f.batch.empty()) run_batch(w, f.batch);
    if (f.closed || !healthy_[wk.replica]->load(std::memory_order_acquire)) break;
  }
  {
    std::lock_guard<std::mutex> lock(exit_mu_);
    --live_;
  }
  exit_cv_.notify_all();
}

// EngineOptions::warmup, on worker `wk`'s thread before it serves.
void EngineImpl::warm_up(Worker& wk) {
  std::vector<int> sizes = options_.preferred_batch_sizes;
  if (sizes.empty()) sizes = {1, options_.max_batch_size};
  if (sizes.size() == 2 && sizes[0] == sizes[1]) sizes.pop_back();
  Stream& s = wk.lease.stream();
  for (int size : sizes) {
    for (int rep = 0; rep < 2; ++rep) {  // the first captures / makes plans; the second is a sample
      std::string failure;
      try {
        const Clock::time_point t0 = Clock::now();
        double units = 0;
        const bool captured =
            payload_->warm_up(wk.replica, wk.launcher, size, options_.use_graphs, s, &units);
        s.synchronize();
        if (!captured)
          queue_.add_sample(static_cast<int>(wk.replica), micros(Clock::now() - t0), units);
        continue;
      } catch (const Error& e) {
        if (e.code() == ErrorCode::kDeviceError && !device_still_works(wk)) {
          retire_device(wk, e);
          return;
        }
        failure = e.message();
      } catch (const std::exception& e) {
        failure = e.what();
      }
      log(detail::str("fanin: [Engine] warm-up on ", payload_->device(wk.replica).name(),
                      " at batch ", size, " failed (the device stays in rotation): ", failure));
      return;
    }
  }
}

void EngineImpl::run_batch(int w, std::vector<RequestPtr>& batch) {
  Worker& wk = workers_[static_cast<size_t>(w)];
  const Clock::time_point formed = Clock::now();
  call_hook(options_.on_batch_formed, static_cast<int>(batch.size()));

  // Launch-time checks: each failing request fails alone.
  std::vector<EngineRequest*> run;
  run.reserve(batch.size());
  for (const RequestPtr& r : batch) {
    if (r->cancelled() || cancelling_.load(std::memory_order_acquire)) {
      fail(r, ErrorCode::kCancelled, "[Engine] request cancelled before launch; it never ran");
    } else if (r->deadline <= formed) {
      fail(r, ErrorCode::kDeadlineExceeded, deadline_passed(formed, *r));
    } else if (options_.check_inputs && !payload_->finite(as_engine(r))) {
      fail(r, ErrorCode::kInvalidArgument,
           "[Engine] input contains NaN or Inf (check_inputs is on); the rest of its batch ran");
    } else {
      run.push_back(&as_engine(r));
    }
  }
  if (run.empty()) return;
  const int n = static_cast<int>(run.size());
  bool captured = false;
  try {
    Stream& s = wk.lease.stream();
    captured = payload_->launch(wk.replica, wk.launcher, run, padded(n), options_.use_graphs, s);
    s.synchronize();
  } catch (const Error& e) {
    batch_failed(wk, run, e,
                 e.code() == ErrorCode::kInvalidArgument ? ErrorCode::kDeviceError : e.code());
    return;
  } catch (const std::exception& e) {
    batch_failed(wk, run,
                 Error(ErrorCode::kDeviceError, std::string("[Engine] batch failed: ") + e.what()),
                 ErrorCode::kDeviceError);
    return;
  } catch (...) {
    batch_failed(wk, run, Error(ErrorCode::kDeviceError, "[Engine] batch failed: unknown exception"),
                 ErrorCode::kDeviceError);
    return;
  }
  call_hook(options_.on_batch_computed, n);
  const Clock::time_point done = Clock::now();
  const double compute_us = micros(done - formed);
  wk.last_batch_us = captured ? 0 : compute_us;
  double units = 0;
  int64_t tokens = 0;
  for (EngineRequest* r : run) {
    units += static_cast<double>(r->cost);
    tokens += static_cast<int64_t>(r->tokens.size());
  }
  wk.last_batch_units = units * padded(n) / n;
  // Decide and count every outcome first, then resolve (Note [Engine lifetime]).
  std::vector<double> queue_us(static_cast<size_t>(n));
  std::vector<char> discard(static_cast<size_t>(n));
  int completed = 0;
  for (int i = 0; i < n; ++i) {
    queue_us[i] = micros(formed - run[i]->enqueued);
    discard[i] = run[i]->cancelled() || cancelling_.load(std::memory_order_acquire);
    if (discard[i]) count_failure(ErrorCode::kCancelled);
    else ++completed;
  }
  record_batch(w, n, completed, compute_us, tokens, queue_us);
  const int64_t out_numel = out_numel_;
  const DType out_dtype = payload_->out_dtype();
  const size_t esize = dtype_size(out_dtype);
  const uint8_t* out = wk.launcher.out_bytes().data();
  std::vector<float> row(out_dtype == DType::kF32 ? 0 : static_cast<size_t>(out_numel));
  for (int i = 0; i < n; ++i) {
    EngineRequest* r = run[i];
    if (discard[i]) {
      r->fail(Error(ErrorCode::kCancelled,
                    "[Engine] request cancelled while its batch ran; result discarded"));
      continue;
    }
    const uint8_t* src = out + static_cast<size_t>(i * out_numel) * esize;
    const float* values = reinterpret_cast<const float*>(src);
    if (out_dtype != DType::kF32) {
      read_row(src, out_numel, out_dtype, row.data());
      values = row.data();
    }
    r->succeed(values, queue_us[i], compute_us, n);
  }
}

// Fails a batch that threw; a device that no longer works leaves rotation
// first (Note [Engine devices]), so no new batch goes to it.
void EngineImpl::batch_failed(Worker& wk, const std::vector<EngineRequest*>& run, const Error& e,
                              ErrorCode counted_as) {
  {
    std::lock_guard<std::mutex> lock(metrics_mu_);
    ++metrics_.devices[wk.replica].failed_batches;
  }
  if (e.code() == ErrorCode::kDeviceError && !device_still_works(wk)) retire_device(wk, e);
  count_failure(counted_as, run.size());
  for (EngineRequest* r : run) r->fail(e);
}

// Note [Engine devices]: after a batch failed on `wk`'s device, the
// device's health check tells a broken device (a sticky CUDA error, an
// injected fault) from a failure of the batch alone (the device stays in
// rotation).
bool EngineImpl::device_still_works(const Worker& wk) const noexcept {
  try {
    payload_->device(wk.replica).check_health();
    return true;
  } catch (const Error& e) {
    return e.code() != ErrorCode::kDeviceError;
  } catch (...) {
    return false;
  }
}

// Note [Engine devices]: takes a worker's device out of rotation (once).
void EngineImpl::retire_device(Worker& wk, const Error& cause) {
  if (!healthy_[wk.replica]->exchange(false, std::memory_order_acq_rel)) return;  // a sibling did
  const std::string& name = payload_->device(wk.replica).name();
  std::vector<RequestPtr> orphans;
  const int left = queue_.retire_lane(
      static_cast<int>(wk.replica), ErrorCode::kUnavailable,
      detail::str("[Engine::submit] no healthy device left: the last one, ", name,
                  ", failed: ", cause.message()),
      &orphans);
  {
    std::lock_guard<std::mutex> lock(metrics_mu_);
    ++metrics_.device_failures;
    auto& dm = metrics_.devices[wk.replica];
    dm.healthy = false;
    dm.failure = cause.message();
  }
  log(detail::str("fanin: [Engine] device ", name, " failed and is out of rotation (", left,
                  " of ", payload_->replicas(), " devices left): ", cause.message()));
  for (const RequestPtr& r : orphans)
    fail(r, ErrorCode::kUnavailable,
         detail::str("[Engine] no healthy device left to run the request: the last one, ", name,
                     ", failed: ", cause.message()));
}

void EngineImpl::log(const std::string& line) noexcept {
  try {
    if (options_.log) options_.log(line);
    else std::fprintf(stderr, "%s\n", line.c_str());
  } catch (...) {
  }
}

void EngineImpl::count_failure(ErrorCode code, uint64_t inputs) {
  std::lock_guard<std::mutex> lock(metrics_mu_);
  metrics_.failed += inputs;
  switch (code) {
    case ErrorCode::kDeadlineExceeded: metrics_.deadline_exceeded += inputs; break;
    case ErrorCode::kCancelled: metrics_.cancelled += inputs; break;
    case ErrorCode::kInvalidArgument: metrics_.invalid_in_batch += inputs; break;
    default: metrics_.device_errors += inputs; break;
  }
}

void EngineImpl::fail(const RequestPtr& r, ErrorCode code, const std::string& message) {
  count_failure(code);
  r->fail(Error(code, message));
}

void EngineImpl::record_batch(int w, int n, int completed, double compute_us, int64_t tokens,
                              const std::vector<double>& queue_us) {
  std::lock_guard<std::mutex> lock(metrics_mu_);
  metrics_.completed += static_cast<uint64_t>(completed);
  metrics_.tokens += static_cast<uint64_t>(tokens);
  ++metrics_.batches;
  ++metrics_.batch_fill[static_cast<size_t>(std::min(n, options_.max_batch_size))];
  for (double q : queue_us) {
    observe(metrics_.queue_us_hist, q);
    metrics_.queue_us_sum += q;
    observe(metrics_.compute_us_hist, compute_us);
    metrics_.compute_us_sum += compute_us;
  }
  auto& wm = metrics_.workers[static_cast<size_t>(w)];
  ++wm.batches;
  wm.requests += static_cast<uint64_t>(n);
  wm.busy_us += compute_us;
  auto& dm = metrics_.devices[static_cast<size_t>(wm.device)];
  ++dm.batches;
  dm.requests += static_cast<uint64_t>(n);
  dm.busy_us += compute_us;
}

}  // namespace fanin::serving
