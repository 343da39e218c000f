// fanin/engine.h: serve a model to many threads through a batching queue.
//
// Contract (Note [BatchQueue] in docs/concurrency.md):
// - Engine::submit may be called from any number of threads at once. It
//   either accepts the request (the returned future, or the callback, is then
//   resolved exactly once, whatever happens later: success, a failure of that
//   request alone, a device error of its batch, cancellation, deadline,
//   shutdown) or throws at once and accepts nothing (QueueFull when the queue
//   is at max_queue_length, InvalidArgument for a malformed input, Cancelled
//   once shutdown has begun).
// - Workers (each holding its own stream lease) form batches: up to
//   max_batch_size requests (or max_tokens_per_batch tokens), most urgent
//   priority first, FIFO within a priority; a batch leaves when full or when
//   its oldest request has waited max_queue_delay, or at once when requests
//   arrive too sparsely for the wait to bring another (adaptive_queue_delay).
// - A request past its deadline fails with DeadlineExceeded and never runs;
//   a cancelled one is dropped before batching, skipped before launch, or its
//   result discarded after, and resolves with Cancelled.
// - An engine over several devices (one model replica each) runs
//   options.workers workers per device on one queue; a batch goes to the
//   least-loaded device with a free worker (Note [Queue lanes]). A batch
//   failure whose device then fails a health check (a host wait on the
//   worker's stream) takes that device out of rotation: its in-flight
//   batches fail, queued requests go to the other devices, a log line and
//   the device metrics tell. With no device left, queued requests fail with
//   Unavailable and submit throws Unavailable.
// - drain() finishes what was accepted; cancel() fails it with Cancelled;
//   the destructor drains. Callbacks run on a worker thread, or on the
//   thread calling cancel() / a drain() that timed out (for the requests
//   those cancel); they must not block for long or call drain()/cancel()/the
//   destructor.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "fanin/error.h"
#include "fanin/tensor.h"

namespace fanin {

class Device;
class Model;
class SentenceEncoder;

using Clock = std::chrono::steady_clock;

// Cooperative cancellation shared by a caller and its requests.
class CancelToken {
 public:
  // Marks every request holding this token as cancelled. Thread-safe.
  void cancel() noexcept { flag_.store(true, std::memory_order_release); }
  bool cancelled() const noexcept { return flag_.load(std::memory_order_acquire); }

