// python/src/callback.cpp: the GIL across engine threads, the completer, and
// interpreter exit.
//
// Note [The completer]
// An engine worker never takes the GIL. Its callback for a Python request
// (PyCallback::complete) moves the callable and the Response or Error into
// the completer's queue and wakes it: no Python object is made and no GIL
// is taken there, so a worker never waits for a GIL that Python threads
// contend for, and the device never idles behind it. The completer is one
// process-wide thread of the module: woken, it takes everything queued,
// takes the GIL once, runs those callbacks (each guarded: an exception in one
// goes to sys.unraisablehook and the others still run), and releases the GIL.
// It keeps one thread state for its life (PyGILState_Ensure on the first
// batch, then PyEval_SaveThread / PyEval_RestoreThread), so a batch costs one
// GIL hand-over, not a thread state. Dropping an uncalled callable (a submit
// that raised) goes through the same queue; so do Futures, unless a thread
// waits on one (Note [Waiting on a Future]). Engine.drain and Engine.cancel
// wait (GIL released) until the completions queued before them have run and
// those left to waiting threads are claimed (flush_completions), so that
// every Future of theirs is done when they return; except on the completer
// and on a thread completing a Future (Note [Waiting on a Future]), which
// would wait for themselves. The engine's destruction drains the C++ engine
// (its workers never need Python) but does not wait for the completer: it
// runs wherever the last reference goes, also in a garbage collection on
// any thread, e.g. inside a Future's set_result or under its _condition, and
// the completer may need what that thread holds (the Future's _condition,
// the completion left to it), which it cannot give up while it waits: a
// deadlock (tests/python/test_completer.py makes both). Its completions are
// queued, and the completer runs them after. The completer is started on the
// first completion, and again in a forked child (whose copy of the state is
// replaced). A done callback runs there, so one that blocks holds up the
// other Python completions (not the engine); one that waits on another
// fanin Future would wait forever, and such a wait raises instead
// (fanin/_requests.py).
//
// Note [Interpreter exit]
// Python threads wait in C++ with the GIL released, and the completer takes
// the GIL for its batches. Once the interpreter finalizes, a thread that
// takes the GIL is ended by Python with pthread_exit, whose unwinding
// through C++ frames (std::thread's entry, noexcept destructors) aborts the
// process. So:
// - fanin/__init__.py registers _shutdown with atexit. It runs after the
//   non-daemon threads are joined and before finalization: it sets
//   g_exiting, releases the GIL, cancels every live engine (Engine::cancel
//   fails what is queued and joins the workers; their callbacks only queue
//   completions) and waits until no thread is between leaving the GIL in our
//   code and taking it back, and the completer is not inside a batch
//   (g_outside == 0), so that a thread that saw g_exiting false has its GIL
//   back, and the completer has given its GIL up for good, before
//   finalization starts.
// - A thread that would take the GIL after g_exiting is set does not: the
//   completer leaks the callables of every batch it takes from then on
//   (nothing is left to wait for their futures) and never takes the GIL
//   again; and a Python thread other than the exiting one (a daemon thread
//   still waiting on a request, or the completer inside a callback that
//   waited in our code) parks until the process ends.
// - The completer is detached, not joined: after _shutdown it sleeps on its
//   condition variable without the GIL (finalization does not wait for it,
//   and it runs no Python), and its state is never freed, so that neither
//   static destruction nor a late completion (an engine destroyed during
//   finalization) finds it gone. Joining it would make _shutdown wait
//   without bound for a done callback that blocks.
// The counter is incremented before g_exiting is read, and g_exiting is set
// before the counter is read (both seq_cst), so a thread either sees
// g_exiting or is waited for.
#include <pthread.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <condition_variable>
#include <mutex>
#include <set>
#include <thread>

#include "common.h"

