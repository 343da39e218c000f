/*
 * Spin model of the Engine / BatchQueue protocol (issue 5, item 7): the
 * queue, its workers, cancellation (tokens and Engine::cancel), deadlines,
 * device errors and shutdown (drain with or without a timeout).
 *
 * It mirrors src/serving/batch_queue.cpp and src/serving/engine.cpp; each
 * inline and proctype names the C++ function it stands for.
 * Bounds: 3 producers with one request each, 2 workers, max_queue_length 2,
 * max_batch_size 2, max_tokens_per_batch 2 (request 0 costs 2, the others
 * 1), so QueueFull, full batches, the token budget and partial batches all
 * occur.
 *
 * Two configurations (verify/run.sh checks both):
 * - default: every request carries a cancel token, which its user cancels
 *   at some moment, and a deadline, which passes at some moment; drain()
 *   runs concurrently with the producers and may time out (then it cancels
 *   the rest).
 * - -DCONCURRENT_CANCEL: as above, and Engine::cancel() runs in another
 *   thread at any moment, racing the drain. To keep the search short,
 *   request 0 has only a deadline, request 1 only a token, request 2
 *   neither.
 * - -DLANES: three workers on two devices (lanes, Note [Queue lanes]):
 *   workers 0 and 1 on lane 0, worker 2 on lane 1. A batch that throws may
 *   find its device broken (Device::check_health); the first worker of
 *   that device to see it retires the lane: the lane's waiting workers get
 *   closed, every lane is woken, and the last lane to go closes the queue
 *   and fails what is queued with Unavailable. A sibling that finds the
 *   device already retired just exits. Requests as in the default.
 *   notify_one waking any waiter covers pick_lane's choice of lane.
 * A moment may be "never" in effect: a token cancelled after its request
 *   resolved, a deadline that does not pass, a drain whose timeout does not
 *   fire, a cancel() after everything ended. So these runs cover plain
 *   requests and an unbounded drain too.
 *
 * Abstractions:
 * - std::mutex: no critical section of BatchQueue::mu_ or
 *   EngineImpl::exit_mu_ blocks in its middle (a condition-variable wait
 *   releases the mutex in the step that starts waiting), so each critical
 *   section is one atomic step and those mutexes need no variable.
 *   lifecycle_mu_, held across cancel_now() and join, is a bit.
 * - Resolving a request touches only that request. The requests a worker
 *   drops or finds expired while forming are resolved in the forming step,
 *   and run_batch (launch checks, compute, results) is one step: the C++
 *   does these just after unlocking, on requests no one else can reach.
 * - std::condition_variable: a per-waiter flag. wait() sets it and
 *   releases the mutex in one step; the waiter blocks until a notify clears
 *   it. notify_one clears one waiter's flag, chosen nondeterministically
 *   (an idle or a filling worker alike); notify_all clears all. Untimed
 *   waits have no spurious wake-ups here: a lost wake-up cannot be papered
 *   over. wait_until may return by timeout at any moment.
 * - Time: a deadline may pass at any check (formation, launch);
 *   max_queue_delay may have elapsed at any evaluation of due() (which
 *   also covers Note [Adaptive queue delay]: a batch due early).
 * - Priorities: one FIFO (ordering is not a safety property).
 * - std::thread::join: blocks until the worker's last step.
 *
 * Checked, exhaustively:
 * - no invalid end state: no deadlock, no thread stuck;
 * - no lost wake-up: never are requests queued while every live worker
 *   sleeps in the untimed wait with no notify on its way (LostWakeup);
 * - each request resolved at most once (asserted at every resolution,
 *   without Request::claim() to hide a second one);
 * - when drain() or cancel() returns, every accepted request is resolved;
 * - at the end: resolved exactly once iff accepted, the queue empty;
 * - Cancelled only from a cancelled token or an engine cancel.
 */

