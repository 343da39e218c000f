#include "server/api/kserve.h"

#include <algorithm>
#include <bit>
#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>

#include "server/api/errors.h"

namespace fanin::server::api {
namespace {

// Element counts above this are rejected before any allocation.
constexpr int64_t kMaxElements = int64_t{1} << 31;

[[noreturn]] void invalid(std::string message, std::string param = {}) {
  throw ApiError(Reason::kValidation, std::move(message), std::move(param));
}

std::string json_quoted(std::string_view s) {
  std::string out;
  append_string(out, s);
  return out;
}

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i != 0) out += ',';
    append_int(out, shape[i]);
  }
  return out + "]";
}

// "`key`" for a member of the body, "<label>.key" for one of an element.
std::string member_label(const std::string& label, std::string_view key) {
  return label.empty() ? field_label(key) : label + "." + std::string(key);
}

const Json* find_object(const Json& obj, std::string_view key, const std::string& label) {
  const Json* v = find_field(obj, key);
  if (v != nullptr && !v->is_object()) throw_wrong_type(member_label(label, key), "an object", *v, key);
  return v;
}

const Json& required_member(const Json& obj, std::string_view key, const std::string& label) {
  const Json* v = find_field(obj, key);
  if (v == nullptr) invalid(member_label(label, key) + " is required", std::string(key));
  return *v;
}

std::string required_string(const Json& obj, std::string_view key, const std::string& label) {
  const Json& v = required_member(obj, key, label);
  if (!v.is_string()) throw_wrong_type(member_label(label, key), "a string", v, key);
  return v.get<std::string>();
}

// The input's shape, checked against the model's (-1 matches any size; a
// text model takes [n] as well as [n, 1]); returns its element count.
int64_t checked_shape(const Json& v, const std::string& label, const std::string& input,
                      const TensorSpec& spec, bool text, std::vector<int64_t>& shape) {
  if (!v.is_array()) throw_wrong_type(label, "a list of integers", v, "shape");
  for (size_t i = 0; i < v.size(); ++i)
    shape.push_back(as_int(v[i], element_label(label, i), 0, kMaxElements, "shape"));
  const bool text_vector = text && shape.size() == 1;
  const bool rank_ok = shape.size() == spec.shape.size() || text_vector;
  bool dims_ok = rank_ok;
  for (size_t i = 1; dims_ok && i < shape.size(); ++i)
    dims_ok = spec.shape[i] < 0 || shape[i] == spec.shape[i];
  if (!dims_ok)
    invalid("input " + json_quoted(input) + " has shape " + shape_text(shape) + ", the model expects " +
                shape_text(spec.shape),
            "shape");
  int64_t elements = 1;
  for (const int64_t d : shape)
    if (__builtin_mul_overflow(elements, d, &elements) || elements > kMaxElements)
      invalid("input " + json_quoted(input) + " shape " + shape_text(shape) + " has too many elements",
              "shape");
  return elements;
}

// Appends the leaves of (nested) JSON `data` to `out` / `texts`.
void flatten(const Json& data, bool text, int64_t expected, const std::string& input,
             std::vector<float>& out, std::vector<std::string>& texts, int64_t& count) {
  if (data.is_array()) {
    for (const Json& e : data) flatten(e, text, expected, input, out, texts, count);
    return;
  }
  if (++count > expected)
    invalid("input " + json_quoted(input) + " has more data elements than its shape's " +
                std::to_string(expected),
            "data");
  const std::string where = "input " + json_quoted(input) + " data element " + std::to_string(count - 1);
  if (text) {
    if (!data.is_string()) throw_wrong_type(where, "a string (BYTES)", data, "data");
    texts.push_back(data.get<std::string>());
    return;
  }
  if (!data.is_number()) throw_wrong_type(where, "a number (FP32)", data, "data");
  const auto d = data.get<double>();
  if (!(std::fabs(d) <= std::numeric_limits<float>::max()))
    invalid(where + " is not a finite FP32 value", "data");
  out.push_back(static_cast<float>(d));
}

