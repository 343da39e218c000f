/*
 * Spin model of the StreamPool lease protocol (Note [Stream leases],
 * src/core/stream_pool.cpp): the bitmask free list taken with
 * compare-exchange, the waiters_ counter, and the sleep/wake handshake on
 * wait_mu_ / wait_cv_ between wait_take() and give_back(), including the
 * pass-on notify of a waiter that got a slot while others still wait.
 *
 * Bounds: 3 threads, 2 slots (one 64-bit word; bits past the last slot are
 * set forever and never found free, so they are left out), each thread
 * leasing twice.
 *
 * Abstractions:
 * - Sequential consistency. The C++ handshake relies on seq_cst for
 *   waiters_ and the bit clear; Spin explores interleavings only, so this
 *   model checks the protocol's logic, not the memory orders (see the note
 *   at wait_take).
 * - try_take's load + compare-exchange loop is one atomic step that takes
 *   the lowest free bit (a failed compare-exchange just retries).
 * - std::condition_variable as in batch_queue.pml: wait() sets a flag and
 *   releases wait_mu_ in one step and blocks until a notify clears it; no
 *   spurious wake-ups. The C++ waits have a deadline (then PoolExhausted);
 *   here they are untimed, so a lost wake-up, which in C++ would be a
 *   PoolExhausted thrown while a slot is free, is a deadlock.
 *
 * Checked, exhaustively: a slot is never held by two threads; no invalid
 * end state (no lost wake-up, no deadlock); at the end every slot is free
 * and no thread is registered as a waiter.
 */

#define NT     3    /* threads */
#define NS     2    /* PoolOptions::slots */
#define ROUNDS 2    /* leases per thread */

bit  words[NS];      /* PoolState::words_: 1 = leased */
byte leased = 0;     /* PoolState::leased_ (statistics, read by the pass-on) */
byte waiters = 0;    /* PoolState::waiters_ */
bit  wmu = 0;        /* PoolState::wait_mu_ */
bool cw[NT];         /* waiting on wait_cv_, not yet notified */
byte holders[NS];    /* threads holding each slot: the property */

inline lock()   { atomic { wmu == 0 -> wmu = 1 } }
inline unlock() { wmu = 0 }

inline notify_one() {
  atomic {
    if
    :: cw[0] -> cw[0] = false
    :: cw[1] -> cw[1] = false
    :: cw[2] -> cw[2] = false
    :: else -> skip
    fi
  }
}

/* PoolState::try_take: the lowest zero bit, set by compare-exchange; then
 * leased_ += 1 (a separate relaxed add). */
inline try_take() {
  atomic {
    if
    :: words[0] == 0 -> words[0] = 1; slot = 0
    :: words[0] == 1 && words[1] == 0 -> words[1] = 1; slot = 1
    :: else -> slot = NS                 /* none free: -1 */
    fi
  };
  if :: slot < NS -> leased++ :: else -> skip fi
}

/* PoolState::give_back: fetch_and clears the bit (seq_cst), leased_ -= 1,
 * then if waiters_ (seq_cst) > 0: notify_one under wait_mu_. */
inline give_back() {
  atomic { assert(words[slot] == 1); words[slot] = 0 };
  leased--;
  if
  :: waiters > 0 -> lock(); notify_one(); unlock()
  :: else -> skip
  fi
}

/* PoolState::wait_take (no deadline here): waiters_ += 1 (seq_cst); under
 * wait_mu_, re-scan and sleep until a slot is taken; waiters_ -= 1; if a
 * slot was taken and others still wait while slots look free, pass a
 * notify on.
 * Note: in C++ the re-scan's first load of words_ is relaxed. Under the
 * C++ memory model a relaxed load after the seq_cst fetch_add on waiters_
 * may still miss a concurrent seq_cst clear whose releaser reads waiters_
 * as 0 (the store-buffering shape); this SC model cannot show that. */
inline wait_take() {
  waiters++;
  lock();
  do
  :: try_take();
     if
     :: slot < NS -> break
     :: else ->
        atomic { cw[me] = true; wmu = 0 };      /* wait_cv_.wait releases wait_mu_ */
        !cw[me];                                /* until notified */
        lock()
     fi
  od;
  unlock();
  waiters--;
  if
  :: slot < NS && waiters > 0 && leased < NS -> lock(); notify_one(); unlock()
  :: else -> skip
  fi
}

/* A thread leasing a stream ROUNDS times: StreamPool::acquire_for (fast
 * path try_take, else wait_take), use, StreamLease::release. */
proctype Leaser(byte me) {
  byte slot = NS;
  byte round = 0;
  do
  :: round < ROUNDS ->
     try_take();
     if :: slot == NS -> wait_take() :: else -> skip fi;
     /* holding the lease */
     atomic { holders[slot]++; assert(holders[slot] == 1) };
     atomic { holders[slot]-- };
     give_back();
     slot = NS;
     round++
  :: else -> break
  od
}

init {
  atomic { run Leaser(0); run Leaser(1); run Leaser(2) }
  _nr_pr == 1;
  assert(words[0] == 0 && words[1] == 0 && leased == 0 && waiters == 0 && wmu == 0)
}
