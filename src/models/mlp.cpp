#include <cmath>
#include <cstring>

#include "core/check.h"
#include "fanin/device.h"
#include "fanin/model.h"
#include "fanin/stream.h"
#include "models/random.h"
#include "models/safetensors.h"

namespace fanin {
namespace {

using models::SplitMix;

void check_config(const MlpConfig& c, const char* op) {
  FANIN_CHECK(c.dims.size() >= 2, kInvalidArgument, "[", op,
              "] an MLP needs at least 2 dims (input, output), got ", c.dims.size());
  for (int64_t d : c.dims)
    FANIN_CHECK(d > 0, kInvalidArgument, "[", op, "] layer sizes must be > 0, got ",
                to_string(Shape(c.dims)));
  FANIN_CHECK(c.dtype != DType::kI32, kInvalidArgument, "[", op, "] an MLP needs a float dtype");
}

// Converts f32 values to `dtype`'s bytes.
std::vector<uint8_t> encode(const std::vector<float>& v, DType dtype) {
  std::vector<uint8_t> out(v.size() * dtype_size(dtype));
  for (size_t i = 0; i < v.size(); ++i) {
    if (dtype == DType::kF32) {
      std::memcpy(out.data() + 4 * i, &v[i], 4);
    } else {
      uint16_t h = dtype == DType::kF16 ? f32_to_f16(v[i]) : f32_to_bf16(v[i]);
      std::memcpy(out.data() + 2 * i, &h, 2);
    }
  }
  return out;
}

// A device-wide tensor holding `bytes`, uploaded through a pooled stream.
Tensor upload(Device& device, const void* bytes, const Shape& shape, DType dtype, Stream& stream) {
  Tensor t = Tensor::empty_device_wide(shape, dtype, device);
  t.copy_from_host(bytes, t.nbytes(), stream);
  return t;
}

}  // namespace

Mlp::Mlp(MlpConfig config, Device& device, std::vector<Layer> layers)
    : config_(std::move(config)), device_(&device), layers_(std::move(layers)) {}

std::shared_ptr<Mlp> Mlp::random(const MlpConfig& config, uint64_t seed, Device& device) {
  check_config(config, "Mlp::random");
  SplitMix rng{seed};
  // A private stream, not a lease: loading must not wait for (or fail on) a
  // default pool whose slots worker threads hold.
  Stream stream(device);
  std::vector<Layer> layers;
  for (size_t i = 0; i + 1 < config.dims.size(); ++i) {
    const int64_t in = config.dims[i], out = config.dims[i + 1];
    const float bound = 1.0f / std::sqrt(static_cast<float>(in));
    std::vector<float> w(static_cast<size_t>(in * out)), b(static_cast<size_t>(out));
    for (float& x : w) x = rng.uniform() * bound;
    for (float& x : b) x = rng.uniform() * bound;
    auto wb = encode(w, config.dtype), bb = encode(b, config.dtype);
    layers.push_back({upload(device, wb.data(), {out, in}, config.dtype, stream),
                      upload(device, bb.data(), {out}, config.dtype, stream)});
  }
  stream.synchronize();
  return std::make_shared<Mlp>(config, device, std::move(layers));
}

std::shared_ptr<Mlp> Mlp::load(const std::string& path, Device& device, Activation activation) {
  auto file = safetensors::File::open(path);
  MlpConfig config;
  config.activation = activation;
  config.dims.clear();
  Stream stream(device);  // private, as in random()
  std::vector<Layer> layers;
  for (int i = 0;; ++i) {
    const std::string w_name = "layers." + std::to_string(i) + ".weight";
    const std::string b_name = "layers." + std::to_string(i) + ".bias";
    if (!file->contains(w_name)) {
      FANIN_CHECK(!file->contains(b_name), kInvalidArgument, "[Mlp::load] '", path, "' has ",
                  b_name, " but no ", w_name);
      break;
    }
    const auto& w = file->at(w_name);
    const auto& b = file->at(b_name);
    if (i == 0) config.dtype = w.dtype;
    FANIN_CHECK(w.dtype == config.dtype && b.dtype == config.dtype, kInvalidArgument,
                "[Mlp::load] '", path, "': layer ", i, " has dtypes ", to_string(w.dtype), "/",
                to_string(b.dtype), ", layer 0 has ", to_string(config.dtype));
    FANIN_CHECK(w.shape.size() == 2, kInvalidArgument, "[Mlp::load] '", path, "': ", w_name,
                " has shape ", to_string(w.shape), ", expected [out, in]");
    if (i == 0) config.dims.push_back(w.shape[1]);
    FANIN_CHECK(w.shape[1] == config.dims.back(), kInvalidArgument, "[Mlp::load] '", path, "': ",
                w_name, " has shape ", to_string(w.shape), " but the previous layer outputs ",
                config.dims.back());
    FANIN_CHECK(b.shape == Shape{w.shape[0]}, kInvalidArgument, "[Mlp::load] '", path, "': ",
                b_name, " has shape ", to_string(b.shape), ", expected [", w.shape[0], "]");
    config.dims.push_back(w.shape[0]);
    layers.push_back({upload(device, w.data, w.shape, w.dtype, stream),
                      upload(device, b.data, b.shape, b.dtype, stream)});
  }
  FANIN_CHECK(!layers.empty(), kInvalidArgument, "[Mlp::load] '", path,
              "' has no tensor 'layers.0.weight'");
  check_config(config, "Mlp::load");
  stream.synchronize();  // the mapping goes away with `file`
  return std::make_shared<Mlp>(config, device, std::move(layers));
}

void Mlp::save(const std::string& path) const {
  std::vector<safetensors::NamedData> out;  // before the stream: outlives its copies
  Stream stream(*device_);                  // private, as in random()
  for (size_t i = 0; i < layers_.size(); ++i) {
    for (int part = 0; part < 2; ++part) {
      const Tensor& t = part == 0 ? layers_[i].weight : layers_[i].bias;
      safetensors::NamedData d;
      d.name = "layers." + std::to_string(i) + (part == 0 ? ".weight" : ".bias");
      d.dtype = t.dtype();
      d.shape = t.shape();
      d.data.resize(t.nbytes());
      t.copy_to_host(d.data.data(), d.data.size(), stream);
      out.push_back(std::move(d));
    }
  }
  stream.synchronize();
  safetensors::write(path, out);
}

std::string Mlp::name() const {
  std::string s = "mlp";
  for (int64_t d : config_.dims) {
    s += '-';
    s += std::to_string(d);
  }
  return s;
}

size_t Mlp::weight_bytes() const noexcept {
  size_t n = 0;
  for (const Layer& l : layers_) n += l.weight.nbytes() + l.bias.nbytes();
  return n;
}

Tensor Mlp::forward(const Tensor& x, Stream& stream) const {
  FANIN_CHECK(x.defined(), kInvalidArgument, "[Mlp::forward] input is a null tensor");
  FANIN_CHECK(x.ndim() == 2 && x.dim(1) == config_.dims.front(), kInvalidArgument,
              "[Mlp::forward] input has shape ", to_string(x.shape()), ", expected [batch, ",
              config_.dims.front(), "]");
  FANIN_CHECK(x.dtype() == config_.dtype, kInvalidArgument, "[Mlp::forward] input has dtype ",
              to_string(x.dtype()), ", model has ", to_string(config_.dtype));
  FANIN_CHECK(&stream.device() == device_, kInvalidArgument, "[Mlp::forward] stream is on ",
              stream.device().name(), ", model on ", device_->name());
  Encoder enc = stream.command_buffer().begin_encoding();
  Tensor h = x;
  for (size_t i = 0; i < layers_.size(); ++i) {
    const bool last = i + 1 == layers_.size();
    h = ops::linear(h, layers_[i].weight, layers_[i].bias,
                    last ? Activation::kNone : config_.activation, stream);
  }
  return h;
}

}  // namespace fanin
