#include "serving/launch.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/check.h"
#include "text/wordpiece.h"

namespace fanin::serving {

void write_row(const float* src, int64_t n, DType dtype, uint8_t* dst) {
  switch (dtype) {
    case DType::kF32: std::memcpy(dst, src, static_cast<size_t>(n) * 4); break;
    case DType::kF16:
    case DType::kBF16: {
      auto* d = reinterpret_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < n; ++i)
        d[i] = dtype == DType::kF16 ? f32_to_f16(src[i]) : f32_to_bf16(src[i]);
      break;
    }
    case DType::kI32: {
      auto* d = reinterpret_cast<int32_t*>(dst);
      for (int64_t i = 0; i < n; ++i) d[i] = static_cast<int32_t>(std::lrint(src[i]));
      break;
    }
  }
}

void read_row(const uint8_t* src, int64_t n, DType dtype, float* dst) {
  switch (dtype) {
    case DType::kF32: std::memcpy(dst, src, static_cast<size_t>(n) * 4); break;
    case DType::kF16:
    case DType::kBF16: {
      auto* s = reinterpret_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i)
        dst[i] = dtype == DType::kF16 ? f16_to_f32(s[i]) : bf16_to_f32(s[i]);
      break;
    }
    case DType::kI32: {
      auto* s = reinterpret_cast<const int32_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<float>(s[i]);
      break;
    }
  }
}

bool BatchLauncher::run_model(const Model& model,
                              const std::vector<const float*>& rows, int padded,
                              bool use_graphs, Stream& s) {
  const int n = static_cast<int>(rows.size());
  const int p = padded;
  const DType dtype = model.dtype();
  const size_t esize = dtype_size(dtype);
  const int64_t in_numel = checked_numel(model.input_shape(), "Engine");
  const int64_t out_numel = checked_numel(model.output_shape(), "Engine");
  in_bytes_.assign(static_cast<size_t>(p * in_numel) * esize, 0);
  out_bytes_.resize(static_cast<size_t>(p * out_numel) * esize);
  for (int i = 0; i < n; ++i)
    write_row(rows[i], in_numel, dtype,
              in_bytes_.data() + static_cast<size_t>(i * in_numel) * esize);
  Shape in_shape{p};
  for (int64_t d : model.input_shape()) in_shape.push_back(d);
  Encoder enc = s.command_buffer().begin_encoding();
  if (!use_graphs) {
    Tensor x = Tensor::from_host(in_bytes_.data(), in_bytes_.size(), in_shape, dtype, s);
    Tensor y = model.forward(x, s);
    FANIN_CHECK(y.nbytes() == out_bytes_.size(), kInvalidArgument, "[Engine] model ",
                model.name(), " returned ", y.nbytes(), " bytes for a batch of ", p,
                ", expected ", out_bytes_.size());
    y.copy_to_host(out_bytes_.data(), out_bytes_.size(), s);
    return false;
  }
  bool captured = false;
  auto it = graphs_.find(p);
  if (it == graphs_.end()) {
    GraphEntry g;
    g.x = Tensor::empty(in_shape, dtype, s);
    Tensor y;
    g.graph = Graph::capture(s, [&] { y = model.forward(g.x, s); });
    g.y = y;
    it = graphs_.emplace(p, std::move(g)).first;
    captured = true;
  }
  GraphEntry& g = it->second;
  g.x.copy_from_host(in_bytes_.data(), in_bytes_.size(), s);
  g.graph->launch(s);
  g.y.copy_to_host(out_bytes_.data(), out_bytes_.size(), s);
  return captured;
}

void BatchLauncher::run_text(const SentenceEncoder& encoder,
                             const std::vector<const std::vector<int32_t>*>& rows, Stream& s) {
  const int64_t n = static_cast<int64_t>(rows.size());
  out_bytes_.resize(static_cast<size_t>(n * encoder.dim()) * 4);
  Encoder enc = s.command_buffer().begin_encoding();
  // Packed where the device takes it, so short sentences cost no padding.
  Tensor y = encoder.encode_batch(rows, s);
  FANIN_CHECK(y.nbytes() == out_bytes_.size() && y.dtype() == DType::kF32, kInvalidArgument,
              "[Engine] the sentence encoder returned ", y.nbytes(), " bytes (",
              to_string(y.dtype()), ") for a batch of ", n, ", expected ", out_bytes_.size(),
              " (f32)");
  y.copy_to_host(out_bytes_.data(), out_bytes_.size(), s);
}

}  // namespace fanin::serving