#ifdef LANES
#define NPROD   2   /* producers, one request each; request id = producer id */
#define NWORK   3   /* workers 0 and 1 on lane 0, worker 2 on lane 1 */
#define NLANES  2
#define LANE(w) (w == 2 -> 1 : 0)
#else
#define NPROD   3   /* producers, one request each; request id = producer id */
#define NWORK   2
#endif
#define QLEN    2   /* EngineOptions::max_queue_length */
#define MAXB    2   /* EngineOptions::max_batch_size */
#define BUDGET  2   /* EngineOptions::max_tokens_per_batch */

#define OK        1
#define CANCELLED 2
#define DEADLINE  3
#define DEVERR    4
#define UNAVAIL   5
#define GONE      255  /* batch slot whose request failed its launch check */

/* ---- BatchQueue (guarded by mu_) ---- */
chan q = [QLEN] of { byte }; /* levels_ (one level); len(q) is count_ */
byte tokens = 0;             /* tokens_ */
bool closed = false;         /* closed_ */
byte idle = 0;               /* idle_ */
byte filling = 0;            /* filling_ */
bool qwait[NWORK];           /* waiting on cv_, not yet notified */
bool in_idle[NWORK];         /* the wait is cv_.wait (untimed) */

#ifdef LANES
bool retired[NLANES];        /* Lane::retired */
bool healthy[NLANES];        /* Replica::healthy, inverted: true once a worker claimed the retire */
byte live_lanes = NLANES;    /* live_lanes_ */
#endif

/* ---- EngineImpl ---- */
bool cancelling = false;     /* cancelling_ (atomic) */
byte live = NWORK;           /* live_ (guarded by exit_mu_) */
bool ewait = false;          /* drain waiting on exit_cv_, not yet notified */
bit  life = 0;               /* lifecycle_mu_ */
bool exited[NWORK];          /* the worker thread returned (join may pass) */
byte pending = 0;            /* notifies decided under mu_, not yet made */

/* ---- requests (Request / EngineRequest) ---- */
bool accepted[NPROD];        /* push() took it */
byte resolved[NPROD];        /* times failed or succeeded */
bool tok[NPROD];             /* its CancelToken was cancelled */
bool dl[NPROD];              /* it has a deadline */
bool expd[NPROD];            /* the deadline has passed */

#define COST(r) (r == 0 -> 2 : 1)   /* RequestOptions::cost */

/* BatchQueue::ready(): a full batch by count or by token budget. */
#define READY (len(q) >= MAXB || tokens >= BUDGET)

inline q_notify_one() {
  atomic {
    if
    :: qwait[0] -> qwait[0] = false
    :: qwait[1] -> qwait[1] = false
#ifdef LANES
    :: qwait[2] -> qwait[2] = false
#endif
    :: else -> skip
    fi;
    pending--
  }
}
#ifdef LANES
inline q_notify_all() { atomic { qwait[0] = false; qwait[1] = false; qwait[2] = false; pending-- } }
#define ALL_EXITED (exited[0] && exited[1] && exited[2])
#else
inline q_notify_all() { atomic { qwait[0] = false; qwait[1] = false; pending-- } }
#define ALL_EXITED (exited[0] && exited[1])
#endif

/* Time passes: a deadline may now be past. */
inline maybe_expire(r) {
  if
  :: dl[r] && !expd[r] -> expd[r] = true
  :: true -> skip
  fi
}

/* EngineRequest::fail / succeed, without Request::claim(): the protocol
 * itself must hand each request to exactly one resolver. */
inline resolve(r, code) {
  assert(accepted[r]);
  resolved[r]++;
  assert(resolved[r] == 1);
  assert(code != CANCELLED || tok[r] || cancelling)
}

/* What a caller may rely on once drain() or cancel() has returned. */
inline check_all_resolved() {
  atomic {
    k = 0;
    do
    :: k < NPROD -> assert(!accepted[k] || resolved[k] == 1); k++
    :: else -> break
    od;
    k = 0
  }
}

