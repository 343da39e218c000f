// libFuzzer target: every request-body parser of fanin serve's protocol
// layer (src/server/api) on the same bytes: OpenAI /v1/embeddings, TEI
// /embed, /tokenize, /decode, KServe v2 infer as JSON and with the binary
// tensor extension (the JSON ends at the input's first NUL byte, which is
// dropped; the rest is the binary section), for a text and a tensor model.
// Parsers may only throw ApiError: anything else escaping (another
// exception, a crash, a sanitizer report, a hang) is a finding. Also checks
// that every error body is valid JSON whatever bytes its message holds.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "server/api/errors.h"
#include "server/api/json.h"
#include "server/api/kserve.h"
#include "server/api/openai.h"
#include "server/api/tei.h"

namespace api = fanin::server::api;

namespace {

api::ModelSignature signature(bool text) {
  fanin::EngineInfo info;
  info.kind = text ? fanin::PayloadKind::kText : fanin::PayloadKind::kTensor;
  info.input_shape = {text ? 128 : 4};
  info.output_shape = {text ? 8 : 4};
  info.max_batch_size = 8;
  return api::model_signature(text ? "minilm" : "mlp", info);
}

template <typename F>
void run(F&& parse) {
  try {
    parse();
  } catch (const api::ApiError& e) {
    // The error body must be valid JSON, whatever the message echoes.
    const api::ErrorBody b = api::error_response(api::Api::kOpenAI, e);
    if (!api::Json::accept(b.body)) std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const api::ModelSignature text = signature(true);
  static const api::ModelSignature tensor = signature(false);
  api::ParseLimits limits;
  limits.max_inputs = 8;
  limits.max_depth = 16;
  const std::string_view body(reinterpret_cast<const char*>(data), size);

  run([&] { (void)api::parse_openai_embeddings(body, limits); });
  // The one-pass reader takes only bodies the general parser reads the same.
  if (const auto fast = api::parse_openai_embeddings_fast(body, limits)) {
    try {
      const api::OpenAIEmbeddingsRequest g = api::parse_openai_embeddings_general(body, limits);
      if (g.inputs.texts != fast->inputs.texts || g.inputs.batch != fast->inputs.batch ||
          g.inputs.tokens || g.model != fast->model || g.base64 != fast->base64 || g.dimensions)
        std::abort();
    } catch (const api::ApiError&) {
      std::abort();
    }
  }
  run([&] { (void)api::parse_tei_embed(body, limits); });
  run([&] { (void)api::parse_tei_tokenize(body, limits); });
  run([&] { (void)api::parse_tei_decode(body, limits); });
  run([&] { (void)api::parse_kserve_infer(body, std::nullopt, text, limits); });
  run([&] { (void)api::parse_kserve_infer(body, std::nullopt, tensor, limits); });
  run([&] { (void)api::parse_header_length(body.substr(0, 32)); });

  const size_t nul = body.find('\0');
  if (nul != std::string_view::npos) {
    std::string joined(body.substr(0, nul));
    joined.append(body.substr(nul + 1));
    run([&] {
      const auto r = api::parse_kserve_infer(joined, nul, tensor, limits);
      // A parsed request formats back (its rows stand in for outputs).
      (void)api::format_kserve_infer(tensor, r.id, r.rows.data(), r.n, true);
    });
    run([&] { (void)api::parse_kserve_infer(joined, nul, text, limits); });
  }

  // Any bytes as a message: every API's error body stays valid JSON.
  for (api::Api a : {api::Api::kOpenAI, api::Api::kTei, api::Api::kKServe})
    if (!api::Json::accept(api::error_response(a, api::Reason::kValidation, body, body).body))
      std::abort();
  return 0;
}
