/*
 * Spin model of a Future's completion (Note [Waiting on a Future] and Note
 * [The completer], python/src/callback.cpp): the engine's callback
 * (PyCallback::complete) fills the Outcome and either leaves the completion
 * to a thread waiting in Future.result() (`handed`, note_handed) or queues
 * it for the completer; the waiter (_Future._wait in
 * python/fanin/_requests.py, Outcome.wait in python/src/engine.cpp) claims
 * the Outcome with the GIL, or hands it back (hand_back, in its `finally`)
 * when the Future has done-callbacks or anything raised; the completer
 * claims what is queued; Future.cancel() cancels the Future and wakes the
 * waiter; flush_completions (Engine.drain / cancel) waits for the
 * completions handed and queued before it, except on a thread completing a
 * Future (from Outcome.wait returning True to its hand_back: a finalizer or
 * a signal handler there may call drain), where it returns at once. The
 * engine's destruction does not flush (it may run in a garbage collection
 * under any lock, also a Future's _condition, which the completer needs):
 * no process stands for it.
 *
 * Each inline and proctype names the function it stands for.
 * Bounds: Future 0 is waited on by one thread and cancelled by another at
 * some moment (a cancel that comes after the result stands for no cancel);
 * the engine completes it at some moment. Future 1 has no waiter: the
 * engine completes it, or its submit raised and the callback is dropped
 * (PyCallback's destructor queues a kDrop; the Future never reached the
 * caller); so the completer may take two completions in one batch. One
 * flush_completions runs at some moment, racing all of this.
 *
 * Two configurations (verify/run.sh checks both):
 * - default: as above;
 * - -DTWO_WAITERS: two threads wait on Future 0 (Outcome::waiting is one
 *   bool: one waiter's slice may end while the other still waits), and
 *   Future 1 is left out to keep the search short.
 * The waiter calls result() or result(timeout): each 50 ms slice of
 * Outcome.wait may end at any moment, and with a timeout any slice's end
 * may be the last; PyErr_CheckSignals between slices may raise; a signal
 * may also be handled (KeyboardInterrupt) as the call to Outcome.wait
 * returns; the Future may have done-callbacks (then the waiter hands the
 * Outcome back).
 *
 * -DWAIT_OUTSIDE_TRY (not in verify/run.sh): _wait as it was,
 * `if outcome.wait(timeout): try: ... finally: outcome.hand_back()`. An
 * exception raised as wait() returns True (CPython handles a pending
 * signal, a KeyboardInterrupt, at the end of the CALL, outside the `try`)
 * skips the hand_back: the completion handed to the waiter is never
 * claimed, the Future never done, its reference never released, and a
 * flush_completions that saw it handed waits forever. Spin finds it in
 * either configuration (the end-state assertions, or an invalid end state
 * with Flush blocked). python/fanin/_requests.py now waits inside the
 * `try` (tests/python/test_completer.py checks it), which this models.
 *
 * -DFLUSH_WHILE_COMPLETING (not in verify/run.sh): flush_completions as it
 * was, waiting also on a thread completing a Future. The waiter calls it
 * inside `with self._condition`, before claiming (as a drain() in a
 * finalizer, or the engine's destruction in a garbage collection, did in
 * set_result): it waits for the completion handed to itself, or for the
 * completer, which waits for the _condition this thread holds. Spin finds
 * the deadlock (an invalid end state: Waiter and Flush blocked).
 *
 * Abstractions:
 * - std::mutex: Outcome::mu and Completer::mu guard short critical sections
 *   that block on nothing (a condition-variable wait releases the mutex in
 *   the step that starts waiting), so each is one atomic step and those
 *   mutexes need no variable. note_handed, which takes Completer::mu under
 *   Outcome::mu, is inside PyCallback::complete's step.
 * - std::condition_variable and threading.Condition: a per-waiter flag, as
 *   in batch_queue.pml. wait() sets it and releases the lock in one step and
 *   blocks until a notify clears it, then re-checks its predicate under the
 *   lock; a notify that finds no flag set is lost. No spurious wake-ups
 *   (the predicate loops cover them). wait_until may end at any moment. A
 *   notify made just after unlocking is made in the unlocking step: every
 *   waiter here re-checks its predicate under the lock, so the later notify
 *   could only wake one that registered after seeing the new state.
 * - The GIL: a lock (gil holds its owner). A Python thread holds it while
 *   it runs Python code and drops it in GilRelease (Outcome.wait,
 *   flush_completions) and while blocked on a threading lock (RLock and
 *   Condition waits release the GIL, as CPython's lock acquire does). The
 *   interpreter may also pass the GIL to another thread between bytecodes:
 *   py_switch() marks where that matters (inside claim_outcome before
 *   set_result, as to_numpy or a collection may run Python code; in
 *   Future.cancel between cancelling and waking).
 * - The Future's _condition (an RLock): fcond[f] holds its owner, fcnt[f]
 *   the recursion depth (the waiter claims inside `with self._condition`,
 *   and set_result takes it again). A `with` around code that blocks on
 *   nothing (cancel, set_result, result's checks) is one step once the lock
 *   is free (FCOND_SECTION).
 * - Between two slices of Outcome.wait the waiter takes the GIL back and
 *   releases it again; that turn at the GIL is left out (only `waiting` is
 *   false then, which the model has).
 * - Interpreter exit (g_exiting, parking), the completer's start, memory
 *   errors and the result conversion (to_numpy / to_python cannot fail
 *   here: a claim that raised after claiming would leave its Future
 *   pending) are left out; so are done-callbacks' bodies.
 *
 * What makes "claimed" mean "done" is not the GIL alone, which does not
 * make a claim and its set_result one step (set_result is Python code; a
 * collection in to_numpy may run some), but the waiter's
 * `with self._condition` around the claim, for anyone who looks at the
 * Future under its _condition (done(), result()). Without it (the waiter
 * claiming outside the `with`), the completer may find the Outcome
 * claimed, count its completion finished, and a flush return while the
 * Future is still pending: Spin finds that.
 *
 * Checked, exhaustively:
 * - no invalid end state: no deadlock, no thread stuck; an untimed waiter
 *   in Future.result() is blocked until the Future is done, so a lost
 *   completion is a deadlock;
 * - an Outcome is claimed at most once (by the waiter or the completer,
 *   never both); set_result never finds its Future finished (set twice),
 *   only, when cancelled, cancelled; the Future's reference is released
 *   exactly once (claimed or dropped);
 * - result() without a timeout returns only once its Future is done;
 * - once flush_completions returns, every Future whose completion was
 *   handed to a waiter or queued for the completer before it began is done
 *   (observed as done() does: under the Future's _condition);
 * - at the end: every Future done exactly once (finished or cancelled),
 *   every ready Outcome claimed, nothing handed or queued, every completion
 *   queued also finished.
 */

