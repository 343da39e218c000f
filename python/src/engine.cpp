// python/src/engine.cpp: fanin._fanin.Engine (one fanin::Engine) and Model.
// The Python classes fanin.SentenceEncoder and fanin.Engine (fanin/*.py)
// are built on these; every method here that tokenizes, waits or computes
// releases the GIL.
#include <nanobind/stl/optional.h>
#include <nanobind/stl/shared_ptr.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/unique_ptr.h>
#include <nanobind/stl/vector.h>

#include <algorithm>
#include <cstring>
#include <deque>
#include <numeric>

#include "common.h"
#include "fanin/device.h"
#include "fanin/model.h"
#include "fanin/sentence_encoder.h"
#include "fanin/stream.h"

namespace fanin::python {
namespace {

using std::chrono::milliseconds;

// One text as UTF-8 bytes: a str (lone surrogates kept as the bytes they
// stand for, so that fanin's UTF-8 check names them) or bytes as given.
std::string utf8_of(nb::handle item, size_t index, const char* op) {
  if (PyUnicode_Check(item.ptr())) {
    Py_ssize_t size = 0;
    if (const char* s = PyUnicode_AsUTF8AndSize(item.ptr(), &size)) return std::string(s, size);
    PyErr_Clear();
    for (const char* handler : {"surrogateescape", "surrogatepass"}) {
      if (PyObject* b = PyUnicode_AsEncodedString(item.ptr(), "utf-8", handler)) {
        nb::object bytes = nb::steal(b);
        return std::string(PyBytes_AS_STRING(b), static_cast<size_t>(PyBytes_GET_SIZE(b)));
      }
      PyErr_Clear();
    }
  } else if (PyBytes_Check(item.ptr())) {
    return std::string(PyBytes_AS_STRING(item.ptr()),
                       static_cast<size_t>(PyBytes_GET_SIZE(item.ptr())));
  }
  throw nb::type_error((std::string("[") + op + "] input " + std::to_string(index) + " is " +
                        nb::type_name(item.type()).c_str() + ", expected str or bytes")
                           .c_str());
}

// One text's UTF-8 bytes where they lie: a str's cached UTF-8 form (or a
// bytes object's buffer), valid while the caller holds the object, so that
// they can be copied with the GIL released. Empty `owned` unless the str
// needed an error handler (lone surrogates), then the bytes are in it.
struct Utf8View {
  const char* data = nullptr;
  size_t size = 0;
  std::string owned;
  std::string str() const { return data != nullptr ? std::string(data, size) : owned; }
};

Utf8View utf8_view(nb::handle item, const char* op) {
  Utf8View v;
  if (PyUnicode_Check(item.ptr())) {
    Py_ssize_t size = 0;
    if (const char* s = PyUnicode_AsUTF8AndSize(item.ptr(), &size)) {
      v.data = s;
      v.size = static_cast<size_t>(size);
      return v;
    }
    PyErr_Clear();
  } else if (PyBytes_Check(item.ptr())) {
    v.data = PyBytes_AS_STRING(item.ptr());
    v.size = static_cast<size_t>(PyBytes_GET_SIZE(item.ptr()));
    return v;
  }
  v.owned = utf8_of(item, 0, op);  // the error handlers, or the TypeError
  return v;
}

std::vector<std::string> texts_of(nb::handle texts, const char* op) {
  nb::object seq = nb::steal(PySequence_Fast(texts.ptr(), "expected a list of str"));
  if (!seq.is_valid()) throw nb::python_error();
  const Py_ssize_t n = PySequence_Fast_GET_SIZE(seq.ptr());
  PyObject** items = PySequence_Fast_ITEMS(seq.ptr());
  std::vector<std::string> out;
  out.reserve(static_cast<size_t>(n));
  for (Py_ssize_t i = 0; i < n; ++i) out.push_back(utf8_of(items[i], static_cast<size_t>(i), op));
  return out;
}

nb::tuple shape_tuple(const Shape& shape) {
  nb::list l;
  for (int64_t d : shape) l.append(d);
  return nb::tuple(l);
}

// Calls `submit` and waits for its future with the GIL released, in slices:
// a signal (Ctrl-C) between them cancels `token` and raises KeyboardInterrupt.
template <typename Submit>
Response submit_and_wait(Submit&& submit, CancelToken& token) {
  std::future<Response> f;
  for (bool first = true;; first = false) {
    {
      GilRelease nogil;
      if (first) f = submit();
      if (f.wait_for(milliseconds(50)) == std::future_status::ready) return f.get();
    }
    if (PyErr_CheckSignals() != 0) {
      token.cancel();
      throw nb::python_error();
    }
  }
}

using F32In = nb::ndarray<const float, nb::c_contig, nb::device::cpu>;

// A tensor request: one input of input_shape, or n of them ([n, ...]).
struct Rows {
  const F32In& array;
  int64_t n = 1;
  bool single = true;

