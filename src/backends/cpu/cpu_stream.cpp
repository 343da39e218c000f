#include "backends/cpu/cpu_stream.h"

#include <chrono>
#include <string>

#include <algorithm>
#include <utility>

#include "backends/cpu/profile.h"
#include "core/thread_name.h"

namespace fanin::backend::cpu {

namespace {
std::atomic<int> next_stream_number{0};  // names the streams' threads fanin-cpu-N
}  // namespace

CpuStream::CpuStream()
    : worker_([this, n = next_stream_number.fetch_add(1, std::memory_order_relaxed)] {
        fanin::detail::set_thread_name("fanin-cpu-" + std::to_string(n));
        run();
      }) {}

CpuStream::~CpuStream() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    // Work encoded but never committed cannot exist here: encoders commit
    // when they end, and a stream is destroyed only when none is open.
    for (auto& t : pending_) queue_.push_back(std::move(t));
    pending_.clear();
    stop_ = true;
  }
  work_cv_.notify_one();
  worker_.join();
}

namespace {
// A recorded task list; launching encodes copies of the tasks.
class CpuGraph final : public GraphImpl {
 public:
  explicit CpuGraph(std::vector<CpuStream::Task> tasks) : tasks_(std::move(tasks)) {}
  void launch(StreamImpl& stream) override {
    auto& s = static_cast<CpuStream&>(stream);
    for (const auto& t : tasks_) s.encode(t);
  }

 private:
  const std::vector<CpuStream::Task> tasks_;
};
}  // namespace

void CpuStream::begin_capture() {
  capturing_ = true;
  captured_.clear();
}

std::unique_ptr<GraphImpl> CpuStream::end_capture() {
  capturing_ = false;
  return std::make_unique<CpuGraph>(std::exchange(captured_, {}));
}

void CpuStream::encode(Task task) {
  if (capturing_) {
    captured_.push_back(std::move(task));
    return;
  }
  pending_.push_back(std::move(task));
  encoded_.fetch_add(1, std::memory_order_acq_rel);
}

void CpuStream::end_encoding() {
  if (pending_.empty()) return;
  const uint64_t n = pending_.size();
  bool wake;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (queue_.empty()) {
      queue_.swap(pending_);
    } else {
      for (auto& t : pending_) queue_.push_back(std::move(t));
      pending_.clear();
    }
    wake = worker_idle_;
  }
  submitted_.fetch_add(n, std::memory_order_acq_rel);
  if (wake) work_cv_.notify_one();
}

void CpuStream::run() {
  std::vector<Task> batch;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      while (queue_.empty() && !stop_) {
        worker_idle_ = true;
        const bool prof = profiling();
        const auto t0 = prof ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point{};
        work_cv_.wait(lock);
        if (prof)
          detail::prof_sleep(static_cast<uint64_t>(
              std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0)
                  .count()));
        worker_idle_ = false;
      }
      if (queue_.empty() && stop_) return;
      batch.swap(queue_);
    }
    for (auto& task : batch) {
      try {
        task();
      } catch (...) {
        std::lock_guard<std::mutex> lock(mu_);
        if (!error_) error_ = std::current_exception();
      }
      const uint64_t done = completed_.fetch_add(1, std::memory_order_seq_cst) + 1;
      if (done >= wake_at_.load(std::memory_order_seq_cst)) {
        {
          std::lock_guard<std::mutex> lock(done_mu_);
          wake_at_.store(UINT64_MAX, std::memory_order_seq_cst);
        }
        done_cv_.notify_all();
      }
    }
    batch.clear();
  }
}

void CpuStream::wait_fence(uint64_t value) noexcept {
  value = std::min(value, submitted_.load(std::memory_order_acquire));
  if (fence_done(value)) return;
  std::unique_lock<std::mutex> lock(done_mu_);
  for (;;) {
    if (value < wake_at_.load(std::memory_order_seq_cst))
      wake_at_.store(value, std::memory_order_seq_cst);
    if (completed_.load(std::memory_order_seq_cst) >= value) return;
    done_cv_.wait(lock);
  }
}

void CpuStream::synchronize() {
  wait_fence(submitted_.load(std::memory_order_acquire));
  std::exception_ptr err;
  {
    std::lock_guard<std::mutex> lock(mu_);
    err = std::exchange(error_, nullptr);
  }
  if (err) std::rethrow_exception(err);
}

}  // namespace fanin::backend::cpu
