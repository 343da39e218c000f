// server/api/embeddings.h: what the OpenAI and TEI embedding routes share:
// the `input`/`inputs` field, the request limits, and the vector helpers
// (Matryoshka truncation, base64 of f32, float arrays as JSON).
//
// Contract: parse_embedding_inputs() throws ApiError naming the field
// (kEmpty, kTooManyInputs, kValidation); the helpers are pure, allocate only
// their result and are safe from any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "server/api/json.h"

namespace fanin::server::api {

// Limits every body parser takes.
struct ParseLimits {
  size_t max_inputs = 32;           // inputs per request (TEI's max_client_batch_size)
  int max_depth = kDefaultMaxDepth;  // JSON nesting
};

// The inputs of an embedding request: texts, or token-id lists (`tokens`).
struct EmbeddingInputs {
  std::vector<std::string> texts;               // when !tokens
  std::vector<std::vector<int32_t>> token_ids;  // when tokens
  bool tokens = false;
  bool batch = false;  // sent as a list (TEI's method="batch"), not one input

  // Number of inputs.
  size_t size() const noexcept { return tokens ? token_ids.size() : texts.size(); }
  // Code points over all texts (0 for token ids): x-compute-characters.
  size_t characters() const noexcept;
};

// Reads str | [str] | [int] | [[int]] from `value`, the member `field` of the
// body. Rejects an empty list, an empty string or token list (kEmpty), more
// than limits.max_inputs inputs (kTooManyInputs), mixed or wrong element
// types, ids outside [0, 2^31) and invalid UTF-8 (kValidation).
EmbeddingInputs parse_embedding_inputs(const Json& value, std::string_view field,
                                       const ParseLimits& limits);

// ApiError(kTooManyInputs) unless n <= max: "too many inputs: 40 >
// max_client_batch_size 32".
void check_input_count(size_t n, size_t max, std::string_view field);

// Reads an optional positive `dimensions`; kValidation for <= 0 or non-integers.
std::optional<int> parse_dimensions(const Json& body);

// Cuts each of the n rows of `dim` values in `rows` to its first `dimensions`
// values (in place, rows stay contiguous), then L2-normalises them again when
// `renormalize`. Returns the new row length. Throws ApiError(kValidation)
// when dimensions > dim. No-op (returns dim) for nullopt or dim.
int64_t apply_dimensions(std::vector<float>& rows, int64_t n, int64_t dim,
                         std::optional<int> dimensions, bool renormalize = true);

// Standard base64 (with padding) of the little-endian f32 bytes of
// v[0..count): numpy.frombuffer(base64.b64decode(s), dtype="float32").
std::string base64_f32(const float* v, size_t count);
// Appends it to `out` without quotes.
void append_base64_f32(std::string& out, const float* v, size_t count);

// Standard base64 decoding (for tests and clients); nullopt if malformed.
std::optional<std::string> base64_decode(std::string_view s);

// Appends [v0,v1,...], each float as append_float writes it (a text that
// reads back to the same f32; null for NaN and infinities).
void append_float_array(std::string& out, const float* v, size_t count);

}  // namespace fanin::server::api
