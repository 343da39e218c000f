#include "backends/backend.h"

#include "core/check.h"

#include <cstdlib>

namespace fanin::backend {

void* Backend::host_alloc(size_t bytes) {
  void* p = std::aligned_alloc(64, (bytes + 63) / 64 * 64 + 64);
  FANIN_CHECK(p != nullptr, kOutOfMemory, "[HostBuffer] cannot allocate ", bytes, " bytes");
  return p;
}
void Backend::host_free(void* ptr) noexcept { std::free(ptr); }

void Backend::embedding(StreamImpl&, const EmbeddingArgs&) {
  FANIN_THROW(kUnavailable, "[embedding] not implemented on the ", to_string(type()), " backend");
}
void Backend::attention(StreamImpl&, const AttentionArgs&) {
  FANIN_THROW(kUnavailable, "[attention] not implemented on the ", to_string(type()), " backend");
}
void Backend::mean_pool(StreamImpl&, const MeanPoolArgs&) {
  FANIN_THROW(kUnavailable, "[mean_pool] not implemented on the ", to_string(type()), " backend");
}

}  // namespace fanin::backend
