#include "serving/batch_queue.h"

#include <algorithm>

#include "core/check.h"

namespace fanin::serving {

BatchQueue::BatchQueue(QueueConfig config) : config_(std::move(config)) {
  levels_.resize(static_cast<size_t>(config_.priority_levels));
}

void BatchQueue::push(RequestPtr& request) {
  bool wake;
  {
    std::lock_guard<std::mutex> lock(mu_);
    FANIN_CHECK(!closed_, kCancelled,
                "[Engine::submit] the engine is shutting down and accepts no new requests");
    FANIN_CHECK(count_ < config_.max_queue_length, kQueueFull, "[Engine::submit] queue is full (",
                count_, " of max_queue_length ", config_.max_queue_length, " requests)");
    tokens_ += request->cost;
    levels_[static_cast<size_t>(request->priority)].push_back(std::move(request));
    ++count_;
    wake = idle_ > 0 || (filling_ > 0 && ready());
  }
  if (wake) cv_.notify_one();
}

bool BatchQueue::ready() const {
  if (count_ >= static_cast<size_t>(config_.max_batch_size)) return true;
  if (config_.max_tokens_per_batch > 0 && tokens_ >= config_.max_tokens_per_batch) return true;
  // The largest preferred size is as good as a full batch: go now.
  return !config_.preferred_batch_sizes.empty() &&
         count_ >= static_cast<size_t>(config_.preferred_batch_sizes.back());
}

bool BatchQueue::due(Clock::time_point now, Clock::time_point* wake) const {
  if (closed_ || ready()) return true;
  Clock::time_point oldest = Clock::time_point::max();
  for (const auto& q : levels_)
    if (!q.empty()) oldest = std::min(oldest, q.front()->enqueued);
  const Clock::time_point at = oldest + config_.max_queue_delay;
  if (now >= at) return true;
  *wake = at;
  return false;
}

void BatchQueue::form(Clock::time_point now, Formed& out) {
  int64_t tokens = 0;
  const size_t max_n = static_cast<size_t>(config_.max_batch_size);
  for (auto& q : levels_) {
    while (!q.empty() && out.batch.size() < max_n) {
      Request* r = q.front().get();
      if (r->cancelled()) {
        out.dropped.push_back(std::move(q.front()));
      } else if (r->deadline <= now) {
        out.expired.push_back(std::move(q.front()));
      } else {
        if (config_.max_tokens_per_batch > 0 && !out.batch.empty() &&
            tokens + r->cost > config_.max_tokens_per_batch) {
          return;  // budget reached; the rest waits for the next batch
        }
        tokens += r->cost;
        out.batch.push_back(std::move(q.front()));
      }
      tokens_ -= r->cost;
      q.pop_front();
      --count_;
    }
    if (out.batch.size() >= max_n) return;
  }
}

Formed BatchQueue::next_batch() {
  Formed out;
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    if (count_ == 0) {
      if (closed_) {
        out.closed = true;
        return out;
      }
      ++idle_;
      cv_.wait(lock);
      --idle_;
      continue;
    }
    const Clock::time_point now = Clock::now();
    Clock::time_point wake;
    if (due(now, &wake)) {
      form(now, out);
      if (!out.batch.empty() || !out.expired.empty() || !out.dropped.empty()) break;
      continue;
    }
    ++filling_;
    cv_.wait_until(lock, wake);
    --filling_;
  }
  const bool more = count_ > 0 && (idle_ > 0 || filling_ > 0);
  lock.unlock();
  if (more) cv_.notify_one();
  return out;
}

void BatchQueue::close() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
  }
  cv_.notify_all();
}

std::vector<RequestPtr> BatchQueue::take_all() {
  std::vector<RequestPtr> all;
  {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
    for (auto& q : levels_) {
      for (auto& r : q) all.push_back(std::move(r));
      q.clear();
    }
    count_ = 0;
    tokens_ = 0;
  }
  cv_.notify_all();
  return all;
}

size_t BatchQueue::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return count_;
}

bool BatchQueue::closed() const {
  std::lock_guard<std::mutex> lock(mu_);
  return closed_;
}

}  // namespace fanin::serving
