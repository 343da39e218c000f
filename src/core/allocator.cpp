// The caching, stream-ordered allocator.
//
// Note [Stream-ordered reuse]
// Every free tags the block with fences (Note [Stream fences]): the value of
// each stream that used it, read at the free. A block freed by exactly one
// stream S goes to S's own list and is reusable on S at once (S runs in
// order). It becomes reusable by other streams, or returnable to the
// backend, only once S's fence for it has completed; collect_completed()
// moves such blocks to the shared list when another stream misses. A block
// used by several streams, or device-wide (weights), waits in pending_ until
// the fences of all those streams (all live streams for device-wide blocks)
// have completed. A stream that dies first has been synchronized, so its
// fences count as done. mu_ is held only for list operations; backend
// allocation happens outside it.
#include "fanin/allocator.h"

#include <algorithm>

#include "backends/backend.h"
#include "core/check.h"
#include "fanin/device.h"
#include "fanin/stream.h"

namespace fanin {
namespace {

constexpr size_t kAlignment = 256;

size_t round_size(size_t bytes) {
  if (bytes == 0) return kAlignment;
  return (bytes + kAlignment - 1) / kAlignment * kAlignment;
}

// A cached block of `have` bytes may serve a request of `want` bytes if it
// wastes at most half of itself (or 1 MiB for large blocks).
bool fits(size_t have, size_t want) {
  return have >= want && (have - want <= want || have - want <= (size_t{1} << 20));
}

}  // namespace

Allocator::Allocator(Device& device) : device_(&device) {}

Allocator::~Allocator() {
  std::vector<Block*> all;
  for (auto& [id, map] : per_stream_)
    for (auto& [size, b] : map) all.push_back(b);
  for (auto& [size, b] : shared_) all.push_back(b);
  for (auto& p : pending_) all.push_back(p.block);
  release_blocks(all);
}

Block* Allocator::take_from(SizeMap& map, size_t size) {
  auto it = map.lower_bound(size);
  if (it == map.end() || !fits(it->first, size)) return nullptr;
  Block* b = it->second;
  map.erase(it);
  return b;
}

bool Allocator::fences_done(const std::vector<Fence>& fences) const {
  for (const Fence& f : fences) {
    auto it = streams_.find(f.stream_id);
    if (it != streams_.end() && !it->second->fence_done(f.value)) return false;
  }
  return true;
}

void Allocator::collect_completed() {
  for (auto& [id, map] : per_stream_) {
    auto s = streams_.find(id);
    for (auto it = map.begin(); it != map.end();) {
      Block* b = it->second;
      if (s == streams_.end() || s->second->fence_done(b->free_fence)) {
        shared_.emplace(b->size, b);
        it = map.erase(it);
      } else {
        ++it;
      }
    }
  }
  auto done = std::partition(pending_.begin(), pending_.end(),
                             [this](const Pending& p) { return !fences_done(p.fences); });
  for (auto it = done; it != pending_.end(); ++it) {
    it->block->stream_id = it->freed_by;
    shared_.emplace(it->block->size, it->block);
  }
  pending_.erase(done, pending_.end());
}

Block* Allocator::take_cached(size_t size, uint32_t stream_id) {
  Block* b = nullptr;
  if (stream_id != 0) {
    auto own = per_stream_.find(stream_id);
    if (own != per_stream_.end()) b = take_from(own->second, size);
  }
  if (b == nullptr) b = take_from(shared_, size);
  if (b == nullptr) {
    collect_completed();
    b = take_from(shared_, size);
  }
  if (b == nullptr) return nullptr;
  ++stats_.cache_hits;
  if (b->stream_id != stream_id) ++stats_.cross_stream_reuses;
  stats_.cached_bytes -= b->size;
  return b;
}

void Allocator::release_blocks(std::vector<Block*>& blocks) noexcept {
  for (Block* b : blocks) {
    device_->backend().raw_free(device_->index(), b->ptr);
    delete b;
  }
}

Block* Allocator::raw_allocate(size_t size, Stream* stream) {
  const uint32_t stream_id = stream != nullptr ? stream->id() : 0;
  void* ptr = device_->backend().raw_alloc(device_->index(), size);
  if (ptr == nullptr) {
    // Out of memory: return every cached block whose last use has finished.
    // No waiting on other threads' streams here: their unsubmitted work may
    // be waiting for us (Note [Stream-ordered reuse]).
    trim();
    ptr = device_->backend().raw_alloc(device_->index(), size);
  }
  if (ptr == nullptr && stream != nullptr) {
    // Our own stream we may wait for: submit what this thread encoded, let
    // it finish, and return what that frees.
    if (stream->command_buffer().encoding_on_this_thread()) stream->impl().end_encoding();
    stream->impl().wait_fence(stream->impl().fence());
    trim();
    ptr = device_->backend().raw_alloc(device_->index(), size);
  }
  if (ptr == nullptr) {
    AllocatorStats s = stats();
    FANIN_THROW(kOutOfMemory, "[Allocator::allocate] ", device_->name(), " cannot allocate ", size,
                " bytes (", s.in_use_bytes, " bytes in use, peak ", s.peak_in_use_bytes, ")");
  }
  auto* b = new Block{ptr, size, stream_id, 0};
  std::lock_guard<std::mutex> lock(mu_);
  ++stats_.raw_allocations;
  return b;
}

Block* Allocator::allocate(size_t bytes, Stream& stream) {
  FANIN_CHECK(&stream.device() == device_, kInvalidArgument, "[Allocator::allocate] stream ",
              stream.id(), " is on ", stream.device().name(), ", allocator on ", device_->name());
  FANIN_CHECK(bytes <= (size_t{1} << 48), kInvalidArgument, "[Allocator::allocate] ", bytes,
              " bytes is beyond any device");
  const size_t size = round_size(bytes);
  Block* b = nullptr;
  PrivatePool* pool = nullptr;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto cap = capturing_.find(stream.id());
    if (cap != capturing_.end()) {
      pool = cap->second;
      b = take_from(pool->free, size);  // reuse within one capture follows its order
      if (b != nullptr) stats_.cached_bytes -= b->size;
    } else {
      b = take_cached(size, stream.id());
    }
  }
  if (b == nullptr) b = raw_allocate(size, pool != nullptr ? nullptr : &stream);
  return hand_out(b, stream.id(), pool);
}

