// fanin/graph.h: capture a stream's work once, replay it with one launch.
//
// Contract (Note [Graphs] in docs/concurrency.md):
// - Graph::capture holds the stream's encoder for the whole capture, so no
//   other thread can encode into that stream meanwhile (ConcurrentEncoding).
//   Capture is per stream and per thread: captures on different streams by
//   different threads at the same moment are independent and all succeed.
// - Tensors allocated while capturing come from the graph's private memory
//   pool: they keep their addresses for the graph's lifetime and are never
//   handed to other work, so replays cannot overwrite anyone else's data.
// - A graph replays only on the stream it was captured on (its private
//   buffers are that stream's); launch() is encoding work on that stream.
// - Inside a capture, do not synchronize or read tensors on the host.
#pragma once

#include <functional>
#include <memory>

namespace fanin {

class Allocator;
class Device;
class Stream;
namespace backend {
class GraphImpl;
}
struct PrivatePool;

class Graph {
 public:
  // Runs `encode` with `stream` in capture mode and returns the recorded
  // work. Nothing runs during capture. Throws InvalidArgument for a nested
  // capture on the same stream, and rethrows what `encode` throws (the
  // capture is then discarded and the stream is usable again).
  static std::unique_ptr<Graph> capture(Stream& stream, const std::function<void()>& encode);

  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;
  // Returns the private pool; its memory is reused only after every stream
  // has passed the graph's last launch. Never throws.
  ~Graph();

  // Replays the captured work on `stream`, after its earlier work. Throws
  // InvalidArgument if `stream` is not the capture stream.
  void launch(Stream& stream);

  Stream& stream() const noexcept { return *stream_; }
  // Launches so far.
  uint64_t launches() const noexcept { return launches_; }

 private:
  Graph(Stream& stream, std::unique_ptr<backend::GraphImpl> impl, PrivatePool* pool);
  Stream* stream_;
  std::unique_ptr<backend::GraphImpl> impl_;
  PrivatePool* pool_;
  uint64_t launches_ = 0;
};

}  // namespace fanin