namespace fanin::python {
namespace {

std::atomic<bool> g_exiting{false};
std::atomic<int> g_outside{0};  // threads between leaving and retaking the GIL; the completer in a batch
std::atomic<std::thread::id> g_exit_thread{};  // the thread running _shutdown
std::mutex g_live_mu;                          // guards g_live
std::set<Engine*> g_live;

[[noreturn]] void park() {
  for (;;) std::this_thread::sleep_for(std::chrono::hours(1));
}

// One callback to run on the completer (or only a target to drop).
struct Completion {
  enum Kind : uint8_t { kDrop, kCall, kFuture };
  PyObject* fn;  // a strong reference, given up with the GIL held (or leaked at exit)
  Kind kind;     // kDrop: drop fn (or outcome's Future); kCall: fn(result, error); kFuture: claim_outcome
  Response response;
  std::optional<Error> error;
  std::shared_ptr<Outcome> outcome;  // a Future's (fn is null then)
};

// The completer's state: Note [The completer]. Never freed.
struct Completer {
  std::mutex mu;  // guards queue, started, pushed, finished, handed
  std::condition_variable wake;  // the queue is not empty
  std::condition_variable idle;  // finished grew, or handed shrank
  std::vector<Completion> queue;
  bool started = false;
  uint64_t pushed = 0;    // completions queued so far
  uint64_t finished = 0;  // of those, run (or dropped, or leaked at exit)
  // Completions left to a waiting thread (Note [Waiting on a Future]) not
  // yet claimed or handed back: flush_completions waits for them too.
  std::set<const Outcome*> handed;
};

std::atomic<Completer*> g_completer{new Completer()};

// An Outcome left to its waiter, or no longer (claimed or handed back).
void note_handed(const Outcome* o) {
  Completer* k = g_completer.load();
  std::lock_guard<std::mutex> lock(k->mu);
  k->handed.insert(o);
}
void note_unhanded(const Outcome* o) {
  Completer* k = g_completer.load();
  {
    std::lock_guard<std::mutex> lock(k->mu);
    k->handed.erase(o);
  }
  k->idle.notify_all();
}
std::atomic<unsigned long> g_completer_ident{0};  // threading.get_ident() of the completer
thread_local int t_batch_counted = 0;  // 1 on the completer while its batch counts in g_outside

// Interned names and concurrent.futures.InvalidStateError, made on the
// completer's first Future (GIL held) and never released.
struct FutureNames {
  PyObject* set_result = PyUnicode_InternFromString("set_result");
  PyObject* set_exception = PyUnicode_InternFromString("set_exception");
  PyObject* invalid_state = nullptr;
  FutureNames() {
    if (PyObject* m = PyImport_ImportModule("concurrent.futures")) {
      invalid_state = PyObject_GetAttrString(m, "InvalidStateError");
      Py_DECREF(m);
    }
    if (set_result == nullptr || set_exception == nullptr || invalid_state == nullptr)
      throw nb::python_error();
  }
};

}  // namespace

// Note [Waiting on a Future]
// A Future of submit holds an Outcome; the Outcome holds the Future (a
// strong reference, given up by whoever claims it). The engine's callback
// fills the Outcome under its mutex (no GIL) and wakes a thread waiting in
// Future.result() / exception() (fanin/_requests.py, Outcome.wait, GIL
// released). If a thread was waiting, the completion is left to it
// (`handed`): with the GIL back, it claims the Outcome and calls set_result
// itself, unless the Future has done-callbacks (those run on the
// completer), then, or if anything stops it, it hands the Outcome back to
// the completer (hand_back, in a finally that covers the wait too: an
// exception such as a KeyboardInterrupt, which CPython may raise as wait()
// returns True, must not strand a handed completion). Otherwise the
// completion is queued for the completer as any other. Claims are made with
// the GIL held, the waiter's inside the Future's _condition, so a thread
// that finds the Outcome claimed and then looks at the Future under
// _condition (done(), result()) finds it done, or, if the completer
// claimed, done once that batch is finished. (The GIL alone would not do:
// set_result is Python code, and the GIL may pass in it.) A waited-on
// result thus costs one GIL acquisition, the waiter's: no completer turn at
// the GIL, no Condition.notify from it. cancel() wakes a waiter (the
// completion, when it comes, goes to the completer, which finds the Future
// cancelled).
// From Outcome.wait returning True to its hand_back, the thread is
// completing the Future (t_completing): it may hold the completion, the
// Future's _condition, and Python code runs (set_result, a garbage
// collection, a finalizer or a signal handler) that may call Engine.drain or
// cancel. flush_completions returns at once there, as on the completer: the
// completion it would wait for first is the one this thread is in the
// middle of. Modelled in Spin: verify/future_wait.pml.
namespace {
// The Outcomes whose Outcome.wait returned True on this thread and that it
// has not handed back yet (hand_back ends the window, claimed or not).
thread_local std::vector<const Outcome*> t_completing;
}  // namespace

void note_completing(const Outcome& o) { t_completing.push_back(&o); }

bool claim_outcome(Outcome& o) {
  static FutureNames* names = new FutureNames();
  Response response;
  std::optional<Error> error;
  bool first_row = false;
  PyObject* fut = nullptr;
  bool was_handed = false;
  {
    std::lock_guard<std::mutex> lock(o.mu);
    if (!o.ready || o.claimed) return false;
    o.claimed = true;
    was_handed = std::exchange(o.handed, false);
    fut = std::exchange(o.future, nullptr);
    response = std::move(o.response);
    error = std::move(o.error);
    first_row = o.first_row;
  }
  nb::object future = nb::steal(fut);
  // Unhanded at the end, when the Future is done (or this failed).
  struct Unhand {
    const Outcome* o;
    ~Unhand() {
      if (o != nullptr) note_unhanded(o);
    }
  } unhand{was_handed ? &o : nullptr};
  nb::object arg;
  if (error) {
    arg = to_python(*error);
  } else {
    Shape shape = response.shape;
    if (first_row && !shape.empty()) shape.erase(shape.begin());
    arg = to_numpy(std::move(response.output), shape);
  }
  PyObject* r = PyObject_CallMethodOneArg(future.ptr(), error ? names->set_exception : names->set_result,
                                          arg.ptr());
  if (r != nullptr) {
    Py_DECREF(r);
  } else if (PyErr_ExceptionMatches(names->invalid_state)) {
    PyErr_Clear();  // the caller cancelled it meanwhile
  } else {
    throw nb::python_error();
  }
  return true;
}

// An Outcome whose request was never made (the submit raised): its Future
// reference goes. GIL held.
void drop_outcome(Outcome& o) {
  PyObject* fut = nullptr;
  {
    std::lock_guard<std::mutex> lock(o.mu);
    o.claimed = true;
    fut = std::exchange(o.future, nullptr);
  }
  Py_XDECREF(fut);
}

namespace {

// One callback, GIL held; nothing escapes.
void run_one(Completion& c) noexcept {
  nb::object fn = nb::steal(c.fn);
  c.fn = nullptr;
  if (c.kind == Completion::kDrop) {
    if (c.outcome != nullptr) drop_outcome(*c.outcome);
    return;
  }
  try {
    if (c.kind == Completion::kFuture)
      claim_outcome(*c.outcome);
    else if (c.error)
      fn(nb::none(), to_python(*c.error));
    else
      fn(to_numpy(std::move(c.response.output), c.response.shape), nb::none());
  } catch (nb::python_error& e) {
    e.discard_as_unraisable(fn);
  } catch (const std::exception& e) {
    PyErr_SetString(PyExc_RuntimeError, e.what());
    PyErr_WriteUnraisable(fn.ptr());
  } catch (...) {
    PyErr_SetString(PyExc_RuntimeError, "unknown C++ exception in a fanin completion");
    PyErr_WriteUnraisable(fn.ptr());
  }
}

void run_completer(Completer* k) {
  g_completer_ident.store(PyThread_get_thread_ident());
  PyThreadState* state = nullptr;  // ours for the thread's life, once made
  std::vector<Completion> batch;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(k->mu);
      k->wake.wait(lock, [&] { return !k->queue.empty(); });
      batch.swap(k->queue);
    }
    g_outside.fetch_add(1);
    if (g_exiting.load()) {
      g_outside.fetch_sub(1);
      for (Completion& c : batch) c.fn = nullptr;  // leaked: Note [Interpreter exit]
    } else {
      t_batch_counted = 1;
      if (state == nullptr)
        PyGILState_Ensure();  // makes our thread state; never released by PyGILState_Release
      else
        PyEval_RestoreThread(state);
      for (Completion& c : batch) run_one(c);
      state = PyEval_SaveThread();
      t_batch_counted = 0;
      g_outside.fetch_sub(1);
    }
    const size_t done = batch.size();
    batch.clear();  // C++ buffers only (the results' went to numpy)
    {
      std::lock_guard<std::mutex> lock(k->mu);
      k->finished += done;
    }
    k->idle.notify_all();
  }
}

