// What the Engine queues: one EngineRequest per input, grouped per client
// request.
//
// Note [Request groups]
// A client request of n inputs (Engine::submit_batch / submit_texts /
// submit_token_ids; a single-input submit is a group of one) is one
// admission and one resolution, but n queue entries: the inputs may run in
// different batches, on different devices, so a request of 32 sentences
// fills a batch as well as 32 single ones. Each input's EngineRequest holds
// the Group; the worker that runs an input writes its output row into the
// group's Response (distinct rows, so workers never write the same bytes)
// and decrements `remaining_`; the one that brings it to zero (acq_rel, so
// it sees every row) resolves the group. The first failure of any input
// resolves the group with that error and cancels `dropped_`, which every
// input of the group checks through Request::cancelled(): the inputs not yet
// run are dropped, results of those running are discarded. `resolved_`
// makes resolution happen once; the Group lives as long as its last input
// (shared_ptr), so late rows never write freed memory.
#pragma once

#include <atomic>
#include <future>
#include <memory>
#include <mutex>
#include <vector>

#include "fanin/engine.h"
#include "serving/batch_queue.h"

namespace fanin::serving {

class Group {
 public:
  // n inputs of out_numel f32 outputs each; `shape` is what the Response
  // reports. Resolves through `done`, or the future when `done` is empty.
  Group(int64_t n, int64_t out_numel, Shape shape, Engine::Callback done);

  std::future<Response> future() { return promise_.get_future(); }
  // Set at admission, before the inputs are queued.
  void set_text_stats(int64_t tokens, int truncated) noexcept;
  // Input i's output row (out_numel f32) and its batch's timings; the last
  // input to finish resolves the group.
  void complete(int64_t i, const float* row, double queue_us, double compute_us,
                int batch_size) noexcept;
  // Resolves the group with `e` unless it is resolved; drops its other inputs.
  void fail(const Error& e) noexcept;
  // Cancelled once the group failed (Request::dropped).
  const CancelToken* dropped() const noexcept { return &dropped_; }
  // Tensor inputs: the rows the group's requests point into.
  std::vector<float> rows;

 private:
  void resolve() noexcept;

  const int64_t out_numel_;
  std::atomic<int64_t> remaining_;
  std::atomic<bool> resolved_{false};
  CancelToken dropped_;
  Engine::Callback done_;
  std::promise<Response> promise_;
  Response response_;      // output rows: each written by the worker of its input
  std::mutex timing_mu_;   // guards response_'s queue_us, compute_us, batch_size
};

// One input of a client request.
struct EngineRequest final : Request {
  std::shared_ptr<Group> group;
  int64_t index = 0;              // the input's row in the group
  const float* input = nullptr;   // tensor engines: into group->rows
  std::vector<int32_t> tokens;    // text engines: [CLS] ... [SEP]

  void fail(const Error& e) noexcept override {
    if (claim()) group->fail(e);
  }
  void succeed(const float* row, double queue_us, double compute_us, int batch_size) noexcept {
    if (claim()) group->complete(index, row, queue_us, compute_us, batch_size);
  }
};

inline EngineRequest& as_engine(Request& r) { return static_cast<EngineRequest&>(r); }
inline EngineRequest& as_engine(const RequestPtr& r) { return as_engine(*r); }

}  // namespace fanin::serving