  // The one copy, into the request the engine owns (GIL released: the
  // caller holds the array).
  std::vector<float> values() const { return {array.data(), array.data() + array.size()}; }

  template <typename Callback>
  void submit(Engine& e, const RequestOptions& o, Callback&& done) const {
    if (single)
      e.submit(values(), o, std::forward<Callback>(done));
    else
      e.submit_batch(values(), n, o, std::forward<Callback>(done));
  }
  std::future<Response> submit(Engine& e, const RequestOptions& o) const {
    return single ? e.submit(values(), o) : e.submit_batch(values(), n, o);
  }
};

Rows rows_of(const EngineInfo& info, const F32In& a, const char* op) {
  const Shape& in = info.input_shape;
  Shape got(a.ndim());
  for (size_t i = 0; i < a.ndim(); ++i) got[i] = static_cast<int64_t>(a.shape(i));
  if (got == in) return Rows{a};
  const bool batch = got.size() == in.size() + 1 && std::equal(in.begin(), in.end(), got.begin() + 1);
  if (!batch) {
    const std::string batch_shape = in.empty() ? "[n]" : "[n, " + to_string(in).substr(1);
    throw Error(ErrorCode::kInvalidArgument, std::string("[") + op + "] input has shape " +
                                                 to_string(got) + ", the model takes " +
                                                 to_string(in) + " or " + batch_shape);
  }
  return Rows{a, got[0], false};
}

// Texts in, rows of their embeddings out (row i for texts[i]): sorted by
// length (less padding in a batch), submitted `chunk` texts per request as
// fast as the queue takes them, collected in order. Holds the GIL only
// between waits.
std::vector<float> encode_texts(Engine& engine, const std::vector<std::string>& texts,
                                size_t chunk, RequestOptions options) {
  const size_t n = texts.size();
  const size_t dim = static_cast<size_t>(engine.info().output_shape.at(0));
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), size_t{0});
  if (n > chunk)
    std::stable_sort(order.begin(), order.end(),
                     [&](size_t a, size_t b) { return texts[a].size() > texts[b].size(); });
  std::vector<float> out(n * dim);
  auto token = std::make_shared<CancelToken>();
  options.cancel = token;
  struct Pending {
    size_t first;
    std::future<Response> result;
  };
  std::deque<Pending> pending;
  size_t next = 0;
  try {
    while (next < n || !pending.empty()) {
      {
        GilRelease nogil;
        while (next < n) {
          const size_t end = std::min(n, next + chunk);
          std::vector<std::string> part;
          part.reserve(end - next);
          for (size_t i = next; i < end; ++i) part.push_back(texts[order[i]]);
          try {
            pending.push_back({next, engine.submit_texts(std::move(part), options)});
          } catch (const Error& e) {
            // A full queue takes more once our oldest request is done.
            if (e.code() != ErrorCode::kQueueFull || pending.empty()) throw;
            break;
          }
          next = end;
        }
        if (!pending.empty() &&
            pending.front().result.wait_for(milliseconds(50)) == std::future_status::ready) {
          Response r = pending.front().result.get();
          const size_t first = pending.front().first;
          pending.pop_front();
          const size_t rows = r.output.size() / dim;
          for (size_t j = 0; j < rows; ++j)
            std::copy_n(r.output.data() + j * dim, dim, out.data() + order[first + j] * dim);
        }
      }
      if (PyErr_CheckSignals() != 0) throw nb::python_error();
    }
  } catch (...) {
    token->cancel();  // the rest of this call's requests are dropped
    throw;
  }
  return out;
}

