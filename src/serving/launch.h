// The device side of one Engine batch (Note [Engine payloads] in
// payload.h): fill the batch input from the requests' rows, run the
// forward (or replay the graph captured for that padded size), copy the
// output rows back to the host. One BatchLauncher per worker, used only by
// its thread: it owns that worker's host buffers and graphs.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <vector>

#include "fanin/graph.h"
#include "fanin/model.h"
#include "fanin/sentence_encoder.h"
#include "fanin/stream.h"

namespace fanin::serving {

// Row conversions between the requests' f32 and a model's dtype.
void write_row(const float* src, int64_t n, DType dtype, uint8_t* dst);
void read_row(const uint8_t* src, int64_t n, DType dtype, float* dst);

class BatchLauncher {
 public:
  // A Model's batch: `rows` (each points to numel(input_shape) floats), padded with
  // zero rows to `padded` (>= rows.size()); with `use_graphs` the forward
  // of each padded size is captured once on `stream` and replayed. Output:
  // padded x numel(output_shape) values of model.dtype() in out_bytes().
  // True when this call captured a graph (its time is no routing sample).
  bool run_model(const Model& model, const std::vector<const float*>& rows,
                 int padded, bool use_graphs, Stream& stream);
  // A text batch: token rows ([CLS] ... [SEP]) through
  // SentenceEncoder::encode_batch (packed, or padded to the longest with the
  // tokenizer's pad id). Output: rows x dim() f32 in out_bytes().
  void run_text(const SentenceEncoder& encoder,
                const std::vector<const std::vector<int32_t>*>& rows, Stream& stream);

  // The last batch's output rows, valid once the stream has reached them.
  const std::vector<uint8_t>& out_bytes() const noexcept { return out_bytes_; }

 private:
  struct GraphEntry {
    Tensor x, y;
    std::unique_ptr<Graph> graph;
  };

  std::vector<uint8_t> in_bytes_, out_bytes_;
  std::map<int, GraphEntry> graphs_;    // padded batch size -> captured forward
};

}  // namespace fanin::serving
