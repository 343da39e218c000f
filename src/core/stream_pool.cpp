// StreamPool: exclusive leases on a fixed set of streams.
//
// Note [Stream leases]
// The free list is a bitmask, one bit per slot (1 = leased), in 64-bit
// atomic words. acquire() finds a zero bit and sets it with a
// compare-exchange; release() clears it with fetch_and. A set bit is owned by
// exactly one StreamLease, so a stream is never handed to two holders.
// The fast paths take no lock. Only a thread that finds no free bit waits:
// it registers in waiters_ (seq_cst), re-scans under wait_mu_, and sleeps on
// wait_cv_ until its deadline. release() clears the bit (seq_cst) and then
// reads waiters_ (seq_cst): either the releaser sees the waiter and notifies
// under wait_mu_, or the waiter's re-scan sees the cleared bit, so no wakeup
// is lost. A thread's cached lease (thread_stream) lives in a thread_local
// list and is returned when the thread exits; PoolState is shared with every
// lease, so streams outlive the StreamPool object until the last lease ends.
#include <algorithm>
#include <bit>
#include <condition_variable>
#include <mutex>
#include <vector>

#include "core/check.h"
#include "fanin/device.h"
#include "fanin/stream.h"

namespace fanin {

class PoolState : public std::enable_shared_from_this<PoolState> {
 public:
  PoolState(Device& device, PoolOptions options)
      : device_(&device), options_(options), id_(next_id_.fetch_add(1)) {
    FANIN_CHECK(options.slots >= 1 && options.slots <= 4096, kInvalidArgument,
                "[StreamPool] slots must be in 1..4096, got ", options.slots);
    FANIN_CHECK(options.acquire_timeout.count() >= 0, kInvalidArgument,
                "[StreamPool] acquire_timeout must be >= 0 ms, got ",
                options.acquire_timeout.count(), " ms");
    words_ = std::vector<std::atomic<uint64_t>>((options.slots + 63) / 64);
    // Bits past the last slot are permanently set, so they are never found free.
    int tail = options.slots % 64;
    if (tail != 0) words_.back().store(~uint64_t{0} << tail, std::memory_order_relaxed);
    streams_.reserve(options.slots);
    for (int i = 0; i < options.slots; ++i)
      streams_.push_back(std::make_unique<Stream>(device, options.stream));
  }

  // `order` is the order of the first load of each word: relaxed on the
  // fast path; seq_cst on the waiter's re-scan, which must not be ordered
  // before its waiters_ increment (Note [Stream leases]).
  int try_take(std::memory_order order = std::memory_order_relaxed) noexcept {
    for (size_t w = 0; w < words_.size(); ++w) {
      uint64_t bits = words_[w].load(order);
      while (bits != ~uint64_t{0}) {
        int bit = std::countr_one(bits);
        uint64_t want = bits | (uint64_t{1} << bit);
        if (words_[w].compare_exchange_weak(bits, want, std::memory_order_acq_rel,
                                            std::memory_order_relaxed)) {
          leased_.fetch_add(1, std::memory_order_relaxed);
          return static_cast<int>(w * 64) + bit;
        }
      }
    }
    return -1;
  }

  void give_back(int slot) noexcept {
    uint64_t mask = uint64_t{1} << (slot % 64);
    uint64_t before = words_[slot / 64].fetch_and(~mask, std::memory_order_seq_cst);
    FANIN_ASSERT((before & mask) != 0, "stream slot ", slot, " returned twice");
    leased_.fetch_sub(1, std::memory_order_relaxed);
    if (waiters_.load(std::memory_order_seq_cst) > 0) {
      std::lock_guard<std::mutex> lock(wait_mu_);
      wait_cv_.notify_one();
    }
  }

  StreamLease acquire_for(std::chrono::milliseconds timeout) {
    int slot = try_take();
    if (slot < 0) slot = wait_take(timeout);
    if (slot < 0) {
      FANIN_THROW(kPoolExhausted, "[StreamPool::acquire] all ", options_.slots,
                  " stream slots of the pool on ", device_->name(), " stayed leased for ",
                  timeout.count(),
                  " ms; release leases sooner, raise PoolOptions::slots, or route "
                  "requests through a BatchQueue");
    }
    return StreamLease(shared_from_this(), slot);
  }

  std::optional<StreamLease> try_acquire() {
    int slot = try_take();
    if (slot < 0) return std::nullopt;
    return StreamLease(shared_from_this(), slot);
  }

  Stream& stream(int slot) const { return *streams_[slot]; }
  Device& device() const { return *device_; }
  const PoolOptions& options() const { return options_; }
  uint64_t id() const { return id_; }
  int leased() const { return leased_.load(std::memory_order_relaxed); }