nb::dict info_dict(const EngineInfo& i) {
  nb::dict d;
  d["kind"] = to_string(i.kind);
  d["model_name"] = i.model_name;
  d["input_shape"] = shape_tuple(i.input_shape);
  d["output_shape"] = shape_tuple(i.output_shape);
  d["dtype"] = to_string(i.dtype);
  d["input_dtype"] = to_string(i.input_dtype);
  d["output_dtype"] = to_string(i.output_dtype);
  d["max_length"] = i.max_length;
  d["vocab_size"] = i.vocab_size;
  d["max_batch_size"] = i.max_batch_size;
  d["max_tokens_per_batch"] = i.max_tokens_per_batch;
  d["devices"] = i.devices;
  return d;
}

nb::dict metrics_dict(const EngineMetrics& m) {
  nb::dict d;
  d["submitted"] = m.submitted;
  d["completed"] = m.completed;
  d["failed"] = m.failed;
  d["rejected_queue_full"] = m.rejected_queue_full;
  d["rejected_invalid"] = m.rejected_invalid;
  d["rejected_shutdown"] = m.rejected_shutdown;
  d["deadline_exceeded"] = m.deadline_exceeded;
  d["cancelled"] = m.cancelled;
  d["invalid_in_batch"] = m.invalid_in_batch;
  d["device_errors"] = m.device_errors;
  d["batches"] = m.batches;
  d["tokens"] = m.tokens;
  d["in_flight"] = m.in_flight;
  d["queue_length"] = m.queue_length;
  d["batch_fill"] = m.batch_fill;
  d["latency_bounds_us"] = m.latency_bounds_us;
  d["queue_us_hist"] = m.queue_us_hist;
  d["compute_us_hist"] = m.compute_us_hist;
  d["queue_us_sum"] = m.queue_us_sum;
  d["compute_us_sum"] = m.compute_us_sum;
  d["device_failures"] = m.device_failures;
  nb::list workers;
  for (const auto& w : m.workers) {
    nb::dict x;
    x["device"] = w.device;
    x["stream_id"] = w.stream_id;
    x["batches"] = w.batches;
    x["requests"] = w.requests;
    x["busy_us"] = w.busy_us;
    workers.append(x);
  }
  d["workers"] = workers;
  nb::list devices;
  for (const auto& v : m.devices) {
    nb::dict x;
    x["name"] = v.name;
    x["healthy"] = v.healthy;
    x["batches"] = v.batches;
    x["requests"] = v.requests;
    x["failed_batches"] = v.failed_batches;
    x["busy_us"] = v.busy_us;
    x["failure"] = v.failure;
    devices.append(x);
  }
  d["devices"] = devices;
  return d;
}

// A fanin::Engine owned by Python. Registered while it lives, so that
// interpreter exit cancels it (Note [Interpreter exit]).
class PyEngine {
 public:
  explicit PyEngine(std::unique_ptr<Engine> engine) : engine_(std::move(engine)) {
    register_engine(engine_.get());
  }
  // Drains the engine; does not wait for the completer to run its
  // completions, as drain() does: this runs wherever the last reference
  // goes, also in a garbage collection under a lock the completer needs
  // (Note [The completer]).
  ~PyEngine() {
    unregister_engine(engine_.get());
    GilRelease nogil;  // the drain waits for the workers
    engine_.reset();
  }
  PyEngine(const PyEngine&) = delete;
  PyEngine& operator=(const PyEngine&) = delete;
  Engine& operator*() const { return *engine_; }
  Engine* operator->() const { return engine_.get(); }

 private:
  std::unique_ptr<Engine> engine_;
};

