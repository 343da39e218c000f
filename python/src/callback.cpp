// python/src/callback.cpp: the GIL across engine threads, and interpreter exit.
//
// Note [Interpreter exit]
// Engine threads call back into Python, and Python threads wait in C++ with
// the GIL released. Once the interpreter finalizes, a thread that takes the
// GIL is ended by Python with pthread_exit, whose unwinding through C++
// frames (std::thread's entry, noexcept destructors) aborts the process. So:
// - fanin/__init__.py registers _shutdown with atexit. It runs after the
//   non-daemon threads are joined and before finalization: it sets
//   g_exiting, releases the GIL, cancels every live engine (Engine::cancel
//   fails what is queued and joins the workers) and waits until no thread
//   is between leaving the GIL in our code and taking it back
//   (g_outside == 0), so that a thread that saw g_exiting false has its GIL
//   back before finalization starts.
// - A thread that would take the GIL after g_exiting is set does not: an
//   engine callback is skipped (its Python callable is leaked; nothing is
//   left to wait for its future), even on the exiting thread, so that
//   _shutdown runs no Python code while it holds the engine list; and a
//   Python thread other than the exiting one (a daemon thread still waiting
//   on a request) parks until the process ends.
// The counter is incremented before g_exiting is read, and g_exiting is set
// before the counter is read (both seq_cst), so a thread either sees
// g_exiting or is waited for.
#include <chrono>
#include <mutex>
#include <set>
#include <thread>

#include "common.h"

namespace fanin::python {
namespace {

std::atomic<bool> g_exiting{false};
std::atomic<int> g_outside{0};  // threads between leaving and retaking the GIL
std::atomic<std::thread::id> g_exit_thread{};  // the thread running _shutdown
std::mutex g_live_mu;                          // guards g_live
std::set<Engine*> g_live;

[[noreturn]] void park() {
  for (;;) std::this_thread::sleep_for(std::chrono::hours(1));
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
  // Threads still computing finish their batch and come back; a bound keeps
  // a thread stuck elsewhere from holding up the exit.
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (g_outside.load() > 0 && std::chrono::steady_clock::now() < give_up)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  PyEval_RestoreThread(state);
}

}  // namespace

bool exiting() noexcept { return g_exiting.load(); }

GilRelease::GilRelease() {
  g_outside.fetch_add(1);
  state_ = PyEval_SaveThread();
}

GilRelease::~GilRelease() {
  if (g_exiting.load() && std::this_thread::get_id() != g_exit_thread.load()) {
    g_outside.fetch_sub(1);
    park();
  }
  PyEval_RestoreThread(state_);
  g_outside.fetch_sub(1);
}

PyCallback::PyCallback(nb::callable fn) : fn_(fn.release().ptr()) {}

PyCallback::~PyCallback() {
  if (fn_ == nullptr || !acquire()) return;
  Py_DECREF(fn_);
  release();
}

bool PyCallback::acquire() {
  g_outside.fetch_add(1);
  if (g_exiting.load()) {
    g_outside.fetch_sub(1);
    fn_ = nullptr;  // leaked: the interpreter is going away
    return false;
  }
  gil_ = PyGILState_Ensure();
  g_outside.fetch_sub(1);
  return true;
}

void PyCallback::release() { PyGILState_Release(gil_); }

void register_engine(Engine* engine) {
  std::lock_guard<std::mutex> lock(g_live_mu);
  g_live.insert(engine);
}

void unregister_engine(Engine* engine) {
  std::lock_guard<std::mutex> lock(g_live_mu);
  g_live.erase(engine);
}

void bind_lifetime(nb::module_& m) {
  m.def("_shutdown", &shutdown,
        "Cancels every live engine before the interpreter finalizes (registered with atexit).");
}

}  // namespace fanin::python
