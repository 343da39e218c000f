// Engine: a Model behind a BatchQueue (Note [BatchQueue]) and its workers.
//
// Note [Engine lifetime]
// Every accepted request is resolved exactly once (Request::claim). Workers
// exit only after the queue is closed and empty. drain() closes the queue
// and waits for the workers (up to a timeout); on timeout, and in cancel(),
// cancelling_ is set first, then every queued request is taken out and
// failed with Cancelled; batches already running finish their compute and
// resolve with Cancelled (results discarded). drain() waits for the workers
// without holding lifecycle_mu_, so cancel() in another thread cuts that
// wait short; cancelling and joining happen under lifecycle_mu_, so neither
// call returns while the other still holds taken-out requests unresolved
// (found by verify/batch_queue.pml). Outcomes are counted in the metrics
// before the request is resolved, so a caller holding a resolved future sees
// it counted.
//
// Note [Engine payloads]
// An Engine serves either a Model (requests carry numel(input_shape) floats)
// or a SentenceEncoder (requests carry token ids, tokenized on the
// submitting thread; cost = tokens, so max_tokens_per_batch bounds a batch).
// Everything but the batch's launch is shared: admission, the queue, the
// worker loop, the launch-time checks, metrics and result splitting.
// BatchLauncher (launch.h) fills the batch input, runs the forward and copies
// the [n or p, out_numel_] output rows (out_dtype_) to its out_bytes().
// Text batches are padded to their longest row with the tokenizer's pad id;
// they have variable shapes, so use_graphs and preferred_batch_sizes are
// rejected at construction.
#include <cmath>
#include <cstdio>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <thread>

#include "core/check.h"
#include "fanin/device.h"
#include "fanin/model.h"
#include "fanin/sentence_encoder.h"
#include "fanin/stream.h"
#include "serving/batch_queue.h"
#include "serving/launch.h"
#include "serving/metrics.h"
#include "text/wordpiece.h"

namespace fanin::serving {
namespace {

double micros(Clock::duration d) {
  return std::chrono::duration<double, std::micro>(d).count();
}

struct EngineRequest final : Request {
  std::vector<float> input;    // Model engines
  std::vector<int32_t> tokens; // SentenceEncoder engines: [CLS] ... [SEP]
  std::promise<Response> promise;
  Engine::Callback callback;

