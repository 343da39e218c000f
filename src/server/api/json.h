// server/api/json.h: bounded JSON parsing and the small writers the
// formatters share.
//
// Contract: parse_json() accepts at most `max_depth` nested arrays/objects
// and throws ApiError(kInvalidJson) for deeper nesting or invalid JSON (the
// message gives the byte position). The field readers throw
// ApiError(kValidation) naming the field and the type found. The writers
// append valid JSON text and never throw on bad UTF-8 (invalid bytes become
// U+FFFD). All functions are pure and thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace fanin::server::api {

using Json = nlohmann::json;

// The default nesting limit of request bodies.
inline constexpr int kDefaultMaxDepth = 32;

// Parses `body` as JSON; throws ApiError(kInvalidJson) when it is not JSON
// or nests deeper than max_depth.
Json parse_json(std::string_view body, int max_depth = kDefaultMaxDepth);

// Parses `body` and checks it is a JSON object.
Json parse_json_object(std::string_view body, int max_depth = kDefaultMaxDepth);

// JSON's name for the value's type: "string", "number", "array", ...
const char* type_name(const Json& value) noexcept;

// "`key`": how messages name a field.
std::string field_label(std::string_view key);
// "<label>[i]": an element of a list field, e.g. "`input`[3]".
std::string element_label(std::string_view label, size_t i);

// ApiError(kValidation, "<label> must be <expected>, got <type>"), with
// OpenAI's param `param`.
[[noreturn]] void throw_wrong_type(std::string_view label, std::string_view expected,
                                   const Json& got, std::string_view param);

// The member `key` of object `obj`, or nullptr if absent or null.
const Json* find_field(const Json& obj, std::string_view key);

// Readers of optional members: nullopt when absent or null; ApiError naming
// `key` when of another type (integers: out of [lo, hi] too).
std::optional<std::string> get_string(const Json& obj, std::string_view key);
std::optional<bool> get_bool(const Json& obj, std::string_view key);
std::optional<int64_t> get_int(const Json& obj, std::string_view key, int64_t lo, int64_t hi);

// `value` as an integer in [lo, hi]; `label` names it in the error.
int64_t as_int(const Json& value, std::string_view label, int64_t lo, int64_t hi,
               std::string_view param);

// True when `s` is well-formed UTF-8 (no overlongs, surrogates or > U+10FFFF).
bool valid_utf8(std::string_view s) noexcept;

// Code points in `s` (bytes that are not UTF-8 continuation bytes).
size_t utf8_length(std::string_view s) noexcept;

// Appends `s` as a quoted JSON string (invalid UTF-8 replaced by U+FFFD).
void append_string(std::string& out, std::string_view s);

// Appends a text that parses back to exactly `v` (write_float_text: 9
// significant digits; "null" for NaN and infinities, which JSON cannot hold).
void append_float(std::string& out, float v);
// Appends the shortest text that parses back to exactly `v` (std::to_chars;
// "null" for NaN and infinities).
void append_double(std::string& out, double v);

// Appends a decimal integer.
void append_int(std::string& out, int64_t v);

// Appends `name` (quoted) and a colon: "\"name\":".
void append_key(std::string& out, std::string_view name);

}  // namespace fanin::server::api
