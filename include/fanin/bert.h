// fanin/bert.h: the BERT encoder behind sentence embeddings
// (all-MiniLM-L6-v2 and models of the same architecture).
//
// Contract: weights are loaded once per device (device-wide tensors) and are
// read-only; forward() may run on many streams from many threads at once.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "fanin/tensor.h"

namespace fanin {

class Device;
class Stream;

// The architecture, as in the model folder's config.json.
struct BertConfig {
  int64_t vocab_size = 30522;
  int64_t hidden = 384;
  int64_t layers = 6;
  int64_t heads = 12;
  int64_t intermediate = 1536;
  int64_t max_position = 512;
  int64_t type_vocab = 2;
  float layer_norm_eps = 1e-12f;

  // Reads a HuggingFace config.json; throws InvalidArgument naming the file
  // and the field for a missing or invalid value.
  static BertConfig from_json_file(const std::string& path);
  // Throws InvalidArgument unless the sizes are consistent (hidden % heads).
  void validate(const char* op) const;
};

// A BERT encoder with mean pooling and L2 normalisation.
class Bert {
 public:
  // Loads `folder`/config.json and `folder`/model.safetensors, converting
  // weights to `dtype` (f32 on the CPU; f16 or bf16 on GPUs). Throws
  // InvalidArgument naming the file and tensor for a missing file, a
  // missing tensor or a wrong shape.
  static std::shared_ptr<Bert> load(const std::string& folder, Device& device,
                                    DType dtype = DType::kF32);
  // Random weights of the given architecture (for benchmarks and tests).
  static std::shared_ptr<Bert> random(const BertConfig& config, uint64_t seed, Device& device,
                                      DType dtype = DType::kF32);

  // Embeddings [B, hidden] (f32, L2-normalised) of padded token ids [B, S]
  // (i32, S <= max_position) whose rows have lengths[b] real tokens.
  Tensor forward(const Tensor& ids, const Tensor& lengths, Stream& stream) const;
  // The same embeddings [B, hidden] of packed token ids [T] (sequence b at
  // [offsets[b], offsets[b + 1]), i32 [B + 1], each at most max_len tokens):
  // no work goes to padding. Only where ops::packed_sequences(device()).
  Tensor forward_packed(const Tensor& ids, const Tensor& offsets, int64_t max_len,
                        Stream& stream) const;

  const BertConfig& config() const noexcept { return config_; }
  DType dtype() const noexcept { return dtype_; }
  Device& device() const noexcept { return *device_; }
  size_t weight_bytes() const noexcept;

  struct Layer {
    Tensor qkv_w, qkv_b;    // [3H, H], [3H]: query, key, value stacked
    Tensor out_w, out_b;    // [H, H], [H]
    Tensor ln1_g, ln1_b;    // [H]
    Tensor ffn_in_w, ffn_in_b;    // [I, H], [I]
    Tensor ffn_out_w, ffn_out_b;  // [H, I], [H]
    Tensor ln2_g, ln2_b;    // [H]
  };
  struct Weights {
    Tensor word, pos, type, emb_ln_g, emb_ln_b;
    std::vector<Layer> layers;
  };
  Bert(BertConfig config, Device& device, DType dtype, Weights weights);

 private:
  BertConfig config_;
  Device* device_;
  DType dtype_;
  Weights w_;
};

}  // namespace fanin
