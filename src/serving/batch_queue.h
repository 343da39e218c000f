// The request queue behind Engine: admission, priorities, batch formation.
//
// Note [BatchQueue]
// One mutex (mu_) guards the per-priority FIFOs, the counters and the closed
// flag; producers hold it only to append, workers only to form a batch.
// A producer wakes a worker only when one sleeps with nothing to do (idle_),
// or when the queue now holds a ready batch (full by count or token budget,
// or at the largest preferred size: ready()) and a worker is waiting for its
// batch to fill (filling_): no syscall per request otherwise. Requests that
// are cancelled or past their deadline are taken out during formation and
// returned separately so that they are failed outside the lock. Every
// request leaves the queue exactly once: through next_batch, take_all, or
// (when admission throws) never entering. Resolution is the caller's job,
// and Request::claim() makes it happen at most once.
//
// Note [Queue lanes]
// Workers belong to lanes, one per device of the engine. Each lane has its
// own condition variable and counts its waiting (idle_/filling_) and
// running (batches handed out and not yet reported back) workers. Where
// the single-lane queue would notify_one "some waiter", a lane queue
// notifies a waiter of the lane that runs the fewest batches (ties rotate),
// so a batch goes to the least-loaded device that has a free worker. That
// is one of the choices notify_one may make, so verify/batch_queue.pml,
// which lets notify_one wake any waiter, covers lanes too. retire_lane()
// takes a failed device out: its workers get closed from next_batch and
// are never woken again; retiring the last live lane closes the queue with
// the given error and hands back everything queued, so no request waits
// for a device that will never come.
//
// Note [Routing by expected finish]
// "Fewest running batches" alone is wrong for unequal devices: with a GPU
// and a CPU, a free CPU worker would take batches the busy GPU would have
// finished sooner, and adding the CPU made the engine slower (measured on
// the H100: 0.68x at 64 producers, 0.25x at one). So each lane keeps a
// model of its batch time (CostModel, from what its workers report; batches
// that captured a graph are not samples), and a batch may go to lane l only if l would
// finish it within kRouteSlack of the soonest any other live lane would
// finish the work queued:
//   mine = F(l, 1),  others: F(m, k),
//   F(m, k) = est(m) * (1 + (running(m) + k - 1) / workers(m)),
// k = batches' worth queued (>= 1), est(m) = its CostModel for the rows
// of the front batch, decayed by half per 16 x est (within 0.1..1 s) while
// the lane runs nothing: an
// estimate from long ago must not bench a device for good, so a lane left
// idle becomes eligible again and is re-measured with a one-request batch
// (a probe must not hold a batch of clients: on the H100 one probe of the
// CPU with 32 sentences cost the encoder 60% of a 3 s run), and the longer
// its batches, the rarer such probes. A lane with no estimate yet
// is always eligible and, while it waits and one batch's worth is queued,
// goes first (else a measured lane whose worker returns sooner takes every
// request before the woken waiter runs, and the new lane is never measured).
// A lane takes at most twice the rows of its largest measured batch (one
// while unmeasured): a new or slow device is measured with small batches,
// so finding out that it is slow holds one request, not a batch of them
// (on the H100, one CPU batch of the encoder held 32 clients for 1.5 s). A waiter of an
// ineligible lane sleeps until it would become eligible (timed, counted as
// idle, so a push can still wake it). Among eligible waiting lanes the one
// running the fewest batches wins, ties rotating, so equal devices share
// as before. Liveness: when every live lane has a waiter, the lane with
// the smallest F(., 1) is eligible (F(m, k) >= F(m, 1)); otherwise a busy
// lane will come back to next_batch and take the batch itself, and a
// waiting one re-checks within kRouteDecay.
//
// Note [Adaptive queue delay]
// max_queue_delay buys a fuller batch with latency, but it only buys one if
// another request comes within it. With a lone client (one request in
// flight at a time: its next request comes a round trip after the answer)
// the wait is pure loss: on the H200 a 200 us delay put a 1-connection HTTP
// client at 1,083 us median against 728 us with no delay. So the queue keeps
// the mean gap between pushes (an EWMA weighing the newest gap 1/8, started
// by the first gap; a push of n inputs is one arrival) and, with
// adaptive_delay, a batch is due at once when the next push is expected
// only after the oldest request's wait would end (last push + expected gap
// > oldest + max_queue_delay), the expected gap being the shorter of the
// mean and the newest gap: sparse arrivals run at once, a steady stream
// (gap << delay) batches as before, a burst after a pause (one long gap
// among short ones) moves the mean by 1/8 of the pause, so it still
// batches, and a burst after a sparse spell (a mean still long) batches
// from its second push on, by the newest gap. Until two pushes were seen
// there is no gap: the first request waits as configured. max_queue_delay =
// microseconds::max() still means "wait for a full batch", whatever the
// arrivals. The rule only shortens waits, so the
// Spin model's nondeterministic "the delay passed" covers it.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "fanin/engine.h"