 private:
  std::atomic<bool> flag_{false};
};

// Per-request options.
struct RequestOptions {
  // Absolute deadline; time_point::max() means "the engine's default".
  // deadline_after() makes one from a relative timeout without overflow.
  Clock::time_point deadline = Clock::time_point::max();
  // 0 is the most urgent; must be < EngineOptions::priority_levels.
  int priority = 0;
  // Optional cancellation token.
  std::shared_ptr<const CancelToken> cancel;
  // Work units of each input for the token budget (e.g. its tokens); 0
  // means 1 for tensor inputs and each input's token count for text.
  // At most kMaxRequestCost.
  int64_t cost = 0;
  // Text inputs longer than the encoder's max_length: true cuts them
  // (Response::truncated counts them), false rejects the request with
  // InvalidArgument naming the input and its length.
  bool truncate = true;
};

// The largest RequestOptions::cost (and EngineOptions::max_tokens_per_batch):
// sums of a queue's costs stay far from overflow.
inline constexpr int64_t kMaxRequestCost = int64_t{1} << 40;

// now + timeout, saturated at time_point::max() - 1 (a finite deadline)
// for timeouts too long to add; a negative timeout gives now.
Clock::time_point deadline_after(std::chrono::microseconds timeout,
                                 Clock::time_point now = Clock::now()) noexcept;

// Engine configuration: the batching knobs.
struct EngineOptions {
  int workers = 1;                                    // threads per device, each with a stream lease
  int max_batch_size = 64;                            // requests per batch
  std::chrono::microseconds max_queue_delay{500};     // wait for a fuller batch at most this
  // Skip that wait when requests come too sparsely for it to bring another
  // (the mean gap between submits exceeds what is left of it): a lone client
  // does not pay the delay, a steady stream still batches. false: always
  // wait max_queue_delay for a batch that is not full.
  bool adaptive_queue_delay = true;
  std::vector<int> preferred_batch_sizes;             // pad a batch up to the next one (graphs)
  size_t max_queue_length = 1 << 16;                  // QueueFull beyond this
  int priority_levels = 1;                            // RequestOptions::priority < this
  std::chrono::microseconds default_timeout{0};       // 0: no default deadline
  int64_t max_tokens_per_batch = 0;                   // 0: no token budget
  bool check_inputs = false;                          // fail NaN/Inf inputs alone
  bool use_graphs = false;                            // capture the forward per (worker, size)
  std::chrono::milliseconds lease_timeout{10000};     // waiting for a worker's stream lease
  // Before serving, each worker runs batches of zeros (text: empty texts) at
  // each preferred batch size (or 1 and max_batch_size), twice: graphs are
  // captured and library plans made before the first request, and each
  // device's batch time is known to the routing (Note [Engine devices]).
  // The constructor returns when every worker has warmed up; a device that
  // fails its warm-up is taken out of rotation, and if none is left the
  // constructor throws Unavailable.
  bool warmup = false;
  // Observability / test hooks, called on the worker thread (may be empty).
  std::function<void(int batch_size)> on_batch_formed;   // before the launch-time checks
  std::function<void(int batch_size)> on_batch_computed; // after compute, before results
  // Where the engine's log lines go (a device taken out of rotation);
  // empty: stderr. Called on a worker thread.
  std::function<void(const std::string& line)> log;
};

// A successful result.
struct Response {
  // The output rows as f32: one request's numel(output_shape) values, or
  // n x numel(output_shape) for a request of n inputs (submit_batch,
  // submit_texts, submit_token_ids), row i for input i.
  std::vector<float> output;
  // output_shape for a single-input submit; {n, output_shape...} for a
  // request of n inputs.
  Shape shape;
  // Text engines: tokens run for the request's inputs ([CLS] and [SEP]
  // included, after truncation); tensor engines: 0.
  int64_t tokens = 0;
  // Text engines: inputs that were cut to max_length.
  int truncated = 0;
  double queue_us = 0;    // enqueue -> batch formed (the last input's batch)
  double compute_us = 0;  // batch formed -> results ready (the last input's batch)
  int batch_size = 0;     // requests in that batch (before padding)
};

// What an engine serves, for front ends (routes, /info, model configs).
enum class PayloadKind {
  kTensor,  // float rows of numel(input_shape) values
  kText,    // texts (or token ids) in, sentence embeddings out
};

// "tensor" or "text".
const char* to_string(PayloadKind kind) noexcept;

struct EngineInfo {
  PayloadKind kind = PayloadKind::kTensor;
  std::string model_name;    // Model::name(), or the encoder's ("bert-6x384")
  Shape input_shape;         // one input without the batch dimension; text: {max_length}
  Shape output_shape;        // one input's output; text: {dim}
  DType dtype = DType::kF32;          // the replicas' compute dtype
  DType input_dtype = DType::kF32;    // what submit takes: f32 rows (text: i32 token ids)
  DType output_dtype = DType::kF32;   // what Response::output holds: f32
  int max_length = 0;        // text: tokens per input, [CLS] and [SEP] included; else 0
  int vocab_size = 0;        // text: the tokenizer's vocabulary; else 0
  int max_batch_size = 0;    // EngineOptions::max_batch_size
  int64_t max_tokens_per_batch = 0;  // EngineOptions::max_tokens_per_batch
  std::vector<std::string> devices;  // in the engine's order, e.g. {"cuda:0", "cpu:1"}
};

// The tokens of one text as a text engine runs them.
struct Tokenized {
  std::vector<int32_t> ids;  // [CLS] ... [SEP], cut to max_length
  bool truncated = false;    // pieces were cut
};

// Counters and histograms; a consistent snapshot. Requests are counted per
// input: a submit_texts of 32 texts adds 32 to submitted.
struct EngineMetrics {
  uint64_t submitted = 0, completed = 0, failed = 0;
  uint64_t rejected_queue_full = 0, rejected_invalid = 0, rejected_shutdown = 0;
  uint64_t deadline_exceeded = 0, cancelled = 0, invalid_in_batch = 0, device_errors = 0;
  uint64_t batches = 0;
  uint64_t tokens = 0;     // text engines: tokens run in completed batches
  uint64_t in_flight = 0;  // accepted inputs not yet resolved (queued or running)
  std::vector<uint64_t> batch_fill;  // batch_fill[n] = batches of n requests (n <= max)
  // Latency histograms in microseconds: counts per bucket upper bound.
  std::vector<double> latency_bounds_us;
  std::vector<uint64_t> queue_us_hist, compute_us_hist;
  double queue_us_sum = 0, compute_us_sum = 0;
  struct Worker {
    int device = 0;  // index into devices
    uint32_t stream_id = 0;
    uint64_t batches = 0, requests = 0;
    double busy_us = 0;
  };
  std::vector<Worker> workers;
  // Per device, in the engine's device order.
  struct DeviceStats {
    std::string name;        // "cuda:1"
    bool healthy = true;     // false once taken out of rotation
    uint64_t batches = 0, requests = 0;  // run to completion
    uint64_t failed_batches = 0;         // batches that threw on this device
    double busy_us = 0;
    std::string failure;     // why it left rotation (empty while healthy)
  };
  std::vector<DeviceStats> devices;
  uint64_t device_failures = 0;  // devices taken out of rotation
  size_t queue_length = 0;
};

// Loads one replica per device with `load(device)`, on one thread per
// device (weights are read and uploaded concurrently); the first exception
// any load throws is rethrown after all have finished.
template <typename T, typename Load>
std::vector<std::shared_ptr<const T>> load_replicas(const std::vector<Device*>& devices,
                                                    Load&& load) {
  std::vector<std::shared_ptr<const T>> out(devices.size());
  std::vector<std::exception_ptr> errors(devices.size());
  std::vector<std::thread> threads;
  threads.reserve(devices.size());
  for (size_t i = 0; i < devices.size(); ++i) {
    threads.emplace_back([&, i] {
      try {
        out[i] = load(*devices[i]);
      } catch (...) {
        errors[i] = std::current_exception();
      }
    });
  }
  for (std::thread& t : threads) t.join();
  for (std::exception_ptr& e : errors)
    if (e) std::rethrow_exception(e);
  return out;
}

namespace serving {
class EngineImpl;
}

// A model behind a BatchQueue and its workers.
class Engine {
 public:
  using Callback = std::function<void(Response response, const Error* error)>;