#ifdef TWO_WAITERS
#define NF 1              /* Futures: Future 1 left out */
#define NW 2              /* threads waiting on Future 0 */
#else
#define NF 2
#define NW 1
#endif

/* owners of the GIL and of the Futures' _condition locks */
#define NOBODY 0
#define WAITER(w) (w + 1) /* 1, 2 */
#define COMPL  3          /* the completer thread */
#define CANC   4          /* the thread that calls Future.cancel() */
#define FLUSH  5          /* the thread in Engine.drain (flush_completions) */

/* concurrent.futures.Future._state */
#define PENDING   0
#define FINISHED  1
#define CANCELLED 2

/* ---- the GIL ---- */
byte gil = NOBODY;

/* ---- the Futures (concurrent.futures.Future) ---- */
byte fstate[NF];          /* _state */
byte fcond[NF];           /* _condition's RLock: owner */
byte fcnt[NF];            /* its recursion depth */
bool fcw[NW];             /* waiting on Future 0's _condition, not yet notified */
byte ndone[NF];           /* times the Future went from PENDING to done */

/* ---- the Outcomes (struct Outcome, guarded by Outcome::mu) ---- */
bool o_ref[NF];           /* future: the strong reference, until claimed or dropped */
bool o_ready[NF];         /* ready */
bool o_claimed[NF];       /* claimed */
bool o_waiting = false;   /* waiting (Future 0's Outcome; Future 1 has no waiter) */
bool o_handed[NF];        /* handed */
bool o_woken = false;     /* woken (Future 0's) */
bool ocw[NW];             /* waiting on Outcome 0's cv, not yet notified */
byte nclaim[NF];          /* successful claims (the property) */
byte nrel[NF];            /* references released (the property) */
bool dropped[NF];         /* the engine never completed it: the submit raised */