// Queues a completion and wakes the completer; no GIL. If the queue cannot
// take it (out of memory, no thread), the callable is leaked.
void enqueue(Completion&& c) noexcept {
  Completer* k = g_completer.load();
  try {
    std::lock_guard<std::mutex> lock(k->mu);
    if (!k->started) {
      std::thread(run_completer, k).detach();
      k->started = true;
    }
    k->queue.push_back(std::move(c));
    ++k->pushed;
  } catch (...) {
    return;
  }
  k->wake.notify_one();
}

// The atexit hook: Note [Interpreter exit].
void shutdown() {
  if (g_exiting.exchange(true)) return;
  g_exit_thread.store(std::this_thread::get_id());
  PyThreadState* state = PyEval_SaveThread();
  {
    std::lock_guard<std::mutex> lock(g_live_mu);
    for (Engine* e : g_live) e->cancel();
  }
  // Threads still computing finish their batch and come back, the completer
  // its batch of callbacks; a bound keeps a thread stuck elsewhere (a done
  // callback that blocks) from holding up the exit.
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (g_outside.load() > 0 && std::chrono::steady_clock::now() < give_up)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  PyEval_RestoreThread(state);
}

}  // namespace

bool exiting() noexcept { return g_exiting.load(); }

void flush_completions() {
  if (g_exiting.load() || PyThread_get_thread_ident() == g_completer_ident.load()) return;
  if (!t_completing.empty()) return;  // it would wait for itself: Note [Waiting on a Future]
  Completer* k = g_completer.load();
  std::unique_lock<std::mutex> lock(k->mu);
  // First the completions left to waiting threads now (they claim them, or
  // hand them back into the queue), then everything queued by then.
  const std::set<const Outcome*> handed = k->handed;
  k->idle.wait(lock, [&] {
    for (const Outcome* o : handed)
      if (k->handed.count(o) != 0) return false;
    return true;
  });
  const uint64_t target = k->pushed;
  k->idle.wait(lock, [&] { return k->finished >= target; });
}