namespace fanin::serving {

// A queued request; the engine derives the payload.
struct Request {
  virtual ~Request() = default;
  // Fails the request with `e` if not yet resolved.
  virtual void fail(const Error& e) noexcept = 0;
  // True for exactly one caller: the one that resolves the request.
  bool claim() noexcept { return !resolved_.exchange(true, std::memory_order_acq_rel); }
  // The caller's token, or the request's group failed (Note [Request groups]).
  bool cancelled() const noexcept {
    return (cancel != nullptr && cancel->cancelled()) || (dropped != nullptr && dropped->cancelled());
  }

  int priority = 0;
  int64_t cost = 1;
  Clock::time_point enqueued;
  Clock::time_point deadline = Clock::time_point::max();
  std::shared_ptr<const CancelToken> cancel;
  const CancelToken* dropped = nullptr;  // its group's; the group outlives the request

 private:
  std::atomic<bool> resolved_{false};
};
using RequestPtr = std::unique_ptr<Request>;

struct QueueConfig {
  int max_batch_size = 64;
  std::chrono::microseconds max_queue_delay{500};
  std::vector<int> preferred_batch_sizes;  // ascending
  size_t max_queue_length = 1 << 16;
  int priority_levels = 1;
  int64_t max_tokens_per_batch = 0;
  bool adaptive_delay = true;  // Note [Adaptive queue delay]
};

// What next_batch hands a worker.
struct Formed {
  std::vector<RequestPtr> batch;    // to run
  std::vector<RequestPtr> expired;  // past deadline: fail with DeadlineExceeded
  std::vector<RequestPtr> dropped;  // cancelled: fail with Cancelled
  bool closed = false;              // queue closed and empty: the worker exits
};

// Note [Routing by expected finish]: a lane's batch time as a + b * units,
// units = the batch's request costs (rows for models, tokens for text),
// fitted by least squares with exponential forgetting (each sample weighs
// 4/3 of the one before), so a device whose cost is flat in the batch size
// (a GPU) and one whose cost grows with it (a CPU) are both estimated right
// for the batch at hand. The first sample (warm-up) is dropped; later ones
// are clipped to 4x of the estimate either way.
struct CostModel {
  double s0 = 0, s1 = 0, s2 = 0, t0 = 0, t1 = 0;  // sums of w, w n, w n^2, w t, w n t
  int samples = 0;
  double max_units = 0;  // the largest batch sampled
  bool measured() const noexcept { return s0 > 0; }
  void add(double units, double us) noexcept;
  double estimate(double units) const noexcept;  // 0 while not measured
};

class BatchQueue {
 public:
  explicit BatchQueue(QueueConfig config, int lanes = 1, int workers_per_lane = 1);

  // Admission. Throws QueueFull (at max length) or Cancelled (closed); on a
  // throw the request is not taken.
  void push(RequestPtr& request);
  // Admission of several requests at once (Note [Request groups]): all are
  // queued, or none (the same throws) and `requests` is left as it was.
  void push_many(std::vector<RequestPtr>& requests);

  // Worker side: blocks until a batch is due (full, or its oldest request
  // waited max_queue_delay, or the queue is closing) and forms it, for a
  // worker of `lane`. `finished_previous`: the caller's last call handed it
  // a batch that is now done (the lane's load drops by one).
  // `batch_us`: how long that batch took (0: not a sample, e.g. it
  // captured a graph) for Note [Routing by expected finish].
  // `batch_units`: its requests' costs (Request::cost summed).
  Formed next_batch(int lane = 0, bool finished_previous = false, double batch_us = 0,
                    double batch_units = 0);

  // A batch time measured outside next_batch (an engine's warm-up) for
  // Note [Routing by expected finish].
  void add_sample(int lane, double batch_us, double batch_units);

  // No more admissions; workers finish what is queued, then see closed.
  void close();
  // Closes and removes every queued request (for cancellation). Later
  // pushes throw `code` with `why` (default: Cancelled, shutting down).
  std::vector<RequestPtr> take_all(ErrorCode code = ErrorCode::kCancelled, std::string why = {});
  // Note [Queue lanes]: `lane`'s workers get closed from now on. Returns the
  // number of live lanes left; when that is 0 the queue is closed as by
  // take_all(code, why) and `orphans` receives what was queued.
  int retire_lane(int lane, ErrorCode code, const std::string& why,
                  std::vector<RequestPtr>* orphans);