  // Starts options.workers workers on the model's device, each leasing a
  // stream from the device's pool. Throws InvalidArgument for bad options.
  Engine(std::shared_ptr<const Model> model, EngineOptions options = {});
  // A sentence encoder behind the queue: requests are texts (submit_text),
  // results their embeddings (Response::output = dim() floats, shape {dim()},
  // L2-normalised). A batch's rows are padded to its longest (packed end to
  // end instead where the device takes packed sequences, the CPU), so the
  // shapes vary from batch to batch: use_graphs or preferred_batch_sizes throw
  // InvalidArgument here. Set max_tokens_per_batch to bound a batch's tokens.
  Engine(std::shared_ptr<const SentenceEncoder> encoder, EngineOptions options = {});
  // One replica per device, each loaded there (load_replicas): the queue is
  // shared, options.workers workers run per device. Replicas must be on
  // distinct devices and agree on shapes and dtype (encoders: on dim,
  // max_length and vocabulary). Throws InvalidArgument otherwise.
  Engine(std::vector<std::shared_ptr<const Model>> replicas, EngineOptions options = {});
  Engine(std::vector<std::shared_ptr<const SentenceEncoder>> replicas,
         EngineOptions options = {});
  // Engine(nullptr, ...) is unambiguous: it throws InvalidArgument ("model is null").
  Engine(std::nullptr_t, EngineOptions options = {})
      : Engine(std::shared_ptr<const Model>{}, std::move(options)) {}
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;
  // Drains: every accepted request resolves first.
  ~Engine();

