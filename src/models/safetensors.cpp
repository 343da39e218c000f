#include "models/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/check.h"

namespace fanin::safetensors {
namespace {

using json = nlohmann::json;

bool dtype_from_name(const std::string& s, DType* out) {
  if (s == "F32") *out = DType::kF32;
  else if (s == "F16") *out = DType::kF16;
  else if (s == "BF16") *out = DType::kBF16;
  else if (s == "I32") *out = DType::kI32;
  else return false;
  return true;
}

const char* dtype_to_name(DType t) {
  switch (t) {
    case DType::kF32: return "F32";
    case DType::kF16: return "F16";
    case DType::kBF16: return "BF16";
    case DType::kI32: return "I32";
  }
  return "?";
}

}  // namespace

size_t element_size(const std::string& s) {
  if (s == "F64" || s == "I64" || s == "U64") return 8;
  if (s == "F32" || s == "I32" || s == "U32") return 4;
  if (s == "F16" || s == "BF16" || s == "I16" || s == "U16") return 2;
  if (s == "I8" || s == "U8" || s == "BOOL" || s == "F8_E4M3" || s == "F8_E5M2") return 1;
  return 0;
}

std::map<std::string, TensorView> parse(const uint8_t* bytes, size_t size, const std::string& what,
                                        std::map<std::string, std::string>* metadata) {
  FANIN_CHECK(size >= 8, kInvalidArgument, "[safetensors] ", what, ": file has ", size,
              " bytes, too short for the 8-byte header size");
  uint64_t header_size = 0;
  for (int i = 7; i >= 0; --i) header_size = (header_size << 8) | bytes[i];
  FANIN_CHECK(header_size <= kMaxHeaderBytes, kInvalidArgument, "[safetensors] ", what,
              ": header size ", header_size, " exceeds the cap of ", kMaxHeaderBytes, " bytes");
  FANIN_CHECK(header_size <= size - 8, kInvalidArgument, "[safetensors] ", what,
              ": header size ", header_size, " runs past the end of the ", size, "-byte file");
  const char* hbegin = reinterpret_cast<const char*>(bytes + 8);
  json header = json::parse(hbegin, hbegin + header_size, nullptr, /*allow_exceptions=*/false);
  FANIN_CHECK(!header.is_discarded(), kInvalidArgument, "[safetensors] ", what,
              ": header is not valid JSON");
  FANIN_CHECK(header.is_object(), kInvalidArgument, "[safetensors] ", what,
              ": header is not a JSON object");
  const uint8_t* data = bytes + 8 + header_size;
  const size_t data_size = size - 8 - header_size;

  std::map<std::string, TensorView> out;
  std::vector<std::pair<std::pair<uint64_t, uint64_t>, std::string>> ranges;
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    const json& v = it.value();
    if (name == "__metadata__") {
      FANIN_CHECK(v.is_object(), kInvalidArgument, "[safetensors] ", what,
                  ": __metadata__ is not an object");
      for (auto m = v.begin(); m != v.end(); ++m) {
        FANIN_CHECK(m.value().is_string(), kInvalidArgument, "[safetensors] ", what,
                    ": __metadata__ value '", m.key(), "' is not a string");
        if (metadata) (*metadata)[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    FANIN_CHECK(v.is_object(), kInvalidArgument, "[safetensors] ", what, ": tensor '", name,
                "' entry is not an object");
    FANIN_CHECK(v.contains("dtype") && v["dtype"].is_string(), kInvalidArgument, "[safetensors] ",
                what, ": tensor '", name, "' has no dtype string");
    FANIN_CHECK(v.contains("shape") && v["shape"].is_array(), kInvalidArgument, "[safetensors] ",
                what, ": tensor '", name, "' has no shape array");
    FANIN_CHECK(v.contains("data_offsets") && v["data_offsets"].is_array() &&
                    v["data_offsets"].size() == 2,
                kInvalidArgument, "[safetensors] ", what, ": tensor '", name,
                "' needs data_offsets [begin, end]");
    const std::string dname = v["dtype"].get<std::string>();
    const size_t esize = element_size(dname);
    FANIN_CHECK(esize != 0, kInvalidArgument, "[safetensors] ", what, ": tensor '", name,
                "' has unknown dtype ", dname);
    DType dtype = DType::kF32;
    const bool supported = dtype_from_name(dname, &dtype);
    Shape shape;
    for (const json& d : v["shape"]) {
      FANIN_CHECK(d.is_number_integer() && d.get<int64_t>() >= 0, kInvalidArgument,
                  "[safetensors] ", what, ": tensor '", name, "' has a bad shape entry ", d.dump());
      shape.push_back(d.get<int64_t>());
    }
    FANIN_CHECK(shape.size() <= 8, kInvalidArgument, "[safetensors] ", what, ": tensor '", name,
                "' has ", shape.size(), " dimensions, at most 8 supported");
    const json& offs = v["data_offsets"];
    FANIN_CHECK(offs[0].is_number_unsigned() && offs[1].is_number_unsigned(), kInvalidArgument,
                "[safetensors] ", what, ": tensor '", name, "' has non-integer data_offsets");
    const uint64_t begin = offs[0].get<uint64_t>();
    const uint64_t end = offs[1].get<uint64_t>();
    FANIN_CHECK(begin <= end && end <= data_size, kInvalidArgument, "[safetensors] ", what,
                ": tensor '", name, "' data_offsets [", begin, ", ", end,
                "] fall outside the data area of ", data_size, " bytes");
    const int64_t numel = checked_numel(shape, "safetensors");
    FANIN_CHECK(static_cast<uint64_t>(numel) * esize == end - begin, kInvalidArgument,
                "[safetensors] ", what, ": tensor '", name, "' has shape ", to_string(shape),
                " of ", dname, " (", numel * static_cast<int64_t>(esize),
                " bytes) but data_offsets span ", end - begin, " bytes");
    ranges.push_back({{begin, end}, name});
    out[name] = TensorView{dtype, shape, data + begin, static_cast<size_t>(end - begin),
                           supported, dname};
  }
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); ++i) {
    FANIN_CHECK(ranges[i].first.first >= ranges[i - 1].first.second, kInvalidArgument,
                "[safetensors] ", what, ": tensors '", ranges[i - 1].second, "' and '",
                ranges[i].second, "' overlap");
  }
  return out;
}

std::shared_ptr<File> File::open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  FANIN_CHECK(fd >= 0, kInvalidArgument, "[safetensors] cannot open '", path, "': ",
              std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    FANIN_THROW(kInvalidArgument, "[safetensors] '", path, "' is not a regular file");
  }
  std::shared_ptr<File> f(new File);
  f->path_ = path;
  f->map_bytes_ = static_cast<size_t>(st.st_size);
  if (f->map_bytes_ > 0) {
    void* m = ::mmap(nullptr, f->map_bytes_, PROT_READ, MAP_PRIVATE, fd, 0);
    ::close(fd);
    FANIN_CHECK(m != MAP_FAILED, kInvalidArgument, "[safetensors] cannot map '", path, "': ",
                std::strerror(errno));
    f->map_ = m;
  } else {
    ::close(fd);
  }
  f->tensors_ = parse(static_cast<const uint8_t*>(f->map_), f->map_bytes_, "'" + path + "'",
                      &f->metadata_);
  return f;
}