  size_t size() const;
  bool closed() const;
  // Blocks until every worker of a live lane waits in next_batch, the queue
  // closes, or `timeout` passes. The engine's constructor calls it, so that
  // routing (Note [Queue lanes]) sees every worker from the first request
  // instead of handing it to whichever thread started first.
  void wait_parked(std::chrono::milliseconds timeout);

 private:
  struct Lane {
    std::condition_variable cv;
    int idle = 0;     // workers of this lane waiting for any request
    int filling = 0;  // workers of this lane waiting for a batch to fill
    int running = 0;  // batches handed to this lane and not reported done
    bool retired = false;
    CostModel cost;                // batch time by rows

    Clock::time_point last_done;   // when its last batch was reported done
  };
  static constexpr double kRouteSlack = 1.5;
  double front_rows() const;  // under mu_: rows of the batch that would form now
  double mean_cost() const;   // under mu_: mean Request::cost of what is queued (>= 1)
  static constexpr std::chrono::milliseconds kRouteDecay{100};
  static constexpr std::chrono::milliseconds kRouteDecayMax{1000};
  // Under mu_: F(lane, k) for a batch of `rows` (with the idle decay unless
  // `decay` is false).
  double finish_us(const Lane& lane, double k, double rows, Clock::time_point now,
                   bool decay = true) const;
  static double half_life_ms(double est_us);  // of an idle lane's estimate
  // Under mu_: lane may take the next batch; if not, *retry is when it
  // might (its estimate decays). *probe: only thanks to that decay (then it
  // takes one request).
  bool eligible(int lane, Clock::time_point now, Clock::time_point* retry, bool* probe) const;
  bool ready() const;  // under mu_: a full batch is queued (size, tokens, preferred size)
  int pick_lane();     // under mu_: Note [Routing by expected finish]; a lane with a waiter, or -1
  // Under mu_: an eligible lane with a waiter running fewer batches than
  // `lane`, or -1 (Note [Queue lanes]).
  int less_loaded_waiter(int lane, Clock::time_point now) const;
  void notify_all_lanes();
  // Under mu_ (held by `lock`): waits on `lane`'s condition variable counted
  // as idle (a push may wake it), until notified or `until` (max: no limit).
  void wait_as_idle(Lane& lane, std::unique_lock<std::mutex>& lock, Clock::time_point until);
  void take_all_locked(ErrorCode code, std::string why, std::vector<RequestPtr>& all);  // under mu_
  bool due(Clock::time_point now, Clock::time_point* wake) const;  // under mu_
  // Under mu_: Note [Adaptive queue delay]: the next arrival is expected
  // only after `at` (the oldest request's wait ends), so waiting gains nothing.
  bool arrivals_too_sparse(Clock::time_point at) const;
  void note_arrival(Clock::time_point now);  // under mu_
  void form(Clock::time_point now, Formed& out, size_t max_rows);  // under mu_
  size_t row_cap(const Lane& lane) const;  // under mu_: Note [Routing by expected finish]

  const QueueConfig config_;
  mutable std::mutex mu_;  // guards everything below (Note [BatchQueue])
  std::vector<Lane> lanes_;                     // sized once (Note [Queue lanes])
  std::vector<std::deque<RequestPtr>> levels_;  // one FIFO per priority
  size_t count_ = 0;
  int64_t tokens_ = 0;
  bool closed_ = false;
  ErrorCode closed_code_ = ErrorCode::kCancelled;  // what push throws once closed_
  std::string closed_why_;
  int live_lanes_ = 0;
  const int workers_per_lane_;
  int rotate_ = 0;   // where pick_lane's tie-break starts
  int idle_ = 0;     // workers waiting for any request (all lanes)
  int filling_ = 0;  // workers waiting for a batch to fill (all lanes)
  // Note [Adaptive queue delay]: when the last push came, the mean gap
  // between pushes (an EWMA, in microseconds; 0 until two pushes were seen)
  // and the newest gap.
  Clock::time_point last_arrival_{};
  bool seen_arrival_ = false;
  bool seen_gap_ = false;
  double gap_us_ = 0;
  double last_gap_us_ = 0;  // the newest gap alone
  bool parking_ = false;               // wait_parked is waiting
  std::condition_variable parked_cv_;  // wait_parked sleeps here
};

}  // namespace fanin::serving