uint32_t load_le32(const char* p) {
  uint32_t v = 0;
  for (int k = 3; k >= 0; --k) v = (v << 8) | static_cast<unsigned char>(p[k]);
  return v;
}

// Reads `elements` values from the input's binary section `bytes`.
void read_binary(std::string_view bytes, bool text, int64_t elements, const std::string& input,
                 std::vector<float>& out, std::vector<std::string>& texts) {
  if (!text) {
    if (bytes.size() != static_cast<size_t>(elements) * 4)
      invalid("input " + json_quoted(input) + " binary_data_size " + std::to_string(bytes.size()) +
                  " != 4 x " + std::to_string(elements) + " FP32 elements",
              "binary_data_size");
    out.resize(static_cast<size_t>(elements));
    for (int64_t i = 0; i < elements; ++i) {
      out[i] = std::bit_cast<float>(load_le32(bytes.data() + 4 * i));
      if (!std::isfinite(out[i]))
        invalid("input " + json_quoted(input) + " element " + std::to_string(i) +
                    " is not a finite FP32 value",
                "data");
    }
    return;
  }
  size_t pos = 0;
  for (int64_t i = 0; i < elements; ++i) {
    const std::string where = "input " + json_quoted(input) + " BYTES element " + std::to_string(i);
    if (bytes.size() - pos < 4) invalid(where + ": the binary data ends inside its length", "data");
    const uint32_t len = load_le32(bytes.data() + pos);
    pos += 4;
    if (bytes.size() - pos < len)
      invalid(where + ": length " + std::to_string(len) + " goes past the binary data's end",
              "data");
    std::string_view s = bytes.substr(pos, len);
    if (!valid_utf8(s)) invalid(where + " is not valid UTF-8", "data");
    texts.emplace_back(s);
    pos += len;
  }
  if (pos != bytes.size())
    invalid("input " + json_quoted(input) + " binary data has " + std::to_string(bytes.size() - pos) +
                " bytes after its " + std::to_string(elements) + " BYTES elements",
            "binary_data_size");
}

}  // namespace

ModelSignature model_signature(std::string_view name, const EngineInfo& info) {
  ModelSignature sig;
  sig.name = std::string(name);
  sig.text = info.kind == PayloadKind::kText;
  sig.max_batch_size = info.max_batch_size;
  sig.input = sig.text ? TensorSpec{"text", "BYTES", {-1, 1}} : TensorSpec{"input", "FP32", {-1}};
  sig.output = TensorSpec{sig.text ? "embedding" : "output", "FP32", {-1}};
  if (!sig.text) sig.input.shape.insert(sig.input.shape.end(), info.input_shape.begin(),
                                        info.input_shape.end());
  sig.output.shape.insert(sig.output.shape.end(), info.output_shape.begin(),
                          info.output_shape.end());
  return sig;
}

size_t parse_header_length(std::string_view value) {
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
  while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
  size_t n = 0;
  const auto r = std::from_chars(value.data(), value.data() + value.size(), n);
  if (value.empty() || r.ec != std::errc() || r.ptr != value.data() + value.size())
    invalid("Inference-Header-Content-Length must be a byte count, got " + json_quoted(value),
            "Inference-Header-Content-Length");
  return n;
}