Block* Allocator::allocate_device_wide(size_t bytes) {
  FANIN_CHECK(bytes <= (size_t{1} << 48), kInvalidArgument,
              "[Allocator::allocate_device_wide] ", bytes, " bytes is beyond any device");
  const size_t size = round_size(bytes);
  Block* b;
  {
    std::lock_guard<std::mutex> lock(mu_);
    b = take_cached(size, 0);
  }
  if (b == nullptr) b = raw_allocate(size, nullptr);
  return hand_out(b, 0, nullptr);
}

Block* Allocator::hand_out(Block* b, uint32_t stream_id, PrivatePool* pool) {
  std::lock_guard<std::mutex> lock(mu_);
  b->pool = pool;
  if (pool != nullptr) ++pool->live;
  b->stream_id = stream_id;
  ++stats_.allocations;
  stats_.in_use_bytes += b->size;
  stats_.peak_in_use_bytes = std::max(stats_.peak_in_use_bytes, stats_.in_use_bytes);
  return b;
}

void Allocator::free(Block* block, const uint32_t* also_used_on, size_t n_also) noexcept {
  if (block == nullptr) return;
  std::lock_guard<std::mutex> lock(mu_);
  stats_.in_use_bytes -= block->size;
  stats_.cached_bytes += block->size;
  if (PrivatePool* pool = block->pool) {
    --pool->live;
    if (!pool->closed) {
      pool->free.emplace(block->size, block);
      return;
    }
    block->pool = nullptr;
    retire_device_wide(block);
    if (pool->live == 0) delete pool;
    return;
  }
  const uint32_t owner = block->stream_id;
  auto own = streams_.find(owner);
  if (owner != 0 && n_also == 0) {
    if (own == streams_.end()) {  // its stream is gone (and was synchronized)
      shared_.emplace(block->size, block);
      return;
    }
    block->free_fence = own->second->fence();
    per_stream_[owner].emplace(block->size, block);
    return;
  }
  if (owner == 0) {
    retire_device_wide(block);
    return;
  }
  Pending p{block, owner, {}};
  {
    if (own != streams_.end()) p.fences.push_back({owner, own->second->fence()});
    for (size_t i = 0; i < n_also; ++i) {
      auto s = streams_.find(also_used_on[i]);
      if (s != streams_.end()) p.fences.push_back({also_used_on[i], s->second->fence()});
    }
  }
  pending_.push_back(std::move(p));
}

void Allocator::retire_device_wide(Block* block) {
  Pending p{block, 0, {}};
  p.fences.reserve(streams_.size());
  for (auto& [id, impl] : streams_) p.fences.push_back({id, impl->fence()});
  pending_.push_back(std::move(p));
}

void Allocator::begin_capture(Stream& stream) {
  std::lock_guard<std::mutex> lock(mu_);
  FANIN_CHECK(capturing_.count(stream.id()) == 0, kInvalidArgument, "[Graph::capture] stream ",
              stream.id(), " is already capturing; captures do not nest");
  auto* pool = new PrivatePool;
  pool->stream_id = stream.id();
  capturing_[stream.id()] = pool;
}

PrivatePool* Allocator::end_capture(Stream& stream) noexcept {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = capturing_.find(stream.id());
  FANIN_ASSERT(it != capturing_.end(), "end_capture without begin_capture on stream ",
               stream.id());
  PrivatePool* pool = it->second;
  capturing_.erase(it);
  return pool;
}

void Allocator::release_pool(PrivatePool* pool) noexcept {
  if (pool == nullptr) return;
  std::lock_guard<std::mutex> lock(mu_);
  pool->closed = true;
  for (auto& [size, b] : pool->free) {
    b->pool = nullptr;
    retire_device_wide(b);
  }
  pool->free.clear();
  if (pool->live == 0) delete pool;
}

void Allocator::trim() noexcept {
  std::vector<Block*> freed;
  {
    std::lock_guard<std::mutex> lock(mu_);
    collect_completed();
    for (auto& [size, b] : shared_) freed.push_back(b);
    shared_.clear();
    for (Block* b : freed) stats_.cached_bytes -= b->size;
    stats_.raw_frees += freed.size();
  }
  release_blocks(freed);
}

AllocatorStats Allocator::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  AllocatorStats s = stats_;
  s.reserved_bytes = s.in_use_bytes + s.cached_bytes;
  return s;
}

void Allocator::register_stream(Stream& stream) {
  std::lock_guard<std::mutex> lock(mu_);
  streams_[stream.id()] = &stream.impl();
}

void Allocator::forget_stream(Stream& stream) noexcept {
  // The stream has been synchronized: every fence of it has passed.
  std::lock_guard<std::mutex> lock(mu_);
  streams_.erase(stream.id());
  auto own = per_stream_.find(stream.id());
  if (own != per_stream_.end()) {
    for (auto& [size, b] : own->second) shared_.emplace(size, b);
    per_stream_.erase(own);
  }
}

}  // namespace fanin
