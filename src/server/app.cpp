// App: dispatch, auth, admission, per-request logs (Note [Serving routes]
// in docs/server.md); the routes themselves are in app_routes.cpp.
#include "server/app.h"

#include <charconv>
#include <cmath>
#include <cstdio>

#include "server/api/auth.h"
#include "server/api/json.h"
#include "server/app_impl.h"

namespace fanin::server {
namespace {

// The API a path belongs to: its error bodies' shape.
api::Api api_of(std::string_view path) {
  if (path.starts_with("/v1/") || path == "/embeddings") return api::Api::kOpenAI;
  if (path.starts_with("/v2")) return api::Api::kKServe;
  return api::Api::kTei;
}

// /v2/models/{m}[/rest]: m and rest ("" for the model itself).
bool split_v2_model(std::string_view path, std::string_view* model, std::string_view* rest) {
  constexpr std::string_view kPrefix = "/v2/models/";
  if (!path.starts_with(kPrefix)) return false;
  std::string_view tail = path.substr(kPrefix.size());
  const size_t slash = tail.find('/');
  *model = tail.substr(0, slash);
  *rest = slash == std::string_view::npos ? std::string_view{} : tail.substr(slash + 1);
  // /v2/models/{m}/versions/{v}/... : the version is accepted and ignored.
  if (rest->starts_with("versions/")) {
    std::string_view after = rest->substr(9);
    const size_t s2 = after.find('/');
    *rest = s2 == std::string_view::npos ? std::string_view{} : after.substr(s2 + 1);
  }
  return !model->empty();
}

}  // namespace

App::App(AppOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}
App::~App() = default;

void App::set_engine(std::shared_ptr<Engine> engine) {
  std::string name = impl_->options.served_model_name;
  api::ModelSignature sig = api::model_signature(name, engine->info());
  std::lock_guard<std::mutex> lock(impl_->engine_mu);
  impl_->engine = std::move(engine);
  impl_->signature = std::move(sig);
}

void App::begin_drain() { impl_->draining.store(true, std::memory_order_release); }

std::shared_ptr<Engine> App::engine() const { return impl_->current(); }

bool App::ready() const { return impl_->is_ready(); }

void App::set_executor(std::function<void(std::function<void()>)> post) {
  impl_->post = std::move(post);
}

void App::set_connection_count(std::function<size_t()> count) {
  impl_->connections = std::move(count);
}

HttpResponse App::error_response(std::string_view method, std::string_view path, int status,
                                 const std::string& message) const {
  api::Reason reason = api::Reason::kValidation;
  switch (status) {
    case 413: reason = api::Reason::kPayloadTooLarge; break;
    case 503: reason = api::Reason::kUnhealthy; break;
    case 408: reason = api::Reason::kDeadlineExceeded; break;
    case 500: reason = api::Reason::kDeviceError; break;
    default: reason = api::Reason::kInvalidJson; break;
  }
  impl_->stats.record_rejection(status == 413   ? "body_too_large"
                                : status == 408 ? "timeout"
                                : status == 431 ? "header_too_large"
                                : status == 503 ? "shutting_down"
                                : status == 500 ? "handler_failed"
                                                : "bad_request");
  // Logged like every answer the routes give (no inputs ran).
  impl_->log_request(method, path, status, 0, 0, 0, 0, 0);
  api::ErrorBody e = api::error_response(api_of(path), reason, message);
  HttpResponse r;
  r.status = status;
  r.body = std::move(e.body);
  r.headers = std::move(e.headers);
  return r;
}

void App::handle(HttpRequest&& req, Respond respond) {
  Impl& im = *impl_;
  auto call = std::make_shared<Call>();
  call->respond = std::move(respond);
  call->post = std::move(req.post);
  call->api = api_of(req.path);
  call->method = req.method;
  call->route = req.path;
  call->received = req.received;
  const std::string_view path = req.path;
  // The route's template and the one method it takes ("GET" also takes HEAD).
  constexpr std::string_view get = "GET", post = "POST";
  auto route = [&](std::string_view templ, std::string_view method) {
    call->route = std::string(templ);
    if (req.method == method || (method == get && req.method == "HEAD")) return true;
    api::ErrorBody e = api::error_response(
        call->api, api::Reason::kValidation,
        "method " + req.method + " is not allowed on " + std::string(templ));
    e.status = 405;
    e.headers.emplace_back("Allow", std::string(method));
    im.fail(*call, e, api::Reason::kValidation);
    return false;
  };
  auto authorized = [&] {
    if (im.options.api_key.empty()) return true;
    const std::string* auth = req.header("authorization");
    if (auth != nullptr && api::bearer_matches(*auth, im.options.api_key)) return true;
    im.stats.record_rejection("unauthorized");
    im.fail(*call, api::Reason::kUnauthorized,
            auth == nullptr ? "missing Authorization: Bearer <key> header"
                            : "invalid API key in the Authorization header");
    return false;
  };
  auto health = [&](bool ok) {
    HttpResponse r;
    r.status = ok ? 200 : 503;
    r.content_type = "text/plain";
    r.body = ok ? "ok" : "not ready";
    im.finish(*call, std::move(r));
  };
  // Inference routes count in te_request_* whatever their outcome, a body
  // refused by the parser included (as TEI counts them).
  call->inference = path == "/v1/embeddings" || path == "/embeddings" || path == "/embed" ||
                    (path.starts_with("/v2/models/") && path.ends_with("/infer"));
  try {
    if (path == "/v1/embeddings" || path == "/embeddings") {
      if (route(path, post) && authorized()) im.openai_embeddings(call, req);
    } else if (path == "/v1/models") {
      if (route(path, get) && authorized()) im.openai_models(call);
    } else if (path == "/embed") {
      if (route(path, post) && authorized()) im.tei_embed(call, req);
    } else if (path == "/tokenize") {
      if (route(path, post) && authorized()) im.tei_tokenize(call, req);
    } else if (path == "/decode") {
      if (route(path, post) && authorized()) im.tei_decode(call, req);
    } else if (path == "/info") {
      if (route(path, get)) im.tei_info(call);
    } else if (path == "/health") {
      if (route(path, get)) health(ready());
    } else if (path == "/metrics") {
      if (route(path, get)) im.metrics(call);
    } else if (path == "/v2" || path == "/v2/") {
      if (route("/v2", get)) {
        HttpResponse r;
        r.body = api::format_kserve_server_metadata(im.options.version);
        im.finish(*call, std::move(r));
      }
    } else if (path == "/v2/health/live") {
      if (route(path, get)) health(true);
    } else if (path == "/v2/health/ready") {
      if (route(path, get)) health(ready());
    } else if (std::string_view model, rest; split_v2_model(path, &model, &rest)) {
      if (rest == "infer") {
        if (route("/v2/models/{m}/infer", post) && authorized()) im.kserve_infer(call, req, model);
      } else if (rest.empty() || rest == "ready" || rest == "config") {
        if (route(rest.empty() ? "/v2/models/{m}" : "/v2/models/{m}/" + std::string(rest), get))
          im.kserve_model(call, model, rest);
      } else {
        call->route = "unknown";
        im.fail(*call, api::Reason::kNotFound, "no route " + std::string(path));
      }
    } else {
      call->route = "unknown";
      im.fail(*call, api::Reason::kNotFound,
              "no route " + std::string(path) + " (see docs/server.md for the routes)");
    }
  } catch (const api::ApiError& e) {
    im.fail(*call, e);
  } catch (const Error& e) {
    im.fail(*call, e);
  }
}

// ---- shared pieces of the routes ----

void App::Impl::finish(Call& call, HttpResponse response) {
  const double total_us = micros(Clock::now() - call.received);
  api::RequestObservation o;
  o.api = call.api;
  o.route = call.route;
  o.status = response.status;
  o.inference = call.inference;
  o.batch = call.batch;
  o.total_us = total_us;
  o.tokenization_us = call.tokenization_us.load(std::memory_order_relaxed);
  o.queue_us = call.queue_us;
  o.inference_us = call.inference_us;
  o.resolve_us = call.resolve_us;
  o.handoff_us = call.handoff_us;
  o.format_us = call.format_us;
  o.inputs = call.inputs;
  o.tokens = call.tokens;
  o.failure = call.failure;
  stats.observe(o);
  log_request(call.method, call.route, response.status, call.inputs, call.tokens, call.queue_us,
              call.inference_us, total_us);
  Respond respond = std::move(call.respond);
  if (respond) respond(std::move(response));
}

void App::Impl::fail(Call& call, const api::ErrorBody& error, api::Reason reason) {
  call.failure = api::failure_label(reason);
  HttpResponse r;
  r.status = error.status;
  r.body = error.body;
  r.headers = error.headers;
  finish(call, std::move(r));
}

void App::Impl::log_request(std::string_view method, std::string_view route, int status,
                            int64_t inputs, int64_t tokens, double queue_us, double compute_us,
                            double total_us) const {
  if (!options.log || !options.log_requests) return;
  // A bad request's method and path are the client's bytes: cut at 200
  // each, and in JSON escaped (invalid UTF-8 replaced).
  method = method.substr(0, 200);
  route = route.substr(0, 200);
  std::string line;
  if (options.json_log) {
    api::Json j = {{"level", "info"},      {"method", method},     {"route", route},
                   {"status", status},     {"inputs", inputs},     {"tokens", tokens},
                   {"queue_us", std::llround(queue_us)}, {"compute_us", std::llround(compute_us)},
                   {"total_us", std::llround(total_us)}};
    line = j.dump(-1, ' ', false, api::Json::error_handler_t::replace);
  } else {
    char text[640];
    std::snprintf(text, sizeof text,
                  "fanin: %.*s %.*s %d inputs=%lld tokens=%lld queue_us=%.0f compute_us=%.0f "
                  "total_us=%.0f",
                  static_cast<int>(method.size()), method.data(), static_cast<int>(route.size()),
                  route.data(), status, static_cast<long long>(inputs),
                  static_cast<long long>(tokens), queue_us, compute_us, total_us);
    line = text;
  }
  log_line(line);
}

void App::Impl::log_line(const std::string& line) const {
  try {
    if (options.log) options.log(line);
  } catch (...) {
  }
}

std::shared_ptr<Engine> App::Impl::current() const {
  std::lock_guard<std::mutex> lock(engine_mu);
  return engine;
}

api::ModelSignature App::Impl::current_signature() const {
  std::lock_guard<std::mutex> lock(engine_mu);
  return signature;
}

bool App::Impl::is_ready() const {
  if (draining.load(std::memory_order_acquire)) return false;
  std::shared_ptr<Engine> e = current();
  return e != nullptr && e->ready();
}

std::shared_ptr<Engine> App::Impl::ready_engine(Call& call) {
  std::shared_ptr<Engine> e = current();
  if (draining.load(std::memory_order_acquire)) {
    fail(call, api::Reason::kUnhealthy, "the server is shutting down");
    return nullptr;
  }
  if (e == nullptr) {
    fail(call, api::Reason::kUnhealthy, "the model is still loading (see /health)");
    return nullptr;
  }
  return e;
}

bool App::Impl::admit(Call& call, int64_t n) {
  const int64_t before = inputs_in_flight.fetch_add(n, std::memory_order_acq_rel);
  if (before + n <= options.max_concurrent_inputs || before == 0) return true;
  release(n);
  stats.record_rejection("max_concurrent_requests");
  fail(call, api::Reason::kQueueFull,
       "too many requests in flight: " + std::to_string(before) + " inputs running, " +
           std::to_string(n) + " more would pass max_concurrent_requests " +
           std::to_string(options.max_concurrent_inputs));
  return false;
}

RequestOptions App::Impl::request_options(const HttpRequest& req,
                                          std::optional<bool> truncate) const {
  RequestOptions o;
  o.truncate = truncate.value_or(options.auto_truncate);
  std::chrono::milliseconds timeout = options.request_timeout;
  if (const std::string* h = req.header("x-request-timeout-ms")) {
    int64_t ms = -1;
    const auto [end, ec] = std::from_chars(h->data(), h->data() + h->size(), ms);
    if (ec != std::errc() || end != h->data() + h->size() || ms <= 0)
      throw api::ApiError(api::Reason::kValidation,
                          "X-Request-Timeout-Ms must be a positive integer of milliseconds, got '" +
                              h->substr(0, 32) + "'",
                          "X-Request-Timeout-Ms");
    timeout = std::chrono::milliseconds(
        std::min<int64_t>(ms, std::chrono::milliseconds::max().count() / 1000));
  }
  if (timeout.count() > 0)
    o.deadline = deadline_after(std::chrono::duration_cast<std::chrono::microseconds>(timeout),
                                req.received);
  return o;
}

bool App::Impl::known_model(std::string_view name) const {
  if (name == options.served_model_name) return true;
  for (const std::string& a : options.aliases)
    if (name == a) return true;
  return false;
}

}  // namespace fanin::server