KServeInferRequest parse_kserve_infer(std::string_view body, std::optional<size_t> header_length,
                                      const ModelSignature& sig, const ParseLimits& limits) {
  std::string_view binary;
  if (header_length) {
    if (*header_length > body.size())
      invalid("Inference-Header-Content-Length " + std::to_string(*header_length) +
                  " > the body's " + std::to_string(body.size()) + " bytes",
              "Inference-Header-Content-Length");
    binary = body.substr(*header_length);
    body = body.substr(0, *header_length);
  }
  const Json j = parse_json_object(body, limits.max_depth);
  KServeInferRequest req;
  req.id = get_string(j, "id");
  bool binary_output = false;
  if (const Json* p = find_object(j, "parameters", ""))
    binary_output = get_bool(*p, "binary_data_output").value_or(false);

  const Json& inputs = required_member(j, "inputs", "");
  if (!inputs.is_array()) throw_wrong_type("`inputs`", "a list", inputs, "inputs");
  if (inputs.size() != 1)
    invalid("model " + json_quoted(sig.name) + " has 1 input, the request has " +
                std::to_string(inputs.size()),
            "inputs");
  size_t offset = 0;  // into `binary`
  for (size_t k = 0; k < inputs.size(); ++k) {
    const std::string label = element_label("`inputs`", k);
    const Json& in = inputs[k];
    if (!in.is_object()) throw_wrong_type(label, "an object", in, "inputs");
    const std::string name = required_string(in, "name", label);
    if (name != sig.input.name)
      invalid("unknown input " + json_quoted(name) + ": model " + json_quoted(sig.name) + " has input " +
                  json_quoted(sig.input.name),
              "name");
    const std::string datatype = required_string(in, "datatype", label);
    if (datatype != sig.input.datatype)
      invalid("input " + json_quoted(name) + " has datatype " + json_quoted(datatype) + ", model " +
                  json_quoted(sig.name) + " expects " + sig.input.datatype,
              "datatype");
    std::vector<int64_t> shape;
    const int64_t elements = checked_shape(required_member(in, "shape", label), label + ".shape",
                                           name, sig.input, sig.text, shape);
    req.n = shape.empty() ? 0 : shape[0];
    if (req.n == 0) throw ApiError(Reason::kEmpty, "input " + json_quoted(name) + " has no elements", "shape");
    check_input_count(static_cast<size_t>(req.n), limits.max_inputs, "shape");

    std::optional<int64_t> binary_size;
    if (const Json* p = find_object(in, "parameters", label))
      binary_size = get_int(*p, "binary_data_size", 0, kMaxElements * 8);
    const Json* data = find_field(in, "data");
    if (binary_size && data != nullptr)
      invalid("input " + json_quoted(name) + " has both data and binary_data_size", "data");
    if (binary_size) {
      if (!header_length)
        invalid("input " + json_quoted(name) +
                    " has binary_data_size but there is no Inference-Header-Content-Length header",
                "binary_data_size");
      const auto size = static_cast<size_t>(*binary_size);
      if (binary.size() - offset < size)
        invalid("input " + json_quoted(name) + " binary_data_size " + std::to_string(size) +
                    " goes past the body's end (" + std::to_string(binary.size() - offset) +
                    " bytes left)",
                "binary_data_size");
      read_binary(binary.substr(offset, size), sig.text, elements, name, req.rows, req.texts);
      offset += size;
    } else if (data != nullptr) {
      if (!data->is_array())
        throw_wrong_type("input " + json_quoted(name) + " data", "a list (flat or nested)", *data,
                         "data");
      int64_t count = 0;
      // Each JSON number takes at least two bytes: a small body cannot make
      // a large reservation.
      if (!sig.text) req.rows.reserve(std::min(static_cast<size_t>(elements), body.size() / 2));
      flatten(*data, sig.text, elements, name, req.rows, req.texts, count);
      if (count != elements)
        invalid("input " + json_quoted(name) + " has " + std::to_string(count) +
                    " data elements, its shape " + shape_text(shape) + " has " +
                    std::to_string(elements),
                "data");
    } else {
      invalid("input " + json_quoted(name) + " has neither data nor binary_data_size", "data");
    }
  }
  if (offset != binary.size())
    invalid("the binary section has " + std::to_string(binary.size() - offset) +
                " bytes after the inputs' data",
            "binary_data_size");

  req.output_name = sig.output.name;
  req.binary_output = binary_output;
  if (const Json* outputs = find_field(j, "outputs")) {
    if (!outputs->is_array()) throw_wrong_type("`outputs`", "a list", *outputs, "outputs");
    for (size_t k = 0; k < outputs->size(); ++k) {
      const std::string label = element_label("`outputs`", k);
      const Json& out = (*outputs)[k];
      if (!out.is_object()) throw_wrong_type(label, "an object", out, "outputs");
      const std::string name = required_string(out, "name", label);
      if (name != sig.output.name)
        invalid("unknown output " + json_quoted(name) + ": model " + json_quoted(sig.name) +
                    " has output " + json_quoted(sig.output.name),
                "outputs");
      if (const Json* p = find_object(out, "parameters", label))
        req.binary_output = get_bool(*p, "binary_data").value_or(binary_output);
    }
  }
  return req;
}

