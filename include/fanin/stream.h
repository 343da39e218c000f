// fanin/stream.h: streams, their command buffers and encoders, and the pool
// that leases streams to threads.
//
// Contract (Note [Stream leases], Note [One encoder] in docs/concurrency.md):
// - A Stream is an in-order queue of device work. It owns exactly one
//   CommandBuffer. Work is encoded into the command buffer through an Encoder;
//   ending the outermost Encoder commits the work to the device, in order.
// - A CommandBuffer has at most one open Encoder at a time. A thread that
//   begins encoding while another thread's Encoder is open gets
//   Error{ConcurrentEncoding} (EncodingPolicy::kThrow, the default) or waits
//   until the other Encoder ends (EncodingPolicy::kSerialize). The thread that
//   holds the Encoder may nest further Encoders (ops do so implicitly).
//   Sequential begin/end/begin/end from any threads is always fine.
// - Stream::synchronize, Stream::query and Stream::wait(Event) may be called
//   from any thread. Stream is neither copyable nor movable.
// - StreamPool hands out exclusive leases on a fixed number of streams
//   through a lock-free free list; a leased stream is never handed to a
//   second holder. acquire() waits up to a timeout, then throws
//   Error{PoolExhausted}. All StreamPool members are thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

namespace fanin {

class Device;
class Event;
class Stream;
namespace backend {
class StreamImpl;
}

// What a thread that begins encoding into a busy command buffer gets.
enum class EncodingPolicy {
  kThrow,      // Error{ConcurrentEncoding} at once (default): misuse is loud.
  kSerialize,  // wait until the open encoder ends.
};

// Options fixed at stream creation.
struct StreamOptions {
  EncodingPolicy policy = EncodingPolicy::kThrow;
};

class CommandBuffer;

// RAII: an open encoding session on a CommandBuffer. Ending the outermost
// Encoder of a thread commits its work. Move-only; ends at destruction.
class Encoder {
 public:
  Encoder() = default;
  Encoder(Encoder&& other) noexcept;
  Encoder& operator=(Encoder&& other) noexcept;
  Encoder(const Encoder&) = delete;
  Encoder& operator=(const Encoder&) = delete;
  ~Encoder();

  // True until end() or a move-from.
  bool active() const noexcept { return cb_ != nullptr; }
  // Ends this encoder; the outermost end commits. Idempotent.
  void end() noexcept;

 private:
  friend class CommandBuffer;
  explicit Encoder(CommandBuffer* cb) : cb_(cb) {}
  CommandBuffer* cb_ = nullptr;
};

// The recording side of a Stream. Obtain through Stream::command_buffer().
class CommandBuffer {
 public:
  CommandBuffer(const CommandBuffer&) = delete;
  CommandBuffer& operator=(const CommandBuffer&) = delete;

  // Opens an encoder for the calling thread. Throws ConcurrentEncoding (or
  // waits, under kSerialize) while another thread's encoder is open.
  Encoder begin_encoding();

  // Like begin_encoding but never waits or throws for a busy buffer:
  // returns an inactive Encoder when another thread holds it.
  Encoder try_begin_encoding();

  // True while some thread holds an open encoder. Racy by nature: a hint.
  bool is_encoding() const noexcept;
  // True when the calling thread holds an open encoder on this buffer.
  bool encoding_on_this_thread() const noexcept;
  // Number of commits (outermost encoder ends) so far.
  uint64_t commits() const noexcept { return commits_.load(std::memory_order_relaxed); }
  // Number of ConcurrentEncoding errors thrown so far.
  uint64_t conflicts() const noexcept { return conflicts_.load(std::memory_order_relaxed); }

  Stream& stream() noexcept { return *stream_; }

 private:
  friend class Stream;
  friend class Encoder;
  explicit CommandBuffer(Stream* stream) : stream_(stream) {}
  void end_one() noexcept;

