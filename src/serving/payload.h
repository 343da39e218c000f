// What an Engine's requests carry, behind one interface.
//
// Note [Engine payloads]
// An Engine serves either Models (inputs are numel(input_shape) floats) or
// SentenceEncoders (inputs are token ids, tokenized on the submitting
// thread; an input's cost is its tokens, so max_tokens_per_batch bounds a
// batch). Everything but the payload is shared: admission, the queue, the
// worker loop, the launch-time checks, metrics, result splitting and
// failover. A Payload holds the replicas (one per device) and does what
// depends on the kind: it turns a client's inputs into EngineRequests
// (admit_*), fills and launches a batch on a replica through the worker's
// BatchLauncher (launch.h), makes warm-up batches, and tokenizes. A call
// of the wrong kind (texts to a tensor engine) throws InvalidArgument from
// the base class. Text batches are padded to their longest row with the
// tokenizer's pad id; their shapes vary, so use_graphs and
// preferred_batch_sizes are rejected for them (check_options).
//
// Contract: a Payload is immutable after construction; every method is
// const and may run on many threads at once (launch with distinct
// launchers and streams).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "fanin/engine.h"
#include "fanin/model.h"
#include "fanin/sentence_encoder.h"
#include "serving/launch.h"
#include "serving/request.h"

namespace fanin::serving {

// The requests of one client request, not queued yet.
struct Admitted {
  std::vector<std::unique_ptr<EngineRequest>> inputs;  // one per input, index set
  std::vector<float> rows;                             // tensor inputs' storage
  int64_t tokens = 0;                                  // text: tokens of all inputs
  int truncated = 0;                                   // text: inputs cut to max_length
};

class Payload {
 public:
  virtual ~Payload() = default;

  const EngineInfo& info() const noexcept { return info_; }
  // Replicas, one per device, in the engine's order.
  virtual size_t replicas() const noexcept = 0;
  virtual Device& device(size_t replica) const noexcept = 0;
  // DType of out_bytes() after a launch.
  virtual DType out_dtype() const noexcept { return DType::kF32; }
  // Rejects engine options this payload cannot serve (InvalidArgument).
  virtual void check_options(const EngineOptions&) const {}

  // Admission; each throws InvalidArgument naming `op` and the input for a
  // bad input (nothing is admitted then). Base versions: wrong kind.
  virtual Admitted admit_rows(std::vector<float> rows, int64_t n, const char* op) const;
  virtual Admitted admit_texts(const std::vector<std::string>& texts, bool truncate,
                               const char* op) const;
  virtual Admitted admit_token_ids(std::vector<std::vector<int32_t>> inputs, bool truncate,
                                   const char* op) const;

  // Runs the batch `run` (padded to `padded` rows, tensor payloads) on
  // replica `r` through `launcher`, on `s`; true when it captured a graph.
  virtual bool launch(size_t r, BatchLauncher& launcher, const std::vector<EngineRequest*>& run,
                      int padded, bool use_graphs, Stream& s) const = 0;
  // A warm-up batch of `n` zero rows / empty texts; *units: its routing
  // units (Request::cost summed). True when it captured a graph.
  virtual bool warm_up(size_t r, BatchLauncher& launcher, int n, bool use_graphs, Stream& s,
                       double* units) const = 0;
  // EngineOptions::check_inputs: false when the input holds NaN or Inf.
  virtual bool finite(const EngineRequest&) const { return true; }

  // Text payloads (the base throws InvalidArgument).
  virtual Tokenized tokenize(std::string_view text) const;
  virtual std::vector<std::string> id_to_tokens(const std::vector<int32_t>& ids) const;
  virtual std::string decode(const std::vector<int32_t>& ids, bool skip_special) const;

 protected:
  explicit Payload(EngineInfo info) : info_(std::move(info)) {}
  [[noreturn]] void wrong_kind(const char* op) const;

  EngineInfo info_;
};

// Checks the replicas (distinct devices, equal shapes) and wraps them.
std::unique_ptr<Payload> make_payload(std::vector<std::shared_ptr<const Model>> models);
std::unique_ptr<Payload> make_payload(std::vector<std::shared_ptr<const SentenceEncoder>> encoders);

}  // namespace fanin::serving