/* EngineImpl::cancel_now() (under lifecycle_mu_): cancelling_ = true;
 * BatchQueue::take_all() closes and empties under mu_, then notify_all;
 * every request taken fails with Cancelled. */
inline cancel_now() {
  cancelling = true;
  atomic {
    closed = true;
    ntake = 0;
    do
    :: len(q) > 0 -> q?r; tokens = tokens - COST(r); take[ntake] = r; ntake++
    :: else -> break
    od;
    r = 0;
    pending++
  };
  q_notify_all();
  atomic {
    k = 0;
    do
    :: k < ntake -> resolve(take[k], CANCELLED); take[k] = 0; k++
    :: else -> break
    od;
    k = 0; ntake = 0
  }
}

/* EngineImpl::submit -> BatchQueue::push: under mu_, throws Cancelled
 * (closed) or QueueFull (full) without taking the request, or appends it
 * and decides whether to wake a worker; notify_one after unlocking. The
 * user may cancel the request's token (CancelToken::cancel) later. */
proctype Producer(byte p) {
  bool wake = false;
  bool has_token = false;
  atomic {
#ifdef CONCURRENT_CANCEL
    dl[p] = (p == 0); has_token = (p == 1);
#else
    dl[p] = true; has_token = true;
#endif
    if
    :: closed -> skip                     /* throws Cancelled */
    :: !closed && len(q) >= QLEN -> skip  /* throws QueueFull */
    :: !closed && len(q) < QLEN ->
       q!p;
       tokens = tokens + COST(p);
       accepted[p] = true;
       wake = (idle > 0 || (filling > 0 && READY));
       /* Note [Adaptive queue delay]: the batch may be due at once (arrivals
        * too sparse), and push_many then wakes a filling worker too. */
       if :: !wake && filling > 0 -> wake = true :: true -> skip fi;
       if :: wake -> pending++ :: else -> skip fi
    fi
  };
  if :: wake -> q_notify_one(); wake = false :: else -> skip fi;
  if :: has_token -> tok[p] = true; has_token = false :: else -> skip fi
}

#define RUNNING 0   /* in next_batch, holding mu_ */
#define IDLE    1   /* in cv_.wait (counted in idle_) */
#define FILLING 2   /* in cv_.wait_until (counted in filling_) */
#define FORMED  3   /* leaving next_batch: a batch, or closed */

/* EngineImpl::run_worker: BatchQueue::next_batch, fail what it dropped or
 * found expired, EngineImpl::run_batch; return once next_batch said closed,
 * then --live_ under exit_mu_ and exit_cv_.notify_all(). */
