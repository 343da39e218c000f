// python/src/errors.cpp: fanin::Error as fanin.Error and one subclass per
// code. The classes are defined in Python (fanin/_errors.py, so that
// InvalidArgument can also be a ValueError) and handed over once at import.
#include <nanobind/stl/string.h>

#include "common.h"

namespace fanin::python {
namespace {

constexpr int kCodes = static_cast<int>(ErrorCode::kUnavailable) + 1;
// The Python class of each code, set once by _set_error_types at import and
// then only read; never released (engine threads may raise until exit).
PyObject* g_types[kCodes] = {};

PyObject* type_of(ErrorCode code) {
  PyObject* t = g_types[static_cast<int>(code)];
  return t != nullptr ? t : PyExc_RuntimeError;
}

void set_error_types(nb::dict types) {
  for (int i = 0; i < kCodes; ++i) {
    const char* name = to_string(static_cast<ErrorCode>(i));
    if (!types.contains(name))
      throw nb::key_error((std::string("_set_error_types: no class for ") + name).c_str());
    nb::object t = types[name];
    if (!PyType_Check(t.ptr()) || !PyType_IsSubtype(reinterpret_cast<PyTypeObject*>(t.ptr()),
                                                    reinterpret_cast<PyTypeObject*>(PyExc_Exception)))
      throw nb::type_error((std::string("_set_error_types: ") + name + " is not an exception class").c_str());
    Py_XDECREF(g_types[i]);
    g_types[i] = t.release().ptr();
  }
}


}  // namespace

nb::object to_python(const Error& e) {
  const std::string& text = e.message();
  return nb::borrow(type_of(e.code()))(nb::str(text.data(), text.size()));
}

namespace {

[[noreturn]] void raise_for_test(const std::string& code, const std::string& message) {
  for (int i = 0; i < kCodes; ++i)
    if (code == to_string(static_cast<ErrorCode>(i))) throw Error(static_cast<ErrorCode>(i), message);
  throw nb::value_error(("_raise: unknown error code " + code).c_str());
}

}  // namespace

void bind_errors(nb::module_& m) {
  // Codes the Engine API cannot produce on purpose from Python (a second
  // encoder on a busy command buffer, an allocator failure) are checked
  // through this hook; the others are raised by real inputs in the tests.
  m.def("_raise", &raise_for_test, "code"_a, "message"_a,
        "Testing: raises fanin::Error(code, message) from C++.");
  m.def("_set_error_types", &set_error_types, "types"_a,
        "Sets the Python class raised for each fanin::Error code (a dict by code name).");
  nb::register_exception_translator([](const std::exception_ptr& p, void*) {
    try {
      std::rethrow_exception(p);
    } catch (const Error& e) {
      PyErr_SetString(type_of(e.code()), e.message().c_str());
    }
  });
}

}  // namespace fanin::python
