// server/api/kserve.h: the KServe v2 / Open Inference Protocol over HTTP,
// with Triton's binary tensor data and model configuration extensions.
//
// Contract: parse_kserve_infer() returns the request or throws ApiError
// naming the input or field (statuses: error_response(Api::kKServe, e));
// the formatters produce the v2 JSON shapes (and for binary outputs the JSON
// followed by the raw little-endian bytes). Pure, thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "fanin/engine.h"
#include "server/api/embeddings.h"

namespace fanin::server::api {

// One tensor of a model's signature; shape[0] is -1 (the batch).
struct TensorSpec {
  std::string name;
  std::string datatype;  // "FP32", "BYTES"
  std::vector<int64_t> shape;
};

// What a served model takes and returns, as the v2 routes describe it.
struct ModelSignature {
  std::string name;       // the model's name in /v2/models/{name}
  bool text = false;      // texts in (BYTES), embeddings out
  TensorSpec input;       // text: "text" BYTES [-1, 1]; tensor: "input" FP32 [-1, ...]
  TensorSpec output;      // text: "embedding" FP32 [-1, dim]; tensor: "output" FP32 [-1, ...]
  int max_batch_size = 0;
};

// The signature of an engine served as `name`.
ModelSignature model_signature(std::string_view name, const EngineInfo& info);

// A parsed POST /v2/models/{m}/infer request.
struct KServeInferRequest {
  std::optional<std::string> id;  // echoed in the response
  std::vector<std::string> texts;  // text models: the n texts
  std::vector<float> rows;         // tensor models: n rows of numel(input dims), finite
  int64_t n = 0;                   // inputs (the batch dimension)
  bool binary_output = false;      // answer with the binary tensor extension
  std::string output_name;         // the output asked for (the model's)
};

// The value of an Inference-Header-Content-Length header; ApiError
// (kValidation) if not a decimal byte count.
size_t parse_header_length(std::string_view value);

// Parses an infer body: all JSON (header_length nullopt), or with the binary
// extension the first *header_length bytes JSON and the rest the tensors'
// bytes in input order. Checks the input's name, datatype and shape against
// `sig` (overflow-safe element counts), the data's element count and types,
// FP32 values finite, BYTES valid UTF-8, the binary section's exact size,
// n <= limits.max_inputs, and the outputs' names.
KServeInferRequest parse_kserve_infer(std::string_view body, std::optional<size_t> header_length,
                                      const ModelSignature& sig, const ParseLimits& limits);

// An infer response.
struct KServeResponse {
  std::string body;                    // JSON, then the raw output bytes if binary
  std::optional<size_t> header_length;  // Inference-Header-Content-Length, if binary
  const char* content_type = "application/json";
};

// {"model_name","model_version":"1","id"?,"outputs":[{"name","datatype":
// "FP32","shape":[n,...],"data":[...]}]}; with `binary` the output has
// "parameters":{"binary_data_size":N} instead of data, and its bytes follow.
KServeResponse format_kserve_infer(const ModelSignature& sig, const std::optional<std::string>& id,
                                   const float* data, int64_t n, bool binary);

// GET /v2: {"name":"fanin","version","extensions":[...]}.
std::string format_kserve_server_metadata(std::string_view version);

// GET /v2/models/{m}: {"name","versions":["1"],"platform":"fanin","inputs",
// "outputs"}.
std::string format_kserve_model_metadata(const ModelSignature& sig);

// GET /v2/models/{m}/config: Triton's model configuration (name, platform,
// max_batch_size, input/output with data_type TYPE_* and dims without the
// batch, dynamic_batching).
std::string format_kserve_model_config(const ModelSignature& sig);

}  // namespace fanin::server::api
