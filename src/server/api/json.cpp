#include "server/api/json.h"

#include <charconv>
#include <cmath>

#include "server/api/errors.h"
#include "server/api/float_text.h"

namespace fanin::server::api {
namespace {

// "[json.exception.parse_error.101] parse error at line 1, column 5: syntax
// error ..." -> "syntax error ...".
std::string_view strip_nlohmann_prefix(std::string_view what) {
  const size_t close = what.find("] ");
  if (close != std::string_view::npos) what.remove_prefix(close + 2);
  const size_t colon = what.find(": ");
  if (what.starts_with("parse error") && colon != std::string_view::npos)
    what.remove_prefix(colon + 2);
  return what;
}

// The deepest nesting of arrays and objects in `body` (brackets inside
// strings do not count). Up to the first syntax error it is the depth the
// parser reaches, as both see the same strings; past it the parser stops.
int max_nesting(std::string_view body) noexcept {
  int depth = 0, deepest = 0;
  bool in_string = false;
  for (size_t i = 0; i < body.size(); ++i) {
    const char c = body[i];
    if (in_string) {
      if (c == '\\') ++i;  // the escaped character cannot end the string
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > deepest) deepest = depth;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return deepest;
}

}  // namespace

Json parse_json(std::string_view body, int max_depth) {
  // The callback sees each container's start before it is entered, at the
  // depth of its parent: reject the first one that would go too deep.
  auto limit = [max_depth](int depth, Json::parse_event_t event, Json&) {
    if ((event == Json::parse_event_t::object_start ||
         event == Json::parse_event_t::array_start) &&
        depth + 1 > max_depth)
      throw ApiError(Reason::kInvalidJson,
                     "JSON nested deeper than " + std::to_string(max_depth) + " levels");
    return true;
  };
  try {
    // A body within the limit needs no callback (the callback parser costs
    // ~40% more per body); one beyond it takes the checking parse, whose
    // error names the limit (or the syntax error before it, as before).
    if (max_nesting(body) <= max_depth)
      return Json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/true,
                         /*ignore_comments=*/false);
    return Json::parse(body.begin(), body.end(), limit, /*allow_exceptions=*/true,
                       /*ignore_comments=*/false);
  } catch (const Json::parse_error& e) {
    throw ApiError(Reason::kInvalidJson, "invalid JSON at byte " + std::to_string(e.byte) + ": " +
                                             std::string(strip_nlohmann_prefix(e.what())));
  } catch (const Json::exception& e) {
    throw ApiError(Reason::kInvalidJson,
                   "invalid JSON: " + std::string(strip_nlohmann_prefix(e.what())));
  }
}

Json parse_json_object(std::string_view body, int max_depth) {
  Json j = parse_json(body, max_depth);
  if (!j.is_object()) throw_wrong_type("the request body", "a JSON object", j, "");
  return j;
}

const char* type_name(const Json& value) noexcept {
  switch (value.type()) {
    case Json::value_t::null: return "null";
    case Json::value_t::object: return "object";
    case Json::value_t::array: return "array";
    case Json::value_t::string: return "string";
    case Json::value_t::boolean: return "boolean";
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned:
    case Json::value_t::number_float: return "number";
    case Json::value_t::binary: return "binary";
    case Json::value_t::discarded: return "discarded";
  }
  return "unknown";
}

std::string field_label(std::string_view key) {
  std::string out;
  out.reserve(key.size() + 2);
  out += '`';
  out += key;
  out += '`';
  return out;
}

std::string element_label(std::string_view label, size_t i) {
  std::string out(label);
  out += '[';
  out += std::to_string(i);
  out += ']';
  return out;
}

void throw_wrong_type(std::string_view label, std::string_view expected, const Json& got,
                      std::string_view param) {
  std::string msg;
  msg.reserve(label.size() + expected.size() + 32);
  msg += label;
  msg += " must be ";
  msg += expected;
  msg += ", got ";
  msg += type_name(got);
  throw ApiError(Reason::kValidation, std::move(msg), std::string(param));
}

const Json* find_field(const Json& obj, std::string_view key) {
  const auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}

std::optional<std::string> get_string(const Json& obj, std::string_view key) {
  const Json* v = find_field(obj, key);
  if (v == nullptr) return std::nullopt;
  if (!v->is_string()) throw_wrong_type(field_label(key), "a string", *v, key);
  return v->get<std::string>();
}

std::optional<bool> get_bool(const Json& obj, std::string_view key) {
  const Json* v = find_field(obj, key);
  if (v == nullptr) return std::nullopt;
  if (!v->is_boolean()) throw_wrong_type(field_label(key), "a boolean", *v, key);
  return v->get<bool>();
}

std::optional<int64_t> get_int(const Json& obj, std::string_view key, int64_t lo, int64_t hi) {
  const Json* v = find_field(obj, key);
  if (v == nullptr) return std::nullopt;
  return as_int(*v, field_label(key), lo, hi, key);
}

int64_t as_int(const Json& value, std::string_view label, int64_t lo, int64_t hi,
               std::string_view param) {
  if (!value.is_number_integer()) throw_wrong_type(label, "an integer", value, param);
  bool in_range;
  int64_t v = 0;
  if (value.is_number_unsigned()) {
    const uint64_t u = value.get<uint64_t>();
    in_range = u <= static_cast<uint64_t>(hi) && (lo <= 0 || u >= static_cast<uint64_t>(lo));
    v = static_cast<int64_t>(u);
  } else {
    v = value.get<int64_t>();
    in_range = v >= lo && v <= hi;
  }
  if (!in_range) {
    std::string msg = std::string(label) + " must be in [" + std::to_string(lo) + ", " +
                      std::to_string(hi) + "], got " + value.dump();
    throw ApiError(Reason::kValidation, std::move(msg), std::string(param));
  }
  return v;
}

namespace {

// The length of the well-formed UTF-8 sequence at s[i], or 0.
size_t utf8_sequence(std::string_view s, size_t i) noexcept {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = b(i);
  if (c < 0x80) return 1;
  size_t len;
  unsigned char lo = 0x80, hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF) len = 2;
  else if (c == 0xE0) len = 3, lo = 0xA0;
  else if (c == 0xED) len = 3, hi = 0x9F;  // no surrogates
  else if (c >= 0xE1 && c <= 0xEF) len = 3;
  else if (c == 0xF0) len = 4, lo = 0x90;
  else if (c >= 0xF1 && c <= 0xF3) len = 4;
  else if (c == 0xF4) len = 4, hi = 0x8F;  // <= U+10FFFF
  else return 0;
  if (s.size() - i < len) return 0;
  if (b(i + 1) < lo || b(i + 1) > hi) return 0;
  for (size_t k = 2; k < len; ++k)
    if (b(i + k) < 0x80 || b(i + k) > 0xBF) return 0;
  return len;
}

}  // namespace

