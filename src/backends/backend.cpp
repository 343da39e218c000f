#include "backends/backend.h"

#include "core/check.h"

namespace fanin::backend {

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
