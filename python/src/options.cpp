// python/src/options.cpp: fanin.EngineOptions (the batching knobs, durations
// in seconds as Python code expects) and per-request options.
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <cmath>

#include "common.h"

namespace fanin::python {
namespace {

using Micros = std::chrono::microseconds;

template <typename Duration>
Duration from_seconds(double s, const char* name) {
  if (!std::isfinite(s) || s < 0)
    throw Error(ErrorCode::kInvalidArgument,
                std::string("[EngineOptions] ") + name + " must be a finite number of seconds >= 0, got " +
                    std::to_string(s));
  return std::chrono::duration_cast<Duration>(std::chrono::duration<double>(s));
}

// A read-write property in seconds over a std::chrono member.
template <typename Duration, Duration EngineOptions::*member>
void seconds_property(nb::class_<EngineOptions>& c, const char* name, const char* doc) {
  c.def_prop_rw(
      name, [](const EngineOptions& o) { return std::chrono::duration<double>(o.*member).count(); },
      [name](EngineOptions& o, double s) { o.*member = from_seconds<Duration>(s, name); },
      doc);
}

std::string repr(nb::handle self) {
  std::string out = "EngineOptions(";
  bool first = true;
  for (const char* name : {"workers", "max_batch_size", "max_queue_delay", "preferred_batch_sizes",
                           "max_queue_length", "priority_levels", "default_timeout",
                           "max_tokens_per_batch", "adaptive_queue_delay", "check_inputs",
                           "use_graphs", "lease_timeout",
                           "warmup"}) {
    out += (first ? "" : ", ") + std::string(name) + "=" +
           nb::cast<std::string>(nb::repr(self.attr(name)));
    first = false;
  }
  return out + ")";
}

}  // namespace

RequestOptions request_options(int priority, std::optional<double> timeout,
                               std::shared_ptr<CancelToken> token, bool truncate) {
  RequestOptions o;
  o.priority = priority;
  if (timeout) o.deadline = deadline_after(from_seconds<Micros>(*timeout, "timeout"));
  o.cancel = std::move(token);
  o.truncate = truncate;
  return o;
}

void bind_options(nb::module_& m) {
  nb::class_<PyCancelToken>(m, "CancelToken",
                            "Cancels the requests submitted with it (thread-safe).")
      .def(nb::init<>())
      .def("cancel", [](PyCancelToken& t) { t.token->cancel(); })
      .def_prop_ro("cancelled", [](const PyCancelToken& t) { return t.token->cancelled(); });

  nb::class_<EngineOptions> c(m, "EngineOptions",
                              "The batching knobs of an engine; durations in seconds. "
                              "EngineOptions(workers=4, max_batch_size=128, ...).");
  c.def("__init__",
        [](EngineOptions* self, nb::kwargs kwargs) {
          // Keyword arguments go through the properties below (their checks
          // and conversions) on a temporary, then into *self.
          EngineOptions tmp;
          nb::object view = nb::cast(&tmp, nb::rv_policy::reference);
          for (auto [key, value] : kwargs) {
            if (!nb::hasattr(view, key))
              throw nb::type_error(("EngineOptions() got an unexpected keyword argument '" +
                                    nb::cast<std::string>(key) + "'")
                                       .c_str());
            nb::setattr(view, key, value);
          }
          new (self) EngineOptions(std::move(tmp));
        })
      .def_rw("workers", &EngineOptions::workers, "Worker threads per device (each a stream lease).")
      .def_rw("max_batch_size", &EngineOptions::max_batch_size, "Requests per batch.")
      .def_rw("preferred_batch_sizes", &EngineOptions::preferred_batch_sizes,
              "Batch sizes a batch is padded up to (tensor engines with graphs).")
      .def_rw("max_queue_length", &EngineOptions::max_queue_length,
              "Queued inputs beyond which submit raises QueueFull.")
      .def_rw("priority_levels", &EngineOptions::priority_levels,
              "Request priorities are 0 (most urgent) .. priority_levels - 1.")
      .def_rw("max_tokens_per_batch", &EngineOptions::max_tokens_per_batch,
              "Text engines: token budget of a batch (0: none).")
      .def_rw("adaptive_queue_delay", &EngineOptions::adaptive_queue_delay,
              "Skip the max_queue_delay wait when requests come too sparsely for it to bring "
              "another (False: always wait for a batch that is not full).")
      .def_rw("check_inputs", &EngineOptions::check_inputs,
              "Fail a request with NaN/Inf inputs alone (InvalidArgument).")
      .def_rw("use_graphs", &EngineOptions::use_graphs,
              "Capture the forward pass per (worker, batch size) (tensor engines).")
      .def_rw("warmup", &EngineOptions::warmup,
              "Run warm-up batches before the constructor returns.")
      .def("__copy__", [](const EngineOptions& o) { return o; })
      .def("__repr__", &repr);
  seconds_property<Micros, &EngineOptions::max_queue_delay>(
      c, "max_queue_delay", "Longest wait for a fuller batch, in seconds.");
  seconds_property<Micros, &EngineOptions::default_timeout>(
      c, "default_timeout", "Deadline of a request without a timeout, in seconds (0: none).");
  seconds_property<std::chrono::milliseconds, &EngineOptions::lease_timeout>(
      c, "lease_timeout", "Longest wait of a worker for its stream lease, in seconds.");
}

}  // namespace fanin::python