/* ---- the completer (struct Completer, guarded by Completer::mu) ---- */
chan kq = [NF] of { byte };  /* queue: one completion per Outcome at most */
bool kdrop[NF];           /* the Outcome's completion is a kDrop */
byte pushed = 0;          /* pushed */
byte finished = 0;        /* finished */
bool k_handed[NF];        /* handed (the set of Outcomes) */
bool kw = false;          /* the completer waits on wake, not yet notified */
bool kidle = false;       /* ghost: the completer sleeps with an empty queue */
bool fidle = false;       /* flush_completions waits on idle, not yet notified */
byte qidx[NF];            /* ghost: the Outcome's place in the queue (pushed after its push) */

inline gil_take(me) { atomic { gil == NOBODY -> gil = me } }
inline gil_drop(me) { atomic { assert(gil == me); gil = NOBODY } }

/* The interpreter may hand the GIL to another thread here. */
inline py_switch(me) {
  if
  :: skip
  :: gil_drop(me); gil_take(me)
  fi
}

/* RLock.acquire() with the GIL held: taken at once if free (or ours); else
 * the GIL is released while blocking, and taken back after. */
inline fcond_take(f, me) {
  if
  :: atomic { fcond[f] == me -> fcnt[f]++ }
  :: atomic { fcond[f] == NOBODY -> fcond[f] = me; fcnt[f] = 1 }
  :: atomic { fcond[f] != NOBODY && fcond[f] != me -> assert(gil == me); gil = NOBODY };
     atomic { fcond[f] == NOBODY -> fcond[f] = me; fcnt[f] = 1 };
     gil_take(me)
  fi
}
inline fcond_drop(f, me) {
  atomic {
    assert(fcond[f] == me && fcnt[f] > 0);
    fcnt[f]--;
    if :: fcnt[f] == 0 -> fcond[f] = NOBODY :: else -> skip fi
  }
}

/* A critical section under a Future's _condition that blocks on nothing
 * (`with self._condition: ...` around BODY, an inline): one step once the
 * lock is free; while it is not, the thread blocks with the GIL released. */
#define FCOND_SECTION(f, me, BODY) \
  if \
  :: atomic { fcond[f] == NOBODY -> BODY } \
  :: atomic { fcond[f] != NOBODY && fcond[f] != me -> assert(gil == me); gil = NOBODY }; \
     atomic { fcond[f] == NOBODY -> BODY }; \
     gil_take(me) \
  fi

/* _condition.notify_all() (Future 0's waiters; Future 1 has none) */
inline fnotify_all(f) {
  if
  :: f == 0 ->
     fcw[0] = false;
#ifdef TWO_WAITERS
     fcw[1] = false;
#endif
     skip
  :: else -> skip
  fi
}

/* Outcome::cv.notify_all() */
inline onotify_all() {
  atomic {
    ocw[0] = false;
#ifdef TWO_WAITERS
    ocw[1] = false;
#endif
    skip
  }
}

/* note_unhanded: erase under Completer::mu, then idle.notify_all(). */
inline note_unhanded(f) {
  atomic { assert(k_handed[f]); k_handed[f] = false; fidle = false }
}

/* enqueue: push under Completer::mu (pushed++), then wake.notify_one(). */
inline enqueue(f) {
  atomic { assert(qidx[f] == 0); kq!f; pushed++; qidx[f] = pushed; kw = false }
}

/* concurrent.futures.Future.set_result, under _condition: FINISHED and
 * notify_all, or InvalidStateError (swallowed by claim_outcome) if the
 * Future is done: cancelled meanwhile, never finished (set twice). */
inline set_result(f) {
  if
  :: fstate[f] == PENDING -> fstate[f] = FINISHED; ndone[f]++; fnotify_all(f)
  :: else -> assert(fstate[f] == CANCELLED)
  fi
}

/* claim_outcome(o), GIL held: under Outcome::mu, claim it if ready and
 * unclaimed (taking `handed` and the Future's reference); then
 * future.set_result(arg) (a cancelled Future raises InvalidStateError,
 * swallowed), the reference released, and note_unhanded if it was
 * handed. */
