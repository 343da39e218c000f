// The CPU backend's stream: an in-order task queue run by one worker thread.
//
// Note [CPU streams]
// Encode side (one thread at a time, guaranteed by the CommandBuffer's
// one-encoder rule, which also orders successive owners): encode() appends to
// pending_ without a lock; end_encoding() moves pending_ into queue_ under
// mu_ and wakes the worker. Fences count tasks: encoded_ is bumped per
// encoded task, completed_ by the worker after each task, so fence_done(v)
// is completed_ >= v. Host waiters sleep on done_cv_ after lowering wake_at_
// to the fence they need; the worker notifies only when completed_ reaches
// wake_at_, then resets it, and waiters still short of their fence lower it
// again. Both sides store (wake_at_ / completed_) and then load the other's
// value, seq_cst, so either the waiter sees its fence done or the worker sees
// the wake-up due: no lost wake-up, and one wake-up per wait instead of one
// per task.
#pragma once

#include <atomic>
#include <condition_variable>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "backends/backend.h"

#include <memory>

namespace fanin::backend::cpu {

class CpuStream final : public StreamImpl {
 public:
  using Task = std::function<void()>;

  CpuStream();
  ~CpuStream() override;

  // Encode side: appends `task` to the work being encoded.
  void encode(Task task);

  bool capturing() const noexcept { return capturing_; }
  void begin_capture() override;
  std::unique_ptr<GraphImpl> end_capture() override;
  void end_encoding() override;
  uint64_t fence() const noexcept override { return encoded_.load(std::memory_order_acquire); }
  bool fence_done(uint64_t value) const noexcept override {
    return completed_.load(std::memory_order_acquire) >= value;
  }
  void wait_fence(uint64_t value) noexcept override;
  void synchronize() override;
  bool query() const noexcept override {
    return completed_.load(std::memory_order_acquire) >= submitted_.load(std::memory_order_acquire);
  }

 private:
  void run();

  std::vector<Task> pending_;  // encode side only (Note [CPU streams])
  bool capturing_ = false;     // encode side only
  std::vector<Task> captured_;  // encode side only: tasks recorded while capturing
  std::atomic<uint64_t> encoded_{0};
  std::atomic<uint64_t> submitted_{0};
  std::atomic<uint64_t> completed_{0};

  std::mutex mu_;  // guards queue_, stop_, error_, worker_idle_
  std::condition_variable work_cv_;  // worker sleeps here when queue_ is empty
  std::vector<Task> queue_;
  bool stop_ = false;
  bool worker_idle_ = false;
  std::exception_ptr error_;  // first error raised by a task since last synchronize

  // The lowest fence a sleeping host waiter needs; UINT64_MAX when none.
  std::atomic<uint64_t> wake_at_{UINT64_MAX};
  std::mutex done_mu_;  // guards the waiters' updates of wake_at_ and the sleep on done_cv_
  std::condition_variable done_cv_;

  std::thread worker_;  // last: started after every other member exists
};

}  // namespace fanin::backend::cpu
