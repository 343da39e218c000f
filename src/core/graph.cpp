// Graph capture and replay (Note [Graphs] in docs/concurrency.md).
#include "fanin/graph.h"

#include "backends/backend.h"
#include "core/check.h"
#include "fanin/allocator.h"
#include "fanin/device.h"
#include "fanin/stream.h"

namespace fanin {

std::unique_ptr<Graph> Graph::capture(Stream& stream, const std::function<void()>& encode) {
  FANIN_CHECK(static_cast<bool>(encode), kInvalidArgument,
              "[Graph::capture] no encode function given");
  // Hold the stream's encoder throughout: no other thread can slip work
  // into the capture, and work encoded before it is submitted first.
  Encoder enc = stream.command_buffer().begin_encoding();
  stream.impl().end_encoding();
  Allocator& alloc = stream.device().allocator();
  alloc.begin_capture(stream);
  std::unique_ptr<backend::GraphImpl> impl;
  try {
    stream.impl().begin_capture();
  } catch (...) {
    alloc.release_pool(alloc.end_capture(stream));
    throw;
  }
  try {
    encode();
  } catch (...) {
    try {
      stream.impl().end_capture();  // discard
    } catch (...) {
    }
    alloc.release_pool(alloc.end_capture(stream));
    throw;
  }
  try {
    impl = stream.impl().end_capture();
  } catch (...) {
    alloc.release_pool(alloc.end_capture(stream));
    throw;
  }
  PrivatePool* pool = alloc.end_capture(stream);
  return std::unique_ptr<Graph>(new Graph(stream, std::move(impl), pool));
}

Graph::Graph(Stream& stream, std::unique_ptr<backend::GraphImpl> impl, PrivatePool* pool)
    : stream_(&stream), impl_(std::move(impl)), pool_(pool) {}

Graph::~Graph() {
  // The backend graph may be destroyed while a launch runs (CUDA keeps it
  // alive; CPU tasks are copies). The private pool's memory waits for every
  // stream's fence before reuse.
  stream_->device().allocator().release_pool(pool_);
}

void Graph::launch(Stream& stream) {
  FANIN_CHECK(&stream == stream_, kInvalidArgument, "[Graph::launch] graph was captured on stream ",
              stream_->id(), " and replays only there, not on stream ", stream.id());
  Encoder enc = stream.command_buffer().begin_encoding();
  impl_->launch(stream.impl());
  ++launches_;
}

}  // namespace fanin