inline claim_outcome(f, me) {
  atomic {
    if
    :: o_ready[f] && !o_claimed[f] ->
       o_claimed[f] = true;
       was_handed = o_handed[f];
       o_handed[f] = false;
       assert(o_ref[f]); o_ref[f] = false;   /* fut = std::exchange(o.future, nullptr) */
       nclaim[f]++;
       assert(nclaim[f] == 1);
       got = true
    :: else -> got = false
    fi
  };
  if
  :: got ->
     py_switch(me);                          /* to_numpy / to_python */
     if                                      /* Future.set_result */
     :: atomic { fcond[f] == me -> set_result(f) }   /* the waiter, inside its with */
     :: else -> FCOND_SECTION(f, me, set_result(f))
     fi;
     atomic { nrel[f]++; assert(nrel[f] == 1) };   /* the reference goes (nb::steal) */
     if :: was_handed -> note_unhanded(f) :: else -> skip fi   /* Unhand */
  :: else -> skip
  fi;
  got = false; was_handed = false
}

/* drop_outcome, GIL held: the reference of a Future whose request was never
 * made. */
inline drop_outcome(f) {
  atomic {
    assert(!o_ready[f]);
    o_claimed[f] = true;
    assert(o_ref[f]); o_ref[f] = false;
    nrel[f]++; assert(nrel[f] == 1)
  }
}

/* hand_back: under Outcome::mu, unless not handed or claimed, unhand; then
 * enqueue a kFuture, then note_unhanded. */
inline hand_back(f) {
  atomic {
    if
    :: o_handed[f] && !o_claimed[f] -> o_handed[f] = false; hb = true
    :: else -> hb = false
    fi
  };
  if :: hb -> enqueue(f); note_unhanded(f); hb = false :: else -> skip fi
}

/* PyCallback::complete on an engine thread (no GIL): fill the Outcome under
 * its mutex, ready, handed = waiting (note_handed under the same lock);
 * cv.notify_all(); if not handed, enqueue a kFuture. Or, for Future 1, the
 * submit raised: ~PyCallback enqueues a kDrop. */
proctype Engine(byte f) {
  bool handed = false;
  if
  :: f == 1 -> atomic { dropped[f] = true; kdrop[f] = true }; enqueue(f)
  :: true ->
     atomic {
       o_ready[f] = true;
       if :: f == 0 -> o_handed[f] = o_waiting :: else -> o_handed[f] = false fi;
       handed = o_handed[f];
       if :: handed -> k_handed[f] = true :: else -> skip fi;  /* note_handed */
       if :: f == 0 -> onotify_all() :: else -> skip fi
     };
     if :: !handed -> enqueue(f) :: else -> skip fi
  fi;
  handed = false
}

#define W_WAIT   0   /* in cv.wait_until */
#define W_TRUE   1   /* Outcome.wait returned True */
#define W_FALSE  2   /* Outcome.wait returned False (woken, or the timeout) */
#define W_AGAIN  3   /* a slice ended: another one */
#define W_RAISED 4   /* an exception is on its way out of _wait */

/* Leaving wait_until, under Outcome::mu: waiting = false; True if ready;
 * False if woken or (with a timeout, at some slice's end) the time is up;
 * else another slice. */
inline leave_wait() {
  o_waiting = false;
  if
  :: o_ready[0] -> ret = W_TRUE
  :: !o_ready[0] && o_woken -> ret = W_FALSE
  :: !o_ready[0] && !o_woken && timed -> ret = W_FALSE       /* now >= end */
  :: !o_ready[0] && !o_woken -> ret = W_AGAIN
  fi
}

/* Future.result, under _condition: done (the result, or CancelledError),
 * or _condition.wait: the waiter's flag set and _condition released (all
 * its levels) in one step; then the GIL, to block. */
inline result_check() {
  if
  :: fstate[0] != PENDING -> ret = W_TRUE
  :: else -> fcw[w] = true; ret = W_WAIT
  fi
}

/* Entering wait_until, under Outcome::mu: waiting = !woken; done at once
 * if ready or woken, else the waiter's flag set (the mutex released). */
inline enter_wait() {
  o_waiting = !o_woken;
  if
  :: o_ready[0] || o_woken -> leave_wait()
  :: else -> ocw[w] = true; ret = W_WAIT
  fi
}