// The engine's callback for `done`: queues the completion (Note [The
// completer]); on the engine thread, no GIL.
Engine::Callback callback_of(nb::callable done) {
  auto cb = std::make_shared<PyCallback>(std::move(done));
  return [cb](Response r, const Error* error) { cb->complete(std::move(r), error); };
}

// The Outcome of a Future's request, as Python holds it (_Future._outcome):
// Note [Waiting on a Future] in callback.cpp.
struct PyOutcome {
  std::shared_ptr<Outcome> outcome = std::make_shared<Outcome>();
};

// The same for a concurrent.futures.Future: the engine fills `o`, and the
// completer or a waiter completes the Future with set_result /
// set_exception (no Python callable in between).
Engine::Callback callback_to(nb::handle future, const PyOutcome& o, bool first_row) {
  o.outcome->first_row = first_row;
  auto cb = std::make_shared<PyCallback>(future, o.outcome);
  return [cb](Response r, const Error* error) { cb->complete(std::move(r), error); };
}

void bind_outcome(nb::module_& m) {
  nb::class_<PyOutcome>(m, "Outcome", "The outcome of a Future's request (Note [Waiting on a Future]).")
      .def(nb::init<>())
      .def(
          "wait",
          [](const PyOutcome& self, std::optional<double> timeout) {
            // Until the engine has filled it, wake() or `timeout` seconds
            // (None: no limit), in 50 ms slices with a signal check between.
            Outcome& o = *self.outcome;
            using Clock = std::chrono::steady_clock;
            const auto end = timeout ? Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                                          std::chrono::duration<double>(
                                                              std::max(0.0, std::min(*timeout, 1e9))))
                                     : Clock::time_point::max();
            for (;;) {
              {
                GilRelease nogil;
                std::unique_lock<std::mutex> lock(o.mu);
                const auto slice = std::min(end, Clock::now() + milliseconds(50));
                // While `waiting`, the engine leaves the completion to us
                // (Note [Waiting on a Future]); a ready outcome returns
                // True, and the caller claims it or hands it back.
                o.waiting = !o.woken;
                o.cv.wait_until(lock, slice, [&] { return o.ready || o.woken; });
                o.waiting = false;
                if (o.ready) {
                  note_completing(o);  // until the caller's hand_back
                  return true;
                }
                if (o.woken || Clock::now() >= end) return false;
              }
              if (PyErr_CheckSignals() != 0) throw nb::python_error();
            }
          },
          "timeout"_a.none(),
          "Waits (GIL released) until the result or error is in; False on timeout or wake(). "
          "Then (in a finally) hand_back(), after claim() if it returned True.")
      .def("claim", [](const PyOutcome& self) { return claim_outcome(*self.outcome); },
           "Completes the Future from the outcome unless it is claimed already; GIL held.")
      .def("hand_back", [](const PyOutcome& self) { hand_back(self.outcome); },
           "Leaves the completion to the completer, if wait() was handed it and claim() did not run.")
      .def(
          "wake",
          [](const PyOutcome& self) {
            {
              std::lock_guard<std::mutex> lock(self.outcome->mu);
              self.outcome->woken = true;
            }
            self.outcome->cv.notify_all();
          },
          "Ends a wait() (the Future was cancelled).");
}

std::unique_ptr<PyEngine> engine_for_encoder(const std::string& folder, const std::string& devices,
                                             const std::string& dtype, int max_length,
                                             const EngineOptions& options) {
  if (exiting()) throw Error(ErrorCode::kUnavailable, "[SentenceEncoder] the interpreter is exiting");
  const DType dt = parse_dtype(dtype);
  GilRelease nogil;
  auto replicas = load_replicas<SentenceEncoder>(Device::list(devices), [&](Device& d) {
    return SentenceEncoder::load(folder, d, dt, max_length);
  });
  return std::make_unique<PyEngine>(std::make_unique<Engine>(std::move(replicas), options));
}

