// server/api/tei.h: Hugging Face text-embeddings-inference's API (POST
// /embed, /tokenize, /decode; GET /info; the x-* timing headers).
//
// Contract: the parsers return the request or throw ApiError naming the
// field (statuses: error_response(Api::kTei, e)); the formatters produce
// TEI's response shapes. Pure, thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "fanin/engine.h"
#include "server/api/embeddings.h"

namespace fanin::server::api {

// A parsed POST /embed body.
struct TeiEmbedRequest {
  EmbeddingInputs inputs;               // `inputs`: str | [str] | [int] | [[int]]
  std::optional<bool> truncate;         // `truncate`; nullopt: the server's auto_truncate
  bool truncate_left = false;           // `truncation_direction` "Left" (default "Right")
  bool normalize = true;                // `normalize`
  std::optional<int> dimensions;        // `dimensions` > 0
  std::optional<std::string> prompt_name;  // `prompt_name`
};

// A parsed POST /tokenize body.
struct TeiTokenizeRequest {
  std::vector<std::string> texts;  // `inputs`: str | [str]
  bool batch = false;              // sent as a list
  bool add_special_tokens = true;  // `add_special_tokens`
  std::optional<std::string> prompt_name;
};

// A parsed POST /decode body.
struct TeiDecodeRequest {
  std::vector<std::vector<int32_t>> ids;  // `ids`: [int] | [[int]]
  bool batch = false;
  bool skip_special_tokens = true;  // `skip_special_tokens`
};

// Parse the bodies; throw ApiError naming the field.
TeiEmbedRequest parse_tei_embed(std::string_view body, const ParseLimits& limits);
TeiTokenizeRequest parse_tei_tokenize(std::string_view body, const ParseLimits& limits);
TeiDecodeRequest parse_tei_decode(std::string_view body, const ParseLimits& limits);

// [[f32, ...], ...]: the n rows of `dim` floats at `rows`.
std::string format_tei_embed(const float* rows, int64_t n, int64_t dim);

// One input's tokens, as /tokenize reports them.
struct TeiTokens {
  std::vector<int32_t> ids;
  std::vector<std::string> tokens;  // the vocabulary's token of each id
  std::vector<bool> special;        // [CLS], [SEP], ...
};

// [[{"id","text","special","start":null,"stop":null}, ...], ...].
std::string format_tei_tokenize(const std::vector<TeiTokens>& inputs);

// ["text", ...].
std::string format_tei_decode(const std::vector<std::string>& texts);

// The router parameters /info reports besides the engine's.
struct ServerLimits {
  std::string model_id;           // empty: EngineInfo::model_name
  std::string pooling = "mean";   // model_type.embedding.pooling
  int max_concurrent_requests = 512;
  size_t max_client_batch_size = 32;
  bool auto_truncate = true;
  int tokenization_workers = 1;
  std::string version = "0.1.0";  // fanin's version
};

// TEI's Info: model_id, model_sha (null), model_dtype ("float32"),
// served_model_name, model_type {"embedding":{"pooling"}}, max_concurrent_
// requests, max_input_length, max_batch_tokens, max_batch_requests,
// max_client_batch_size, auto_truncate, tokenization_workers, version, sha
// (null), docker_label (null).
std::string format_tei_info(const EngineInfo& info, const ServerLimits& limits);

// The timings and sizes of one request, for TEI's response headers.
struct TeiTiming {
  double total_us = 0, tokenization_us = 0, queue_us = 0, inference_us = 0;
  int64_t tokens = 0;
  size_t characters = 0;
};

// x-compute-type, x-compute-time, x-compute-characters, x-compute-tokens,
// x-total-time, x-tokenization-time, x-queue-time, x-inference-time; times
// in whole milliseconds (rounded down) as TEI sends them.
std::vector<std::pair<std::string, std::string>> tei_headers(const TeiTiming& timing,
                                                             std::string_view compute_type = "cpu");

}  // namespace fanin::server::api