proctype Worker(byte w) {
  byte batch[MAXB]; byte nb = 0;  /* Formed::batch */
  byte btok = 0;                  /* tokens in the batch being formed */
  byte st = RUNNING;
  bool closed_out = false; bool more = false; bool stop = false; bool retiring = false;
  byte r = 0; byte k = 0;
  do
  :: /* ---- BatchQueue::next_batch: each pass of its loop holds mu_ ---- */
     do
     :: atomic {
          if
          :: st == IDLE -> idle--; in_idle[w] = false
          :: st == FILLING -> filling--
          :: else -> skip
          fi;
          if
#ifdef LANES
          :: retired[LANE(w)] -> closed_out = true; st = FORMED   /* Lane::retired */
          :: !retired[LANE(w)] && len(q) == 0 && closed -> closed_out = true; st = FORMED
          :: !retired[LANE(w)] && len(q) == 0 && !closed ->
             idle++; in_idle[w] = true; qwait[w] = true; st = IDLE    /* cv_.wait */
          :: !retired[LANE(w)] && len(q) > 0 ->
#else
          :: len(q) == 0 && closed -> closed_out = true; st = FORMED
          :: len(q) == 0 && !closed ->
             idle++; in_idle[w] = true; qwait[w] = true; st = IDLE    /* cv_.wait */
          :: len(q) > 0 ->
#endif
             /* BatchQueue::due: closed, ready(), or the oldest waited max_queue_delay */
             if
             :: closed || READY -> st = FORMED
             :: true -> st = FORMED                                   /* delay elapsed */
             :: !(closed || READY) ->
                filling++; qwait[w] = true; st = FILLING              /* cv_.wait_until */
             fi;
             if
             :: st == FORMED ->
                /* ---- BatchQueue::form; run_worker fails the dropped / expired ---- */
                stop = false;
                do
                :: len(q) > 0 && nb < MAXB && !stop ->
                   q?<r>;                                             /* the front */
                   maybe_expire(r);
                   if
                   :: tok[r] -> q?r; tokens = tokens - COST(r); resolve(r, CANCELLED)
                   :: !tok[r] && expd[r] -> q?r; tokens = tokens - COST(r); resolve(r, DEADLINE)
                   :: !tok[r] && !expd[r] && nb > 0 && btok + COST(r) > BUDGET ->
                      stop = true                     /* budget reached: it stays queued */
                   :: !tok[r] && !expd[r] && !(nb > 0 && btok + COST(r) > BUDGET) ->
                      q?r; tokens = tokens - COST(r); btok = btok + COST(r); batch[nb] = r; nb++
                   fi
                :: else -> break
                od;
                stop = false; btok = 0; r = 0
             :: else -> skip
             fi
          fi;
          if
          :: st == FORMED && !closed_out ->           /* wake another if more waits */
             more = (len(q) > 0 && (idle > 0 || filling > 0));
             if :: more -> pending++ :: else -> skip fi
          :: else -> skip
          fi
        };
        if
        :: st == FORMED -> st = RUNNING; break
        :: st == IDLE -> !qwait[w]                    /* until notified */
        :: st == FILLING ->
           if
           :: !qwait[w] -> skip                       /* notified */
           :: atomic { qwait[w] -> qwait[w] = false } /* timed out */
           fi
        fi
     od;
     /* After unlocking: notify_one if more waits, then run_batch. */

     atomic {
       if :: more -> q_notify_one(); more = false :: else -> skip fi;
       /* ---- run_batch: launch-time checks (token, cancelling_, deadline) ---- */
       k = 0;
       do
       :: k < nb ->
          r = batch[k];
          maybe_expire(r);
          if
          :: tok[r] || cancelling -> resolve(r, CANCELLED); batch[k] = GONE
          :: !(tok[r] || cancelling) && expd[r] -> resolve(r, DEADLINE); batch[k] = GONE
          :: !(tok[r] || cancelling) && !expd[r] -> skip                /* runs */
          fi;
          k++
       :: else -> break
       od;
       k = 0; r = 0;
       /* ---- compute (Model::forward, synchronize), then the results ---- */
       if
       :: true ->                                     /* the batch threw: DeviceError */
          do
          :: k < nb -> if :: batch[k] != GONE -> resolve(batch[k], DEVERR) :: else -> skip fi; k++
          :: else -> break
          od
#ifdef LANES
       :: nb > 0 ->              /* it threw and the health check failed: retire_device */
          do
          :: k < nb -> if :: batch[k] != GONE -> resolve(batch[k], DEVERR) :: else -> skip fi; k++
          :: else -> break
          od;
          k = 0;
          if
          :: !healthy[LANE(w)] ->                     /* healthy.exchange(false) won */
             healthy[LANE(w)] = true;
             /* BatchQueue::retire_lane under mu_ (then notify_all on every lane) */
             retired[LANE(w)] = true;
             live_lanes--;
             if
             :: live_lanes == 0 ->                    /* take_all_locked: close, hand back */
                closed = true;
                do
                :: len(q) > 0 -> q?r; tokens = tokens - COST(r); resolve(r, UNAVAIL)
                :: else -> break
                od;
                r = 0
             :: else -> skip
             fi;
             pending++;
             retiring = true
          :: else -> skip                             /* a sibling worker retired it */
          fi;
          closed_out = true                           /* run_worker: !healthy -> exit */
#endif
       :: true ->                                     /* computed */
          do
          :: k < nb ->
             if
             :: batch[k] == GONE -> skip
             :: batch[k] != GONE && (tok[batch[k]] || cancelling) ->
                resolve(batch[k], CANCELLED)          /* result discarded */
             :: batch[k] != GONE && !(tok[batch[k]] || cancelling) -> resolve(batch[k], OK)
             fi;
             k++
          :: else -> break
          od
       fi;
       k = 0;
       do
       :: k < MAXB -> batch[k] = 0; k++
       :: else -> break
       od;
       k = 0; nb = 0
     };
#ifdef LANES
     if :: retiring -> q_notify_all(); retiring = false :: else -> skip fi;
#endif
     if :: closed_out -> break :: else -> skip fi
  od;
  live--;                                             /* under exit_mu_ */
  ewait = false;                                      /* exit_cv_.notify_all() */
  exited[w] = true
}

