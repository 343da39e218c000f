// python/src/common.h: what the binding files share. The bindings include
// only fanin's public headers (include/fanin/*.h).
//
// Threading contract of the module (docs/python.md, "Design"):
// - every call that tokenizes, waits for a queue or computes runs with the
//   GIL released (GilRelease);
// - an engine thread never takes the GIL: a Python request's callback only
//   queues its completion, which the module's completer thread runs with
//   the GIL (PyCallback; Note [The completer] in callback.cpp);
// - Note [Interpreter exit] (callback.cpp): at exit every live engine is
//   cancelled before the interpreter finalizes, and no thread of ours takes
//   the GIL after that.
#pragma once

#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "fanin/engine.h"
#include "fanin/error.h"

namespace fanin::python {

namespace nb = nanobind;
using namespace nanobind::literals;

// A numpy array that owns `values`: the vector is moved into a capsule, its
// buffer becomes the array's (no copy). GIL held. (Token ids; the float32
// results go through to_numpy, which is cheaper.)
template <typename T>
nb::ndarray<nb::numpy, T> owned_array(std::vector<T>&& values, const Shape& shape) {
  auto* owned = new std::vector<T>(std::move(values));
  nb::capsule owner(owned, [](void* p) noexcept { delete static_cast<std::vector<T>*>(p); });
  std::vector<size_t> dims(shape.begin(), shape.end());
  return nb::ndarray<nb::numpy, T>(owned->data(), dims.size(), dims.data(), owner);
}

// ---- result arrays (arrays.cpp: NumPy's C API) ----
// A numpy.ndarray made by the functions below (typed so for the stubs).
inline bool is_object(PyObject*) { return true; }
class F32Array : public nb::object {
  NB_OBJECT_DEFAULT(F32Array, object, "numpy.typing.NDArray[numpy.float32]", is_object)
};
// Loads NumPy's C API; at import, before anything below.
void init_numpy();
// A float32 numpy array of `shape` that owns `values` (moved into a capsule,
// its base: no copy). GIL held.
F32Array to_numpy(std::vector<float>&& values, const Shape& shape);
// A new, uninitialised float32 numpy array of `shape` that owns its buffer;
// *data points at it (to be filled, also with the GIL released, while the
// caller holds the array). GIL held.
F32Array empty_f32(const Shape& shape, float** data);

// ---- errors (errors.cpp) ----
// Installs the fanin::Error -> fanin.<Code> translator and _set_error_types.
void bind_errors(nb::module_& m);
// An instance of the Python class of e.code(), with e.message().
nb::object to_python(const Error& e);

// ---- the GIL and interpreter exit (callback.cpp) ----
// Releases the GIL for its scope (as nb::gil_scoped_release), and at
// interpreter exit parks a thread other than the exiting one instead of
// letting it take the GIL back (Note [Interpreter exit]).
class GilRelease {
 public:
  GilRelease();
  ~GilRelease();
  GilRelease(const GilRelease&) = delete;
  GilRelease& operator=(const GilRelease&) = delete;

 private:
  PyThreadState* state_;
};

// A Python callable called at most once, on the completer thread, as
// fn(result, error): the result as a numpy array and None, or None and a
// fanin.Error; or a concurrent.futures.Future completed there with
// set_result(result) or set_exception(error) (Note [The completer]).
// Holding, completing or dropping it needs no GIL and takes none: the call,
// or the drop of an uncalled target, is queued for the completer (which, at
// interpreter exit, leaks the target rather than touch the interpreter).
// The outcome of a Future's request (Note [Waiting on a Future] in
// callback.cpp): the engine's callback fills it (no GIL) and wakes a thread
// waiting in Future.result(); that thread or the completer, whichever
// claims it first (GIL held), completes the Future.
struct Outcome {
  std::mutex mu;               // guards everything below
  std::condition_variable cv;  // ready or woken
  PyObject* future = nullptr;  // a strong reference until claimed (or dropped)
  bool ready = false;          // response or error is set
  bool claimed = false;        // taken to complete the Future (or dropped)
  bool waiting = false;        // a thread is inside wait()
  bool handed = false;         // the engine left the completion to that waiter
  bool woken = false;          // a waiter is to stop waiting (the Future was cancelled)
  bool first_row = false;      // the result is the response's row 0 ([dim] for one text)
  Response response;
  std::optional<Error> error;
};
// If `o` is ready and unclaimed: claims it and completes its Future with
// set_result / set_exception (one cancelled meanwhile stays cancelled);
// true if it claimed. GIL held.
bool claim_outcome(Outcome& o);
// Outcome.wait returned True on this thread: until its hand_back(o), the
// thread is completing o's Future, and flush_completions returns at once on
// it (Note [Waiting on a Future]).
void note_completing(const Outcome& o);
// A waiter that was handed `o` and did not claim it hands it to the
// completer; nothing otherwise. Ends this thread's note_completing(o). GIL
// held or not.
void hand_back(const std::shared_ptr<Outcome>& o);

class PyCallback {
 public:
  explicit PyCallback(nb::callable fn);  // GIL held
  // A Future, completed through `outcome`, which takes a reference to it
  // (Note [Waiting on a Future]).
  PyCallback(nb::handle future, std::shared_ptr<Outcome> outcome);  // GIL held
  ~PyCallback();
  PyCallback(const PyCallback&) = delete;
  PyCallback& operator=(const PyCallback&) = delete;

  // Queues the call or the completion of the Future; later calls do
  // nothing. Any thread, no GIL.
  void complete(Response response, const Error* error) noexcept;

 private:
  PyObject* target_;  // a strong reference until completed
  std::shared_ptr<Outcome> outcome_;  // for a Future
};

// Engines register while they live, so that interpreter exit cancels them.
void register_engine(Engine* engine);
void unregister_engine(Engine* engine);
// Waits until the completions queued so far have run (Note [The
// completer]); GIL released. Returns at once on the completer itself, on a
// thread completing a Future (note_completing) and at interpreter exit.
void flush_completions();
// True once interpreter exit has begun (atexit).
bool exiting() noexcept;
void bind_lifetime(nb::module_& m);

// ---- options (options.cpp) ----
void bind_options(nb::module_& m);
// fanin.CancelToken. Requests hold its C++ token, never the Python object:
// an engine thread that drops a request then drops no Python reference (a
// shared_ptr cast from Python would take the GIL to release it there).
struct PyCancelToken {
  std::shared_ptr<CancelToken> token = std::make_shared<CancelToken>();
};
inline std::shared_ptr<CancelToken> token_of(const PyCancelToken* t) {
  return t != nullptr ? t->token : nullptr;
}
// Per-request options from the Python arguments: priority, timeout in
// seconds (None: the engine's default), a cancel token, truncation.
RequestOptions request_options(int priority, std::optional<double> timeout,
                               std::shared_ptr<CancelToken> token, bool truncate = true);

// ---- engines (engine.cpp) ----
void bind_engine(nb::module_& m);

}  // namespace fanin::python