bool valid_utf8(std::string_view s) noexcept {
  for (size_t i = 0; i < s.size();) {
    const size_t n = utf8_sequence(s, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

size_t utf8_length(std::string_view s) noexcept {
  size_t n = 0;
  for (const char c : s) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  return n;
}

void append_string(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out.reserve(out.size() + s.size() + 2);
  out += '"';
  size_t run = 0;  // start of the pending run of bytes copied as they are
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
      ++i;
      continue;
    }
    size_t n = 1;
    if (c >= 0x80) {
      n = utf8_sequence(s, i);
      if (n != 0) {
        i += n;
        continue;
      }
    }
    out.append(s.data() + run, i - run);
    if (c >= 0x80) {
      out += "\xEF\xBF\xBD";  // U+FFFD for a byte that is not UTF-8
    } else if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\r') {
      out += "\\r";
    } else {
      out += "\\u00";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
    i += 1;
    run = i;
  }
  out.append(s.data() + run, s.size() - run);
  out += '"';
}

namespace {

template <typename T>
void append_number(std::string& out, T v) {
  if (!std::isfinite(v)) {
    out += "null";
    return;
  }
  char buf[32];
  const auto r = std::to_chars(buf, buf + sizeof(buf), v);
  out.append(buf, r.ptr);
}

}  // namespace

void append_float(std::string& out, float v) {
  if (!std::isfinite(v)) {
    out += "null";
    return;
  }
  char buf[kFloatTextMax];
  out.append(buf, write_float_text(buf, v));
}
void append_double(std::string& out, double v) { append_number(out, v); }
void append_int(std::string& out, int64_t v) {
  char buf[24];
  const auto r = std::to_chars(buf, buf + sizeof(buf), v);
  out.append(buf, r.ptr);
}

void append_key(std::string& out, std::string_view name) {
  append_string(out, name);
  out += ':';
}

}  // namespace fanin::server::api
