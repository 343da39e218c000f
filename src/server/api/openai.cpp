#include "server/api/openai.h"

#include "server/api/errors.h"

namespace fanin::server::api {

namespace {

// Note [OpenAI fast path]
// Most bodies are {"input": "text" | ["text", ...], "model": "m",
// "encoding_format": "float" | "base64", "user": "u"} with plain strings.
// Read through nlohmann's DOM such a body cost ~20k instructions (a map
// node and a heap string per member, a character at a time into the
// lexer's buffer); this reads exactly that shape in one pass, taking the
// texts straight from the body. Anything else (another member, a number,
// null, an escape, a control character, invalid UTF-8, a duplicate member,
// an empty or too long input, a bad encoding_format, a depth limit under
// 2) returns nullopt and goes the general way, so every error, and every
// result of a body this does not take, is the general parser's.
// tests/server/test_api_openai.cpp compares both on valid and mutated
// bodies.
class Scan {
 public:
  explicit Scan(std::string_view s) : s_(s) {}
  void skip_ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r'))
      ++i_;
  }
  bool eat(char c) {
    skip_ws();
    if (i_ < s_.size() && s_[i_] == c) {
      ++i_;
      return true;
    }
    return false;
  }
  bool peek(char c) {
    skip_ws();
    return i_ < s_.size() && s_[i_] == c;
  }
  // A string without escapes or control characters, valid UTF-8.
  bool string(std::string_view* out) {
    if (!eat('"')) return false;
    const size_t start = i_;
    bool ascii = true;
    for (; i_ < s_.size(); ++i_) {
      const auto c = static_cast<unsigned char>(s_[i_]);
      if (c == '"') break;
      if (c == '\\' || c < 0x20) return false;
      ascii &= c < 0x80;
    }
    if (i_ >= s_.size()) return false;
    *out = s_.substr(start, i_ - start);
    ++i_;
    return ascii || valid_utf8(*out);
  }
  bool at_end() {
    skip_ws();
    return i_ == s_.size();
  }

 private:
  std::string_view s_;
  size_t i_ = 0;
};

}  // namespace

std::optional<OpenAIEmbeddingsRequest> parse_openai_embeddings_fast(std::string_view body,
                                                                    const ParseLimits& limits) {
  if (limits.max_depth < 2) return std::nullopt;
  Scan p(body);
  if (!p.eat('{')) return std::nullopt;
  OpenAIEmbeddingsRequest req;
  bool input = false, model = false, format = false, user = false;
  do {
    std::string_view key, value;
    if (!p.string(&key) || !p.eat(':')) return std::nullopt;
    if (key == "input" && !input) {
      input = true;
      if (p.eat('[')) {
        req.inputs.batch = true;
        do {
          if (!p.string(&value) || value.empty() || req.inputs.texts.size() >= limits.max_inputs)
            return std::nullopt;
          req.inputs.texts.emplace_back(value);
        } while (p.eat(','));
        if (!p.eat(']')) return std::nullopt;
      } else {
        if (!p.string(&value) || value.empty()) return std::nullopt;
        req.inputs.texts.emplace_back(value);
      }
    } else if (key == "model" && !model) {
      model = true;
      if (!p.string(&value)) return std::nullopt;
      req.model = std::string(value);
    } else if (key == "encoding_format" && !format) {
      format = true;
      if (!p.string(&value) || (value != "float" && value != "base64")) return std::nullopt;
      req.base64 = value == "base64";
    } else if (key == "user" && !user) {
      user = true;
      if (!p.string(&value)) return std::nullopt;
    } else {
      return std::nullopt;
    }
  } while (p.eat(','));
  if (!p.eat('}') || !p.at_end() || !input) return std::nullopt;
  return req;
}

OpenAIEmbeddingsRequest parse_openai_embeddings(std::string_view body, const ParseLimits& limits) {
  if (auto fast = parse_openai_embeddings_fast(body, limits)) return std::move(*fast);
  return parse_openai_embeddings_general(body, limits);
}

OpenAIEmbeddingsRequest parse_openai_embeddings_general(std::string_view body,
                                                        const ParseLimits& limits) {
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