KServeResponse format_kserve_infer(const ModelSignature& sig, const std::optional<std::string>& id,
                                   const float* data, int64_t n, bool binary) {
  std::vector<int64_t> shape = sig.output.shape;
  shape[0] = n;
  size_t count = 1;
  for (const int64_t d : shape) count *= static_cast<size_t>(d);
  KServeResponse r;
  std::string& out = r.body;
  out.reserve(binary ? count * 4 + 256 : count * 13 + 256);
  out += '{';
  append_key(out, "model_name");
  append_string(out, sig.name);
  out += ",\"model_version\":\"1\",";
  if (id) {
    append_key(out, "id");
    append_string(out, *id);
    out += ',';
  }
  out += "\"outputs\":[{";
  append_key(out, "name");
  append_string(out, sig.output.name);
  out += ",\"datatype\":\"FP32\",\"shape\":" + shape_text(shape) + ',';
  if (binary) {
    out += "\"parameters\":{\"binary_data_size\":";
    append_int(out, static_cast<int64_t>(count * 4));
    out += "}}]}";
    r.header_length = out.size();
    r.content_type = "application/octet-stream";
    const size_t at = out.size();
    out.resize(at + count * 4);
    for (size_t i = 0; i < count; ++i) {
      const auto bits = std::bit_cast<uint32_t>(data[i]);
      for (int k = 0; k < 4; ++k) out[at + 4 * i + k] = static_cast<char>((bits >> (8 * k)) & 0xFF);
    }
  } else {
    out += "\"data\":";
    append_float_array(out, data, count);
    out += "}]}";
  }
  return r;
}

namespace {

std::string dump(const Json& j) { return j.dump(-1, ' ', false, Json::error_handler_t::replace); }

Json tensor_metadata(const TensorSpec& t) {
  return Json{{"name", t.name}, {"datatype", t.datatype}, {"shape", t.shape}};
}

Json tensor_config(const TensorSpec& t) {
  const std::vector<int64_t> dims(t.shape.begin() + 1, t.shape.end());
  return Json{{"name", t.name},
              {"data_type", t.datatype == "BYTES" ? "TYPE_STRING" : "TYPE_" + t.datatype},
              {"dims", dims}};
}

}  // namespace

std::string format_kserve_server_metadata(std::string_view version) {
  return dump(Json{{"name", "fanin"},
                   {"version", std::string(version)},
                   {"extensions", Json::array({"binary_tensor_data", "model_configuration"})}});
}

std::string format_kserve_model_metadata(const ModelSignature& sig) {
  return dump(Json{{"name", sig.name},
                   {"versions", Json::array({"1"})},
                   {"platform", "fanin"},
                   {"inputs", Json::array({tensor_metadata(sig.input)})},
                   {"outputs", Json::array({tensor_metadata(sig.output)})}});
}

std::string format_kserve_model_config(const ModelSignature& sig) {
  return dump(Json{{"name", sig.name},
                   {"platform", "fanin"},
                   {"backend", "fanin"},
                   {"max_batch_size", sig.max_batch_size},
                   {"input", Json::array({tensor_config(sig.input)})},
                   {"output", Json::array({tensor_config(sig.output)})},
                   {"dynamic_batching", Json::object()}});
}

}  // namespace fanin::server::api