File::~File() {
  if (map_ != nullptr) ::munmap(map_, map_bytes_);
}

const TensorView& File::at(const std::string& name) const {
  auto it = tensors_.find(name);
  FANIN_CHECK(it != tensors_.end(), kInvalidArgument, "[safetensors] '", path_,
              "' has no tensor '", name, "'");
  FANIN_CHECK(it->second.supported, kInvalidArgument, "[safetensors] '", path_, "': tensor '",
              name, "' has dtype ", it->second.dtype_name, ", fanin reads F32, F16, BF16 and I32");
  return it->second;
}

void write(const std::string& path, const std::vector<NamedData>& tensors) {
  json header = json::object();
  uint64_t offset = 0;
  for (const NamedData& t : tensors) {
    const int64_t numel = checked_numel(t.shape, "safetensors::write");
    FANIN_CHECK(static_cast<size_t>(numel) * dtype_size(t.dtype) == t.data.size(),
                kInvalidArgument, "[safetensors::write] tensor '", t.name, "' has ",
                t.data.size(), " bytes, shape ", to_string(t.shape), " needs ",
                numel * static_cast<int64_t>(dtype_size(t.dtype)));
    header[t.name] = {{"dtype", dtype_to_name(t.dtype)},
                      {"shape", t.shape},
                      {"data_offsets", {offset, offset + t.data.size()}}};
    offset += t.data.size();
  }
  std::string h = header.dump();
  while (h.size() % 8 != 0) h.push_back(' ');
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  FANIN_CHECK(out.good(), kInvalidArgument, "[safetensors::write] cannot write '", path, "'");
  uint8_t size_bytes[8];
  uint64_t hs = h.size();
  for (int i = 0; i < 8; ++i) size_bytes[i] = static_cast<uint8_t>(hs >> (8 * i));
  out.write(reinterpret_cast<const char*>(size_bytes), 8);
  out.write(h.data(), static_cast<std::streamsize>(h.size()));
  for (const NamedData& t : tensors)
    out.write(reinterpret_cast<const char*>(t.data.data()),
              static_cast<std::streamsize>(t.data.size()));
  FANIN_CHECK(out.good(), kInvalidArgument, "[safetensors::write] failed writing '", path, "'");
}

}  // namespace fanin::safetensors