 private:
  int wait_take(std::chrono::milliseconds timeout) {
    // Saturate: a huge timeout (milliseconds::max() for "wait forever") must
    // not overflow the deadline into the past. A century is forever enough.
    constexpr auto kForever = std::chrono::milliseconds(std::chrono::hours(24 * 365 * 100));
    auto deadline = std::chrono::steady_clock::now() + std::min(timeout, kForever);
    waiters_.fetch_add(1, std::memory_order_seq_cst);
    int slot = -1;
    {
      std::unique_lock<std::mutex> lock(wait_mu_);
      while ((slot = try_take(std::memory_order_seq_cst)) < 0) {
        if (wait_cv_.wait_until(lock, deadline) == std::cv_status::timeout) {
          slot = try_take(std::memory_order_seq_cst);
          break;
        }
      }
    }
    waiters_.fetch_sub(1, std::memory_order_seq_cst);
    // A release that notified us may have been meant for another waiter too.
    if (slot >= 0 && waiters_.load(std::memory_order_seq_cst) > 0 && leased() < options_.slots) {
      std::lock_guard<std::mutex> lock(wait_mu_);
      wait_cv_.notify_one();
    }
    return slot;
  }

  static inline std::atomic<uint64_t> next_id_{1};

  Device* device_;
  PoolOptions options_;
  uint64_t id_;
  std::vector<std::unique_ptr<Stream>> streams_;  // immutable after construction
  std::vector<std::atomic<uint64_t>> words_;      // Note [Stream leases]: 1 = leased
  std::atomic<int> leased_{0};                    // statistics only
  std::atomic<int> waiters_{0};                   // threads inside wait_take
  std::mutex wait_mu_;  // guards nothing but the sleep/wake handshake on wait_cv_
  std::condition_variable wait_cv_;
};

// ---- StreamLease ----

StreamLease::StreamLease(StreamLease&& other) noexcept
    : state_(std::move(other.state_)), slot_(other.slot_) {
  other.slot_ = -1;
}

StreamLease& StreamLease::operator=(StreamLease&& other) noexcept {
  if (this != &other) {
    release();
    state_ = std::move(other.state_);
    slot_ = other.slot_;
    other.slot_ = -1;
  }
  return *this;
}

StreamLease::~StreamLease() { release(); }

Stream& StreamLease::stream() const {
  FANIN_CHECK(state_ != nullptr, kInvalidArgument, "[StreamLease::stream] lease is empty");
  return state_->stream(slot_);
}

void StreamLease::release() noexcept {
  if (state_ == nullptr) return;
  // Work stays in order on the stream; the next holder simply queues after
  // it. A thread that (wrongly) encodes into a stream it does not hold may
  // still have its encoder open here: that is a user mistake, not a broken
  // invariant, so it must not abort (release() cannot throw). The one-encoder
  // rule keeps the next holder safe: it gets ConcurrentEncoding (or waits)
  // until that encoder ends.
  state_->give_back(slot_);
  state_.reset();
  slot_ = -1;
}

// ---- StreamPool ----

StreamPool::StreamPool(Device& device, PoolOptions options)
    : state_(std::make_shared<PoolState>(device, options)) {}

StreamPool::~StreamPool() = default;

StreamLease StreamPool::acquire() { return state_->acquire_for(state_->options().acquire_timeout); }

StreamLease StreamPool::acquire_for(std::chrono::milliseconds timeout) {
  FANIN_CHECK(timeout.count() >= 0, kInvalidArgument,
              "[StreamPool::acquire_for] timeout must be >= 0 ms, got ", timeout.count(), " ms");
  return state_->acquire_for(timeout);
}

std::optional<StreamLease> StreamPool::try_acquire() { return state_->try_acquire(); }

namespace {
// The calling thread's cached leases, one per pool; returned at thread exit.
struct ThreadLeases {
  std::vector<std::pair<uint64_t, StreamLease>> leases;
};
thread_local ThreadLeases t_leases;
}  // namespace

Stream& StreamPool::thread_stream() {
  for (auto& [id, lease] : t_leases.leases) {
    if (id == state_->id()) return lease.stream();
  }
  t_leases.leases.emplace_back(state_->id(), acquire());
  return t_leases.leases.back().second.stream();
}

int StreamPool::size() const noexcept { return state_->options().slots; }
int StreamPool::leased() const noexcept { return state_->leased(); }
Device& StreamPool::device() const noexcept { return state_->device(); }
const PoolOptions& StreamPool::options() const noexcept { return state_->options(); }

}  // namespace fanin
