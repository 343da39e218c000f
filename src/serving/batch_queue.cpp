#include "serving/batch_queue.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "core/check.h"

namespace fanin::serving {

BatchQueue::BatchQueue(QueueConfig config, int lanes, int workers_per_lane)
    : config_(std::move(config)),
      lanes_(static_cast<size_t>(std::max(lanes, 1))),
      workers_per_lane_(std::max(workers_per_lane, 1)) {
  levels_.resize(static_cast<size_t>(config_.priority_levels));
  live_lanes_ = static_cast<int>(lanes_.size());
}

void CostModel::add(double units, double us) noexcept {
  if (++samples == 1) return;  // warm-up: library plans, first launches
  if (measured()) {
    const double e = estimate(units);
    if (e > 0) us = std::clamp(us, e / 4, e * 4);
  }
  max_units = std::max(max_units, units);
  constexpr double keep = 0.75;
  s0 = s0 * keep + 1;
  s1 = s1 * keep + units;
  s2 = s2 * keep + units * units;
  t0 = t0 * keep + us;
  t1 = t1 * keep + units * us;
}

double CostModel::estimate(double units) const noexcept {
  if (!measured()) return 0;
  const double mean = t0 / s0;
  const double det = s0 * s2 - s1 * s1;
  if (det <= 1e-9 * s0 * s2) return mean;  // one batch size seen: no slope
  const double b = (s0 * t1 - s1 * t0) / det;
  if (b <= 0) return mean;
  const double fitted = std::max((t0 - b * s1) / s0, 0.0) + b * units;
  return fitted > 0 ? fitted : mean;
}

double BatchQueue::half_life_ms(double est_us) {
  // A probe of a slow lane costs about one of its batches, so its estimate
  // decays the slower the longer its batches: probes take at most ~1/16 of
  // the time; between kRouteDecay and kRouteDecayMax per halving.
  return std::clamp(16.0 * est_us / 1000.0, static_cast<double>(kRouteDecay.count()),
                    static_cast<double>(kRouteDecayMax.count()));
}

size_t BatchQueue::row_cap(const Lane& lane) const {
  const size_t max_n = static_cast<size_t>(config_.max_batch_size);
  if (lanes_.size() == 1) return max_n;
  if (!lane.cost.measured()) return 1;
  // Twice the largest measured batch, in requests of the cost queued now.
  const double rows = 2 * lane.cost.max_units / mean_cost();
  return std::min(max_n, std::max<size_t>(1, static_cast<size_t>(rows)));
}

double BatchQueue::mean_cost() const {
  return count_ == 0 ? 1.0
                     : std::max(1.0, static_cast<double>(tokens_) / static_cast<double>(count_));
}

double BatchQueue::front_rows() const {
  return static_cast<double>(
      std::clamp<size_t>(count_, 1, static_cast<size_t>(config_.max_batch_size)));
}

double BatchQueue::finish_us(const Lane& lane, double k, double rows, Clock::time_point now,
                             bool decay) const {
  double est = lane.cost.estimate(rows * mean_cost());
  if (decay && lane.running == 0 && est > 0) {
    const double idle_ms = std::chrono::duration<double, std::milli>(now - lane.last_done).count();
    if (idle_ms > 0) est *= std::exp2(-idle_ms / half_life_ms(est));
  }
  return est * (1.0 + (static_cast<double>(lane.running) + k - 1.0) / workers_per_lane_);
}

bool BatchQueue::eligible(int l, Clock::time_point now, Clock::time_point* retry,
                          bool* probe) const {
  if (probe != nullptr) *probe = false;
  if (lanes_.size() == 1) return true;
  const Lane& lane = lanes_[static_cast<size_t>(l)];
  if (!lane.cost.measured()) return true;  // not measured yet: try it
  const double max_n = static_cast<double>(config_.max_batch_size);
  const double k = std::max(1.0, std::ceil(static_cast<double>(count_) / max_n));
  // A lane not measured yet and waiting gets the only batch first: else a
  // measured lane whose worker comes back sooner would take every request
  // before the woken waiter runs, and the other lane would never be measured.
  if (k == 1.0) {
    for (const Lane& m : lanes_) {
      if (&m != &lane && !m.retired && !m.cost.measured() && m.idle + m.filling > 0) {
        if (retry != nullptr) *retry = now + std::chrono::milliseconds(1);
        return false;
      }
    }
  }
  // This lane would finish the front batch at `mine`; left to another
  // lane, it (and the rest queued) would be done at that lane's F.
  // Each lane's batches are at most row_cap(lane) rows, so that lane needs
  // ceil(count / cap) of them for the queue.
  const double rows = front_rows();
  const double my_rows = std::min(rows, static_cast<double>(row_cap(lane)));
  const double mine = finish_us(lane, 1.0, my_rows, now);
  double best = mine;
  for (const Lane& m : lanes_) {
    if (&m == &lane || m.retired || !m.cost.measured()) continue;
    const double cap = static_cast<double>(row_cap(m));
    const double k_m = std::max(1.0, std::ceil(static_cast<double>(count_) / cap));
    best = std::min(best, finish_us(m, k_m, std::min(rows, cap), now));
  }
  if (mine <= kRouteSlack * best) {
    // Eligible only thanks to the decay of an idle estimate: a probe, one
    // request (a probe of a slow device must not hold a batch of clients).
    if (probe != nullptr)
      *probe = finish_us(lane, 1.0, my_rows, now, /*decay=*/false) > kRouteSlack * best;
    return true;
  }
  if (retry != nullptr) {
    // Idle, its estimate halves every kRouteDecay: when would it pass?
    const double halvings = std::log2(mine / (kRouteSlack * best));
    const auto wait = std::chrono::duration<double, std::milli>(
        std::min(halvings, 1.0) * half_life_ms(lane.cost.estimate(my_rows * mean_cost())));
    *retry = now + std::max(std::chrono::duration_cast<Clock::duration>(wait),
                            Clock::duration(std::chrono::microseconds(50)));
  }
  return false;
}

int BatchQueue::less_loaded_waiter(int l, Clock::time_point now) const {
  if (lanes_.size() == 1) return -1;
  const Lane& lane = lanes_[static_cast<size_t>(l)];
  int best = -1;
  for (size_t m = 0; m < lanes_.size(); ++m) {
    const Lane& other = lanes_[m];
    if (&other == &lane || other.retired || other.idle + other.filling == 0) continue;
    if (other.running >= lane.running) continue;
    if (best >= 0 && other.running >= lanes_[static_cast<size_t>(best)].running) continue;
    if (!eligible(static_cast<int>(m), now, nullptr, nullptr)) continue;
    best = static_cast<int>(m);
  }
  return best;
}

int BatchQueue::pick_lane() {
  const int n = static_cast<int>(lanes_.size());
  if (n == 1) return lanes_[0].idle + lanes_[0].filling > 0 ? 0 : -1;
  const Clock::time_point now = Clock::now();
  int best = -1;
  for (int k = 0; k < n; ++k) {
    const int l = (rotate_ + k) % n;
    const Lane& lane = lanes_[static_cast<size_t>(l)];
    if (lane.retired || lane.idle + lane.filling == 0 || !eligible(l, now, nullptr, nullptr))
      continue;
    if (best < 0 || lane.running < lanes_[static_cast<size_t>(best)].running) best = l;
  }
  if (best >= 0) rotate_ = (best + 1) % n;
  return best;
}

void BatchQueue::push(RequestPtr& request) {
  std::vector<RequestPtr> one;
  one.push_back(std::move(request));
  try {
    push_many(one);
  } catch (...) {
    request = std::move(one.front());
    throw;
  }
}

void BatchQueue::push_many(std::vector<RequestPtr>& requests) {
  int wake = -1;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_) {
      if (closed_why_.empty())
        FANIN_THROW(kCancelled,
                    "[Engine::submit] the engine is shutting down and accepts no new requests");
      throw Error(closed_code_, closed_why_);
    }
    FANIN_CHECK(requests.size() <= config_.max_queue_length - count_, kQueueFull,
                "[Engine::submit] queue is full (", count_, " of max_queue_length ",
                config_.max_queue_length, " requests",
                requests.size() > 1 ? detail::str("; this request has ", requests.size(), " inputs")
                                    : std::string(),
                ")");
    for (RequestPtr& r : requests) {
      tokens_ += r->cost;  // costs <= kMaxRequestCost, count_ <= 2^22: no overflow
      levels_[static_cast<size_t>(r->priority)].push_back(std::move(r));
    }
    count_ += requests.size();
    requests.clear();
    const Clock::time_point now = Clock::now();
    note_arrival(now);
    // A filling worker sleeps until its batch's delay ends: wake it when
    // the batch is due sooner (due() covers ready(): full, or Note
    // [Adaptive queue delay]).
    Clock::time_point unused;
    if (idle_ > 0 || (filling_ > 0 && due(now, &unused))) wake = pick_lane();
  }
  if (wake >= 0) lanes_[static_cast<size_t>(wake)].cv.notify_one();
}

