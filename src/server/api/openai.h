// server/api/openai.h: the OpenAI embeddings API (POST /v1/embeddings,
// GET /v1/models).
//
// Contract: parse_openai_embeddings() returns the request or throws ApiError
// naming the field (statuses: error_response(Api::kOpenAI, e)); the
// formatters produce OpenAI's exact response shapes. Pure, thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "server/api/embeddings.h"

namespace fanin::server::api {

// A parsed POST /v1/embeddings body.
struct OpenAIEmbeddingsRequest {
  EmbeddingInputs inputs;         // `input`: str | [str] | [int] | [[int]]
  std::string model;              // `model` ("" when absent)
  bool base64 = false;            // `encoding_format` "base64" (default "float")
  std::optional<int> dimensions;  // `dimensions` > 0, when given
};

// Parses {"input", "model", "encoding_format", "dimensions", "user"}; unknown
// members are ignored. Throws ApiError (kInvalidJson, kValidation, kEmpty,
// kTooManyInputs) naming the field.
OpenAIEmbeddingsRequest parse_openai_embeddings(std::string_view body, const ParseLimits& limits);

// The two ways parse_openai_embeddings takes (Note [OpenAI fast path] in
// openai.cpp): the common shape read in one pass, or nullopt for any other
// body; and the general parse through nlohmann, which also names every
// error. Where the fast one returns a request, the general one returns the
// same.
std::optional<OpenAIEmbeddingsRequest> parse_openai_embeddings_fast(std::string_view body,
                                                                    const ParseLimits& limits);
OpenAIEmbeddingsRequest parse_openai_embeddings_general(std::string_view body,
                                                        const ParseLimits& limits);

// {"object":"list","data":[{"object":"embedding","index":i,"embedding":...}],
//  "model":model,"usage":{"prompt_tokens":t,"total_tokens":t}} for the n rows
// of `dim` floats at `rows`; each embedding a float list, or with `base64`
// the base64 of its little-endian f32 bytes.
std::string format_openai_embeddings(const float* rows, int64_t n, int64_t dim, bool base64,
                                     std::string_view model, int64_t prompt_tokens);

// GET /v1/models: {"object":"list","data":[{"id":name,"object":"model",
// "created":0,"owned_by":"fanin"}]}.
std::string format_openai_models(std::string_view model_name);

}  // namespace fanin::server::api
