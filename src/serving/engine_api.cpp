// fanin::Engine: the public facade over EngineImpl (engine_impl.h).
#include "core/check.h"
#include "serving/engine_impl.h"
#include "serving/metrics.h"

namespace fanin {
namespace {

using serving::EngineImpl;
using serving::Payload;

// One admission resolving through the returned future.
template <typename Make>
std::future<Response> via_future(EngineImpl& impl, const char* op, const RequestOptions& o,
                                 bool squeeze, Make&& make) {
  std::future<Response> f;
  impl.submit(op, o, nullptr, &f, squeeze, [&] { return make(impl.payload(), op); });
  return f;
}

// One admission resolving through `done`; an empty callback is rejected
// (and counted) as an invalid submit.
template <typename Make>
void via_callback(EngineImpl& impl, const char* op, const RequestOptions& o,
                  Engine::Callback done, bool squeeze, Make&& make) {
  if (!done) impl.reject_invalid(Error(ErrorCode::kInvalidArgument, std::string(op) + " callback is empty"));
  impl.submit(op, o, std::move(done), nullptr, squeeze, [&] { return make(impl.payload(), op); });
}

}  // namespace

Engine::Engine(std::shared_ptr<const Model> model, EngineOptions options)
    : Engine(std::vector<std::shared_ptr<const Model>>{std::move(model)}, std::move(options)) {}

Engine::Engine(std::shared_ptr<const SentenceEncoder> encoder, EngineOptions options)
    : Engine(std::vector<std::shared_ptr<const SentenceEncoder>>{std::move(encoder)},
             std::move(options)) {}

Engine::Engine(std::vector<std::shared_ptr<const Model>> replicas, EngineOptions options)
    : impl_(std::make_unique<EngineImpl>(serving::make_payload(std::move(replicas)),
                                         std::move(options))) {}

Engine::Engine(std::vector<std::shared_ptr<const SentenceEncoder>> replicas, EngineOptions options)
    : impl_(std::make_unique<EngineImpl>(serving::make_payload(std::move(replicas)),
                                         std::move(options))) {}

Engine::~Engine() = default;

std::future<Response> Engine::submit(std::vector<float> input, const RequestOptions& options) {
  return via_future(*impl_, "[Engine::submit]", options, true,
                    [&](const Payload& p, const char* op) { return p.admit_rows(std::move(input), 1, op); });
}

void Engine::submit(std::vector<float> input, const RequestOptions& options, Callback done) {
  via_callback(*impl_, "[Engine::submit]", options, std::move(done), true,
               [&](const Payload& p, const char* op) { return p.admit_rows(std::move(input), 1, op); });
}

std::future<Response> Engine::submit_text(std::string text, const RequestOptions& options) {
  return via_future(*impl_, "[Engine::submit_text]", options, true,
                    [&](const Payload& p, const char* op) {
                      return p.admit_texts({std::move(text)}, options.truncate, op);
                    });
}

void Engine::submit_text(std::string text, const RequestOptions& options, Callback done) {
  via_callback(*impl_, "[Engine::submit_text]", options, std::move(done), true,
               [&](const Payload& p, const char* op) {
                 return p.admit_texts({std::move(text)}, options.truncate, op);
               });
}

std::future<Response> Engine::submit_batch(std::vector<float> rows, int64_t n,
                                           const RequestOptions& options) {
  return via_future(*impl_, "[Engine::submit_batch]", options, false,
                    [&](const Payload& p, const char* op) { return p.admit_rows(std::move(rows), n, op); });
}

void Engine::submit_batch(std::vector<float> rows, int64_t n, const RequestOptions& options,
                          Callback done) {
  via_callback(*impl_, "[Engine::submit_batch]", options, std::move(done), false,
               [&](const Payload& p, const char* op) { return p.admit_rows(std::move(rows), n, op); });
}

std::future<Response> Engine::submit_texts(std::vector<std::string> texts,
                                           const RequestOptions& options) {
  return via_future(*impl_, "[Engine::submit_texts]", options, false,
                    [&](const Payload& p, const char* op) {
                      return p.admit_texts(texts, options.truncate, op);
                    });
}

void Engine::submit_texts(std::vector<std::string> texts, const RequestOptions& options,
                          Callback done) {
  via_callback(*impl_, "[Engine::submit_texts]", options, std::move(done), false,
               [&](const Payload& p, const char* op) {
                 return p.admit_texts(texts, options.truncate, op);
               });
}

std::future<Response> Engine::submit_token_ids(std::vector<std::vector<int32_t>> inputs,
                                               const RequestOptions& options) {
  return via_future(*impl_, "[Engine::submit_token_ids]", options, false,
                    [&](const Payload& p, const char* op) {
                      return p.admit_token_ids(std::move(inputs), options.truncate, op);
                    });
}

void Engine::submit_token_ids(std::vector<std::vector<int32_t>> inputs,
                              const RequestOptions& options, Callback done) {
  via_callback(*impl_, "[Engine::submit_token_ids]", options, std::move(done), false,
               [&](const Payload& p, const char* op) {
                 return p.admit_token_ids(std::move(inputs), options.truncate, op);
               });
}

Tokenized Engine::tokenize(std::string_view text) const { return impl_->payload().tokenize(text); }

std::vector<std::string> Engine::id_to_tokens(const std::vector<int32_t>& ids) const {
  return impl_->payload().id_to_tokens(ids);
}

std::string Engine::decode(const std::vector<int32_t>& ids, bool skip_special) const {
  return impl_->payload().decode(ids, skip_special);
}

const EngineInfo& Engine::info() const noexcept { return impl_->info(); }
bool Engine::ready() const noexcept { return impl_->ready(); }
bool Engine::drain(std::chrono::milliseconds timeout) { return impl_->drain(timeout); }
void Engine::cancel() { impl_->cancel(); }
EngineMetrics Engine::metrics() const { return impl_->metrics(); }
std::string Engine::prometheus() const { return serving::to_prometheus(impl_->metrics()); }
const EngineOptions& Engine::options() const noexcept { return impl_->options(); }

}  // namespace fanin
