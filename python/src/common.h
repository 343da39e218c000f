// python/src/common.h: what the binding files share. The bindings include
// only fanin's public headers (include/fanin/*.h).
//
// Threading contract of the module (docs/python.md, "Design"):
// - every call that tokenizes, waits for a queue or computes runs with the
//   GIL released (GilRelease);
// - engine callbacks run on engine threads and take the GIL themselves
//   (PyCallback);
// - Note [Interpreter exit] (callback.cpp): at exit every live engine is
//   cancelled before the interpreter finalizes, and no thread of ours takes
//   the GIL after that.
#pragma once

#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>

#include <atomic>
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
// buffer becomes the array's (no copy). GIL held.
template <typename T>
nb::ndarray<nb::numpy, T> owned_array(std::vector<T>&& values, const Shape& shape) {
  auto* owned = new std::vector<T>(std::move(values));
  nb::capsule owner(owned, [](void* p) noexcept { delete static_cast<std::vector<T>*>(p); });
  std::vector<size_t> dims(shape.begin(), shape.end());
  return nb::ndarray<nb::numpy, T>(owned->data(), dims.size(), dims.data(), owner);
}
inline nb::ndarray<nb::numpy, float> to_numpy(std::vector<float>&& values, const Shape& shape) {
  return owned_array(std::move(values), shape);
}

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

// A Python callable called at most once, from any thread, as
// fn(result, error): the result and None, or None and a fanin.Error.
// Holding it needs no GIL; calling or dropping it takes the GIL (or, at
// interpreter exit, leaks the callable rather than touch the interpreter).
class PyCallback {
 public:
  explicit PyCallback(nb::callable fn);  // GIL held
  ~PyCallback();
  PyCallback(const PyCallback&) = delete;
  PyCallback& operator=(const PyCallback&) = delete;

  // `make_result` runs with the GIL held, only when there is no error.
  template <typename MakeResult>
  void call(const Error* error, MakeResult&& make_result);

 private:
  bool acquire();  // takes the GIL unless the interpreter is exiting
  void release();
  PyObject* fn_;
  PyGILState_STATE gil_{};
};

// Engines register while they live, so that interpreter exit cancels them.
void register_engine(Engine* engine);
void unregister_engine(Engine* engine);
// True once interpreter exit has begun (atexit).
bool exiting() noexcept;
void bind_lifetime(nb::module_& m);

// ---- options (options.cpp) ----
void bind_options(nb::module_& m);
// Per-request options from the Python arguments: priority, timeout in
// seconds (None: the engine's default), a cancel token, truncation.
RequestOptions request_options(int priority, std::optional<double> timeout,
                               std::shared_ptr<CancelToken> token, bool truncate = true);

// ---- engines (engine.cpp) ----
void bind_engine(nb::module_& m);

template <typename MakeResult>
void PyCallback::call(const Error* error, MakeResult&& make_result) {
  if (!acquire()) return;
  {
    nb::object fn = nb::steal(fn_);
    fn_ = nullptr;
    try {
      if (error != nullptr)
        fn(nb::none(), to_python(*error));
      else
        fn(make_result(), nb::none());
    } catch (nb::python_error& e) {
      e.discard_as_unraisable(fn);
    } catch (const std::exception& e) {
      PyErr_SetString(PyExc_RuntimeError, e.what());
      PyErr_WriteUnraisable(fn.ptr());
    }
  }
  release();
}

}  // namespace fanin::python
