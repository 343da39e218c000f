#include "server/api/embeddings.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>

#include "server/api/errors.h"
#include "server/api/float_text.h"

namespace fanin::server::api {
namespace {

constexpr int64_t kMaxTokenId = std::numeric_limits<int32_t>::max();

std::string checked_text(const Json& v, const std::string& label, std::string_view param) {
  if (!v.is_string()) throw_wrong_type(label, "a string", v, param);
  const std::string& s = v.get_ref<const std::string&>();
  if (s.empty()) throw ApiError(Reason::kEmpty, label + " must not be empty", std::string(param));
  if (!valid_utf8(s))
    throw ApiError(Reason::kValidation, label + " is not valid UTF-8", std::string(param));
  return s;
}

std::vector<int32_t> checked_ids(const Json& v, const std::string& label, std::string_view param) {
  if (!v.is_array()) throw_wrong_type(label, "a list of token ids", v, param);
  if (v.empty())
    throw ApiError(Reason::kEmpty, label + " must not be an empty list", std::string(param));
  std::vector<int32_t> ids;
  ids.reserve(v.size());
  for (size_t i = 0; i < v.size(); ++i)
    ids.push_back(static_cast<int32_t>(as_int(v[i], element_label(label, i), 0, kMaxTokenId, param)));
  return ids;
}

}  // namespace

size_t EmbeddingInputs::characters() const noexcept {
  size_t n = 0;
  for (const std::string& t : texts) n += utf8_length(t);
  return n;
}

void check_input_count(size_t n, size_t max, std::string_view field) {
  if (n <= max) return;
  throw ApiError(Reason::kTooManyInputs,
                 "too many inputs: " + std::to_string(n) + " > max_client_batch_size " +
                     std::to_string(max),
                 std::string(field));
}

EmbeddingInputs parse_embedding_inputs(const Json& value, std::string_view field,
                                       const ParseLimits& limits) {
  const std::string label = field_label(field);
  EmbeddingInputs in;
  if (value.is_string()) {
    in.texts.push_back(checked_text(value, label, field));
    return in;
  }
  if (!value.is_array())
    throw_wrong_type(label, "a string, a list of strings or a list of token ids", value, field);
  if (value.empty())
    throw ApiError(Reason::kEmpty, label + " must not be an empty list", std::string(field));
  const Json& first = value.front();
  if (first.is_number()) {  // [int]: one tokenized input
    in.tokens = true;
    in.token_ids.push_back(checked_ids(value, label, field));
    return in;
  }
  in.batch = true;
  check_input_count(value.size(), limits.max_inputs, field);
  if (first.is_string()) {
    in.texts.reserve(value.size());
    for (size_t i = 0; i < value.size(); ++i)
      in.texts.push_back(checked_text(value[i], element_label(label, i), field));
  } else if (first.is_array()) {
    in.tokens = true;
    in.token_ids.reserve(value.size());
    for (size_t i = 0; i < value.size(); ++i)
      in.token_ids.push_back(checked_ids(value[i], element_label(label, i), field));
  } else {
    throw_wrong_type(element_label(label, 0), "a string, a token id or a list of token ids",
                     first, field);
  }
  return in;
}

std::optional<int> parse_dimensions(const Json& body) {
  const Json* v = find_field(body, "dimensions");
  if (v == nullptr) return std::nullopt;
  if (!v->is_number_integer()) throw_wrong_type("`dimensions`", "an integer", *v, "dimensions");
  const bool positive = v->is_number_unsigned() ? v->get<uint64_t>() > 0 : v->get<int64_t>() > 0;
  if (!positive)
    throw ApiError(Reason::kValidation,
                   "`dimensions` must be a positive integer, got " + v->dump(), "dimensions");
  return static_cast<int>(as_int(*v, "`dimensions`", 1, std::numeric_limits<int>::max(),
                                 "dimensions"));
}

int64_t apply_dimensions(std::vector<float>& rows, int64_t n, int64_t dim,
                         std::optional<int> dimensions, bool renormalize) {
  if (!dimensions || *dimensions == dim) return dim;
  const int64_t d = *dimensions;
  if (d <= 0 || d > dim)
    throw ApiError(Reason::kValidation,
                   "`dimensions` " + std::to_string(d) + " must be in [1, " +
                       std::to_string(dim) + "], the model's embedding size",
                   "dimensions");
  for (int64_t r = 0; r < n; ++r) {
    float* dst = rows.data() + r * d;
    const float* src = rows.data() + r * dim;
    if (dst != src) std::memmove(dst, src, static_cast<size_t>(d) * sizeof(float));
    if (!renormalize) continue;
    double ss = 0;
    for (int64_t i = 0; i < d; ++i) ss += static_cast<double>(dst[i]) * dst[i];
    if (ss <= 0) continue;
    const auto scale = static_cast<float>(1.0 / std::sqrt(ss));
    for (int64_t i = 0; i < d; ++i) dst[i] *= scale;
  }
  rows.resize(static_cast<size_t>(n * d));
  return d;
}

namespace {

constexpr char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

void append_base64(std::string& out, const unsigned char* p, size_t len) {
  // Written through a pointer into the grown string: one character at a
  // time through std::string cost ~25 instructions each (2,048 a MiniLM row).
  const size_t start = out.size();
  out.resize(start + (len + 2) / 3 * 4);
  char* o = out.data() + start;
  size_t i = 0;
  for (; i + 3 <= len; i += 3) {
    const uint32_t v = (uint32_t{p[i]} << 16) | (uint32_t{p[i + 1]} << 8) | p[i + 2];
    o[0] = kB64[v >> 18];
    o[1] = kB64[(v >> 12) & 63];
    o[2] = kB64[(v >> 6) & 63];
    o[3] = kB64[v & 63];
    o += 4;
  }
  if (i < len) {
    const uint32_t v = (uint32_t{p[i]} << 16) | (i + 1 < len ? uint32_t{p[i + 1]} << 8 : 0);
    o[0] = kB64[v >> 18];
    o[1] = kB64[(v >> 12) & 63];
    o[2] = i + 1 < len ? kB64[(v >> 6) & 63] : '=';
    o[3] = '=';
  }
}

}  // namespace

void append_base64_f32(std::string& out, const float* v, size_t count) {
  if constexpr (std::endian::native == std::endian::little) {
    append_base64(out, reinterpret_cast<const unsigned char*>(v), count * sizeof(float));
  } else {
    std::string le(count * sizeof(float), '\0');
    for (size_t i = 0; i < count; ++i) {
      uint32_t bits;
      std::memcpy(&bits, v + i, 4);
      for (int k = 0; k < 4; ++k) le[i * 4 + k] = static_cast<char>((bits >> (8 * k)) & 0xFF);
    }
    append_base64(out, reinterpret_cast<const unsigned char*>(le.data()), le.size());
  }
}

std::string base64_f32(const float* v, size_t count) {
  std::string out;
  append_base64_f32(out, v, count);
  return out;
}

std::optional<std::string> base64_decode(std::string_view s) {
  if (s.size() % 4 != 0) return std::nullopt;
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  std::string out;
  out.reserve(s.size() / 4 * 3);
  for (size_t i = 0; i < s.size(); i += 4) {
    const bool last = i + 4 == s.size();
    const int pad = last ? (s[i + 3] == '=') + (s[i + 2] == '=') : 0;
    if (pad == 1 && s[i + 2] == '=') return std::nullopt;
    uint32_t v = 0;
    for (int k = 0; k < 4; ++k) {
      const int x = k >= 4 - pad ? 0 : value(s[i + k]);
      if (x < 0) return std::nullopt;
      v = (v << 6) | static_cast<uint32_t>(x);
    }
    out += static_cast<char>(v >> 16);
    if (pad < 2) out += static_cast<char>((v >> 8) & 0xFF);
    if (pad < 1) out += static_cast<char>(v & 0xFF);
  }
  return out;
}

void append_float_array(std::string& out, const float* v, size_t count) {
  // Texts go into a stack block, 48 floats at a time, appended to `out`:
  // one append per 48 floats instead of one per float.
  constexpr size_t kChunk = 48;
  char block[kChunk * kFloatListStride + 2];
  out += '[';
  for (size_t i = 0; i < count; i += kChunk) {
    char* p = block;
    if (i != 0) *p++ = ',';
    p = write_float_list(p, v + i, std::min(kChunk, count - i));
    out.append(block, p);
  }
  out += ']';
}

}  // namespace fanin::server::api
