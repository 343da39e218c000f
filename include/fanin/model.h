// fanin/model.h: models the engine can serve.
//
// Contract: a Model's weights are loaded once per device and are read-only
// afterwards; forward() may be called from many threads at once, each on its
// own stream. Construction and destruction are not concurrent with forward.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "fanin/ops.h"
#include "fanin/tensor.h"

namespace fanin {

class Device;
class Stream;

// A batched function from [B, input...] to [B, output...].
class Model {
 public:
  virtual ~Model() = default;
  // Short name for logs and results, e.g. "mlp-512-1024-1024-512".
  virtual std::string name() const = 0;
  virtual Device& device() const = 0;
  // Shape of one request's input / output (without the batch dimension).
  virtual Shape input_shape() const = 0;
  virtual Shape output_shape() const = 0;
  virtual DType dtype() const = 0;
  // Encodes the forward pass of batch `x` on `stream`; returns its output.
  // Thread-safe across streams. Throws InvalidArgument for a bad input.
  virtual Tensor forward(const Tensor& x, Stream& stream) const = 0;
};

// Shape of a multi-layer perceptron.
struct MlpConfig {
  std::vector<int64_t> dims{512, 1024, 1024, 512};  // input, hidden..., output
  Activation activation = Activation::kRelu;        // after every layer but the last
  DType dtype = DType::kF32;
};

// Linear layers with an activation between them: the seed's benchmark model.
class Mlp final : public Model {
 public:
  // Deterministic weights from `seed` (uniform in +-1/sqrt(fan_in), as
  // PyTorch's nn.Linear default). Throws InvalidArgument for fewer than two
  // dims or a non-positive size.
  static std::shared_ptr<Mlp> random(const MlpConfig& config, uint64_t seed, Device& device);
  // Loads "layers.N.weight" [out, in] and "layers.N.bias" [out] from a
  // .safetensors file, in the file's dtype (all tensors must share it).
  static std::shared_ptr<Mlp> load(const std::string& path, Device& device,
                                   Activation activation = Activation::kRelu);
  // Writes the weights as .safetensors (f32 or the model's dtype).
  void save(const std::string& path) const;

  std::string name() const override;
  Device& device() const override { return *device_; }
  Shape input_shape() const override { return {config_.dims.front()}; }
  Shape output_shape() const override { return {config_.dims.back()}; }
  DType dtype() const override { return config_.dtype; }
  Tensor forward(const Tensor& x, Stream& stream) const override;

  const MlpConfig& config() const noexcept { return config_; }
  // Bytes of weight memory on the device (stored once, shared by streams).
  size_t weight_bytes() const noexcept;

  struct Layer {
    Tensor weight;  // [out, in]
    Tensor bias;    // [out]
  };
  Mlp(MlpConfig config, Device& device, std::vector<Layer> layers);

 private:
  MlpConfig config_;
  Device* device_;
  std::vector<Layer> layers_;
};

}  // namespace fanin
