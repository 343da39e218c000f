#include "fanin/bert.h"

#include <cmath>
#include <cstring>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "backends/backend.h"
#include "core/check.h"
#include "fanin/device.h"
#include "fanin/ops.h"
#include "fanin/stream.h"
#include "models/random.h"
#include "models/safetensors.h"

namespace fanin {
namespace {

using json = nlohmann::json;

int64_t json_int(const json& j, const char* key, const std::string& path, int64_t fallback,
                 bool required) {
  if (!j.contains(key)) {
    FANIN_CHECK(!required, kInvalidArgument, "[BertConfig] '", path, "' has no '", key, "'");
    return fallback;
  }
  FANIN_CHECK(j[key].is_number_integer() && j[key].get<int64_t>() > 0, kInvalidArgument,
              "[BertConfig] '", path, "': '", key, "' must be a positive integer, got ",
              j[key].dump());
  return j[key].get<int64_t>();
}

// f32 values of a file tensor (any float dtype).
std::vector<float> to_f32(const safetensors::TensorView& v) {
  const size_t n = v.bytes / dtype_size(v.dtype);
  std::vector<float> out(n);
  for (size_t i = 0; i < n; ++i) {
    if (v.dtype == DType::kF32) {
      std::memcpy(&out[i], static_cast<const char*>(v.data) + 4 * i, 4);
    } else {
      uint16_t h;
      std::memcpy(&h, static_cast<const char*>(v.data) + 2 * i, 2);
      out[i] = v.dtype == DType::kF16 ? f16_to_f32(h) : bf16_to_f32(h);
    }
  }
  return out;
}

// Uploads f32 values as a device-wide tensor of `dtype`.
Tensor upload(const std::vector<float>& v, const Shape& shape, DType dtype, Device& device,
              Stream& stream) {
  Tensor t = Tensor::empty_device_wide(shape, dtype, device);
  if (dtype == DType::kF32) {
    t.copy_from_host(v.data(), v.size() * 4, stream);
  } else {
    std::vector<uint16_t> h(v.size());
    for (size_t i = 0; i < v.size(); ++i)
      h[i] = dtype == DType::kF16 ? f32_to_f16(v[i]) : f32_to_bf16(v[i]);
    t.copy_from_host(h.data(), h.size() * 2, stream);
  }
  return t;
}

void check_dtype(DType dtype, const char* op) {
  FANIN_CHECK(dtype != DType::kI32, kInvalidArgument, "[", op, "] dtype must be f32, f16 or bf16");
}

// Builds the weights from a source of named f32 arrays with expected shapes.
using Source = std::function<std::vector<float>(const std::string& name, const Shape& shape)>;

Bert::Weights build(const BertConfig& c, DType dtype, Device& device, Stream& s,
                    const Source& get) {
  const int64_t H = c.hidden, I = c.intermediate;
  Bert::Weights w;
  auto up = [&](const std::string& name, const Shape& shape) {
    return upload(get(name, shape), shape, dtype, device, s);
  };
  // The linear layers' weights in the dtype the backend computes them in
  // (bf16 on a CPU that runs the linear layers in bf16: Note [CPU bf16 matmul]).
  const DType wdt = device.backend().linear_weight_dtype(dtype);
  auto up_w = [&](const std::string& name, const Shape& shape) {
    return upload(get(name, shape), shape, wdt, device, s);
  };
  w.word = up("embeddings.word_embeddings.weight", {c.vocab_size, H});
  w.pos = up("embeddings.position_embeddings.weight", {c.max_position, H});
  w.type = up("embeddings.token_type_embeddings.weight", {c.type_vocab, H});
  w.emb_ln_g = up("embeddings.LayerNorm.weight", {H});
  w.emb_ln_b = up("embeddings.LayerNorm.bias", {H});
  for (int64_t l = 0; l < c.layers; ++l) {
    const std::string p = "encoder.layer." + std::to_string(l) + ".";
    Bert::Layer L;
    std::vector<float> qkv_w, qkv_b;
    for (const char* part : {"query", "key", "value"}) {
      auto wv = get(p + "attention.self." + part + ".weight", {H, H});
      auto bv = get(p + "attention.self." + part + ".bias", {H});
      qkv_w.insert(qkv_w.end(), wv.begin(), wv.end());
      qkv_b.insert(qkv_b.end(), bv.begin(), bv.end());
    }
    L.qkv_w = upload(qkv_w, {3 * H, H}, wdt, device, s);
    L.qkv_b = upload(qkv_b, {3 * H}, dtype, device, s);
    L.out_w = up_w(p + "attention.output.dense.weight", {H, H});
    L.out_b = up(p + "attention.output.dense.bias", {H});
    L.ln1_g = up(p + "attention.output.LayerNorm.weight", {H});
    L.ln1_b = up(p + "attention.output.LayerNorm.bias", {H});
    L.ffn_in_w = up_w(p + "intermediate.dense.weight", {I, H});
    L.ffn_in_b = up(p + "intermediate.dense.bias", {I});
    L.ffn_out_w = up_w(p + "output.dense.weight", {H, I});
    L.ffn_out_b = up(p + "output.dense.bias", {H});
    L.ln2_g = up(p + "output.LayerNorm.weight", {H});
    L.ln2_b = up(p + "output.LayerNorm.bias", {H});
    w.layers.push_back(std::move(L));
  }
  return w;
}

}  // namespace

BertConfig BertConfig::from_json_file(const std::string& path) {
  std::ifstream in(path);
  FANIN_CHECK(in.good(), kInvalidArgument, "[BertConfig] cannot open '", path, "'");
  json j = json::parse(in, nullptr, /*allow_exceptions=*/false);
  FANIN_CHECK(!j.is_discarded() && j.is_object(), kInvalidArgument, "[BertConfig] '", path,
              "' is not a JSON object");
  BertConfig c;
  c.vocab_size = json_int(j, "vocab_size", path, c.vocab_size, true);
  c.hidden = json_int(j, "hidden_size", path, c.hidden, true);
  c.layers = json_int(j, "num_hidden_layers", path, c.layers, true);
  c.heads = json_int(j, "num_attention_heads", path, c.heads, true);
  c.intermediate = json_int(j, "intermediate_size", path, c.intermediate, true);
  c.max_position = json_int(j, "max_position_embeddings", path, c.max_position, false);
  c.type_vocab = json_int(j, "type_vocab_size", path, c.type_vocab, false);
  if (j.contains("layer_norm_eps")) {
    FANIN_CHECK(j["layer_norm_eps"].is_number() && j["layer_norm_eps"].get<double>() > 0,
                kInvalidArgument, "[BertConfig] '", path, "': layer_norm_eps must be > 0");
    c.layer_norm_eps = j["layer_norm_eps"].get<float>();
  }
  if (j.contains("hidden_act")) {
    FANIN_CHECK(j["hidden_act"] == "gelu", kInvalidArgument, "[BertConfig] '", path,
                "': hidden_act ", j["hidden_act"].dump(), " is not supported (only \"gelu\")");
  }
  c.validate("BertConfig");
  return c;
}

void BertConfig::validate(const char* op) const {
  FANIN_CHECK(vocab_size > 0 && hidden > 0 && layers > 0 && heads > 0 && intermediate > 0 &&
                  max_position > 0 && type_vocab > 0,
              kInvalidArgument, "[", op, "] every size must be > 0");
  FANIN_CHECK(hidden % heads == 0, kInvalidArgument, "[", op, "] hidden ", hidden,
              " is not divisible by heads ", heads);
}

Bert::Bert(BertConfig config, Device& device, DType dtype, Weights weights)
    : config_(config), device_(&device), dtype_(dtype), w_(std::move(weights)) {}

std::shared_ptr<Bert> Bert::load(const std::string& folder, Device& device, DType dtype) {
  check_dtype(dtype, "Bert::load");
  BertConfig c = BertConfig::from_json_file(folder + "/config.json");
  auto file = safetensors::File::open(folder + "/model.safetensors");
  const std::string prefix = file->contains("bert.embeddings.word_embeddings.weight") ? "bert." : "";
  StreamLease lease = device.stream_pool().acquire();
  Source get = [&](const std::string& name, const Shape& shape) {
    const auto& v = file->at(prefix + name);
    FANIN_CHECK(v.shape == shape, kInvalidArgument, "[Bert::load] '", file->path(), "': tensor '",
                prefix + name, "' has shape ", to_string(v.shape), ", config.json implies ",
                to_string(shape));
    FANIN_CHECK(v.dtype != DType::kI32, kInvalidArgument, "[Bert::load] '", file->path(),
                "': tensor '", prefix + name, "' is i32, expected a float dtype");
    return to_f32(v);
  };
  Weights w = build(c, dtype, device, lease.stream(), get);
  lease->synchronize();
  return std::make_shared<Bert>(c, device, dtype, std::move(w));
}

std::shared_ptr<Bert> Bert::random(const BertConfig& config, uint64_t seed, Device& device,
                                   DType dtype) {
  check_dtype(dtype, "Bert::random");
  config.validate("Bert::random");
  models::SplitMix rng{seed};

  StreamLease lease = device.stream_pool().acquire();
  Source get = [&](const std::string& name, const Shape& shape) {
    std::vector<float> v(static_cast<size_t>(checked_numel(shape, "Bert::random")));
    const bool ln_gain = name.find("LayerNorm.weight") != std::string::npos;
    for (float& x : v) {
      const float u = rng.uniform();
      x = ln_gain ? 1.0f + 0.1f * u : 0.05f * u;
    }
    return v;
  };
  Weights w = build(config, dtype, device, lease.stream(), get);
  lease->synchronize();
  return std::make_shared<Bert>(config, device, dtype, std::move(w));
}

size_t Bert::weight_bytes() const noexcept {
  size_t n = w_.word.nbytes() + w_.pos.nbytes() + w_.type.nbytes() + w_.emb_ln_g.nbytes() +
             w_.emb_ln_b.nbytes();
  for (const Layer& L : w_.layers) {
    for (const Tensor* t : {&L.qkv_w, &L.qkv_b, &L.out_w, &L.out_b, &L.ln1_g, &L.ln1_b,
                            &L.ffn_in_w, &L.ffn_in_b, &L.ffn_out_w, &L.ffn_out_b, &L.ln2_g,
                            &L.ln2_b})
      n += t->nbytes();
  }
  return n;
}

Tensor Bert::forward(const Tensor& ids, const Tensor& lengths, Stream& stream) const {
  FANIN_CHECK(ids.defined() && lengths.defined(), kInvalidArgument,
              "[Bert::forward] ids and lengths must be defined");
  FANIN_CHECK(ids.ndim() == 2, kInvalidArgument, "[Bert::forward] ids must be [batch, seq], got ",
              to_string(ids.shape()));
  FANIN_CHECK(ids.dim(1) <= config_.max_position, kInvalidArgument, "[Bert::forward] sequence of ",
              ids.dim(1), " tokens exceeds max_position ", config_.max_position);
  const float eps = config_.layer_norm_eps;
  Encoder enc = stream.command_buffer().begin_encoding();
  Tensor h = ops::embedding(ids, Tensor(), w_.word, w_.pos, w_.type, stream);
  h = ops::layernorm(h, w_.emb_ln_g, w_.emb_ln_b, eps, stream);
  const int heads = static_cast<int>(config_.heads);
  for (const Layer& L : w_.layers) {
    Tensor qkv = ops::linear(h, L.qkv_w, L.qkv_b, Activation::kNone, stream);
    Tensor a = ops::attention(qkv, lengths, heads, stream);
    Tensor o = ops::linear(a, L.out_w, L.out_b, Activation::kNone, stream);
    h = ops::layernorm(ops::add(o, h, stream), L.ln1_g, L.ln1_b, eps, stream);
    Tensor f = ops::linear(h, L.ffn_in_w, L.ffn_in_b, Activation::kGelu, stream);
    Tensor f2 = ops::linear(f, L.ffn_out_w, L.ffn_out_b, Activation::kNone, stream);
    h = ops::layernorm(ops::add(f2, h, stream), L.ln2_g, L.ln2_b, eps, stream);
  }
  return ops::mean_pool(h, lengths, /*l2_normalize=*/true, stream);
}

Tensor Bert::forward_packed(const Tensor& ids, const Tensor& offsets, int64_t max_len,
                            Stream& stream) const {
  FANIN_CHECK(ids.defined() && offsets.defined(), kInvalidArgument,
              "[Bert::forward_packed] ids and offsets must be defined");
  FANIN_CHECK(ids.ndim() == 1, kInvalidArgument, "[Bert::forward_packed] ids must be [total], got ",
              to_string(ids.shape()));
  FANIN_CHECK(max_len >= 1 && max_len <= config_.max_position, kInvalidArgument,
              "[Bert::forward_packed] sequence of ", max_len, " tokens outside 1..max_position ",
              config_.max_position);
  const float eps = config_.layer_norm_eps;
  Encoder enc = stream.command_buffer().begin_encoding();
  Tensor h = ops::embedding_packed(ids, offsets, max_len, w_.word, w_.pos, w_.type, stream);
  h = ops::layernorm(h, w_.emb_ln_g, w_.emb_ln_b, eps, stream);
  const int heads = static_cast<int>(config_.heads);
  for (const Layer& L : w_.layers) {
    Tensor qkv = ops::linear(h, L.qkv_w, L.qkv_b, Activation::kNone, stream);
    Tensor a = ops::attention_packed(qkv, offsets, max_len, heads, stream);
    Tensor o = ops::linear(a, L.out_w, L.out_b, Activation::kNone, stream);
    h = ops::layernorm(ops::add(o, h, stream), L.ln1_g, L.ln1_b, eps, stream);
    Tensor f = ops::linear(h, L.ffn_in_w, L.ffn_in_b, Activation::kGelu, stream);
    Tensor f2 = ops::linear(f, L.ffn_out_w, L.ffn_out_b, Activation::kNone, stream);
    h = ops::layernorm(ops::add(f2, h, stream), L.ln2_g, L.ln2_b, eps, stream);
  }
  return ops::mean_pool_packed(h, offsets, max_len, /*l2_normalize=*/true, stream);
}

}  // namespace fanin
