// libFuzzer target: random bytes -> fanin::safetensors::parse. Must never
// crash; only fanin::Error may escape parse (anything else reaches
// std::terminate, which libFuzzer reports). Every tensor it accepts must lie
// inside the input with a size matching its shape and dtype.
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "fanin/error.h"
#include "models/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    std::map<std::string, std::string> metadata;
    const auto tensors = fanin::safetensors::parse(data, size, "fuzz input", &metadata);
    for (const auto& [name, t] : tensors) {
      const auto* p = static_cast<const uint8_t*>(t.data);
      int64_t numel = 1;
      for (int64_t d : t.shape) numel *= d;
      // Sizes by the file's dtype name: an unsupported dtype (I64, F64, ...)
      // is validated too, and t.dtype means nothing for it.
      const size_t esize = fanin::safetensors::element_size(t.dtype_name);
      if (p < data || p + t.bytes > data + size || esize == 0 ||
          uint64_t(numel) * esize != t.bytes || (t.supported && fanin::dtype_size(t.dtype) != esize)) {
        std::fprintf(stderr, "fuzz_safetensors: tensor '%s' outside the input or mis-sized\n",
                     name.c_str());
        std::abort();
      }
    }
  } catch (const fanin::Error&) {
  }
  return 0;
}