bool BatchQueue::ready() const {
  if (count_ >= static_cast<size_t>(config_.max_batch_size)) return true;
  if (config_.max_tokens_per_batch > 0 && tokens_ >= config_.max_tokens_per_batch) return true;
  // The largest preferred size is as good as a full batch: go now.
  return !config_.preferred_batch_sizes.empty() &&
         count_ >= static_cast<size_t>(config_.preferred_batch_sizes.back());
}

void BatchQueue::note_arrival(Clock::time_point now) {
  if (seen_arrival_) {
    const double gap = std::max(
        std::chrono::duration<double, std::micro>(now - last_arrival_).count(), 0.0);
    gap_us_ = seen_gap_ ? gap_us_ + (gap - gap_us_) / 8 : gap;  // the first gap starts the mean
    last_gap_us_ = gap;
    seen_gap_ = true;
  }
  seen_arrival_ = true;
  last_arrival_ = now;
}

bool BatchQueue::arrivals_too_sparse(Clock::time_point at) const {
  // microseconds::max(): wait for a full batch, whatever the arrivals.
  if (!config_.adaptive_delay || config_.max_queue_delay == std::chrono::microseconds::max() ||
      !seen_gap_)
    return false;
  // The next gap is expected to be the shorter of the mean and the last one
  // (a burst after a sparse spell batches from its second push on);
  // last_arrival_ + gap > at, in microseconds (no time_point arithmetic to overflow).
  const double expected = std::min(gap_us_, last_gap_us_);
  return expected > std::chrono::duration<double, std::micro>(at - last_arrival_).count();
}

