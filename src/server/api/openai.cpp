#include "server/api/openai.h"

#include "server/api/errors.h"

namespace fanin::server::api {

OpenAIEmbeddingsRequest parse_openai_embeddings(std::string_view body, const ParseLimits& limits) {
  const Json j = parse_json_object(body, limits.max_depth);
  OpenAIEmbeddingsRequest req;
  const Json* input = find_field(j, "input");
  if (input == nullptr)
    throw ApiError(Reason::kValidation, "`input` is required", "input");
  req.inputs = parse_embedding_inputs(*input, "input", limits);
  req.model = get_string(j, "model").value_or("");
  const std::string format = get_string(j, "encoding_format").value_or("float");
  if (format == "base64") {
    req.base64 = true;
  } else if (format != "float") {
    std::string msg = "`encoding_format` must be \"float\" or \"base64\", got ";
    append_string(msg, format);
    throw ApiError(Reason::kValidation, std::move(msg), "encoding_format");
  }
  req.dimensions = parse_dimensions(j);
  get_string(j, "user");  // accepted and ignored, but must be a string
  return req;
}

std::string format_openai_embeddings(const float* rows, int64_t n, int64_t dim, bool base64,
                                     std::string_view model, int64_t prompt_tokens) {
  std::string out;
  const size_t per_row = base64 ? static_cast<size_t>(dim) * 16 / 3 + 48
                                : static_cast<size_t>(dim) * 13 + 48;
  out.reserve(static_cast<size_t>(n) * per_row + model.size() + 96);
  out += "{\"object\":\"list\",\"data\":[";
  for (int64_t i = 0; i < n; ++i) {
    if (i != 0) out += ',';
    out += "{\"object\":\"embedding\",\"index\":";
    append_int(out, i);
    out += ",\"embedding\":";
    const float* row = rows + i * dim;
    if (base64) {
      out += '"';
      append_base64_f32(out, row, static_cast<size_t>(dim));
      out += '"';
    } else {
      append_float_array(out, row, static_cast<size_t>(dim));
    }
    out += '}';
  }
  out += "],";
  append_key(out, "model");
  append_string(out, model);
  out += ",\"usage\":{\"prompt_tokens\":";
  append_int(out, prompt_tokens);
  out += ",\"total_tokens\":";
  append_int(out, prompt_tokens);
  out += "}}";
  return out;
}

std::string format_openai_models(std::string_view model_name) {
  std::string out = "{\"object\":\"list\",\"data\":[{\"id\":";
  append_string(out, model_name);
  out += ",\"object\":\"model\",\"created\":0,\"owned_by\":\"fanin\"}]}";
  return out;
}

}  // namespace fanin::server::api
