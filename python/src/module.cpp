// python/src/module.cpp: the compiled module fanin._fanin. Its public face is
// the fanin package (python/fanin/), which wraps it.
#include "common.h"

NB_MODULE(_fanin, m) {
  m.doc() = "fanin's compiled core; use the fanin package (import fanin).";
  fanin::python::init_numpy();
  fanin::python::bind_errors(m);
  fanin::python::bind_lifetime(m);
  fanin::python::bind_options(m);
  fanin::python::bind_engine(m);
}
