// fanin/tensor.h: dtypes, shapes and tensors.
//
// Contract: a Tensor is a cheap handle (shape, strides, offset, dtype) on a
// reference-counted storage; copies and views share the storage and never
// copy data. Handles may be passed between threads; the data they point to
// follows stream order: work on a tensor is encoded on a stream and is
// visible to the host after that stream (or an event) is synchronized.
// Storage returns its block to the device allocator when the last handle
// goes away, tagged with the streams that used it (Note [Stream-ordered
// reuse]). Reading a tensor's data on the host while a stream writes it is a
// data race, as with any buffer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace fanin {

class Device;
class Stream;
struct Block;

// Element types.
enum class DType { kF32, kF16, kBF16, kI32 };

// "f32", "f16", "bf16", "i32".
const char* to_string(DType dtype) noexcept;
// Bytes per element.
size_t dtype_size(DType dtype) noexcept;
// Parses "f32" / "float32", "f16" / "float16", "bf16" / "bfloat16", "i32";
// throws InvalidArgument otherwise.
DType parse_dtype(const std::string& name);

using Shape = std::vector<int64_t>;

// "[2, 3]".
std::string to_string(const Shape& shape);
// Product of the sizes; throws InvalidArgument naming `op` for a negative
// size or an overflow.
int64_t checked_numel(const Shape& shape, const char* op);

// Half/bfloat16 conversions (round to nearest even).
uint16_t f32_to_f16(float value) noexcept;
float f16_to_f32(uint16_t value) noexcept;
uint16_t f32_to_bf16(float value) noexcept;
float bf16_to_f32(uint16_t value) noexcept;

// Where a storage lives and who may reuse its memory.
class Storage {
 public:
  Storage(Device& device, Block* block, uint32_t stream_id);
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  // Returns the block to the allocator; never throws.
  ~Storage();

  void* data() const noexcept;
  size_t bytes() const noexcept;
  Device& device() const noexcept { return *device_; }
  // Stream the block was allocated on; 0 for device-wide storage.
  uint32_t stream_id() const noexcept { return stream_id_; }
  // Notes that stream `id` used this storage too, so that its memory is
  // reused only after that stream's work passed it. Ops call it for inputs
  // from another stream; cheap when id is the allocation stream.
  void record_use(uint32_t id);

 private:
  Device* device_;
  Block* block_;
  uint32_t stream_id_;
  std::mutex uses_mu_;  // guards also_used_on_
  std::vector<uint32_t> also_used_on_;
};

// An n-dimensional array on a device.
class Tensor {
 public:
  // A null tensor: defined() is false; ops reject it with InvalidArgument.
  Tensor() = default;

  // Uninitialised storage for `shape`, usable in stream order on `stream`.
  static Tensor empty(const Shape& shape, DType dtype, Stream& stream);
  // Uninitialised device-wide storage (for weights read by many streams).
  static Tensor empty_device_wide(const Shape& shape, DType dtype, Device& device);
  // A tensor holding a copy of `bytes` bytes at `data`, copied in order on
  // `stream`; `data` may be reused as soon as this returns. Throws
  // InvalidArgument when bytes != numel * dtype_size.
  static Tensor from_host(const void* data, size_t bytes, const Shape& shape, DType dtype,
                          Stream& stream);
  // f32 convenience for from_host.
  static Tensor from_vector(const std::vector<float>& values, const Shape& shape,
                            Stream& stream);

  bool defined() const noexcept { return storage_ != nullptr; }
  const Shape& shape() const noexcept { return shape_; }
  const std::vector<int64_t>& strides() const noexcept { return strides_; }
  int ndim() const noexcept { return static_cast<int>(shape_.size()); }
  // Size of dimension `d`; negative d counts from the end. Throws
  // InvalidArgument when out of range.
  int64_t dim(int d) const;
  int64_t numel() const noexcept;
  size_t nbytes() const noexcept { return static_cast<size_t>(numel()) * dtype_size(dtype_); }
  DType dtype() const noexcept { return dtype_; }
  Device& device() const;
  bool is_contiguous() const noexcept;
  const std::shared_ptr<Storage>& storage() const noexcept { return storage_; }
  // Pointer to the first element (device memory for GPU tensors).
  void* data() const noexcept;
  template <typename T>
  T* data_as() const noexcept {
    return static_cast<T*>(data());
  }

  // A view with a new shape over the same contiguous data; one size may be
  // -1. Throws InvalidArgument if not contiguous or the numel differs.
  Tensor reshape(const Shape& shape) const;
  // A view of rows [start, end) along dimension `d`.
  Tensor slice(int d, int64_t start, int64_t end) const;

  // Overwrites this (contiguous) tensor with `bytes` bytes from `src`, in
  // order on `stream`; `src` may be reused as soon as this returns.
  void copy_from_host(const void* src, size_t bytes, Stream& stream);
  // Copies the data to host memory `dst` in order on `stream`. `dst` must
  // stay valid until the stream is synchronized. Contiguous tensors only.
  void copy_to_host(void* dst, size_t bytes, Stream& stream) const;
  // Copies to the host, waits for `stream`, and returns the values as f32
  // (f16/bf16/i32 converted).
  std::vector<float> to_vector(Stream& stream) const;

 private:
  std::shared_ptr<Storage> storage_;
  Shape shape_;
  std::vector<int64_t> strides_;
  int64_t offset_ = 0;  // in elements
  DType dtype_ = DType::kF32;
};

}  // namespace fanin
