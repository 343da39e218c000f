#include "fanin/tensor.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include "backends/backend.h"
#include "core/check.h"
#include "fanin/allocator.h"
#include "fanin/device.h"
#include "fanin/stream.h"

namespace fanin {

const char* to_string(DType dtype) noexcept {
  switch (dtype) {
    case DType::kF32: return "f32";
    case DType::kF16: return "f16";
    case DType::kBF16: return "bf16";
    case DType::kI32: return "i32";
  }
  return "?";
}

size_t dtype_size(DType dtype) noexcept {
  return dtype == DType::kF16 || dtype == DType::kBF16 ? 2 : 4;
}

DType parse_dtype(const std::string& name) {
  if (name == "f32" || name == "float32" || name == "F32") return DType::kF32;
  if (name == "f16" || name == "float16" || name == "F16") return DType::kF16;
  if (name == "bf16" || name == "bfloat16" || name == "BF16") return DType::kBF16;
  if (name == "i32" || name == "int32" || name == "I32") return DType::kI32;
  FANIN_THROW(kInvalidArgument, "[parse_dtype] unknown dtype '", name,
              "': expected f32, f16, bf16 or i32");
}

std::string to_string(const Shape& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

int64_t checked_numel(const Shape& shape, const char* op) {
  int64_t n = 1;
  for (int64_t d : shape) {
    FANIN_CHECK(d >= 0, kInvalidArgument, "[", op, "] negative size in shape ", to_string(shape));
    FANIN_CHECK(d == 0 || n <= std::numeric_limits<int64_t>::max() / d / 4, kInvalidArgument,
                "[", op, "] shape ", to_string(shape), " has too many elements");
    n *= d;
  }
  return n;
}

// ---- f16 / bf16 ----

uint16_t f32_to_f16(float value) noexcept {
  uint32_t x;
  std::memcpy(&x, &value, 4);
  const uint32_t sign = (x >> 16) & 0x8000u;
  const uint32_t abs = x & 0x7fffffffu;
  if (abs >= 0x7f800000u) {  // inf or nan
    return static_cast<uint16_t>(sign | 0x7c00u | (abs > 0x7f800000u ? 0x200u : 0u));
  }
  if (abs >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // overflow -> inf
  if (abs < 0x38800000u) {  // subnormal half or zero
    if (abs < 0x33000000u) return static_cast<uint16_t>(sign);
    const uint32_t mant = (abs & 0x007fffffu) | 0x00800000u;
    const int shift = 113 - static_cast<int>(abs >> 23) + 13;
    uint32_t h = mant >> shift;
    const uint32_t rem = mant & ((1u << shift) - 1);
    const uint32_t half = 1u << (shift - 1);
    if (rem > half || (rem == half && (h & 1u))) ++h;
    return static_cast<uint16_t>(sign | h);
  }
  uint32_t h = ((abs - 0x38000000u) >> 13);
  const uint32_t rem = abs & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ++h;
  return static_cast<uint16_t>(sign | h);
}

float f16_to_f32(uint16_t h) noexcept {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  uint32_t x;
  if (exp == 0x1fu) {
    x = sign | 0x7f800000u | (mant << 13);
  } else if (exp != 0) {
    x = sign | ((exp + 112) << 23) | (mant << 13);
  } else if (mant == 0) {
    x = sign;
  } else {  // subnormal
    int e = -1;
    do {
      ++e;
      mant <<= 1;
    } while ((mant & 0x400u) == 0);
    x = sign | ((112 - e) << 23) | ((mant & 0x3ffu) << 13);
  }
  float f;
  std::memcpy(&f, &x, 4);
  return f;
}

uint16_t f32_to_bf16(float value) noexcept {
  uint32_t x;
  std::memcpy(&x, &value, 4);
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((x >> 16) | 0x40u);
  x += 0x7fffu + ((x >> 16) & 1u);
  return static_cast<uint16_t>(x >> 16);
}

float bf16_to_f32(uint16_t value) noexcept {
  uint32_t x = static_cast<uint32_t>(value) << 16;
  float f;
  std::memcpy(&f, &x, 4);
  return f;
}

// ---- Storage ----

Storage::Storage(Device& device, Block* block, uint32_t stream_id)
    : device_(&device), block_(block), stream_id_(stream_id) {}

Storage::~Storage() {
  device_->allocator().free(block_, also_used_on_.data(), also_used_on_.size());
}

void* Storage::data() const noexcept { return block_->ptr; }
size_t Storage::bytes() const noexcept { return block_->size; }

void Storage::record_use(uint32_t id) {
  if (id == stream_id_ || stream_id_ == 0) return;  // device-wide storage waits for all
  std::lock_guard<std::mutex> lock(uses_mu_);
  if (std::find(also_used_on_.begin(), also_used_on_.end(), id) == also_used_on_.end())
    also_used_on_.push_back(id);
}

// ---- Tensor ----

namespace {
std::vector<int64_t> contiguous_strides(const Shape& shape) {
  std::vector<int64_t> strides(shape.size());
  int64_t s = 1;
  for (size_t i = shape.size(); i-- > 0;) {
    strides[i] = s;
    s *= shape[i];
  }
  return strides;
}
}  // namespace

Tensor Tensor::empty(const Shape& shape, DType dtype, Stream& stream) {
  int64_t n = checked_numel(shape, "Tensor::empty");
  Device& device = stream.device();
  Block* b = device.allocator().allocate(static_cast<size_t>(n) * dtype_size(dtype), stream);
  Tensor t;
  t.storage_ = std::make_shared<Storage>(device, b, stream.id());
  t.shape_ = shape;
  t.strides_ = contiguous_strides(shape);
  t.dtype_ = dtype;
  return t;
}

Tensor Tensor::empty_device_wide(const Shape& shape, DType dtype, Device& device) {
  int64_t n = checked_numel(shape, "Tensor::empty_device_wide");
  Block* b = device.allocator().allocate_device_wide(static_cast<size_t>(n) * dtype_size(dtype));
  Tensor t;
  t.storage_ = std::make_shared<Storage>(device, b, 0);
  t.shape_ = shape;
  t.strides_ = contiguous_strides(shape);
  t.dtype_ = dtype;
  return t;
}

Tensor Tensor::from_host(const void* data, size_t bytes, const Shape& shape, DType dtype,
                         Stream& stream) {
  int64_t n = checked_numel(shape, "Tensor::from_host");
  const size_t want = static_cast<size_t>(n) * dtype_size(dtype);
  FANIN_CHECK(bytes == want, kInvalidArgument, "[Tensor::from_host] got ", bytes,
              " bytes, shape ", to_string(shape), " of ", to_string(dtype), " needs ", want);
  FANIN_CHECK(data != nullptr || bytes == 0, kInvalidArgument,
              "[Tensor::from_host] data is null for ", bytes, " bytes");
  Tensor t = empty(shape, dtype, stream);
  t.copy_from_host(data, bytes, stream);
  return t;
}

void Tensor::copy_from_host(const void* src, size_t bytes, Stream& stream) {
  FANIN_CHECK(defined(), kInvalidArgument, "[Tensor::copy_from_host] tensor is null");
  FANIN_CHECK(&device() == &stream.device(), kInvalidArgument,
              "[Tensor::copy_from_host] tensor is on ", device().name(), ", stream on ",
              stream.device().name());
  FANIN_CHECK(is_contiguous(), kInvalidArgument, "[Tensor::copy_from_host] tensor of shape ",
              to_string(shape_), " is not contiguous");
  FANIN_CHECK(bytes == nbytes(), kInvalidArgument, "[Tensor::copy_from_host] source has ", bytes,
              " bytes, tensor has ", nbytes());
  FANIN_CHECK(src != nullptr || bytes == 0, kInvalidArgument,
              "[Tensor::copy_from_host] source is null");
  if (bytes == 0) return;
  storage_->record_use(stream.id());
  Encoder enc = stream.command_buffer().begin_encoding();
  stream.device().backend().copy_from_host(stream.impl(), data(), src, bytes);
}

Tensor Tensor::from_vector(const std::vector<float>& values, const Shape& shape, Stream& stream) {
  return from_host(values.data(), values.size() * sizeof(float), shape, DType::kF32, stream);
}

int64_t Tensor::dim(int d) const {
  const int n = ndim();
  FANIN_CHECK(d >= -n && d < n, kInvalidArgument, "[Tensor::dim] dimension ", d,
              " out of range for shape ", to_string(shape_));
  return shape_[d < 0 ? d + n : d];
}

int64_t Tensor::numel() const noexcept {
  int64_t n = 1;
  for (int64_t d : shape_) n *= d;
  return n;
}

Device& Tensor::device() const {
  FANIN_CHECK(defined(), kInvalidArgument, "[Tensor::device] tensor is null");
  return storage_->device();
}

bool Tensor::is_contiguous() const noexcept {
  int64_t s = 1;
  for (size_t i = shape_.size(); i-- > 0;) {
    if (shape_[i] != 1 && strides_[i] != s) return false;
    s *= shape_[i];
  }
  return true;
}

void* Tensor::data() const noexcept {
  if (!storage_) return nullptr;
  return static_cast<char*>(storage_->data()) + offset_ * static_cast<int64_t>(dtype_size(dtype_));
}

Tensor Tensor::reshape(const Shape& shape) const {
  FANIN_CHECK(defined(), kInvalidArgument, "[reshape] tensor is null");
  FANIN_CHECK(is_contiguous(), kInvalidArgument, "[reshape] tensor of shape ", to_string(shape_),
              " is not contiguous; call ops::contiguous first");
  Shape out = shape;
  int infer = -1;
  int64_t known = 1;
  for (size_t i = 0; i < out.size(); ++i) {
    if (out[i] == -1) {
      FANIN_CHECK(infer < 0, kInvalidArgument, "[reshape] more than one -1 in ", to_string(shape));
      infer = static_cast<int>(i);
    } else {
      FANIN_CHECK(out[i] >= 0, kInvalidArgument, "[reshape] negative size in ", to_string(shape));
      // Checked: a wrapped product could match numel() and give a view that
      // reaches outside the storage.
      FANIN_CHECK(!__builtin_mul_overflow(known, out[i], &known), kInvalidArgument,
                  "[reshape] shape ", to_string(shape), " has too many elements");
    }
  }
  if (infer >= 0) {
    FANIN_CHECK(known != 0 && numel() % known == 0, kInvalidArgument, "[reshape] cannot reshape ",
                to_string(shape_), " into ", to_string(shape));
    out[infer] = numel() / known;
    known *= out[infer];
  }
  FANIN_CHECK(known == numel(), kInvalidArgument, "[reshape] cannot reshape ", to_string(shape_),
              " (", numel(), " elements) into ", to_string(shape));
  Tensor t = *this;
  t.shape_ = out;
  t.strides_ = contiguous_strides(out);
  return t;
}

Tensor Tensor::slice(int d, int64_t start, int64_t end) const {
  FANIN_CHECK(defined(), kInvalidArgument, "[slice] tensor is null");
  const int n = ndim();
  FANIN_CHECK(d >= -n && d < n, kInvalidArgument, "[slice] dimension ", d,
              " out of range for shape ", to_string(shape_));
  if (d < 0) d += n;
  FANIN_CHECK(0 <= start && start <= end && end <= shape_[d], kInvalidArgument, "[slice] range [",
              start, ", ", end, ") out of bounds for dimension ", d, " of size ", shape_[d]);
  Tensor t = *this;
  t.offset_ += start * strides_[d];
  t.shape_[d] = end - start;
  return t;
}

void Tensor::copy_to_host(void* dst, size_t bytes, Stream& stream) const {
  FANIN_CHECK(defined(), kInvalidArgument, "[Tensor::copy_to_host] tensor is null");
  FANIN_CHECK(&device() == &stream.device(), kInvalidArgument,
              "[Tensor::copy_to_host] tensor is on ", device().name(), ", stream on ",
              stream.device().name());
  FANIN_CHECK(is_contiguous(), kInvalidArgument, "[Tensor::copy_to_host] tensor of shape ",
              to_string(shape_), " is not contiguous");
  FANIN_CHECK(bytes == nbytes(), kInvalidArgument, "[Tensor::copy_to_host] destination has ",
              bytes, " bytes, tensor has ", nbytes());
  FANIN_CHECK(dst != nullptr || bytes == 0, kInvalidArgument,
              "[Tensor::copy_to_host] destination is null");
  if (bytes == 0) return;
  storage_->record_use(stream.id());
  Encoder enc = stream.command_buffer().begin_encoding();
  stream.device().backend().copy_to_host(stream.impl(), dst, data(), bytes);
}

std::vector<float> Tensor::to_vector(Stream& stream) const {
  FANIN_CHECK(defined(), kInvalidArgument, "[Tensor::to_vector] tensor is null");
  const int64_t n = numel();
  std::vector<float> out(static_cast<size_t>(n));
  if (dtype_ == DType::kF32) {
    copy_to_host(out.data(), nbytes(), stream);
    stream.synchronize();
    return out;
  }
  if (dtype_ == DType::kI32) {
    std::vector<int32_t> raw(static_cast<size_t>(n));
    copy_to_host(raw.data(), nbytes(), stream);
    stream.synchronize();
    for (int64_t i = 0; i < n; ++i) out[i] = static_cast<float>(raw[i]);
    return out;
  }
  std::vector<uint16_t> raw(static_cast<size_t>(n));
  copy_to_host(raw.data(), nbytes(), stream);
  stream.synchronize();
  for (int64_t i = 0; i < n; ++i)
    out[i] = dtype_ == DType::kF16 ? f16_to_f32(raw[i]) : bf16_to_f32(raw[i]);
  return out;
}

}  // namespace fanin