  Stream* stream_;
  // Note [One encoder]: token of the thread holding the open encoder, 0 when
  // none. Taken with compare-exchange (acquire), released with a store
  // (release); waiters under kSerialize block with atomic wait/notify.
  std::atomic<uint64_t> owner_{0};
  int depth_ = 0;  // nesting depth; touched only by the owner thread
  std::atomic<uint64_t> commits_{0};
  std::atomic<uint64_t> conflicts_{0};
};

// An in-order queue of work on one device.
class Stream {
 public:
  // A new stream on `device`. Most code leases one from a StreamPool instead.
  Stream(Device& device, StreamOptions options = {});
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  // Waits for the stream's work to finish; never throws.
  ~Stream();

  // Process-unique id (never 0).
  uint32_t id() const noexcept { return id_; }
  Device& device() const noexcept { return *device_; }
  const StreamOptions& options() const noexcept { return options_; }
  CommandBuffer& command_buffer() noexcept { return cb_; }

  // Blocks until all work committed so far has finished. If the calling
  // thread holds the open encoder, its work so far is committed first.
  // Rethrows the first error raised by that work (then clears it).
  void synchronize();
  // True when all committed work has finished; never blocks.
  bool query() const;
  // Makes later work on this stream wait (on the device) for `event`.
  void wait(const Event& event);

  // Internal: the backend's stream.
  backend::StreamImpl& impl() noexcept { return *impl_; }

 private:
  uint32_t id_;
  Device* device_;
  StreamOptions options_;
  std::unique_ptr<backend::StreamImpl> impl_;
  CommandBuffer cb_;
};

class StreamLease;
class PoolState;

// Options of a StreamPool.
struct PoolOptions {
  int slots = 32;                                     // 1 .. 4096
  std::chrono::milliseconds acquire_timeout{10000};  // acquire() waits this long
  StreamOptions stream;                               // options of every stream
};

// A fixed set of streams leased exclusively to threads.
class StreamPool {
 public:
  // A pool of options.slots streams on `device`. Throws InvalidArgument for
  // slots outside 1..4096 or a negative timeout.
  explicit StreamPool(Device& device, PoolOptions options = {});
  StreamPool(const StreamPool&) = delete;
  StreamPool& operator=(const StreamPool&) = delete;
  // Outstanding leases stay valid: streams live until the last is returned.
  ~StreamPool();

  // An exclusive lease; waits up to options.acquire_timeout for a free slot,
  // then throws PoolExhausted naming the pool size and the timeout.
  StreamLease acquire();
  // As acquire(), with an explicit timeout.
  StreamLease acquire_for(std::chrono::milliseconds timeout);
  // A lease if a slot is free now, else nothing. Never blocks.
  std::optional<StreamLease> try_acquire();

  // The calling thread's own stream from this pool: leased on first use,
  // cached thread-locally and returned to the pool when the thread exits.
  Stream& thread_stream();

  int size() const noexcept;
  // Slots leased right now (a snapshot).
  int leased() const noexcept;
  Device& device() const noexcept;
  const PoolOptions& options() const noexcept;

 private:
  std::shared_ptr<PoolState> state_;
};

// RAII: exclusive use of one pooled stream. Move-only; returns the slot on
// destruction or release().
class StreamLease {
 public:
  StreamLease() = default;
  StreamLease(StreamLease&& other) noexcept;
  StreamLease& operator=(StreamLease&& other) noexcept;
  StreamLease(const StreamLease&) = delete;
  StreamLease& operator=(const StreamLease&) = delete;
  ~StreamLease();

  bool valid() const noexcept { return state_ != nullptr; }
  // The leased stream. Precondition: valid().
  Stream& stream() const;
  Stream* operator->() const { return &stream(); }
  // The slot index inside its pool.
  int slot() const noexcept { return slot_; }
  // Returns the slot to the pool now; the lease becomes invalid.
  void release() noexcept;

 private:
  friend class PoolState;
  StreamLease(std::shared_ptr<PoolState> state, int slot) : state_(std::move(state)), slot_(slot) {}
  std::shared_ptr<PoolState> state_;
  int slot_ = -1;
};

}  // namespace fanin
