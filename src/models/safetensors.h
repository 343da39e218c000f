// Reading and writing .safetensors files (8-byte little-endian header size,
// JSON header, raw little-endian data). The reader maps the file and checks
// everything a hostile file could get wrong before any tensor is used:
// header size cap, JSON syntax, dtype names, shapes, offsets inside the data
// area, sizes matching shape * dtype, and no two tensors overlapping.
// Problems raise InvalidArgument naming the file and the tensor.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "fanin/tensor.h"

namespace fanin::safetensors {

// The largest header fanin accepts (the format's own reference caps it at 100 MB).
constexpr size_t kMaxHeaderBytes = 100u << 20;

struct TensorView {
  DType dtype;       // meaningful only when `supported`
  Shape shape;
  const void* data;  // inside the mapping; valid while the File lives
  size_t bytes;
  bool supported;          // a dtype fanin computes with (F32, F16, BF16, I32)
  std::string dtype_name;  // as in the file, e.g. "I64"
};

// A mapped, validated safetensors file. Thread-safe to read.
class File {
 public:
  // Maps and validates `path`. Throws InvalidArgument on any defect.
  static std::shared_ptr<File> open(const std::string& path);
  ~File();

  const std::string& path() const noexcept { return path_; }
  const std::map<std::string, TensorView>& tensors() const noexcept { return tensors_; }
  const std::map<std::string, std::string>& metadata() const noexcept { return metadata_; }
  // The tensor `name`; throws InvalidArgument naming the file if it is
  // missing or of a dtype fanin does not read. Files may hold tensors of any
  // dtype of the format (e.g. BERT's I64 position_ids); they are validated
  // but only readable through tensors().
  const TensorView& at(const std::string& name) const;
  bool contains(const std::string& name) const { return tensors_.count(name) != 0; }

 private:
  File() = default;
  std::string path_;
  void* map_ = nullptr;
  size_t map_bytes_ = 0;
  std::map<std::string, TensorView> tensors_;
  std::map<std::string, std::string> metadata_;
};

// Bytes per element of a dtype the format defines ("F64" ... "F8_E5M2"),
// whether or not fanin computes with it; 0 for an unknown name.
size_t element_size(const std::string& dtype_name);

// Validates an in-memory image (header + data); used by File::open and the
// fuzz target. `what` names the source in error messages.
std::map<std::string, TensorView> parse(const uint8_t* bytes, size_t size, const std::string& what,
                                        std::map<std::string, std::string>* metadata = nullptr);

struct NamedData {
  std::string name;
  DType dtype;
  Shape shape;
  std::vector<uint8_t> data;
};

// Writes `tensors` to `path` in the order given. Throws InvalidArgument when
// a tensor's data size does not match its shape, or the file cannot be written.
void write(const std::string& path, const std::vector<NamedData>& tensors);

}  // namespace fanin::safetensors
