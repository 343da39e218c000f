// python/src/arrays.cpp: the float32 result arrays, made with NumPy's C API.
//
// A result is a numpy array at once, not a nanobind ndarray that numpy then
// wraps (numpy.asarray over the buffer protocol: a Python-level call, a
// memoryview and two more objects per result, made and freed with the GIL
// held). Built against NumPy 2 headers, which target NumPy >= 1.23 at run
// time by default. The only file that includes NumPy's headers (its
// PyArray_API table is static here).
#define NPY_NO_DEPRECATED_API NPY_1_7_API_VERSION
#include <numpy/arrayobject.h>

#include <cstring>

#include "common.h"

namespace fanin::python {
namespace {

void free_owned(PyObject* capsule) noexcept {
  delete static_cast<std::vector<float>*>(PyCapsule_GetPointer(capsule, nullptr));
}

void dims_of(const Shape& shape, npy_intp* dims, const char* op) {
  if (shape.size() > static_cast<size_t>(NPY_MAXDIMS))
    throw Error(ErrorCode::kInvalidArgument,
                std::string("[") + op + "] result has " + std::to_string(shape.size()) + " dimensions");
  for (size_t i = 0; i < shape.size(); ++i) dims[i] = static_cast<npy_intp>(shape[i]);
}

}  // namespace

void init_numpy() {
  if (_import_array() < 0) throw nb::python_error();
}

F32Array to_numpy(std::vector<float>&& values, const Shape& shape) {
  npy_intp dims[NPY_MAXDIMS];
  dims_of(shape, dims, "result");
  const int nd = static_cast<int>(shape.size());
  if (values.empty()) {  // no buffer to hand over
    PyObject* a = PyArray_SimpleNew(nd, dims, NPY_FLOAT32);
    if (a == nullptr) throw nb::python_error();
    return nb::steal<F32Array>(a);
  }
  auto* owned = new std::vector<float>(std::move(values));
  PyObject* capsule = PyCapsule_New(owned, nullptr, free_owned);
  if (capsule == nullptr) {
    delete owned;
    throw nb::python_error();
  }
  PyObject* a = PyArray_SimpleNewFromData(nd, dims, NPY_FLOAT32, owned->data());
  if (a == nullptr) {
    Py_DECREF(capsule);
    throw nb::python_error();
  }
  // Steals the capsule, also when it fails.
  if (PyArray_SetBaseObject(reinterpret_cast<PyArrayObject*>(a), capsule) < 0) {
    Py_DECREF(a);
    throw nb::python_error();
  }
  return nb::steal<F32Array>(a);
}

F32Array empty_f32(const Shape& shape, float** data) {
  npy_intp dims[NPY_MAXDIMS];
  dims_of(shape, dims, "result");
  PyObject* a = PyArray_SimpleNew(static_cast<int>(shape.size()), dims, NPY_FLOAT32);
  if (a == nullptr) throw nb::python_error();
  *data = static_cast<float*>(PyArray_DATA(reinterpret_cast<PyArrayObject*>(a)));
  return nb::steal<F32Array>(a);
}

}  // namespace fanin::python
