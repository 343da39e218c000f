// Payload base and the tensor payload (Note [Engine payloads]); the text
// payload is in text_payload.cpp.
#include "serving/payload.h"

#include <cmath>

#include "core/check.h"
#include "fanin/device.h"

namespace fanin::serving {

void Payload::wrong_kind(const char* op) const {
  if (info_.kind == PayloadKind::kText)
    FANIN_THROW(kInvalidArgument, op,
                " this engine serves a sentence encoder: submit texts (submit_text, "
                "submit_texts) or token ids");
  FANIN_THROW(kInvalidArgument, op, " this engine serves a model (", info_.model_name,
              "), not text: submit float rows (submit, submit_batch)");
}

Admitted Payload::admit_rows(std::vector<float>, int64_t, const char* op) const { wrong_kind(op); }
Admitted Payload::admit_texts(const std::vector<std::string>&, bool, const char* op) const {
  wrong_kind(op);
}
Admitted Payload::admit_token_ids(std::vector<std::vector<int32_t>>, bool, const char* op) const {
  wrong_kind(op);
}
Tokenized Payload::tokenize(std::string_view) const { wrong_kind("[Engine::tokenize]"); }
std::vector<std::string> Payload::id_to_tokens(const std::vector<int32_t>&) const {
  wrong_kind("[Engine::id_to_tokens]");
}
std::string Payload::decode(const std::vector<int32_t>&, bool) const {
  wrong_kind("[Engine::decode]");
}

namespace {

void check_devices(const std::vector<Device*>& devices) {
  for (size_t i = 0; i < devices.size(); ++i)
    for (size_t j = 0; j < i; ++j)
      FANIN_CHECK(devices[j] != devices[i], kInvalidArgument, "[Engine] replicas ", j, " and ", i,
                  " are both on ", devices[i]->name(), ": give one replica per device");
}

void check_count(size_t n) {
  FANIN_CHECK(n >= 1, kInvalidArgument, "[Engine] no model replicas given");
  FANIN_CHECK(n <= 64, kInvalidArgument, "[Engine] at most 64 devices, got ", n);
}

class TensorPayload final : public Payload {
 public:
  TensorPayload(std::vector<std::shared_ptr<const Model>> models, EngineInfo info)
      : Payload(std::move(info)),
        models_(std::move(models)),
        in_numel_(checked_numel(info_.input_shape, "Engine")),
        out_numel_(checked_numel(info_.output_shape, "Engine")) {}

  size_t replicas() const noexcept override { return models_.size(); }
  Device& device(size_t r) const noexcept override { return models_[r]->device(); }
  DType out_dtype() const noexcept override { return models_.front()->dtype(); }

  Admitted admit_rows(std::vector<float> rows, int64_t n, const char* op) const override {
    FANIN_CHECK(n >= 1, kInvalidArgument, op, " a request needs at least one input, got ", n);
    // n * in_numel_ without overflow: n <= size / in_numel_ first.
    FANIN_CHECK(in_numel_ > 0 && static_cast<uint64_t>(n) <= rows.size() / in_numel_ &&
                    static_cast<int64_t>(rows.size()) == n * in_numel_,
                kInvalidArgument, op, " input has ", rows.size(), " values, model ",
                info_.model_name, " expects ",
                n == 1 ? detail::str(in_numel_) : detail::str(n, " x ", in_numel_), " (shape ",
                to_string(info_.input_shape), n == 1 ? ")" : " per input)");
    Admitted a;
    a.rows = std::move(rows);
    a.inputs.reserve(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) {
      auto r = std::make_unique<EngineRequest>();
      r->index = i;
      r->input = a.rows.data() + i * in_numel_;
      r->cost = 1;
      a.inputs.push_back(std::move(r));
    }
    return a;
  }

  bool launch(size_t r, BatchLauncher& launcher, const std::vector<EngineRequest*>& run,
              int padded, bool use_graphs, Stream& s) const override {
    std::vector<const float*> rows(run.size());
    for (size_t i = 0; i < run.size(); ++i) rows[i] = run[i]->input;
    return launcher.run_model(*models_[r], rows, padded, use_graphs, s);
  }

  bool warm_up(size_t r, BatchLauncher& launcher, int n, bool use_graphs, Stream& s,
               double* units) const override {
    const std::vector<float> zeros(static_cast<size_t>(in_numel_), 0.0f);
    const std::vector<const float*> rows(static_cast<size_t>(n), zeros.data());
    *units = n;  // a row each
    return launcher.run_model(*models_[r], rows, n, use_graphs, s);
  }

  bool finite(const EngineRequest& r) const override {
    for (int64_t i = 0; i < in_numel_; ++i)
      if (!std::isfinite(r.input[i])) return false;
    return true;
  }

 private:
  const std::vector<std::shared_ptr<const Model>> models_;
  const int64_t in_numel_, out_numel_;
};

}  // namespace

std::unique_ptr<Payload> make_payload(std::vector<std::shared_ptr<const Model>> models) {
  check_count(models.size());
  std::vector<Device*> devices;
  for (size_t i = 0; i < models.size(); ++i) {
    FANIN_CHECK(models[i] != nullptr, kInvalidArgument,
                models.size() == 1 ? std::string("[Engine] model is null")
                                   : detail::str("[Engine] model replica ", i, " is null"));
    const Model& a = *models[0];
    const Model& b = *models[i];
    FANIN_CHECK(a.input_shape() == b.input_shape() && a.output_shape() == b.output_shape() &&
                    a.dtype() == b.dtype(),
                kInvalidArgument, "[Engine] model replica ", i, " (", b.name(), " on ",
                b.device().name(), ", ", to_string(b.input_shape()), " -> ",
                to_string(b.output_shape()), " ", to_string(b.dtype()),
                ") differs from replica 0 (", a.name(), ", ", to_string(a.input_shape()), " -> ",
                to_string(a.output_shape()), " ", to_string(a.dtype()), ")");
    devices.push_back(&b.device());
  }
  check_devices(devices);
  const Model& m = *models.front();
  EngineInfo info;
  info.kind = PayloadKind::kTensor;
  info.model_name = m.name();
  info.input_shape = m.input_shape();
  info.output_shape = m.output_shape();
  info.dtype = m.dtype();
  for (Device* d : devices) info.devices.push_back(d->name());
  return std::make_unique<TensorPayload>(std::move(models), std::move(info));
}

// Shared with text_payload.cpp.
void check_replica_devices(const std::vector<Device*>& devices) {
  check_count(devices.size());
  check_devices(devices);
}

}  // namespace fanin::serving
