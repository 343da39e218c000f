#include "server/api/tei.h"

#include <cmath>

#include "server/api/errors.h"

namespace fanin::server::api {
namespace {

const Json& required(const Json& body, std::string_view key) {
  const Json* v = find_field(body, key);
  if (v == nullptr)
    throw ApiError(Reason::kValidation, field_label(key) + " is required", std::string(key));
  return *v;
}

const char* dtype_name(DType dtype) noexcept {
  switch (dtype) {
    case DType::kF32: return "float32";
    case DType::kF16: return "float16";
    case DType::kBF16: return "bfloat16";
    case DType::kI32: return "int32";
  }
  return "float32";
}

std::string millis(double us) {
  const double ms = us > 0 ? std::floor(us / 1000.0) : 0.0;
  return std::to_string(static_cast<int64_t>(ms));
}

}  // namespace

TeiEmbedRequest parse_tei_embed(std::string_view body, const ParseLimits& limits) {
  const Json j = parse_json_object(body, limits.max_depth);
  TeiEmbedRequest req;
  req.inputs = parse_embedding_inputs(required(j, "inputs"), "inputs", limits);
  req.truncate = get_bool(j, "truncate");
  if (const auto dir = get_string(j, "truncation_direction")) {
    if (*dir == "Left" || *dir == "left") {
      req.truncate_left = true;
    } else if (*dir != "Right" && *dir != "right") {
      std::string msg = "`truncation_direction` must be \"Left\" or \"Right\", got ";
      append_string(msg, *dir);
      throw ApiError(Reason::kValidation, std::move(msg), "truncation_direction");
    }
  }
  req.normalize = get_bool(j, "normalize").value_or(true);
  req.dimensions = parse_dimensions(j);
  req.prompt_name = get_string(j, "prompt_name");
  return req;
}

TeiTokenizeRequest parse_tei_tokenize(std::string_view body, const ParseLimits& limits) {
  const Json j = parse_json_object(body, limits.max_depth);
  const Json& v = required(j, "inputs");
  TeiTokenizeRequest req;
  if (v.is_array() && !v.empty() && !v.front().is_string())
    throw_wrong_type("`inputs`[0]", "a string", v.front(), "inputs");
  EmbeddingInputs in = parse_embedding_inputs(v, "inputs", limits);
  req.texts = std::move(in.texts);
  req.batch = in.batch;
  req.add_special_tokens = get_bool(j, "add_special_tokens").value_or(true);
  req.prompt_name = get_string(j, "prompt_name");
  return req;
}

TeiDecodeRequest parse_tei_decode(std::string_view body, const ParseLimits& limits) {
  const Json j = parse_json_object(body, limits.max_depth);
  const Json& v = required(j, "ids");
  if (!v.is_array()) throw_wrong_type("`ids`", "a list of token ids", v, "ids");
  if (!v.empty() && v.front().is_string())
    throw_wrong_type("`ids`[0]", "a token id or a list of token ids", v.front(), "ids");
  EmbeddingInputs in = parse_embedding_inputs(v, "ids", limits);
  TeiDecodeRequest req;
  req.ids = std::move(in.token_ids);
  req.batch = in.batch;
  req.skip_special_tokens = get_bool(j, "skip_special_tokens").value_or(true);
  return req;
}

std::string format_tei_embed(const float* rows, int64_t n, int64_t dim) {
  std::string out;
  out.reserve(static_cast<size_t>(n * dim) * 13 + static_cast<size_t>(n) * 2 + 2);
  out += '[';
  for (int64_t i = 0; i < n; ++i) {
    if (i != 0) out += ',';
    append_float_array(out, rows + i * dim, static_cast<size_t>(dim));
  }
  out += ']';
  return out;
}

std::string format_tei_tokenize(const std::vector<TeiTokens>& inputs) {
  std::string out = "[";
  for (size_t i = 0; i < inputs.size(); ++i) {
    const TeiTokens& t = inputs[i];
    if (i != 0) out += ',';
    out += '[';
    for (size_t k = 0; k < t.ids.size(); ++k) {
      if (k != 0) out += ',';
      out += "{\"id\":";
      append_int(out, t.ids[k]);
      out += ",\"text\":";
      append_string(out, k < t.tokens.size() ? std::string_view(t.tokens[k]) : "");
      out += ",\"special\":";
      out += k < t.special.size() && t.special[k] ? "true" : "false";
      out += ",\"start\":null,\"stop\":null}";
    }
    out += ']';
  }
  out += ']';
  return out;
}

std::string format_tei_decode(const std::vector<std::string>& texts) {
  std::string out = "[";
  for (size_t i = 0; i < texts.size(); ++i) {
    if (i != 0) out += ',';
    append_string(out, texts[i]);
  }
  out += ']';
  return out;
}

std::string format_tei_info(const EngineInfo& info, const ServerLimits& limits) {
  const std::string& id = limits.model_id.empty() ? info.model_name : limits.model_id;
  int64_t max_input = info.max_length;
  if (max_input == 0) {  // tensor engines: one input's values
    max_input = 1;
    for (const int64_t d : info.input_shape) max_input *= d;
  }
  const int64_t max_batch_tokens = info.max_tokens_per_batch > 0
                                       ? info.max_tokens_per_batch
                                       : max_input * info.max_batch_size;
  std::string out = "{";
  append_key(out, "model_id");
  append_string(out, id);
  out += ",\"model_sha\":null,";
  append_key(out, "model_dtype");
  append_string(out, dtype_name(info.dtype));
  out += ',';
  append_key(out, "served_model_name");
  append_string(out, id);
  out += ",\"model_type\":{\"embedding\":{";
  append_key(out, "pooling");
  append_string(out, limits.pooling);
  out += "}},\"max_concurrent_requests\":";
  append_int(out, limits.max_concurrent_requests);
  out += ",\"max_input_length\":";
  append_int(out, max_input);
  out += ",\"max_batch_tokens\":";
  append_int(out, max_batch_tokens);
  out += ",\"max_batch_requests\":";
  if (info.max_batch_size > 0) append_int(out, info.max_batch_size);
  else out += "null";
  out += ",\"max_client_batch_size\":";
  append_int(out, static_cast<int64_t>(limits.max_client_batch_size));
  out += ",\"auto_truncate\":";
  out += limits.auto_truncate ? "true" : "false";
  out += ",\"tokenization_workers\":";
  append_int(out, limits.tokenization_workers);
  out += ',';
  append_key(out, "version");
  append_string(out, limits.version);
  out += ",\"sha\":null,\"docker_label\":null}";
  return out;
}

std::vector<std::pair<std::string, std::string>> tei_headers(const TeiTiming& t,
                                                             std::string_view compute_type) {
  return {
      {"x-compute-type", std::string(compute_type)},
      {"x-compute-time", millis(t.total_us)},
      {"x-compute-characters", std::to_string(t.characters)},
      {"x-compute-tokens", std::to_string(t.tokens)},
      {"x-total-time", millis(t.total_us)},
      {"x-tokenization-time", millis(t.tokenization_us)},
      {"x-queue-time", millis(t.queue_us)},
      {"x-inference-time", millis(t.inference_us)},
  };
}

}  // namespace fanin::server::api
