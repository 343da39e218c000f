// Engine: construction, admission and the lifecycle (Note [Engine lifetime]
// in engine_impl.h); the workers are in worker.cpp, the payloads in
// payload.cpp and text_payload.cpp, request groups in request.cpp.
#include <cstdio>

#include "core/check.h"
#include "fanin/device.h"
#include "serving/engine_impl.h"
#include "serving/metrics.h"

namespace fanin {

Clock::time_point deadline_after(std::chrono::microseconds timeout, Clock::time_point now) noexcept {
  if (timeout.count() <= 0) return now;
  // Room left before time_point::max(), in whole microseconds (rounded
  // down), so that the addition below cannot overflow.
  const auto room = std::chrono::duration_cast<std::chrono::microseconds>(
      Clock::time_point::max() - now);
  if (timeout >= room) return Clock::time_point::max() - Clock::duration(1);
  return now + std::chrono::duration_cast<Clock::duration>(timeout);
}

const char* to_string(PayloadKind kind) noexcept {
  return kind == PayloadKind::kText ? "text" : "tensor";
}

}  // namespace fanin

namespace fanin::serving {
namespace {

EngineInfo with_limits(EngineInfo info, const EngineOptions& o) {
  info.max_batch_size = o.max_batch_size;
  info.max_tokens_per_batch = o.max_tokens_per_batch;
  return info;
}

}  // namespace

EngineImpl::EngineImpl(std::unique_ptr<Payload> payload, EngineOptions options)
    : options_(std::move(options)),
      payload_(std::move(payload)),
      info_(with_limits(payload_->info(), options_)),
      out_numel_(checked_numel(info_.output_shape, "Engine")),
      queue_(make_config(), static_cast<int>(payload_->replicas()), options_.workers) {
  const int n_dev = static_cast<int>(payload_->replicas());
  const int n_workers = options_.workers * n_dev;
  for (int d = 0; d < n_dev; ++d) {
    const int slots = payload_->device(static_cast<size_t>(d)).stream_pool().size();
    FANIN_CHECK(options_.workers <= slots, kInvalidArgument, "[Engine] workers ",
                options_.workers, " exceeds the ", slots, " stream slots of ",
                payload_->device(static_cast<size_t>(d)).name(),
                "'s pool: each worker leases a stream for the engine's lifetime");
    healthy_.push_back(std::make_unique<std::atomic<bool>>(true));
  }
  metrics_ = empty_metrics(options_.max_batch_size, n_workers);
  metrics_.devices.resize(static_cast<size_t>(n_dev));
  for (int d = 0; d < n_dev; ++d) metrics_.devices[d].name = payload_->info().devices[d];
  workers_.resize(static_cast<size_t>(n_workers));
  for (int w = 0; w < n_workers; ++w) {
    const size_t d = static_cast<size_t>(w / options_.workers);
    workers_[w].replica = d;
    workers_[w].lease = payload_->device(d).stream_pool().acquire_for(options_.lease_timeout);
    metrics_.workers[w].device = static_cast<int>(d);
    metrics_.workers[w].stream_id = workers_[w].lease->id();
  }
  live_ = n_workers;
  warming_ = options_.warmup ? n_workers : 0;
  try {
    for (int w = 0; w < n_workers; ++w)
      workers_[w].thread = std::thread([this, w] { run_worker(w); });
  } catch (...) {
    // Threads already started must be joined before the members go.
    cancel_now();
    join_locked();
    throw;
  }
  if (options_.warmup) wait_for_warmup();
  // Every worker waits for work before the first request can arrive (a
  // bounded wait: a slow thread start delays nothing but routing).
  queue_.wait_parked(std::chrono::seconds(10));
  warm_.store(true, std::memory_order_release);
}

QueueConfig EngineImpl::make_config() const {
  const EngineOptions& o = options_;
  FANIN_CHECK(o.workers >= 1 && o.workers <= 256, kInvalidArgument,
              "[Engine] workers must be in 1..256, got ", o.workers);
  FANIN_CHECK(o.max_batch_size >= 1 && o.max_batch_size <= 65536, kInvalidArgument,
              "[Engine] max_batch_size must be in 1..65536, got ", o.max_batch_size);
  FANIN_CHECK(o.max_queue_delay.count() >= 0, kInvalidArgument,
              "[Engine] max_queue_delay must be >= 0");
  FANIN_CHECK(o.max_queue_length >= 1 && o.max_queue_length <= (size_t{1} << 22),
              kInvalidArgument, "[Engine] max_queue_length must be in 1..", size_t{1} << 22,
              ", got ", o.max_queue_length);
  FANIN_CHECK(o.priority_levels >= 1 && o.priority_levels <= 64, kInvalidArgument,
              "[Engine] priority_levels must be in 1..64, got ", o.priority_levels);
  FANIN_CHECK(o.max_tokens_per_batch >= 0, kInvalidArgument,
              "[Engine] max_tokens_per_batch must be >= 0");
  FANIN_CHECK(o.default_timeout.count() >= 0, kInvalidArgument,
              "[Engine] default_timeout must be >= 0");
  int prev = 0;
  for (int p : o.preferred_batch_sizes) {
    FANIN_CHECK(p > prev && p <= o.max_batch_size, kInvalidArgument,
                "[Engine] preferred_batch_sizes must be ascending within 1..max_batch_size (",
                o.max_batch_size, "), got ", p, " after ", prev);
    prev = p;
  }
  payload_->check_options(o);
  QueueConfig c;
  c.max_batch_size = o.max_batch_size;
  c.max_queue_delay = o.max_queue_delay;
  c.adaptive_delay = o.adaptive_queue_delay;
  c.preferred_batch_sizes = o.preferred_batch_sizes;
  c.max_queue_length = o.max_queue_length;
  c.priority_levels = o.priority_levels;
  c.max_tokens_per_batch = o.max_tokens_per_batch;
  return c;
}

void EngineImpl::reject_invalid(const Error& e) {
  {
    std::lock_guard<std::mutex> lock(metrics_mu_);
    ++metrics_.rejected_invalid;
  }
  throw e;
}

void EngineImpl::check_options(const RequestOptions& opt, const char* op) {
  FANIN_CHECK(opt.priority >= 0 && opt.priority < options_.priority_levels, kInvalidArgument, op,
              " priority ", opt.priority, " outside 0..", options_.priority_levels - 1);
  FANIN_CHECK(opt.cost >= 0 && opt.cost <= kMaxRequestCost, kInvalidArgument, op, " cost ",
              opt.cost, " outside 0..", kMaxRequestCost);
}

void EngineImpl::enqueue(const char*, Admitted a, const RequestOptions& opt, Engine::Callback done,
                         std::future<Response>* future, bool squeeze) {
  const int64_t n = static_cast<int64_t>(a.inputs.size());
  const EngineInfo& info = payload_->info();
  Shape shape = info.output_shape;
  if (!squeeze) shape.insert(shape.begin(), n);
  auto group = std::make_shared<Group>(n, out_numel_, std::move(shape), std::move(done));
  group->set_text_stats(a.tokens, a.truncated);
  group->rows = std::move(a.rows);  // moving keeps the inputs' pointers valid
  if (future != nullptr) *future = group->future();
  const Clock::time_point now = Clock::now();
  Clock::time_point deadline = opt.deadline;
  if (deadline == Clock::time_point::max() && options_.default_timeout.count() > 0)
    deadline = deadline_after(options_.default_timeout, now);
  std::vector<RequestPtr> queued;
  queued.reserve(a.inputs.size());
  for (auto& r : a.inputs) {
    r->priority = opt.priority;
    r->cancel = opt.cancel;
    r->enqueued = now;
    r->deadline = deadline;
    if (opt.cost > 0) r->cost = opt.cost;
    r->group = group;
    r->dropped = group->dropped();
    queued.push_back(std::move(r));
  }
  // Counted before the push so that no snapshot shows more outcomes than
  // submissions.
  submitted_.fetch_add(static_cast<uint64_t>(n), std::memory_order_relaxed);
  try {
    queue_.push_many(queued);
  } catch (const Error& e) {
    submitted_.fetch_sub(static_cast<uint64_t>(n), std::memory_order_relaxed);
    std::lock_guard<std::mutex> lock(metrics_mu_);
    if (e.code() == ErrorCode::kQueueFull) ++metrics_.rejected_queue_full;
    else ++metrics_.rejected_shutdown;
    throw;
  }
}

int EngineImpl::padded(int n) const {
  for (int p : options_.preferred_batch_sizes)
    if (p >= n) return p;
  return n;
}

bool EngineImpl::drain(std::chrono::milliseconds timeout) {
  queue_.close();
  bool in_time;
  {
    std::unique_lock<std::mutex> lock(exit_mu_);
    auto done = [&] { return live_ == 0; };
    const Clock::time_point now = Clock::now();
    // A timeout too long to add to now() (milliseconds::max() included)
    // waits without limit.
    if (timeout >= std::chrono::duration_cast<std::chrono::milliseconds>(
                       Clock::time_point::max() - now)) {
      exit_cv_.wait(lock, done);
      in_time = true;
    } else {
      in_time = exit_cv_.wait_until(lock, now + timeout, done);
    }
  }
  std::lock_guard<std::mutex> lifecycle(lifecycle_mu_);
  if (!in_time) cancel_now();
  join_locked();
  // Not "all finished" when a cancel() from another thread ended the wait.
  return in_time && !cancelling_.load(std::memory_order_acquire);
}

void EngineImpl::cancel() {
  std::lock_guard<std::mutex> lifecycle(lifecycle_mu_);
  cancel_now();
  join_locked();
}

void EngineImpl::cancel_now() {
  cancelling_.store(true, std::memory_order_release);
  for (RequestPtr& r : queue_.take_all())
    fail(r, ErrorCode::kCancelled, "[Engine] request cancelled by engine shutdown before it ran");
}

void EngineImpl::join_locked() {
  for (Worker& w : workers_)
    if (w.thread.joinable()) w.thread.join();
}

void EngineImpl::wait_for_warmup() {
  {
    std::unique_lock<std::mutex> lock(warm_mu_);
    warm_cv_.wait(lock, [&] { return warming_ == 0; });
  }
  std::string reasons;
  {
    std::lock_guard<std::mutex> lock(metrics_mu_);
    if (metrics_.device_failures < payload_->replicas()) return;
    for (const auto& d : metrics_.devices) reasons += "; " + d.name + ": " + d.failure;
  }
  cancel_now();
  join_locked();
  FANIN_THROW(kUnavailable, "[Engine] every device failed its warm-up", reasons);
}

EngineMetrics EngineImpl::metrics() const {
  EngineMetrics m;
  {
    std::lock_guard<std::mutex> lock(metrics_mu_);
    m = metrics_;
  }
  // Loaded after the outcomes: submissions are counted before their
  // outcomes, so in_flight never goes below zero.
  m.submitted = submitted_.load(std::memory_order_relaxed);
  const uint64_t done = m.completed + m.failed;
  m.in_flight = m.submitted > done ? m.submitted - done : 0;
  m.queue_length = queue_.size();
  return m;
}

bool EngineImpl::ready() const noexcept {
  if (!warm_.load(std::memory_order_acquire) || cancelling_.load(std::memory_order_acquire))
    return false;
  if (queue_.closed()) return false;
  for (const auto& h : healthy_)
    if (h->load(std::memory_order_acquire)) return true;
  return false;
}

}  // namespace fanin::serving