/* flush_completions' waits, GIL released: under Completer::mu, copy
 * `handed` and wait on idle until none of those is handed any more, then
 * until finished reaches pushed (read then). p0: ghost, pushed at the copy. */
#if NF > 1
#define UNHANDED ((!h0[0] || !k_handed[0]) && (!h0[1] || !k_handed[1]))
#else
#define UNHANDED (!h0[0] || !k_handed[0])
#endif
inline flush_wait() {
  atomic {
    h0[0] = k_handed[0];
#if NF > 1
    h0[1] = k_handed[1];
#endif
    p0 = pushed;
    if
    :: UNHANDED -> target = pushed; pass = true
    :: else -> fidle = true
    fi
  };
  do
  :: pass -> break
  :: !pass ->
     !fidle;
     atomic {
       if
       :: UNHANDED -> target = pushed; pass = true
       :: else -> fidle = true
       fi
     }
  od;
  pass = false;
  atomic {
    if
    :: finished >= target -> pass = true
    :: else -> fidle = true
    fi
  };
  do
  :: pass -> break
  :: !pass ->
     !fidle;
     atomic {
       if
       :: finished >= target -> pass = true
       :: else -> fidle = true
       fi
     }
  od;
  pass = false
}

/* A thread in Future.result(timeout) on Future 0: _Future._wait, then
 * concurrent.futures.Future.result. From Outcome.wait returning True to
 * hand_back it is completing the Future (t_completing): a flush_completions
 * it makes there (a finalizer, a signal handler) returns at once, a step
 * that changes nothing, left out; -DFLUSH_WHILE_COMPLETING makes it wait. */
proctype Waiter(byte w) {
  byte me = WAITER(w);
  bool timed = false;
  byte ret = W_WAIT;
  bool got = false; bool was_handed = false; bool hb = false;
#ifdef FLUSH_WHILE_COMPLETING
  bool h0[NF]; byte p0 = 0; byte target = 0; bool pass = false;
#endif
  gil_take(me);
  if :: timed = true :: skip fi;             /* result(timeout) or result() */
  if
  :: fstate[0] != PENDING -> goto wait_result     /* _wait: done already */
  :: else -> skip
  fi;
  /* ---- try: Outcome.wait(timeout) ---- */
  gil_drop(me);                              /* GilRelease */
  atomic { enter_wait() };
  do
  :: ret == W_WAIT ->
     if
     :: atomic { !ocw[w] ->                  /* notified: re-check under the mutex */
          if
          :: o_ready[0] || o_woken -> leave_wait()
          :: else -> ocw[w] = true
          fi }
     :: atomic { ocw[w] -> ocw[w] = false; leave_wait() }   /* the slice ends */
     fi
  :: ret == W_AGAIN ->                       /* between slices (the GIL's turn left out) */
     if
     :: atomic { enter_wait() }              /* the next slice */
     :: ret = W_RAISED                       /* PyErr_CheckSignals raised */
     fi
  :: else -> break
  od;
  gil_take(me);                              /* ~GilRelease */
  if
  :: ret == W_TRUE ->
     if
     :: skip
     :: ret = W_RAISED;                      /* a signal handled as the call returns */
#ifdef WAIT_OUTSIDE_TRY
        goto out                             /* before the try: no finally */
#else
        skip
#endif
     fi
  :: else -> skip
  fi;
  if
  :: ret == W_TRUE ->
     fcond_take(0, me);                      /* with self._condition: */
#ifdef FLUSH_WHILE_COMPLETING
     gil_drop(me); flush_wait(); gil_take(me);   /* drain() from a finalizer, waiting */
#endif
     if
     :: claim_outcome(0, me)                 /* no done-callbacks: outcome.claim() */
     :: skip                                 /* done-callbacks: the completer runs them */
     fi;
     fcond_drop(0, me)
  :: else -> skip
  fi;
  hand_back(0);                              /* finally: outcome.hand_back() */
  if :: ret == W_RAISED -> goto out :: else -> skip fi;
wait_result:
  /* ---- concurrent.futures.Future.result(left of timeout) ---- */
  FCOND_SECTION(0, me, result_check());
  if
  :: ret == W_WAIT ->                        /* _condition.wait(timeout) */
     gil_drop(me);
     if
     :: !fcw[w]                              /* notified */
     :: atomic { timed && fcw[w] -> fcw[w] = false }   /* timed out */
     fi;
     gil_take(me);
     FCOND_SECTION(0, me, assert(timed || fstate[0] != PENDING))   /* else TimeoutError */
  :: else -> skip
  fi;
out:
  gil_drop(me)                               /* the thread goes on without us */
}