  // One request: `input` holds numel(model.input_shape()) values. See the
  // header contract for what throws and what resolves the future.
  std::future<Response> submit(std::vector<float> input, const RequestOptions& options = {});
  // As submit, resolving through `done`, called exactly once (on a worker
  // thread, or on the thread that cancels); rejections throw here instead
  // and never call `done`.
  void submit(std::vector<float> input, const RequestOptions& options, Callback done);

  // Sentence-encoder engines: one text. It is tokenized on the calling
  // thread; invalid UTF-8 throws InvalidArgument here and nothing is
  // accepted. The request's cost is its token count ([CLS] and [SEP]
  // included, after truncation to the encoder's max_length) unless
  // options.cost is set. Otherwise as submit(). submit() on a text engine,
  // and submit_text() on a model engine, throw InvalidArgument.
  std::future<Response> submit_text(std::string text, const RequestOptions& options = {});
  void submit_text(std::string text, const RequestOptions& options, Callback done);

  // Requests of several inputs: one admission (all inputs are queued, or
  // the call throws and none is), one resolution. The inputs may run in
  // different batches; the request fails with the first error any of its
  // inputs meets (the others are then dropped). Response::output holds the
  // rows in input order, Response::shape is {n, output_shape...}.
  // `rows`: n x numel(input_shape) floats, row-major (tensor engines).
  void submit_batch(std::vector<float> rows, int64_t n, const RequestOptions& options,
                    Callback done);
  std::future<Response> submit_batch(std::vector<float> rows, int64_t n,
                                     const RequestOptions& options = {});
  // Texts (text engines), each tokenized on the calling thread. Invalid
  // UTF-8, and with options.truncate false an input over max_length, throw
  // InvalidArgument naming the input's index.
  void submit_texts(std::vector<std::string> texts, const RequestOptions& options,
                    Callback done);
  std::future<Response> submit_texts(std::vector<std::string> texts,
                                     const RequestOptions& options = {});
  // Already-tokenized inputs (text engines): each a list of vocabulary ids.
  // [CLS] and [SEP] are added unless an input already starts with [CLS] and
  // ends with [SEP]; longer inputs are cut (or rejected, options.truncate).
  // An id outside the vocabulary throws InvalidArgument naming it.
  void submit_token_ids(std::vector<std::vector<int32_t>> inputs, const RequestOptions& options,
                        Callback done);
  std::future<Response> submit_token_ids(std::vector<std::vector<int32_t>> inputs,
                                         const RequestOptions& options = {});

  // Text engines: what submit_text would run for `text` (throws
  // InvalidArgument for invalid UTF-8, or on a tensor engine). Thread-safe.
  Tokenized tokenize(std::string_view text) const;
  // Text engines: the vocabulary's token for each id (e.g. "##ing");
  // throws InvalidArgument for an id outside the vocabulary.
  std::vector<std::string> id_to_tokens(const std::vector<int32_t>& ids) const;
  // Text engines: ids back to text as BERT's WordPiece decoder does
  // ("##" pieces joined to the word before, special tokens skipped when
  // `skip_special`).
  std::string decode(const std::vector<int32_t>& ids, bool skip_special = true) const;

  // What the engine serves. Thread-safe; constant for its lifetime.
  const EngineInfo& info() const noexcept;
  // True while the engine accepts requests and can run them: warm-up done
  // (or not asked for), not draining or cancelled, at least one device in
  // rotation. Thread-safe.
  bool ready() const noexcept;

  // Stops accepting; waits up to `timeout` for accepted requests to finish;
  // those still unfinished then are cancelled. Returns true if all finished
  // in time. Idempotent.
  bool drain(std::chrono::milliseconds timeout = std::chrono::milliseconds::max());
  // Stops accepting and fails every unfinished request with Cancelled.
  void cancel();

  EngineMetrics metrics() const;
  // The metrics in Prometheus text exposition format (prefix "fanin_").
  std::string prometheus() const;
  const EngineOptions& options() const noexcept;

 private:
  std::unique_ptr<serving::EngineImpl> impl_;
};

}  // namespace fanin