std::unique_ptr<PyEngine> engine_for_models(const std::vector<std::shared_ptr<Model>>& models,
                                            const EngineOptions& options) {
  if (exiting()) throw Error(ErrorCode::kUnavailable, "[Engine] the interpreter is exiting");
  std::vector<std::shared_ptr<const Model>> replicas(models.begin(), models.end());
  GilRelease nogil;
  return std::make_unique<PyEngine>(std::make_unique<Engine>(std::move(replicas), options));
}

void bind_model(nb::module_& m) {
  nb::class_<Model>(m, "Model", "A batched model (e.g. the MLP) to serve with fanin.Engine.")
      .def_prop_ro("name", &Model::name)
      .def_prop_ro("device", [](const Model& x) { return x.device().name(); })
      .def_prop_ro("input_shape", [](const Model& x) { return shape_tuple(x.input_shape()); })
      .def_prop_ro("output_shape", [](const Model& x) { return shape_tuple(x.output_shape()); })
      .def_prop_ro("dtype", [](const Model& x) { return std::string(to_string(x.dtype())); })
      .def("__repr__", [](const Model& x) { return "<fanin.Model " + x.name() + " on " + x.device().name() + ">"; })
      .def_static(
          "mlp",
          [](std::vector<int64_t> dims, uint64_t seed, const std::string& device,
             const std::string& dtype, const std::string& activation) -> std::shared_ptr<Model> {
            MlpConfig c;
            c.dims = std::move(dims);
            c.dtype = parse_dtype(dtype);
            c.activation = parse_activation(activation);
            GilRelease nogil;
            return Mlp::random(c, seed, Device::get(device));
          },
          "dims"_a = std::vector<int64_t>{512, 1024, 1024, 512}, "seed"_a = 0,
          "device"_a = "cpu", "dtype"_a = "float32", "activation"_a = "relu",
          "An MLP with deterministic random weights (uniform in +-1/sqrt(fan_in)).")
      .def_static(
          "load_mlp",
          [](const std::string& path, const std::string& device,
             const std::string& activation) -> std::shared_ptr<Model> {
            const Activation act = parse_activation(activation);
            GilRelease nogil;
            return Mlp::load(path, Device::get(device), act);
          },
          "path"_a, "device"_a = "cpu", "activation"_a = "relu",
          "An MLP from a .safetensors file (layers.N.weight, layers.N.bias).");
}

}  // namespace