// Note [Spinning for the GIL]
// A thread that gets its result back calls PyEval_RestoreThread; while
// another thread holds the GIL, CPython puts it to sleep on the GIL's
// condition variable, and the holder's release wakes one sleeper, which
// takes the GIL only once the OS has run it again: the GIL is idle for that
// wake-up, once per call when 32 threads take turns. With
// FANIN_GIL_SPIN_US=N (read at import; 0, the default, turns this off; or
// _fanin._gil_spin) up to FANIN_GIL_SPINNERS (default 1) returning threads
// at a time instead spin, for at most N us, while g_held says that a
// thread took the GIL back in ~GilRelease and has not released it in a
// GilRelease since, and call PyEval_RestoreThread once it does, which then
// finds the GIL free. g_held is a hint, not a lock: a holder that releases
// the GIL elsewhere (time.sleep, a lock, the end of its thread) only makes
// a spinner spin to its limit and then block as without this, until the
// next release in a GilRelease clears it; a release that clears it just
// after another thread took the GIL only makes a spinner block.
namespace {
std::atomic<bool> g_held{false};  // see Note [Spinning for the GIL]
std::atomic<int> g_spinners{0};   // threads spinning now
std::atomic<int64_t> g_spin_ns{0};
std::atomic<int> g_max_spinners{1};

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

void spin_for_gil() {
  const int64_t ns = g_spin_ns.load(std::memory_order_relaxed);
  if (ns <= 0 || !g_held.load(std::memory_order_relaxed)) return;
  if (g_spinners.fetch_add(1, std::memory_order_relaxed) < g_max_spinners.load(std::memory_order_relaxed)) {
    const auto end = std::chrono::steady_clock::now() + std::chrono::nanoseconds(ns);
    for (int i = 0; g_held.load(std::memory_order_relaxed); ++i) {
      cpu_relax();
      if ((i & 63) == 63 && std::chrono::steady_clock::now() >= end) break;
    }
  }
  g_spinners.fetch_sub(1, std::memory_order_relaxed);
}

int64_t env_int(const char* name, int64_t fallback) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  char* end = nullptr;
  const long long x = std::strtoll(v, &end, 10);
  return (end != nullptr && *end == '\0' && x >= 0) ? static_cast<int64_t>(x) : fallback;
}
}  // namespace

GilRelease::GilRelease() {
  g_outside.fetch_add(1);
  state_ = PyEval_SaveThread();
  g_held.store(false, std::memory_order_relaxed);
}