/* concurrent.futures.Future.cancel, under _condition: False if finished;
 * else CANCELLED, notify_all. */
inline cancel_future() {
  if
  :: fstate[0] == PENDING -> fstate[0] = CANCELLED; ndone[0]++; fnotify_all(0); cancelled = true
  :: else -> skip
  fi
}

/* Future.cancel() on Future 0 from another thread: super().cancel() under
 * _condition (False if finished; else CANCELLED and notify_all), then
 * token.cancel() (the engine still calls back) and Outcome.wake(): woken
 * under Outcome::mu, then cv.notify_all(). */
proctype Canceller() {
  bool cancelled = false;
  gil_take(CANC);
  FCOND_SECTION(0, CANC, cancel_future());
  if
  :: cancelled ->
     py_switch(CANC);
     atomic { o_woken = true; onotify_all() }
  :: else -> skip
  fi;
  gil_drop(CANC)
}

/* run_completer: wait on wake until the queue is not empty, take it all;
 * with the GIL, run each (claim_outcome, or drop_outcome for a kDrop);
 * without it, finished += n under the mutex, then idle.notify_all(). */
proctype Completer() {
  byte batch[NF]; byte n = 0; byte i = 0;
  bool got = false; bool was_handed = false;
  do
  :: atomic {
       if
       :: len(kq) > 0 ->
          do
          :: len(kq) > 0 -> kq?batch[n]; n++
          :: else -> break
          od
       :: else -> kw = true; kidle = true
       fi
     };
     if
     :: n == 0 ->
end_idle: atomic { !kw -> kidle = false }      /* woken: re-check */
     :: else ->
        gil_take(COMPL);
        i = 0;
        do
        :: i < n ->
           if
           :: kdrop[batch[i]] -> drop_outcome(batch[i])
           :: else -> claim_outcome(batch[i], COMPL)
           fi;
           batch[i] = 0;
           i++
        :: else -> break
        od;
        gil_drop(COMPL);
        atomic { finished = finished + n; n = 0; i = 0; fidle = false }   /* then idle.notify_all() */
     fi
  od
}

/* Engine.drain / cancel on a thread that holds nothing of the protocol,
 * GIL released: flush_completions (flush_wait). Then, with the GIL, what its
 * caller may rely on, observed as Future.done() does. */
proctype Flush() {
  bool h0[NF]; byte p0 = 0; byte target = 0; byte f = 0;
  bool pass = false;
  flush_wait();
  /* returned: its caller looks at each Future under its _condition, as
   * Future.done() does (at any moment the lock is free) */
  do
  :: f < NF ->
     if
     :: h0[f] || (qidx[f] != 0 && qidx[f] <= p0) ->
        atomic {
          fcond[f] == NOBODY ->
          assert(dropped[f] && !o_ref[f] || !dropped[f] && fstate[f] != PENDING)
        }
     :: else -> skip
     fi;
     f++
  :: else -> break
  od;
  f = 0
}

init {
  byte f = 0;
  atomic {
    o_ref[0] = true;                           /* PyCallback(future, outcome) */
    run Completer();
    run Engine(0);
#if NF > 1
    o_ref[1] = true;
    run Engine(1);
#endif
    run Waiter(0);
#ifdef TWO_WAITERS
    run Waiter(1);
#endif
    run Canceller();
    run Flush()
  }
  /* the end: everyone else has returned and the completer sleeps */
  atomic {
    _nr_pr == 2 && kidle && kw ->
    assert(gil == NOBODY && len(kq) == 0 && pushed == finished && !o_waiting);
    do
    :: f < NF ->
       assert(!k_handed[f] && !o_handed[f] && fcond[f] == NOBODY);
       assert(o_claimed[f] && !o_ref[f] && nrel[f] == 1);
       assert(dropped[f] || o_ready[f] && nclaim[f] == 1);
       assert(dropped[f] && fstate[f] == PENDING && ndone[f] == 0 ||
              !dropped[f] && fstate[f] != PENDING && ndone[f] == 1);
       f++
    :: else -> break
    od
  }
}