void bind_engine(nb::module_& m) {
  bind_model(m);
  bind_outcome(m);
  m.def("available_devices", &Device::available, "Names of the devices present, e.g. ['cpu', 'cuda:0'].");
  m.def(
      "device_names",
      [](const std::string& spec) {
        std::vector<std::string> names;
        for (Device* d : Device::list(spec)) names.push_back(d->name());
        return names;
      },
      "spec"_a, "The devices of a spec ('cpu', 'cuda:1', 'cuda:0,cuda:1', 'all').");
  m.def(
      "free_stream_slots",
      [](const std::string& device) {
        StreamPool& pool = Device::get(device).stream_pool();
        return pool.size() - pool.leased();
      },
      "device"_a, "Stream slots of the device's pool not leased now (each engine worker leases one).");
  m.def(
      "_set_device_fault",
      [](const std::string& device, const std::string& reason) { Device::get(device).set_fault(reason); },
      "device"_a, "reason"_a,
      "Testing: every later host wait on the device fails with DeviceError (empty reason: clears).");

  nb::class_<PyEngine>(m, "Engine", "One fanin::Engine: a batch queue and its workers.")
      .def_static("for_encoder", &engine_for_encoder, "model_dir"_a, "devices"_a, "dtype"_a,
                  "max_length"_a, "options"_a)
      .def_static("for_models", &engine_for_models, "models"_a, "options"_a)
      .def("info", [](const PyEngine& e) { return info_dict(e->info()); })
      .def("ready", [](const PyEngine& e) { return e->ready(); })
      .def("metrics", [](const PyEngine& e) { return metrics_dict(e->metrics()); })
      .def("prometheus", [](const PyEngine& e) { return e->prometheus(); })
      .def(
          "drain",
          [](PyEngine& e, std::optional<double> timeout) {
            const milliseconds t =
                timeout ? std::chrono::duration_cast<milliseconds>(std::chrono::duration<double>(
                              std::max(0.0, std::min(*timeout, 1e9))))
                        : milliseconds::max();
            GilRelease nogil;
            const bool all = e->drain(t);
            flush_completions();  // the Futures of what finished are done
            return all;
          },
          "timeout"_a = nb::none())
      .def("cancel",
           [](PyEngine& e) {
             GilRelease nogil;
             e->cancel();
             flush_completions();  // every Future of this engine is done
           })
      .def(
          "tokenize",
          [](const PyEngine& e, nb::handle texts) {
            const std::vector<std::string> strings = texts_of(texts, "tokenize");
            std::vector<Tokenized> tokens(strings.size());
            {
              GilRelease nogil;
              for (size_t i = 0; i < strings.size(); ++i) tokens[i] = e->tokenize(strings[i]);
            }
            nb::list ids, truncated;
            for (Tokenized& t : tokens) {
              const Shape shape{static_cast<int64_t>(t.ids.size())};
              ids.append(owned_array(std::move(t.ids), shape));
              truncated.append(t.truncated);
            }
            return nb::make_tuple(ids, truncated);
          },
          "texts"_a, "Token ids ([CLS] ... [SEP]) of each text, and whether it was cut.")
      .def(
          "encode",
          [](PyEngine& e, nb::handle texts, int chunk, int priority, std::optional<double> timeout,
             bool truncate) {
            const std::vector<std::string> strings = texts_of(texts, "encode");
            if (chunk < 1)
              throw Error(ErrorCode::kInvalidArgument,
                          "[encode] batch_size must be >= 1, got " + std::to_string(chunk));
            const int64_t dim = e->info().output_shape.at(0);
            std::vector<float> rows = encode_texts(*e, strings, static_cast<size_t>(chunk),
                                                   request_options(priority, timeout, {}, truncate));
            return to_numpy(std::move(rows), {static_cast<int64_t>(strings.size()), dim});
          },
          "texts"_a, "chunk"_a, "priority"_a, "timeout"_a.none(), "truncate"_a,
          "Embeddings of texts, [n, dim], row i for texts[i]; blocks with the GIL released.")
      .def(
          "encode_one",
          [](PyEngine& e, nb::handle text, int chunk, int priority, std::optional<double> timeout) {
            // encode(one str or bytes), the fast path (docs/python.md,
            // "Design"): one request; the GIL released once, for the copy of
            // the text, the submit, the wait, the copy of the row into the
            // [dim] array made before it, and the free of the response.
            const Utf8View view = utf8_view(text, "encode");
            if (chunk < 1)
              throw Error(ErrorCode::kInvalidArgument,
                          "[encode] batch_size must be >= 1, got " + std::to_string(chunk));
            const int64_t dim = e->info().output_shape.at(0);
            auto token = std::make_shared<CancelToken>();
            const RequestOptions o = request_options(priority, timeout, token);
            float* out = nullptr;
            F32Array array = empty_f32({dim}, &out);
            std::future<Response> f;
            for (bool first = true;; first = false) {
              {
                GilRelease nogil;
                if (first) {
                  std::vector<std::string> texts;
                  texts.push_back(view.str());
                  f = e->submit_texts(std::move(texts), o);
                }
                if (f.wait_for(milliseconds(50)) == std::future_status::ready) {
                  Response r = f.get();
                  if (r.output.size() != static_cast<size_t>(dim))
                    throw Error(ErrorCode::kDeviceError,
                                "[encode] the engine returned " + std::to_string(r.output.size()) +
                                    " floats for one text, expected " + std::to_string(dim));
                  std::memcpy(out, r.output.data(), r.output.size() * sizeof(float));
                  break;  // r is freed here, with the GIL released
                }
              }
              if (PyErr_CheckSignals() != 0) {
                token->cancel();
                throw nb::python_error();
              }
            }
            return array;
          },
          "text"_a, "chunk"_a, "priority"_a, "timeout"_a.none(),
          "The [dim] embedding of one str or bytes; blocks with the GIL released (once).")
      .def(
          "run",
          [](PyEngine& e, const F32In& x, int priority, std::optional<double> timeout) {
            auto token = std::make_shared<CancelToken>();
            const RequestOptions o = request_options(priority, timeout, token);
            const Rows rows = rows_of(e->info(), x, "Engine.run");
            Response r = submit_and_wait([&] { return rows.submit(*e, o); }, *token);
            return to_numpy(std::move(r.output), r.shape);
          },
          "x"_a, "priority"_a, "timeout"_a.none(),
          "The model's output for one input or a batch [n, ...]; blocks with the GIL released.")
      .def(
          "submit_rows",
          [](PyEngine& e, const F32In& x, nb::callable done, const PyCancelToken* token,
             int priority, std::optional<double> timeout) {
            const RequestOptions o = request_options(priority, timeout, token_of(token));
            const Rows rows = rows_of(e->info(), x, "Engine.submit");
            Engine::Callback cb = callback_of(std::move(done));
            GilRelease nogil;
            rows.submit(*e, o, std::move(cb));
          },
          "x"_a, "done"_a, "token"_a.none(), "priority"_a, "timeout"_a.none(),
          "Submits rows; done(result, error) is called once, on the completer thread.")
      .def(
          "submit_texts",
          [](PyEngine& e, nb::handle texts, nb::callable done, const PyCancelToken* token,
             int priority, std::optional<double> timeout, bool truncate) {
            std::vector<std::string> strings = texts_of(texts, "submit");
            const RequestOptions o = request_options(priority, timeout, token_of(token), truncate);
            Engine::Callback cb = callback_of(std::move(done));
            GilRelease nogil;
            e->submit_texts(std::move(strings), o, std::move(cb));
          },
          "texts"_a, "done"_a, "token"_a.none(), "priority"_a, "timeout"_a.none(), "truncate"_a,
          "Submits texts; done(result [n, dim], error) is called once, on the completer thread.")
      .def(
          "submit_rows_to",
          [](PyEngine& e, const F32In& x, nb::handle future, const PyOutcome& outcome,
             const PyCancelToken* token, int priority, std::optional<double> timeout) {
            const RequestOptions o = request_options(priority, timeout, token_of(token));
            const Rows rows = rows_of(e->info(), x, "Engine.submit");
            Engine::Callback cb = callback_to(future, outcome, false);
            GilRelease nogil;
            rows.submit(*e, o, std::move(cb));
          },
          "x"_a, "future"_a, "outcome"_a, "token"_a.none(), "priority"_a, "timeout"_a.none(),
          "Submits rows; the concurrent.futures.Future gets the result or the error, on the "
          "completer thread.")
      .def(
          "submit_texts_to",
          [](PyEngine& e, nb::handle texts, nb::handle future, const PyOutcome& outcome,
             const PyCancelToken* token, int priority, std::optional<double> timeout, bool truncate) {
            // One str or bytes: its [dim] row; else a sequence: [n, dim].
            const bool one = PyUnicode_Check(texts.ptr()) || PyBytes_Check(texts.ptr());
            std::vector<std::string> strings;
            Utf8View view;
            if (one)
              view = utf8_view(texts, "submit");
            else
              strings = texts_of(texts, "submit");
            const RequestOptions o = request_options(priority, timeout, token_of(token), truncate);
            Engine::Callback cb = callback_to(future, outcome, one);
            GilRelease nogil;
            if (one) strings.push_back(view.str());
            e->submit_texts(std::move(strings), o, std::move(cb));
          },
          "texts"_a, "future"_a, "outcome"_a, "token"_a.none(), "priority"_a, "timeout"_a.none(),
          "truncate"_a,
          "Submits one text ([dim] result) or a sequence ([n, dim]); the concurrent.futures.Future "
          "gets the result or the error, on the completer thread.");
}

}  // namespace fanin::python