/* EngineImpl::drain(timeout): BatchQueue::close() (closed_ under mu_, then
 * notify_all); wait on exit_cv_ for live_ == 0, not holding lifecycle_mu_,
 * until the timeout (which may fire at any moment, or never); then under
 * lifecycle_mu_: cancel_now() if it timed out, and join. */
proctype Closer() {
  bool in_time = false; bool waiting = false;
  byte take[QLEN]; byte ntake = 0; byte r = 0; byte k = 0;
  atomic { closed = true; pending++ };
  q_notify_all();
  do
  :: atomic {                                         /* under exit_mu_ */
       if
       :: live == 0 -> in_time = true; waiting = false
       :: live != 0 -> ewait = true; waiting = true   /* wait_until releases exit_mu_ */
       fi
     };
     if
     :: !waiting -> break
     :: waiting && !ewait -> skip                     /* notified: test again */
     :: atomic { waiting && ewait -> ewait = false; in_time = (live == 0) };
        break                                         /* timed out: test once */
     fi
  od;
  waiting = false;
  atomic { life == 0 -> life = 1 };
  if :: !in_time -> cancel_now() :: else -> skip fi;
  ALL_EXITED;                                         /* join_locked */
  life = 0;
  check_all_resolved()
}

#ifdef CONCURRENT_CANCEL
/* EngineImpl::cancel() from another thread at any moment: under
 * lifecycle_mu_, cancel_now() and join. */
proctype Canceller() {
  byte take[QLEN]; byte ntake = 0; byte r = 0; byte k = 0;
  atomic { life == 0 -> life = 1 };
  cancel_now();
  ALL_EXITED;                                         /* join_locked */
  life = 0;
  check_all_resolved()
}
#endif

/* A lost wake-up: requests wait while every live worker sleeps in the
 * untimed wait and no notify is on its way. (Shutdown would wake them, but
 * a server may run for days before it shuts down.) */
active proctype LostWakeup() {
end:
  atomic {
    len(q) > 0 && pending == 0 &&
    (exited[0] || (in_idle[0] && qwait[0])) &&
    (exited[1] || (in_idle[1] && qwait[1])) &&
#ifdef LANES
    (exited[2] || (in_idle[2] && qwait[2])) &&
#endif
    true ->
    assert(false)
  }
}

init {
  byte k = 0;
  atomic {
    run Worker(0); run Worker(1);
#ifdef LANES
    run Worker(2);
#endif
    run Producer(0); run Producer(1);
#ifndef LANES
    run Producer(2);
#endif
    run Closer();
#ifdef CONCURRENT_CANCEL
    run Canceller()
#endif
  }
  _nr_pr == 2;   /* all but this one and LostWakeup have ended */
  assert(len(q) == 0 && tokens == 0 && live == 0 && idle == 0 && filling == 0 && pending == 0);
  do
  :: k < NPROD ->
     assert((accepted[k] -> resolved[k] == 1 : resolved[k] == 0));
     k++
  :: else -> break
  od
}