bool BatchQueue::due(Clock::time_point now, Clock::time_point* wake) const {
  if (closed_ || ready()) return true;
  Clock::time_point oldest = Clock::time_point::max();
  for (const auto& q : levels_)
    if (!q.empty()) oldest = std::min(oldest, q.front()->enqueued);
  // Saturated: max_queue_delay may be microseconds::max() (wait for a full batch).
  const Clock::time_point at = deadline_after(config_.max_queue_delay, oldest);
  if (now >= at || arrivals_too_sparse(at)) return true;
  *wake = at;
  return false;
}

void BatchQueue::form(Clock::time_point now, Formed& out, size_t max_rows) {
  int64_t tokens = 0;
  const size_t max_n = std::min(static_cast<size_t>(config_.max_batch_size), max_rows);
  for (auto& q : levels_) {
    while (!q.empty() && out.batch.size() < max_n) {
      Request* r = q.front().get();
      if (r->cancelled()) {
        out.dropped.push_back(std::move(q.front()));
      } else if (r->deadline <= now) {
        out.expired.push_back(std::move(q.front()));
      } else {
        // Written as a difference: tokens + cost may pass INT64_MAX.
        if (config_.max_tokens_per_batch > 0 && !out.batch.empty() &&
            r->cost > config_.max_tokens_per_batch - tokens) {
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

Formed BatchQueue::next_batch(int lane_index, bool finished_previous, double batch_us,
                              double batch_units) {
  Formed out;
  Lane& lane = lanes_[static_cast<size_t>(lane_index)];
  std::unique_lock<std::mutex> lock(mu_);
  if (finished_previous) {
    --lane.running;
    if (lanes_.size() > 1) {
      lane.last_done = Clock::now();
      // Note [Routing by expected finish]
      if (batch_us > 0 && batch_units > 0) lane.cost.add(batch_units, batch_us);
    }
  }
  for (;;) {
    if (lane.retired) {
      out.closed = true;
      return out;
    }
    if (count_ == 0) {
      if (closed_) {
        out.closed = true;
        return out;
      }
      wait_as_idle(lane, lock, Clock::time_point::max());
      continue;
    }
    const Clock::time_point now = Clock::now();
    Clock::time_point wake;
    if (due(now, &wake)) {
      Clock::time_point retry;
      bool probe = false;
      if (!eligible(lane_index, now, &retry, &probe)) {
        // Note [Routing by expected finish]: another lane finishes it
        // sooner; wait (as idle: a push or a retirement may wake us) until
        // this lane's estimate has decayed, or something changes.
        wait_as_idle(lane, lock, retry);
        continue;
      }
      if (const int better = less_loaded_waiter(lane_index, now); better >= 0) {
        // Note [Queue lanes]: a device running fewer batches has a worker
        // waiting (its wake-up may not have landed yet): it gets the batch.
        lanes_[static_cast<size_t>(better)].cv.notify_one();
        wait_as_idle(lane, lock, now + std::chrono::milliseconds(1));
        continue;
      }
      form(now, out, probe ? 1 : row_cap(lane));
      if (!out.batch.empty() || !out.expired.empty() || !out.dropped.empty()) break;
      continue;
    }
    ++filling_;
    ++lane.filling;
    lane.cv.wait_until(lock, wake);
    --lane.filling;
    --filling_;
  }
  if (!out.batch.empty()) ++lane.running;
  const int more = count_ > 0 && (idle_ > 0 || filling_ > 0) ? pick_lane() : -1;
  lock.unlock();
  if (more >= 0) lanes_[static_cast<size_t>(more)].cv.notify_one();
  return out;
}

void BatchQueue::wait_as_idle(Lane& lane, std::unique_lock<std::mutex>& lock,
                              Clock::time_point until) {
  ++idle_;
  ++lane.idle;
  if (parking_ && idle_ + filling_ >= workers_per_lane_ * live_lanes_) parked_cv_.notify_all();
  if (until == Clock::time_point::max()) lane.cv.wait(lock);
  else lane.cv.wait_until(lock, until);
  --lane.idle;
  --idle_;
}

void BatchQueue::add_sample(int lane, double batch_us, double batch_units) {
  std::lock_guard<std::mutex> lock(mu_);
  if (lanes_.size() > 1 && batch_us > 0 && batch_units > 0) {
    Lane& l = lanes_[static_cast<size_t>(lane)];
    l.cost.add(batch_units, batch_us);
    l.last_done = Clock::now();  // the estimate is fresh: no decay yet
  }
}

void BatchQueue::notify_all_lanes() {
  for (Lane& lane : lanes_) lane.cv.notify_all();
  parked_cv_.notify_all();
}

void BatchQueue::wait_parked(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  parking_ = true;
  parked_cv_.wait_for(lock, timeout, [&] {
    return closed_ || idle_ + filling_ >= workers_per_lane_ * live_lanes_;
  });
  parking_ = false;
}

void BatchQueue::close() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
  }
  notify_all_lanes();
}

void BatchQueue::take_all_locked(ErrorCode code, std::string why, std::vector<RequestPtr>& all) {
  if (!closed_) {
    closed_code_ = code;
    closed_why_ = std::move(why);
  }
  closed_ = true;
  for (auto& q : levels_) {
    for (auto& r : q) all.push_back(std::move(r));
    q.clear();
  }
  count_ = 0;
  tokens_ = 0;
}

std::vector<RequestPtr> BatchQueue::take_all(ErrorCode code, std::string why) {
  std::vector<RequestPtr> all;
  {
    std::lock_guard<std::mutex> lock(mu_);
    take_all_locked(code, std::move(why), all);
  }
  notify_all_lanes();
  return all;
}

int BatchQueue::retire_lane(int lane, ErrorCode code, const std::string& why,
                            std::vector<RequestPtr>* orphans) {
  int left;
  {
    std::lock_guard<std::mutex> lock(mu_);
    Lane& l = lanes_[static_cast<size_t>(lane)];
    if (!l.retired) {
      l.retired = true;
      --live_lanes_;
    }
    left = live_lanes_;
    if (left == 0) take_all_locked(code, why, *orphans);
  }
  notify_all_lanes();
  return left;
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