  void fail(const Error& e) noexcept override {
    if (!claim()) return;
    try {
      if (callback) {
        callback(Response{}, &e);
      } else {
        promise.set_exception(std::make_exception_ptr(e));
      }
    } catch (...) {
      // A throwing callback must not take the worker down.
    }
  }
  void succeed(Response r) noexcept {
    if (!claim()) return;
    try {
      if (callback) {
        callback(std::move(r), nullptr);
      } else {
        promise.set_value(std::move(r));
      }
    } catch (...) {
    }
  }
};

EngineRequest& as_engine(const RequestPtr& r) { return static_cast<EngineRequest&>(*r); }

}  // namespace

// One device's copy of the model and its state (Note [Engine devices]).
struct Replica {
  std::shared_ptr<const Model> model;              // exactly one of model, encoder
  std::shared_ptr<const SentenceEncoder> encoder;
  Device* device = nullptr;
  std::atomic<bool> healthy{true};
};

class EngineImpl {
 public:
  EngineImpl(std::vector<std::shared_ptr<const Model>> models,
             std::vector<std::shared_ptr<const SentenceEncoder>> encoders, EngineOptions options)
      : options_(std::move(options)),
        replicas_(make_replicas(models, encoders)),
        queue_(make_config(), static_cast<int>(replicas_.size()), options_.workers) {
    const Replica& first = *replicas_.front();
    text_ = first.encoder != nullptr;
    if (!text_) {
      in_numel_ = checked_numel(first.model->input_shape(), "Engine");
      out_numel_ = checked_numel(first.model->output_shape(), "Engine");
      out_shape_ = first.model->output_shape();
      out_dtype_ = first.model->dtype();
    } else {
      out_numel_ = first.encoder->dim();
      out_shape_ = {out_numel_};
      out_dtype_ = DType::kF32;
    }
    const int n_dev = static_cast<int>(replicas_.size());
    const int n_workers = options_.workers * n_dev;
    metrics_ = empty_metrics(options_.max_batch_size, n_workers);
    metrics_.devices.resize(static_cast<size_t>(n_dev));
    for (int d = 0; d < n_dev; ++d) metrics_.devices[d].name = replicas_[d]->device->name();
    workers_.resize(static_cast<size_t>(n_workers));
    for (int w = 0; w < n_workers; ++w) {
      const int d = w / options_.workers;
      workers_[w].replica = replicas_[d].get();
      workers_[w].lane = d;
      workers_[w].lease = replicas_[d]->device->stream_pool().acquire_for(options_.lease_timeout);
      metrics_.workers[w].device = d;
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
  }

  ~EngineImpl() { drain(std::chrono::milliseconds::max()); }

  void submit(std::vector<float> input, const RequestOptions& opt, Engine::Callback cb,
              std::future<Response>* future) {
    if (text_)
      fail_invalid("[Engine::submit] this engine serves a sentence encoder: use submit_text");
    if (static_cast<int64_t>(input.size()) != in_numel_) {
      const Model& m = *replicas_.front()->model;
      fail_invalid("[Engine::submit] input has ", input.size(), " values, model ", m.name(),
                   " expects ", in_numel_, " (shape ", to_string(m.input_shape()), ")");
    }
    check_options(opt, "[Engine::submit]");
    auto req = std::make_unique<EngineRequest>();
    req->input = std::move(input);
    req->cost = opt.cost > 0 ? opt.cost : 1;
    enqueue(std::move(req), opt, std::move(cb), future);
  }

  void submit_text(std::string_view text, const RequestOptions& opt, Engine::Callback cb,
                   std::future<Response>* future) {
    if (!text_) fail_invalid("[Engine::submit_text] this engine serves a model, not text");
    check_options(opt, "[Engine::submit_text]");
    auto req = std::make_unique<EngineRequest>();
    try {
      req->tokens = replicas_.front()->encoder->tokenize(text);
    } catch (const Error& e) {
      if (e.code() != ErrorCode::kInvalidArgument) throw;
      fail_invalid("[Engine::submit_text] ", e.message());
    }
    req->cost = opt.cost > 0 ? opt.cost : static_cast<int64_t>(req->tokens.size());
    enqueue(std::move(req), opt, std::move(cb), future);
  }

 private:
  template <typename... Parts>
  [[noreturn]] void fail_invalid(Parts&&... parts) {
    {
      std::lock_guard<std::mutex> lock(metrics_mu_);
      ++metrics_.rejected_invalid;
    }
    FANIN_THROW(kInvalidArgument, std::forward<Parts>(parts)...);
  }

  void check_options(const RequestOptions& opt, const char* op) {
    if (opt.priority < 0 || opt.priority >= options_.priority_levels) {
      fail_invalid(op, " priority ", opt.priority, " outside 0..", options_.priority_levels - 1);
    }
    if (opt.cost < 0) fail_invalid(op, " cost must be >= 0, got ", opt.cost);
  }

  void enqueue(std::unique_ptr<EngineRequest> req, const RequestOptions& opt, Engine::Callback cb,
               std::future<Response>* future) {
    req->priority = opt.priority;
    req->cancel = opt.cancel;
    req->enqueued = Clock::now();
    if (opt.deadline != Clock::time_point::max()) {
      req->deadline = opt.deadline;
    } else if (options_.default_timeout.count() > 0) {
      req->deadline = req->enqueued + options_.default_timeout;
    }
    req->callback = std::move(cb);
    if (future != nullptr) *future = req->promise.get_future();
    RequestPtr base = std::move(req);
    // Counted before the push so that no snapshot shows more outcomes than
    // submissions.
    submitted_.fetch_add(1, std::memory_order_relaxed);
    try {
      queue_.push(base);
    } catch (const Error& e) {
      submitted_.fetch_sub(1, std::memory_order_relaxed);
      std::lock_guard<std::mutex> lock(metrics_mu_);
      if (e.code() == ErrorCode::kQueueFull) ++metrics_.rejected_queue_full;
      else ++metrics_.rejected_shutdown;
      throw;
    }
  }

 public:
  bool drain(std::chrono::milliseconds timeout) {
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

  void cancel() {
    std::lock_guard<std::mutex> lifecycle(lifecycle_mu_);
    cancel_now();
    join_locked();
  }

  EngineMetrics metrics() const {
    EngineMetrics m;
    {
      std::lock_guard<std::mutex> lock(metrics_mu_);
      m = metrics_;
    }
    m.submitted = submitted_.load(std::memory_order_relaxed);
    m.queue_length = queue_.size();
    return m;
  }

  const EngineOptions& options() const { return options_; }

 private:
  struct Worker {
    Replica* replica = nullptr;
    int lane = 0;  // the replica's index: its queue lane (Note [Queue lanes])
    StreamLease lease;
    std::thread thread;
    BatchLauncher launcher;  // this worker's buffers and graphs
    std::vector<const std::vector<float>*> rows;      // the batch's inputs (models)
    std::vector<const std::vector<int32_t>*> tokens;  // the batch's inputs (text)
    // The last batch's time for routing (Note [Routing by expected
    // finish]); 0 when it is no sample (it captured a graph, or failed).
    double last_batch_us = 0;
    double last_batch_units = 0;  // its requests' costs, padding rows included
  };

  // Note [Engine devices]: checks the replicas and wraps them.
  static std::vector<std::unique_ptr<Replica>> make_replicas(
      const std::vector<std::shared_ptr<const Model>>& models,
      const std::vector<std::shared_ptr<const SentenceEncoder>>& encoders) {
    const bool text = !encoders.empty();
    const size_t n = text ? encoders.size() : models.size();
    FANIN_CHECK(n >= 1, kInvalidArgument, "[Engine] no model replicas given");
    FANIN_CHECK(n <= 64, kInvalidArgument, "[Engine] at most 64 devices, got ", n);
    std::vector<std::unique_ptr<Replica>> out;
    for (size_t i = 0; i < n; ++i) {
      auto r = std::make_unique<Replica>();
      if (text) {
        FANIN_CHECK(encoders[i] != nullptr, kInvalidArgument,
                    n == 1 ? std::string("[Engine] sentence encoder is null")
                           : detail::str("[Engine] sentence encoder replica ", i, " is null"));
        r->encoder = encoders[i];
        r->device = &encoders[i]->model().device();
      } else {
        FANIN_CHECK(models[i] != nullptr, kInvalidArgument,
                    n == 1 ? std::string("[Engine] model is null")
                           : detail::str("[Engine] model replica ", i, " is null"));
        r->model = models[i];
        r->device = &models[i]->device();
      }
      for (size_t j = 0; j < i; ++j)
        FANIN_CHECK(out[j]->device != r->device, kInvalidArgument, "[Engine] replicas ", j,
                    " and ", i, " are both on ", r->device->name(),
                    ": give one replica per device");
      if (i > 0 && text) {
        const SentenceEncoder& a = *encoders[0];
        const SentenceEncoder& b = *encoders[i];
        FANIN_CHECK(a.dim() == b.dim() && a.max_length() == b.max_length() &&
                        a.model().config().vocab_size == b.model().config().vocab_size &&
                        a.tokenizer().pad_id() == b.tokenizer().pad_id(),
                    kInvalidArgument, "[Engine] sentence encoder replica ", i, " on ",
                    r->device->name(), " differs from replica 0 (dim ", b.dim(), " vs ",
                    a.dim(), ", max_length ", b.max_length(), " vs ", a.max_length(),
                    ", vocabulary ", b.model().config().vocab_size, " vs ",
                    a.model().config().vocab_size, ")");
      } else if (i > 0) {
        const Model& a = *models[0];
        const Model& b = *models[i];
        FANIN_CHECK(a.input_shape() == b.input_shape() && a.output_shape() == b.output_shape() &&
                        a.dtype() == b.dtype(),
                    kInvalidArgument, "[Engine] model replica ", i, " (", b.name(), " on ",
                    r->device->name(), ", ", to_string(b.input_shape()), " -> ",
                    to_string(b.output_shape()), " ", to_string(b.dtype()),
                    ") differs from replica 0 (", a.name(), ", ", to_string(a.input_shape()),
                    " -> ", to_string(a.output_shape()), " ", to_string(a.dtype()), ")");
      }
      out.push_back(std::move(r));
    }
    return out;
  }

  QueueConfig make_config() const {
    const EngineOptions& o = options_;
    FANIN_CHECK(o.workers >= 1 && o.workers <= 256, kInvalidArgument,
                "[Engine] workers must be in 1..256, got ", o.workers);
    FANIN_CHECK(o.max_batch_size >= 1, kInvalidArgument, "[Engine] max_batch_size must be >= 1, got ",
                o.max_batch_size);
    FANIN_CHECK(o.max_queue_delay.count() >= 0, kInvalidArgument,
                "[Engine] max_queue_delay must be >= 0");
    FANIN_CHECK(o.max_queue_length >= 1, kInvalidArgument, "[Engine] max_queue_length must be >= 1");
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
    if (replicas_.front()->encoder) {
      FANIN_CHECK(!o.use_graphs && o.preferred_batch_sizes.empty(), kInvalidArgument,
                  "[Engine] a sentence encoder's batches have variable shapes: use_graphs and "
                  "preferred_batch_sizes are not supported with text");
    }
    QueueConfig c;
    c.max_batch_size = o.max_batch_size;
    c.max_queue_delay = o.max_queue_delay;
    c.preferred_batch_sizes = o.preferred_batch_sizes;
    c.max_queue_length = o.max_queue_length;
    c.priority_levels = o.priority_levels;
    c.max_tokens_per_batch = o.max_tokens_per_batch;
    return c;
  }

  int padded(int n) const {
    for (int p : options_.preferred_batch_sizes)
      if (p >= n) return p;
    return n;
  }

  // Under lifecycle_mu_ (or in the constructor): fails everything queued;
  // running batches see cancelling_ and resolve with Cancelled. Holding
  // lifecycle_mu_ means no drain()/cancel() returns while another thread
  // still holds requests it took out but has not failed yet.
  void cancel_now() {
    cancelling_.store(true, std::memory_order_release);
    for (RequestPtr& r : queue_.take_all())
      fail(r, ErrorCode::kCancelled, "[Engine] request cancelled by engine shutdown before it ran");
  }

  // Under lifecycle_mu_ (or in the constructor).
  void join_locked() {
    for (Worker& w : workers_)
      if (w.thread.joinable()) w.thread.join();
  }

  void count_failure(ErrorCode code) {
    std::lock_guard<std::mutex> lock(metrics_mu_);
    ++metrics_.failed;
    switch (code) {
      case ErrorCode::kDeadlineExceeded: ++metrics_.deadline_exceeded; break;
      case ErrorCode::kCancelled: ++metrics_.cancelled; break;
      case ErrorCode::kInvalidArgument: ++metrics_.invalid_in_batch; break;
      default: ++metrics_.device_errors; break;
    }
  }

  void fail(const RequestPtr& r, ErrorCode code, const std::string& message) {
    count_failure(code);
    as_engine(r).fail(Error(code, message));
  }

  // Test and observability hooks must not take the worker down.
  static void call_hook(const std::function<void(int)>& hook, int n) noexcept {
    if (!hook) return;
    try {
      hook(n);
    } catch (...) {
    }
  }

  // Fails a batch that threw; a device that no longer works leaves rotation
  // first (Note [Engine devices]), so no new batch goes to it.
  void batch_failed(Worker& wk, const std::vector<Request*>& run, const Error& e,
                    ErrorCode counted_as) {
    {
      std::lock_guard<std::mutex> lock(metrics_mu_);
      ++metrics_.devices[static_cast<size_t>(wk.lane)].failed_batches;
    }
    if (e.code() == ErrorCode::kDeviceError && !device_still_works(wk)) retire_device(wk, e);
    for (size_t i = 0; i < run.size(); ++i) count_failure(counted_as);
    for (Request* r : run) r->fail(e);
  }

  // EngineOptions::warmup: the constructor waits for every worker; with
  // no device left it fails like a constructor that cannot start.
  void wait_for_warmup() {
    {
      std::unique_lock<std::mutex> lock(warm_mu_);
      warm_cv_.wait(lock, [&] { return warming_ == 0; });
    }
    std::string reasons;
    {
      std::lock_guard<std::mutex> lock(metrics_mu_);
      if (metrics_.device_failures < replicas_.size()) return;
      for (const auto& d : metrics_.devices) reasons += "; " + d.name + ": " + d.failure;
    }
    cancel_now();
    join_locked();
    FANIN_THROW(kUnavailable, "[Engine] every device failed its warm-up", reasons);
  }

  // Runs the batch in wk.rows (models) or wk.tokens (text), `n` requests,
  // on `s` (Note [Engine payloads]); true when it captured a graph.
  bool launch(Worker& wk, int n, Stream& s) {
    if (!text_)
      return wk.launcher.run_model(*wk.replica->model, wk.rows, padded(n), options_.use_graphs, s);
    wk.launcher.run_text(*wk.replica->encoder, wk.tokens, s);
    return false;
  }

  // EngineOptions::warmup, on worker `wk`'s thread before it serves.
  void warm_up(Worker& wk) {
    std::vector<int> sizes = options_.preferred_batch_sizes;
    if (sizes.empty()) sizes = {1, options_.max_batch_size};
    if (sizes.size() == 2 && sizes[0] == sizes[1]) sizes.pop_back();
    const std::vector<float> zeros(static_cast<size_t>(in_numel_), 0.0f);
    const std::vector<int32_t> empty_text = text_ ? replicas_.front()->encoder->tokenize("")
                                                  : std::vector<int32_t>{};
    Stream& s = wk.lease.stream();
    for (int size : sizes) {
      for (int rep = 0; rep < 2; ++rep) {  // the first captures / makes plans; the second is a sample
        std::string failure;
        try {
          const Clock::time_point t0 = Clock::now();
          if (!text_) wk.rows.assign(static_cast<size_t>(size), &zeros);
          else wk.tokens.assign(static_cast<size_t>(size), &empty_text);
          const bool captured = launch(wk, size, s);
          s.synchronize();
          // Units as the requests' costs: a row each, or the tokens of a text.
          const double units =
              text_ ? static_cast<double>(size * empty_text.size()) : padded(size);
          if (!captured) queue_.add_sample(wk.lane, micros(Clock::now() - t0), units);
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
        log(detail::str("fanin: [Engine] warm-up on ", wk.replica->device->name(), " at batch ",
                        size, " failed (the device stays in rotation): ", failure));
        return;
      }
    }
  }

  void run_worker(int w) {
    Worker& wk = workers_[static_cast<size_t>(w)];
    if (options_.warmup) {
      warm_up(wk);
      {
        std::lock_guard<std::mutex> lock(warm_mu_);
        --warming_;
      }
      warm_cv_.notify_all();
    }
    bool had_batch = false;
    for (;;) {
      Formed f = queue_.next_batch(wk.lane, had_batch, wk.last_batch_us, wk.last_batch_units);
      had_batch = !f.batch.empty();
      wk.last_batch_us = 0;
      wk.last_batch_units = 0;
      const Clock::time_point now = Clock::now();
      for (const RequestPtr& r : f.expired)
        fail(r, ErrorCode::kDeadlineExceeded,
             detail::str("[Engine] request deadline passed after ",
                         static_cast<int64_t>(micros(now - r->enqueued)),
                         " us in the queue; it never ran"));
      for (const RequestPtr& r : f.dropped)
        fail(r, ErrorCode::kCancelled, "[Engine] request cancelled before batching; it never ran");
      if (!f.batch.empty()) run_batch(w, f.batch);
      if (f.closed || !wk.replica->healthy.load(std::memory_order_acquire)) break;
    }
    {
      std::lock_guard<std::mutex> lock(exit_mu_);
      --live_;
    }
    exit_cv_.notify_all();
  }

  // Note [Engine devices]: after a batch failed on `wk`'s device, the
  // device's health check tells a broken device (a sticky CUDA error, an
  // injected fault) from a failure of the batch alone (the device stays in
  // rotation).
  static bool device_still_works(Worker& wk) noexcept {
    try {
      wk.replica->device->check_health();
      return true;
    } catch (const Error& e) {
      return e.code() != ErrorCode::kDeviceError;
    } catch (...) {
      return false;
    }
  }

  // Note [Engine devices]: takes a worker's device out of rotation (once).
  void retire_device(Worker& wk, const Error& cause) {
    Replica& rep = *wk.replica;
    if (!rep.healthy.exchange(false, std::memory_order_acq_rel)) return;  // a sibling did
    const std::string& name = rep.device->name();
    std::vector<RequestPtr> orphans;
    const int left = queue_.retire_lane(
        wk.lane, ErrorCode::kUnavailable,
        detail::str("[Engine::submit] no healthy device left: the last one, ", name,
                    ", failed: ", cause.message()),
        &orphans);
    {
      std::lock_guard<std::mutex> lock(metrics_mu_);
      ++metrics_.device_failures;
      auto& dm = metrics_.devices[static_cast<size_t>(wk.lane)];
      dm.healthy = false;
      dm.failure = cause.message();
    }
    log(detail::str("fanin: [Engine] device ", name,
                    " failed and is out of rotation (", left, " of ", replicas_.size(),
                    " devices left): ", cause.message()));
    for (const RequestPtr& r : orphans)
      fail(r, ErrorCode::kUnavailable,
           detail::str("[Engine] no healthy device left to run the request: the last one, ",
                       name, ", failed: ", cause.message()));
  }

  void log(const std::string& line) noexcept {
    try {
      if (options_.log) options_.log(line);
      else std::fprintf(stderr, "%s\n", line.c_str());
    } catch (...) {
    }
  }

  void run_batch(int w, std::vector<RequestPtr>& batch) {
    Worker& wk = workers_[static_cast<size_t>(w)];
    const Clock::time_point formed = Clock::now();
    const int formed_n = static_cast<int>(batch.size());
    call_hook(options_.on_batch_formed, formed_n);

    // Launch-time checks: each failing request fails alone.
    std::vector<Request*> run;
    run.reserve(batch.size());
    for (const RequestPtr& r : batch) {
      if (r->cancelled() || cancelling_.load(std::memory_order_acquire)) {
        fail(r, ErrorCode::kCancelled, "[Engine] request cancelled before launch; it never ran");
      } else if (r->deadline <= formed) {
        fail(r, ErrorCode::kDeadlineExceeded,
             detail::str("[Engine] request deadline passed after ",
                         static_cast<int64_t>(micros(formed - r->enqueued)),
                         " us in the queue; it never ran"));
      } else if (options_.check_inputs && !all_finite(as_engine(r).input)) {
        fail(r, ErrorCode::kInvalidArgument,
             "[Engine] input contains NaN or Inf (check_inputs is on); the rest of its batch ran");
      } else {
        run.push_back(r.get());
      }
    }
    if (run.empty()) return;
    const int n = static_cast<int>(run.size());
    const size_t esize = dtype_size(out_dtype_);
    bool captured = false;
    try {
      Stream& s = wk.lease.stream();
      wk.rows.clear();
      wk.tokens.clear();
      for (Request* r : run) {
        auto* er = static_cast<EngineRequest*>(r);
        if (!text_) wk.rows.push_back(&er->input);
        else wk.tokens.push_back(&er->tokens);
      }
      captured = launch(wk, n, s);
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
    for (Request* r : run) units += static_cast<double>(r->cost);
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
    record_batch(w, n, completed, compute_us, queue_us);
    for (int i = 0; i < n; ++i) {
      auto* r = static_cast<EngineRequest*>(run[i]);
      if (discard[i]) {
        r->fail(Error(ErrorCode::kCancelled,
                      "[Engine] request cancelled while its batch ran; result discarded"));
        continue;
      }
      Response resp;
      resp.output.resize(static_cast<size_t>(out_numel_));
      read_row(wk.launcher.out_bytes().data() + static_cast<size_t>(i * out_numel_) * esize,
               out_numel_,
               out_dtype_, resp.output.data());
      resp.shape = out_shape_;
      resp.queue_us = queue_us[i];
      resp.compute_us = compute_us;
      resp.batch_size = n;
      r->succeed(std::move(resp));
    }
  }

  void record_batch(int w, int n, int completed, double compute_us,
                    const std::vector<double>& queue_us) {
    std::lock_guard<std::mutex> lock(metrics_mu_);
    metrics_.completed += static_cast<uint64_t>(completed);
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

  static bool all_finite(const std::vector<float>& v) {
    for (float x : v)
      if (!std::isfinite(x)) return false;
    return true;
  }

  const EngineOptions options_;
  // One per device, in the order given; never resized (Note [Engine devices]).
  const std::vector<std::unique_ptr<Replica>> replicas_;
  BatchQueue queue_;  // one lane per replica
  bool text_ = false;  // replicas are sentence encoders (Note [Engine payloads])
  int64_t in_numel_ = 0, out_numel_ = 0;
  Shape out_shape_;
  DType out_dtype_ = DType::kF32;
  std::vector<Worker> workers_;  // sized at construction; each touched by its own thread
  std::atomic<bool> cancelling_{false};
  std::atomic<uint64_t> submitted_{0};

  mutable std::mutex metrics_mu_;  // guards metrics_
  EngineMetrics metrics_;

  std::mutex exit_mu_;  // guards live_
  std::condition_variable exit_cv_;
  int live_ = 0;

  std::mutex warm_mu_;  // guards warming_ (EngineOptions::warmup)
  std::condition_variable warm_cv_;
  int warming_ = 0;  // workers still warming up

  std::mutex lifecycle_mu_;  // serializes cancel_now() and joining (Note [Engine lifetime])
};

}  // namespace fanin::serving

namespace fanin {

Engine::Engine(std::shared_ptr<const Model> model, EngineOptions options)
    : Engine(std::vector<std::shared_ptr<const Model>>{std::move(model)}, std::move(options)) {}

Engine::Engine(std::shared_ptr<const SentenceEncoder> encoder, EngineOptions options)
    : Engine(std::vector<std::shared_ptr<const SentenceEncoder>>{std::move(encoder)},
             std::move(options)) {}

Engine::Engine(std::vector<std::shared_ptr<const Model>> replicas, EngineOptions options)
    : impl_(std::make_unique<serving::EngineImpl>(std::move(replicas),
                                                  std::vector<std::shared_ptr<const SentenceEncoder>>{},
                                                  std::move(options))) {}

Engine::Engine(std::vector<std::shared_ptr<const SentenceEncoder>> replicas, EngineOptions options)
    : impl_(std::make_unique<serving::EngineImpl>(std::vector<std::shared_ptr<const Model>>{},
                                                  std::move(replicas), std::move(options))) {}

Engine::~Engine() = default;

std::future<Response> Engine::submit(std::vector<float> input, const RequestOptions& options) {
  std::future<Response> f;
  impl_->submit(std::move(input), options, nullptr, &f);
  return f;
}

void Engine::submit(std::vector<float> input, const RequestOptions& options, Callback done) {
  FANIN_CHECK(static_cast<bool>(done), kInvalidArgument, "[Engine::submit] callback is empty");
  impl_->submit(std::move(input), options, std::move(done), nullptr);
}

std::future<Response> Engine::submit_text(std::string text, const RequestOptions& options) {
  std::future<Response> f;
  impl_->submit_text(text, options, nullptr, &f);
  return f;
}

void Engine::submit_text(std::string text, const RequestOptions& options, Callback done) {
  FANIN_CHECK(static_cast<bool>(done), kInvalidArgument, "[Engine::submit_text] callback is empty");
  impl_->submit_text(text, options, std::move(done), nullptr);
}

bool Engine::drain(std::chrono::milliseconds timeout) { return impl_->drain(timeout); }
void Engine::cancel() { impl_->cancel(); }
EngineMetrics Engine::metrics() const { return impl_->metrics(); }
std::string Engine::prometheus() const { return serving::to_prometheus(impl_->metrics()); }
const EngineOptions& Engine::options() const noexcept { return impl_->options(); }

}  // namespace fanin