GilRelease::~GilRelease() {
  spin_for_gil();
  if (g_exiting.load() && std::this_thread::get_id() != g_exit_thread.load()) {
    g_outside.fetch_sub(1 + t_batch_counted);  // the completer's batch will not end either
    park();
  }
  PyEval_RestoreThread(state_);
  g_outside.fetch_sub(1);
  g_held.store(true, std::memory_order_relaxed);
}

PyCallback::PyCallback(nb::callable fn) : target_(fn.release().ptr()) {}

PyCallback::PyCallback(nb::handle future, std::shared_ptr<Outcome> outcome)
    : target_(nullptr), outcome_(std::move(outcome)) {
  outcome_->future = future.inc_ref().ptr();
}

PyCallback::~PyCallback() {
  if (target_ != nullptr) enqueue(Completion{target_, Completion::kDrop, {}, std::nullopt, nullptr});
  if (outcome_ != nullptr) enqueue(Completion{nullptr, Completion::kDrop, {}, std::nullopt, std::move(outcome_)});
}

void PyCallback::complete(Response response, const Error* error) noexcept {
  if (outcome_ != nullptr) {
    std::shared_ptr<Outcome> o = std::move(outcome_);
    bool handed = false;
    {
      std::lock_guard<std::mutex> lock(o->mu);
      o->response = std::move(response);
      if (error != nullptr) o->error.emplace(*error);
      o->ready = true;
      handed = o->handed = o->waiting;
      if (handed) note_handed(o.get());
    }
    o->cv.notify_all();
    if (!handed) enqueue(Completion{nullptr, Completion::kFuture, {}, std::nullopt, std::move(o)});
    return;
  }
  PyObject* fn = std::exchange(target_, nullptr);
  if (fn == nullptr) return;
  std::optional<Error> e;
  if (error != nullptr) e.emplace(*error);
  enqueue(Completion{fn, Completion::kCall, std::move(response), std::move(e), nullptr});
}

void hand_back(const std::shared_ptr<Outcome>& o) {
  const auto mine = std::find(t_completing.begin(), t_completing.end(), o.get());
  if (mine != t_completing.end()) t_completing.erase(mine);
  {
    std::lock_guard<std::mutex> lock(o->mu);
    if (!o->handed || o->claimed) return;
    o->handed = false;
  }
  enqueue(Completion{nullptr, Completion::kFuture, {}, std::nullopt, o});
  note_unhanded(o.get());  // after the enqueue: a flush that saw it handed now counts it queued
}

void register_engine(Engine* engine) {
  std::lock_guard<std::mutex> lock(g_live_mu);
  g_live.insert(engine);
}

void unregister_engine(Engine* engine) {
  std::lock_guard<std::mutex> lock(g_live_mu);
  g_live.erase(engine);
}

void bind_lifetime(nb::module_& m) {
  // A forked child has no completer thread: it gets a fresh state, started
  // on its first completion (the parent's may hold a lock that no thread
  // of the child will release).
  static bool at_fork = [] {
    return pthread_atfork(nullptr, nullptr, [] {
             g_completer.store(new Completer());
             g_completer_ident.store(0);
           }) == 0;
  }();
  (void)at_fork;
  g_spin_ns.store(std::min<int64_t>(env_int("FANIN_GIL_SPIN_US", 0), 1000000) * 1000);
  g_max_spinners.store(static_cast<int>(std::min<int64_t>(env_int("FANIN_GIL_SPINNERS", 1), 64)));
  m.def(
      "_gil_spin",
      [](double us, int spinners) {
        g_spin_ns.store(static_cast<int64_t>(std::max(0.0, std::min(us, 1e6)) * 1000));
        g_max_spinners.store(std::max(0, std::min(spinners, 64)));
      },
      "us"_a, "spinners"_a = 1,
      "Testing and benchmarks: Note [Spinning for the GIL] (0 us: off), as FANIN_GIL_SPIN_US does.");
  m.def(
      "_gil_held", [] { return g_held.load(); },
      "Note [Spinning for the GIL]'s hint: a thread took the GIL back in fanin and holds it.");
  m.def("_shutdown", &shutdown,
        "Cancels every live engine before the interpreter finalizes (registered with atexit).");
  m.def(
      "_completer_ident", [] { return g_completer_ident.load(); },
      "threading.get_ident() of the thread that runs done callbacks (0 before the first).");
}

}  // namespace fanin::python
