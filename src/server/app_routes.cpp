// The routes of fanin serve (Note [Serving routes] in docs/server.md): each
// parses with api/, calls the Engine, and formats in the engine's callback.
#include <algorithm>
#include <cstring>
#include <optional>

#include "fanin/allocator.h"
#include "fanin/device.h"
#include "server/api/embeddings.h"
#include "server/api/json.h"
#include "server/api/openai.h"
#include "server/api/tei.h"
#include "server/app_impl.h"

namespace fanin::server {
namespace {

HttpResponse json_response(std::string body) {
  HttpResponse r;
  r.body = std::move(body);
  return r;
}

// Submits a request of `inputs.size()` inputs through `submit(options,
// callback)` and finishes `call` with format(response) when the engine
// calls back (on its worker thread). Holds the in-flight budget meanwhile.
template <typename Submit, typename Format>
void run(App::Impl& im, const CallPtr& call, const std::shared_ptr<Engine>& engine, int64_t n,
         const RequestOptions& options, Submit&& submit, Format&& format) {
  if (!im.admit(*call, n)) return;
  call->inputs = n;
  const Clock::time_point t0 = Clock::now();
  App::Impl* impl = &im;
  try {
    submit(*engine, options, [impl, call, n, t0, format](Response r, const Error* e) mutable {
      const Clock::time_point called = Clock::now();
      impl->release(n);
      std::optional<Error> error;
      if (e != nullptr) error = *e;
      // Formatted off the engine's worker (App::set_executor).
      auto reply = [impl, call, called, t0, format = std::move(format), r = std::move(r),
                    error = std::move(error)]() mutable {
        if (error) return impl->fail(*call, *error);
        const Clock::time_point begun = Clock::now();
        call->queue_us = r.queue_us;
        call->inference_us = r.compute_us;
        call->tokens = r.tokens;
        // Note [Reply path]: the batch's results were ready at enqueue +
        // queue + compute; enqueue follows tokenization on the submitting
        // thread.
        const double ready_us = call->tokenization_us.load(std::memory_order_relaxed) +
                                r.queue_us + r.compute_us;
        call->resolve_us = std::max(0.0, micros(called - t0) - ready_us);
        call->handoff_us = micros(begun - called);
        try {
          HttpResponse formatted = format(r);
          call->format_us = micros(Clock::now() - begun);
          impl->finish(*call, std::move(formatted));
        } catch (const api::ApiError& ae) {
          impl->fail(*call, ae);
        } catch (const std::exception& ex) {
          impl->fail(*call, api::Reason::kDeviceError, std::string("formatting failed: ") + ex.what());
        }
      };
      // On the connection's own I/O thread where the server says which
      // (one hand-off: the Respond after it is a local post), else on any.
      if (call->post) call->post(std::move(reply));
      else if (impl->post) impl->post(std::move(reply));
      else reply();
    });
  } catch (const Error& e) {
    im.release(n);
    im.fail(*call, e);
    return;
  }
  // Tokenization happens inside submit, on this thread.
  call->tokenization_us.store(micros(Clock::now() - t0), std::memory_order_relaxed);
}

// `dimensions` above the model's output size is the client's mistake: said
// before any compute, naming the field.
bool check_dimensions(App::Impl& im, Call& call, const Engine& engine, std::optional<int> d) {
  const int64_t dim = engine.info().output_shape.back();
  if (!d || *d <= dim) return true;
  im.fail(call, api::Reason::kValidation,
          "`dimensions` " + std::to_string(*d) + " is larger than the model's " +
              std::to_string(dim),
          "dimensions");
  return false;
}

// Sends texts or token ids, as parsed.
void submit_inputs(Engine& engine, api::EmbeddingInputs& in, const RequestOptions& o,
                   Engine::Callback done) {
  if (in.tokens) engine.submit_token_ids(std::move(in.token_ids), o, std::move(done));
  else engine.submit_texts(std::move(in.texts), o, std::move(done));
}

}  // namespace

void App::Impl::openai_embeddings(const CallPtr& call, const HttpRequest& req) {
  std::shared_ptr<Engine> engine = ready_engine(*call);
  if (!engine) return;
  auto parsed = std::make_shared<api::OpenAIEmbeddingsRequest>(
      api::parse_openai_embeddings(req.body, limits()));
  call->batch = parsed->inputs.batch;
  if (!parsed->model.empty() && !known_model(parsed->model)) {
    const std::string msg = "the model '" + parsed->model.substr(0, 200) +
                            "' does not exist; this server serves '" + options.served_model_name + "'";
    if (options.strict_model) return fail(*call, api::Reason::kNotFound, msg, "model");
    log_line("fanin: warning: " + msg + " (answering with it anyway; --strict-model refuses)");
  }
  if (!check_dimensions(*this, *call, *engine, parsed->dimensions)) return;
  const int64_t n = static_cast<int64_t>(parsed->inputs.size());
  const RequestOptions o = request_options(req, std::nullopt);
  const std::string model = parsed->model.empty() ? options.served_model_name : parsed->model;
  run(*this, call, engine, n, o,
      [&](Engine& e, const RequestOptions& ro, Engine::Callback done) {
        submit_inputs(e, parsed->inputs, ro, std::move(done));
      },
      [parsed, model](Response& r) {
        const int64_t dim = r.shape.back();
        const int64_t n_rows = r.shape.front();
        const int64_t d = api::apply_dimensions(r.output, n_rows, dim, parsed->dimensions);
        return json_response(api::format_openai_embeddings(r.output.data(), n_rows, d,
                                                           parsed->base64, model, r.tokens));
      });
}

void App::Impl::openai_models(const CallPtr& call) {
  finish(*call, json_response(api::format_openai_models(options.served_model_name)));
}

void App::Impl::tei_embed(const CallPtr& call, const HttpRequest& req) {
  std::shared_ptr<Engine> engine = ready_engine(*call);
  if (!engine) return;
  auto parsed = std::make_shared<api::TeiEmbedRequest>(api::parse_tei_embed(req.body, limits()));
  call->batch = parsed->inputs.batch;
  if (parsed->truncate_left)
    return fail(*call, api::Reason::kValidation,
                "truncation_direction Left is not supported: inputs are cut on the right",
                "truncation_direction");
  if (!parsed->normalize)
    return fail(*call, api::Reason::kValidation,
                "normalize=false is not supported: this model's embeddings are L2-normalised",
                "normalize");
  if (parsed->prompt_name)
    return fail(*call, api::Reason::kValidation,
                "`prompt_name` is not supported: this model has no prompts", "prompt_name");
  if (!check_dimensions(*this, *call, *engine, parsed->dimensions)) return;
  const int64_t n = static_cast<int64_t>(parsed->inputs.size());
  const size_t characters = parsed->inputs.characters();
  const RequestOptions o = request_options(req, parsed->truncate);
  const std::string device_kind = engine->info().devices.front().starts_with("cuda") ? "gpu" : "cpu";
  run(*this, call, engine, n, o,
      [&](Engine& e, const RequestOptions& ro, Engine::Callback done) {
        submit_inputs(e, parsed->inputs, ro, std::move(done));
      },
      [parsed, call, characters, device_kind](Response& r) {
        const int64_t dim = r.shape.back();
        const int64_t n_rows = r.shape.front();
        const int64_t d = api::apply_dimensions(r.output, n_rows, dim, parsed->dimensions);
        HttpResponse resp = json_response(api::format_tei_embed(r.output.data(), n_rows, d));
        api::TeiTiming t;
        t.total_us = micros(Clock::now() - call->received);
        t.tokenization_us = call->tokenization_us.load(std::memory_order_relaxed);
        t.queue_us = r.queue_us;
        t.inference_us = r.compute_us;
        t.tokens = r.tokens;
        t.characters = characters;
        resp.headers = api::tei_headers(t, device_kind);
        return resp;
      });
}

void App::Impl::tei_tokenize(const CallPtr& call, const HttpRequest& req) {
  std::shared_ptr<Engine> engine = ready_engine(*call);
  if (!engine) return;
  api::TeiTokenizeRequest parsed = api::parse_tei_tokenize(req.body, limits());
  std::vector<api::TeiTokens> out(parsed.texts.size());
  for (size_t i = 0; i < parsed.texts.size(); ++i) {
    Tokenized t = engine->tokenize(parsed.texts[i]);
    if (!parsed.add_special_tokens && t.ids.size() >= 2)
      t.ids = std::vector<int32_t>(t.ids.begin() + 1, t.ids.end() - 1);
    out[i].tokens = engine->id_to_tokens(t.ids);
    for (const std::string& tok : out[i].tokens)
      out[i].special.push_back(tok.size() > 2 && tok.front() == '[' && tok.back() == ']' &&
                               (tok == "[CLS]" || tok == "[SEP]" || tok == "[PAD]" ||
                                tok == "[UNK]" || tok == "[MASK]"));
    out[i].ids = std::move(t.ids);
  }
  call->inputs = static_cast<int64_t>(out.size());
  finish(*call, json_response(api::format_tei_tokenize(out)));
}

void App::Impl::tei_decode(const CallPtr& call, const HttpRequest& req) {
  std::shared_ptr<Engine> engine = ready_engine(*call);
  if (!engine) return;
  api::TeiDecodeRequest parsed = api::parse_tei_decode(req.body, limits());
  std::vector<std::string> texts;
  texts.reserve(parsed.ids.size());
  for (const auto& ids : parsed.ids) texts.push_back(engine->decode(ids, parsed.skip_special_tokens));
  call->inputs = static_cast<int64_t>(texts.size());
  finish(*call, json_response(api::format_tei_decode(texts)));
}

void App::Impl::tei_info(const CallPtr& call) {
  std::shared_ptr<Engine> engine = ready_engine(*call);
  if (!engine) return;
  api::ServerLimits l;
  l.model_id = options.served_model_name;
  l.max_concurrent_requests = static_cast<int>(options.max_concurrent_inputs);
  l.max_client_batch_size = options.max_client_batch_size;
  l.auto_truncate = options.auto_truncate;
  l.version = options.version;
  finish(*call, json_response(api::format_tei_info(engine->info(), l)));
}

void App::Impl::kserve_infer(const CallPtr& call, const HttpRequest& req, std::string_view model) {
  if (!known_model(model))
    return fail(*call, api::Reason::kNotFound, "unknown model '" + std::string(model.substr(0, 200)) + "'");
  std::shared_ptr<Engine> engine = ready_engine(*call);
  if (!engine) return;
  const api::ModelSignature sig = current_signature();
  std::optional<size_t> header_length;
  if (const std::string* h = req.header("inference-header-content-length"))
    header_length = api::parse_header_length(*h);
  auto parsed = std::make_shared<api::KServeInferRequest>(
      api::parse_kserve_infer(req.body, header_length, sig, limits()));
  call->batch = parsed->n > 1;
  const RequestOptions o = request_options(req, std::nullopt);
  auto format = [parsed, sig](Response& r) {
    api::KServeResponse k =
        api::format_kserve_infer(sig, parsed->id, r.output.data(), parsed->n, parsed->binary_output);
    HttpResponse resp;
    resp.body = std::move(k.body);
    resp.content_type = k.content_type;
    if (k.header_length)
      resp.headers.emplace_back("Inference-Header-Content-Length", std::to_string(*k.header_length));
    return resp;
  };
  if (sig.text) {
    run(*this, call, engine, parsed->n, o,
        [&](Engine& e, const RequestOptions& ro, Engine::Callback done) {
          e.submit_texts(std::move(parsed->texts), ro, std::move(done));
        },
        format);
  } else {
    run(*this, call, engine, parsed->n, o,
        [&](Engine& e, const RequestOptions& ro, Engine::Callback done) {
          e.submit_batch(std::move(parsed->rows), parsed->n, ro, std::move(done));
        },
        format);
  }
}

void App::Impl::kserve_model(const CallPtr& call, std::string_view model, std::string_view what) {
  if (!known_model(model))
    return fail(*call, api::Reason::kNotFound, "unknown model '" + std::string(model.substr(0, 200)) + "'");
  if (what == "ready") {
    const bool ok = is_ready();
    HttpResponse r;
    r.status = ok ? 200 : 503;
    r.content_type = "text/plain";
    r.body = ok ? "ready" : "not ready";
    return finish(*call, std::move(r));
  }
  std::shared_ptr<Engine> engine = ready_engine(*call);
  if (!engine) return;
  const api::ModelSignature sig = current_signature();
  finish(*call, json_response(what == "config" ? api::format_kserve_model_config(sig)
                                               : api::format_kserve_model_metadata(sig)));
}

void App::Impl::metrics(const CallPtr& call) {
  std::shared_ptr<Engine> e = current();
  const EngineMetrics m = e ? e->metrics() : EngineMetrics{};
  if (connections) stats.set_connections(static_cast<int64_t>(connections()));
  std::string body = api::prometheus_text(stats, m);
  body += "# HELP fanin_ready 1 when the server answers inference requests.\n"
          "# TYPE fanin_ready gauge\nfanin_ready ";
  body += is_ready() ? "1\n" : "0\n";
  body += "# HELP fanin_inputs_in_flight Inputs accepted over HTTP and not yet answered.\n"
          "# TYPE fanin_inputs_in_flight gauge\nfanin_inputs_in_flight ";
  body += std::to_string(inputs_in_flight.load(std::memory_order_relaxed)) + "\n";
  if (e) {
    body += e->prometheus();
    body += "# HELP fanin_device_memory_bytes Device memory of the engine's devices, by kind.\n"
            "# TYPE fanin_device_memory_bytes gauge\n";
    for (const std::string& name : e->info().devices) {
      const AllocatorStats s = Device::get(name).allocator().stats();
      const std::pair<const char*, size_t> kinds[] = {{"in_use", s.in_use_bytes},
                                                      {"cached", s.cached_bytes},
                                                      {"peak_in_use", s.peak_in_use_bytes},
                                                      {"reserved", s.reserved_bytes}};
      for (const auto& [kind, v] : kinds)
        body += "fanin_device_memory_bytes{device=\"" + name + "\",kind=\"" + kind + "\"} " +
                std::to_string(v) + "\n";
    }
  }
  HttpResponse r;
  r.content_type = "text/plain; version=0.0.4";
  r.body = std::move(body);
  finish(*call, std::move(r));
}

}  // namespace fanin::server
