// Stream, CommandBuffer and Encoder: the one-encoder rule.
//
// Note [One encoder]
// A command buffer is recorded by at most one thread at a time. The owner is
// a per-thread token held in an atomic: begin_encoding() claims it with a
// compare-exchange (acquire), the outermost Encoder's end submits the work
// and releases it with a store (release). The acquire/release pair orders
// everything the previous owner wrote into the stream's encode-side state
// before the next owner reads it, so that state needs no mutex. A different
// thread that finds the token taken gets ConcurrentEncoding (kThrow) or
// blocks on the atomic until it is released (kSerialize). The owner thread
// may nest encoders (ops open one implicitly); depth_ counts them and is only
// touched by the owner. This is the check that turns the crash of two
// threads encoding into one Metal command buffer into an error.
#include "fanin/stream.h"

#include <algorithm>
#include <vector>

#include "backends/backend.h"
#include "core/check.h"
#include "fanin/allocator.h"
#include "fanin/device.h"
#include "fanin/event.h"

namespace fanin {

class CommandBuffer;
void flush_this_threads_encoders();

namespace {

std::atomic<uint32_t> g_next_stream_id{1};
std::atomic<uint64_t> g_next_thread_token{1};

uint64_t this_thread_token() noexcept {
  thread_local uint64_t token = g_next_thread_token.fetch_add(1, std::memory_order_relaxed);
  return token;
}

// Note [Flush before a host wait]: the command buffers whose outermost
// encoder this thread holds. Work encoded there is not submitted until the
// encoder ends, so a host wait by the same thread (Stream::synchronize,
// Event::synchronize) submits it first; otherwise the thread would wait for
// work only it can submit.
thread_local std::vector<CommandBuffer*> t_open_buffers;

}  // namespace

void flush_this_threads_encoders() {
  for (CommandBuffer* cb : t_open_buffers) cb->stream().impl().end_encoding();
}

// ---- Encoder ----

Encoder::Encoder(Encoder&& other) noexcept : cb_(other.cb_) { other.cb_ = nullptr; }

Encoder& Encoder::operator=(Encoder&& other) noexcept {
  if (this != &other) {
    end();
    cb_ = other.cb_;
    other.cb_ = nullptr;
  }
  return *this;
}

Encoder::~Encoder() { end(); }

void Encoder::end() noexcept {
  if (cb_ != nullptr) {
    CommandBuffer* cb = cb_;
    cb_ = nullptr;
    cb->end_one();
  }
}

// ---- CommandBuffer ----

Encoder CommandBuffer::begin_encoding() {
  const uint64_t me = this_thread_token();
  uint64_t current = owner_.load(std::memory_order_acquire);
  if (current == me) {
    ++depth_;
    return Encoder(this);
  }
  uint64_t expected = 0;
  while (!owner_.compare_exchange_weak(expected, me, std::memory_order_acquire,
                                       std::memory_order_acquire)) {
    if (expected == 0) continue;  // spurious failure
    if (stream_->options().policy == EncodingPolicy::kThrow) {
      conflicts_.fetch_add(1, std::memory_order_relaxed);
      FANIN_THROW(kConcurrentEncoding, "[CommandBuffer::begin_encoding] stream ", stream_->id(),
                  " on ", stream_->device().name(),
                  " is being encoded by another thread; a command buffer has at most one "
                  "encoder. Give each thread its own stream (StreamPool::acquire / "
                  "thread_stream) or create the stream with EncodingPolicy::kSerialize");
    }
    owner_.wait(expected, std::memory_order_acquire);
    expected = 0;
  }
  depth_ = 1;
  t_open_buffers.push_back(this);
  return Encoder(this);
}

Encoder CommandBuffer::try_begin_encoding() {
  const uint64_t me = this_thread_token();
  if (owner_.load(std::memory_order_acquire) == me) {
    ++depth_;
    return Encoder(this);
  }
  uint64_t expected = 0;
  if (owner_.compare_exchange_strong(expected, me, std::memory_order_acquire,
                                     std::memory_order_relaxed)) {
    depth_ = 1;
    t_open_buffers.push_back(this);
    return Encoder(this);
  }
  return Encoder();
}

bool CommandBuffer::is_encoding() const noexcept {
  return owner_.load(std::memory_order_relaxed) != 0;
}

bool CommandBuffer::encoding_on_this_thread() const noexcept {
  return owner_.load(std::memory_order_relaxed) == this_thread_token();
}

void CommandBuffer::end_one() noexcept {
  FANIN_ASSERT(owner_.load(std::memory_order_relaxed) == this_thread_token(),
               "encoder ended by a thread that does not own it (stream ", stream_->id(), ")");
  if (--depth_ > 0) return;
  auto it = std::find(t_open_buffers.begin(), t_open_buffers.end(), this);
  if (it != t_open_buffers.end()) t_open_buffers.erase(it);
  stream_->impl().end_encoding();
  commits_.fetch_add(1, std::memory_order_relaxed);
  owner_.store(0, std::memory_order_release);
  if (stream_->options().policy == EncodingPolicy::kSerialize) owner_.notify_all();
}

// ---- Stream ----

Stream::Stream(Device& device, StreamOptions options)
    : id_(g_next_stream_id.fetch_add(1, std::memory_order_relaxed)),
      device_(&device),
      options_(options),
      impl_(device.backend().create_stream(device.index())),
      cb_(this) {
  device_->allocator().register_stream(*this);
}

Stream::~Stream() {
  try {
    impl_->synchronize();
  } catch (...) {
    // An unreported asynchronous error dies with the stream: destructors
    // never throw.
  }
  device_->allocator().forget_stream(*this);
}

void Stream::synchronize() {
  flush_this_threads_encoders();
  impl_->synchronize();
  device_->throw_if_faulted("Stream::synchronize");
}

bool Stream::query() const { return impl_->query(); }

void Stream::wait(const Event& event) {
  FANIN_CHECK(&event.device() == device_, kInvalidArgument, "[Stream::wait] event is on ",
              event.device().name(), ", stream ", id_, " is on ", device_->name());
  Encoder enc = cb_.begin_encoding();
  event.impl().make_wait(*impl_);
}

// ---- Event ----

Event::Event(Device& device)
    : device_(&device), impl_(device.backend().create_event(device.index())) {}

Event::~Event() = default;

void Event::record(Stream& stream) {
  FANIN_CHECK(&stream.device() == device_, kInvalidArgument, "[Event::record] event is on ",
              device_->name(), ", stream ", stream.id(), " is on ", stream.device().name());
  Encoder enc = stream.command_buffer().begin_encoding();
  impl_->record(stream.impl());
}

void Event::synchronize() const {
  flush_this_threads_encoders();
  impl_->synchronize();
  device_->throw_if_faulted("Event::synchronize");
}

bool Event::query() const { return impl_->query(); }

}  // namespace fanin
