// EngineImpl: a Payload (Note [Engine payloads]) behind a BatchQueue (Note
// [BatchQueue]) and its workers. engine.cpp holds construction, admission
// and the lifecycle (Note [Engine lifetime]); worker.cpp the worker loop,
// batches, warm-up and failover (Note [Engine devices]).
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
#pragma once

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "fanin/engine.h"
#include "fanin/stream.h"
#include "serving/batch_queue.h"
#include "serving/launch.h"
#include "serving/payload.h"

namespace fanin::serving {

class EngineImpl {
 public:
  EngineImpl(std::unique_ptr<Payload> payload, EngineOptions options);
  ~EngineImpl() { drain(std::chrono::milliseconds::max()); }

  // Admission of a client request whose inputs `make` turns into requests
  // (Note [Request groups]); `squeeze`: a single-input submit, whose
  // Response has the output shape without the batch dimension. Resolves
  // through `done`, or *future when `done` is empty.
  template <typename Make>
  void submit(const char* op, const RequestOptions& opt, Engine::Callback done,
              std::future<Response>* future, bool squeeze, Make&& make);

  bool drain(std::chrono::milliseconds timeout);
  void cancel();
  EngineMetrics metrics() const;
  bool ready() const noexcept;
  const EngineOptions& options() const { return options_; }
  const Payload& payload() const { return *payload_; }
  const EngineInfo& info() const noexcept { return info_; }

  // Counts a rejected invalid submit and throws it (InvalidArgument).
  [[noreturn]] void reject_invalid(const Error& e);

 private:
  struct Worker {
    size_t replica = 0;  // the payload's replica and the queue lane (Note [Queue lanes])
    StreamLease lease;
    std::thread thread;
    BatchLauncher launcher;  // this worker's buffers and graphs
    // The last batch's time for routing (Note [Routing by expected
    // finish]); 0 when it is no sample (it captured a graph, or failed).
    double last_batch_us = 0;
    double last_batch_units = 0;  // its requests' costs, padding rows included
  };

  QueueConfig make_config() const;
  void check_options(const RequestOptions& opt, const char* op);
  void enqueue(const char* op, Admitted admitted, const RequestOptions& opt,
               Engine::Callback done, std::future<Response>* future, bool squeeze);
  int padded(int n) const;

  // Lifecycle (engine.cpp).
  void cancel_now();   // under lifecycle_mu_ (or in the constructor)
  void join_locked();  // under lifecycle_mu_ (or in the constructor)
  void wait_for_warmup();

  // Workers (worker.cpp).
  void run_worker(int w);
  void warm_up(Worker& wk);
  void run_batch(int w, std::vector<RequestPtr>& batch);
  void batch_failed(Worker& wk, const std::vector<EngineRequest*>& run, const Error& e,
                    ErrorCode counted_as);
  bool device_still_works(const Worker& wk) const noexcept;
  void retire_device(Worker& wk, const Error& cause);
  void record_batch(int w, int n, int completed, double compute_us, int64_t tokens,
                    const std::vector<double>& queue_us);
  void count_failure(ErrorCode code, uint64_t inputs = 1);
  void fail(const RequestPtr& r, ErrorCode code, const std::string& message);
  void log(const std::string& line) noexcept;

  const EngineOptions options_;
  const std::unique_ptr<const Payload> payload_;  // the replicas (Note [Engine devices])
  const EngineInfo info_;                         // the payload's, with the batch limits
  const int64_t out_numel_;                       // f32 values of one input's output
  BatchQueue queue_;                              // one lane per replica
  std::vector<std::unique_ptr<std::atomic<bool>>> healthy_;  // per replica
  std::vector<Worker> workers_;  // sized at construction; each touched by its own thread
  std::atomic<bool> cancelling_{false};
  std::atomic<bool> warm_{false};  // warm-up finished (or not asked for)
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

template <typename Make>
void EngineImpl::submit(const char* op, const RequestOptions& opt, Engine::Callback done,
                        std::future<Response>* future, bool squeeze, Make&& make) {
  Admitted admitted;
  try {
    check_options(opt, op);
    admitted = make();
  } catch (const Error& e) {
    if (e.code() == ErrorCode::kInvalidArgument) reject_invalid(e);
    throw;
  }
  enqueue(op, std::move(admitted), opt, std::move(done), future, squeeze);
}

}  // namespace fanin::serving
