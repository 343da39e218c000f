// fanin/allocator.h: the per-device caching, stream-ordered allocator.
//
// Contract (Note [Stream-ordered reuse] in docs/concurrency.md):
// - A block freed on stream S is reusable on S at once: S runs in order, so
//   later work on S cannot overtake earlier uses of the block.
// - On any other stream the block is reusable only after S has finished the
//   work encoded before the free (S's fence for the block has completed).
// - A device-wide block (weights shared by every stream) is reusable, and its
//   memory returned, only after every stream alive at its free has passed it.
// - All members are thread-safe; critical sections are short: no raw
//   allocation or freeing under the lock, and no waiting on other threads'
//   streams anywhere (out of memory only waits on the caller's own stream).
// Users normally meet the allocator through Tensor; direct use is for
// backends and tests.
#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <map>
#include <unordered_map>
#include <vector>

namespace fanin {

class Device;
class Stream;
namespace backend {
class StreamImpl;
}

// A snapshot of allocator counters.
struct AllocatorStats {
  size_t in_use_bytes = 0;       // handed out and not freed
  size_t cached_bytes = 0;       // freed, kept for reuse
  size_t peak_in_use_bytes = 0;  // high-water mark of in_use_bytes
  size_t reserved_bytes = 0;     // in_use + cached: memory taken from the backend
  uint64_t allocations = 0;      // allocate() calls that succeeded
  uint64_t cache_hits = 0;       // allocations served from the cache
  uint64_t cross_stream_reuses = 0;  // cache hits on a block freed by another stream
  uint64_t raw_allocations = 0;  // blocks taken from the backend
  uint64_t raw_frees = 0;        // blocks returned to the backend
};

struct PrivatePool;

// One allocation. Owned by the allocator; users hold a pointer between
// allocate() and free().
struct Block {
  void* ptr = nullptr;
  size_t size = 0;            // rounded size
  uint32_t stream_id = 0;     // stream it was last allocated on (0: device-wide)
  uint64_t free_fence = 0;    // internal: fence of stream_id at the last free
  PrivatePool* pool = nullptr;  // internal: the graph pool owning it, if any
};

// A graph's private memory (Note [Graphs]): blocks allocated on a stream
// while it captures. Internal to the allocator; guarded by its mu_.
struct PrivatePool {
  uint32_t stream_id = 0;
  std::multimap<size_t, Block*> free;  // freed blocks, reusable by the same capture
  size_t live = 0;                     // blocks handed out and not yet freed
  bool closed = false;                 // the graph is gone: blocks leave on free
};

class Allocator {
 public:
  explicit Allocator(Device& device);
  Allocator(const Allocator&) = delete;
  Allocator& operator=(const Allocator&) = delete;
  // Returns all memory to the backend. Precondition: no stream still runs.
  ~Allocator();

  // A block of at least `bytes` (0 allowed) usable in stream order on
  // `stream`. Throws OutOfMemory naming the size and the device when the
  // backend has no memory even after the cache is emptied.
  Block* allocate(size_t bytes, Stream& stream);
  // A device-wide block, for data read by many streams (weights).
  Block* allocate_device_wide(size_t bytes);
  // Returns `block`; `also_used_on` lists further streams that used it.
  void free(Block* block, const uint32_t* also_used_on = nullptr, size_t n_also = 0) noexcept;

  // Returns cached blocks whose last uses have finished to the backend.
  void trim() noexcept;
  AllocatorStats stats() const;

  // Internal, called by Graph::capture: while `stream` captures, its
  // allocations come from a new private pool, which end_capture hands over.
  void begin_capture(Stream& stream);
  PrivatePool* end_capture(Stream& stream) noexcept;
  // Internal, called when a graph dies: the pool's memory goes back to the
  // device once every stream has passed the graph's work.
  void release_pool(PrivatePool* pool) noexcept;

  // Internal, called by Stream's constructor and destructor.
  void register_stream(Stream& stream);
  void forget_stream(Stream& stream) noexcept;

 private:
  struct Fence {
    uint32_t stream_id;
    uint64_t value;
  };
  struct Pending {
    Block* block;
    uint32_t freed_by;  // stream whose free put it here (0: device-wide)
    std::vector<Fence> fences;
  };
  using SizeMap = std::multimap<size_t, Block*>;

  Block* take_cached(size_t size, uint32_t stream_id);
  Block* take_from(SizeMap& map, size_t size);
  void collect_completed();  // moves pending blocks whose fences passed to shared_
  bool fences_done(const std::vector<Fence>& fences) const;
  Block* raw_allocate(size_t size, Stream* stream);
  // Records `b` as handed out on `stream_id` (0: device-wide), from `pool`.
  Block* hand_out(Block* b, uint32_t stream_id, PrivatePool* pool);
  void release_blocks(std::vector<Block*>& blocks) noexcept;
  void retire_device_wide(Block* block);  // queue for reuse after every stream passes

  Device* device_;
  // mu_ guards every member below: the free lists, the pending list, the
  // live-stream table and the counters. Held only for list operations.
  mutable std::mutex mu_;
  std::unordered_map<uint32_t, backend::StreamImpl*> streams_;  // live streams
  std::unordered_map<uint32_t, SizeMap> per_stream_;  // freed on S, reusable on S now
  SizeMap shared_;                                     // reusable on any stream
  std::vector<Pending> pending_;                       // waiting for fences
  std::unordered_map<uint32_t, PrivatePool*> capturing_;  // stream id -> its capture pool
  AllocatorStats stats_;
};

}  // namespace fanin
