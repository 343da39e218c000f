// KServe v2 / Open Inference Protocol: metadata, config, infer (JSON and
// Triton's binary tensor extension).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "server/api/kserve.h"
#include "test_api_util.h"

namespace fanin::server::api {
namespace {

constexpr Api kApi = Api::kKServe;
const ParseLimits kLimits{};

ModelSignature text_model() {
  EngineInfo info;
  info.kind = PayloadKind::kText;
  info.input_shape = {256};
  info.output_shape = {384};
  info.max_batch_size = 64;
  return model_signature("minilm", info);
}

ModelSignature tensor_model(int64_t width = 4) {
  EngineInfo info;
  info.kind = PayloadKind::kTensor;
  info.input_shape = {width};
  info.output_shape = {width};
  info.max_batch_size = 32;
  return model_signature("mlp", info);
}

std::string le32(uint32_t v) {
  std::string s(4, '\0');
  for (int k = 0; k < 4; ++k) s[k] = static_cast<char>((v >> (8 * k)) & 0xFF);
  return s;
}
std::string f32s(std::initializer_list<float> v) {
  std::string s;
  for (float f : v) s += le32(std::bit_cast<uint32_t>(f));
  return s;
}
std::string bytes_elements(std::initializer_list<std::string_view> v) {
  std::string s;
  for (std::string_view e : v) s += le32(static_cast<uint32_t>(e.size())) + std::string(e);
  return s;
}

TEST(ApiKServe, Signatures) {
  const ModelSignature t = text_model();
  EXPECT_EQ(t.input.name, "text");
  EXPECT_EQ(t.input.datatype, "BYTES");
  EXPECT_EQ(t.input.shape, (std::vector<int64_t>{-1, 1}));
  EXPECT_EQ(t.output.name, "embedding");
  EXPECT_EQ(t.output.shape, (std::vector<int64_t>{-1, 384}));
  const ModelSignature m = tensor_model(512);
  EXPECT_EQ(m.input.name, "input");
  EXPECT_EQ(m.input.shape, (std::vector<int64_t>{-1, 512}));
  EXPECT_EQ(m.output.name, "output");
}

TEST(ApiKServe, FormatsMetadataAndConfig) {
  const Json server = Json::parse(format_kserve_server_metadata("0.1.0"));
  EXPECT_EQ(server["name"], "fanin");
  EXPECT_EQ(server["version"], "0.1.0");
  EXPECT_EQ(server["extensions"], Json::parse(R"(["binary_tensor_data","model_configuration"])"));
  const Json meta = Json::parse(format_kserve_model_metadata(tensor_model(512)));
  EXPECT_EQ(meta, Json::parse(R"({"name":"mlp","versions":["1"],"platform":"fanin",
      "inputs":[{"name":"input","datatype":"FP32","shape":[-1,512]}],
      "outputs":[{"name":"output","datatype":"FP32","shape":[-1,512]}]})"));
  const Json config = Json::parse(format_kserve_model_config(text_model()));
  EXPECT_EQ(config["name"], "minilm");
  EXPECT_EQ(config["max_batch_size"], 64);
  EXPECT_EQ(config["input"][0], Json::parse(R"({"name":"text","data_type":"TYPE_STRING","dims":[1]})"));
  EXPECT_EQ(config["output"][0], Json::parse(R"({"name":"embedding","data_type":"TYPE_FP32","dims":[384]})"));
  EXPECT_TRUE(config["dynamic_batching"].is_object());
}

TEST(ApiKServe, ParsesJsonTensors) {
  const auto flat = parse_kserve_infer(
      R"({"id": "r1", "inputs": [{"name": "input", "shape": [2, 4], "datatype": "FP32",
          "data": [1, 2, 3, 4, 5, 6, 7, 8.5]}]})",
      std::nullopt, tensor_model(), kLimits);
  EXPECT_EQ(flat.id, "r1");
  EXPECT_EQ(flat.n, 2);
  EXPECT_EQ(flat.rows, (std::vector<float>{1, 2, 3, 4, 5, 6, 7, 8.5f}));
  EXPECT_FALSE(flat.binary_output);
  EXPECT_EQ(flat.output_name, "output");
  const auto nested = parse_kserve_infer(
      R"({"inputs": [{"name": "input", "shape": [2, 4], "datatype": "FP32",
          "data": [[1, 2, 3, 4], [5, 6, 7, 8.5]]}],
          "outputs": [{"name": "output", "parameters": {"binary_data": true}}]})",
      std::nullopt, tensor_model(), kLimits);
  EXPECT_EQ(nested.rows, flat.rows);
  EXPECT_FALSE(nested.id.has_value());
  EXPECT_TRUE(nested.binary_output);
}

TEST(ApiKServe, ParsesJsonTexts) {
  for (const char* shape : {"[2]", "[2, 1]"}) {
    const auto r = parse_kserve_infer(std::string(R"({"inputs": [{"name": "text", "shape": )") +
                                          shape + R"(, "datatype": "BYTES", "data": ["a", "b c"]}],
            "parameters": {"binary_data_output": true}})",
                                      std::nullopt, text_model(), kLimits);
    EXPECT_EQ(r.texts, (std::vector<std::string>{"a", "b c"}));
    EXPECT_EQ(r.n, 2);
    EXPECT_TRUE(r.binary_output);
  }
}

TEST(ApiKServe, ParsesBinaryTensors) {
  const std::string header =
      R"({"inputs":[{"name":"input","shape":[1,4],"datatype":"FP32","parameters":{"binary_data_size":16}}]})";
  const std::string body = header + f32s({1.5f, -2, 0, 3});
  const auto r = parse_kserve_infer(body, header.size(), tensor_model(), kLimits);
  EXPECT_EQ(r.rows, (std::vector<float>{1.5f, -2, 0, 3}));
  // tritonclient without explicit outputs asks for binary outputs this way.
  const std::string th =
      R"({"inputs":[{"name":"text","shape":[2,1],"datatype":"BYTES","parameters":{"binary_data_size":16}}],"parameters":{"binary_data_output":true}})";
  const auto t =
      parse_kserve_infer(th + bytes_elements({"hello", "w\xC3\xA9"}), th.size(), text_model(), kLimits);
  EXPECT_EQ(t.texts, (std::vector<std::string>{"hello", "w\xC3\xA9"}));
  EXPECT_TRUE(t.binary_output);
}

TEST(ApiKServe, RejectsBadRequests) {
  const ModelSignature m = tensor_model();
  auto json = [&](std::string_view body) { return parse_kserve_infer(body, std::nullopt, m, kLimits); };
  EXPECT_REJECTS(kApi, 400, "invalid JSON at byte", json("{\"inputs\": ["));
  EXPECT_REJECTS(kApi, 400, "nested deeper", json(std::string(1000, '[')));
  EXPECT_REJECTS(kApi, 400, "`inputs` is required", json("{}"));
  EXPECT_REJECTS(kApi, 400, "has 1 input, the request has 0", json(R"({"inputs": []})"));
  EXPECT_REJECTS(kApi, 400, "unknown input \"x\"",
                 json(R"({"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}]})"));
  EXPECT_REJECTS(kApi, 400, "input \"input\" has datatype \"BYTES\", model \"mlp\" expects FP32",
                 json(R"({"inputs":[{"name":"input","shape":[1,4],"datatype":"BYTES","data":["a"]}]})"));
  EXPECT_REJECTS(kApi, 400, "`inputs`[0].shape must be a list of integers, got string",
                 json(R"({"inputs":[{"name":"input","shape":"1,4","datatype":"FP32","data":[1]}]})"));
  EXPECT_REJECTS(kApi, 400, "input \"input\" has shape [1,5], the model expects [-1,4]",
                 json(R"({"inputs":[{"name":"input","shape":[1,5],"datatype":"FP32","data":[1,2,3,4,5]}]})"));
  EXPECT_REJECTS(kApi, 400, "has 3 data elements, its shape [1,4] has 4",
                 json(R"({"inputs":[{"name":"input","shape":[1,4],"datatype":"FP32","data":[1,2,3]}]})"));
  EXPECT_REJECTS(kApi, 400, "more data elements than its shape's 4",
                 json(R"({"inputs":[{"name":"input","shape":[1,4],"datatype":"FP32","data":[1,2,3,4,5]}]})"));
  EXPECT_REJECTS(kApi, 400, "data element 1 must be a number (FP32), got string",
                 json(R"({"inputs":[{"name":"input","shape":[1,4],"datatype":"FP32","data":[1,"2",3,4]}]})"));
  EXPECT_REJECTS(kApi, 400, "data element 2 is not a finite FP32 value",
                 json(R"({"inputs":[{"name":"input","shape":[1,4],"datatype":"FP32","data":[1,2,1e39,4]}]})"));
  EXPECT_REJECTS(kApi, 400, "has no elements",
                 json(R"({"inputs":[{"name":"input","shape":[0,4],"datatype":"FP32","data":[]}]})"));
  EXPECT_REJECTS(kApi, 400, "too many inputs: 33 > max_client_batch_size 32",
                 json(R"({"inputs":[{"name":"input","shape":[33,4],"datatype":"FP32","data":[]}]})"));
  EXPECT_REJECTS(kApi, 400, "neither data nor binary_data_size",
                 json(R"({"inputs":[{"name":"input","shape":[1,4],"datatype":"FP32"}]})"));
  EXPECT_REJECTS(kApi, 400, "no Inference-Header-Content-Length",
                 json(R"({"inputs":[{"name":"input","shape":[1,4],"datatype":"FP32","parameters":{"binary_data_size":16}}]})"));
  EXPECT_REJECTS(kApi, 400, "unknown output \"y\"",
                 json(R"({"inputs":[{"name":"input","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}],"outputs":[{"name":"y"}]})"));
  EXPECT_REJECTS(kApi, 400, "`binary_data` must be a boolean",
                 json(R"({"inputs":[{"name":"input","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}],"outputs":[{"name":"output","parameters":{"binary_data":1}}]})"));
  EXPECT_REJECTS(kApi, 400, "`id` must be a string",
                 json(R"({"id": 7, "inputs":[{"name":"input","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}]})"));
  // Text models: JSON BYTES must be strings.
  EXPECT_REJECTS(kApi, 400, "data element 0 must be a string (BYTES), got number",
                 parse_kserve_infer(R"({"inputs":[{"name":"text","shape":[1],"datatype":"BYTES","data":[5]}]})",
                                    std::nullopt, text_model(), kLimits));
}

TEST(ApiKServe, RejectsShapeProductOverflow) {
  const ModelSignature m = tensor_model();
  EXPECT_REJECTS(kApi, 400, "too many elements",
                 parse_kserve_infer(R"({"inputs":[{"name":"input","shape":[2147483648,4],"datatype":"FP32","data":[1]}]})",
                                    std::nullopt, m, ParseLimits{size_t{1} << 40, 32}));
  EXPECT_REJECTS(kApi, 400, "must be in [0, 2147483648]",
                 parse_kserve_infer(R"({"inputs":[{"name":"input","shape":[9223372036854775807,4],"datatype":"FP32","data":[1]}]})",
                                    std::nullopt, m, kLimits));
  EXPECT_REJECTS(kApi, 400, "must be in [0, 2147483648], got -1",
                 parse_kserve_infer(R"({"inputs":[{"name":"input","shape":[-1,4],"datatype":"FP32","data":[1]}]})",
                                    std::nullopt, m, kLimits));
}

TEST(ApiKServe, RejectsBadBinarySections) {
  const ModelSignature m = tensor_model();
  const std::string h =
      R"({"inputs":[{"name":"input","shape":[1,4],"datatype":"FP32","parameters":{"binary_data_size":16}}]})";
  EXPECT_REJECTS(kApi, 400, "goes past the body's end (12 bytes left)",
                 parse_kserve_infer(h + f32s({1, 2, 3}), h.size(), m, kLimits));
  EXPECT_REJECTS(kApi, 400, "4 bytes after the inputs' data",
                 parse_kserve_infer(h + f32s({1, 2, 3, 4, 5}), h.size(), m, kLimits));
  EXPECT_REJECTS(kApi, 400, "Inference-Header-Content-Length 999 > the body's",
                 parse_kserve_infer(h, 999, m, kLimits));
  EXPECT_REJECTS(kApi, 400, "element 2 is not a finite FP32 value",
                 parse_kserve_infer(h + f32s({1, 2, std::numeric_limits<float>::quiet_NaN(), 4}),
                                    h.size(), m, kLimits));
  EXPECT_REJECTS(kApi, 400, "element 0 is not a finite FP32 value",
                 parse_kserve_infer(h + f32s({std::numeric_limits<float>::infinity(), 2, 3, 4}),
                                    h.size(), m, kLimits));
  const std::string h12 =
      R"({"inputs":[{"name":"input","shape":[1,4],"datatype":"FP32","parameters":{"binary_data_size":12}}]})";
  EXPECT_REJECTS(kApi, 400, "binary_data_size 12 != 4 x 4 FP32 elements",
                 parse_kserve_infer(h12 + f32s({1, 2, 3}), h12.size(), m, kLimits));
  const std::string both =
      R"({"inputs":[{"name":"input","shape":[1,4],"datatype":"FP32","data":[1,2,3,4],"parameters":{"binary_data_size":16}}]})";
  EXPECT_REJECTS(kApi, 400, "both data and binary_data_size",
                 parse_kserve_infer(both + f32s({1, 2, 3, 4}), both.size(), m, kLimits));

  const ModelSignature t = text_model();
  auto text_header = [](size_t size) {
    return R"({"inputs":[{"name":"text","shape":[2],"datatype":"BYTES","parameters":{"binary_data_size":)" +
           std::to_string(size) + "}}]}";
  };
  std::string elems = bytes_elements({"abc", "de"});
  EXPECT_REJECTS(kApi, 400, "BYTES element 1: length 2 goes past",
                 parse_kserve_infer(text_header(elems.size() - 1) + elems.substr(0, elems.size() - 1),
                                    text_header(elems.size() - 1).size(), t, kLimits));
  elems = bytes_elements({"abc"}) + "\x01\x00";
  EXPECT_REJECTS(kApi, 400, "BYTES element 1: the binary data ends inside its length",
                 parse_kserve_infer(text_header(elems.size()) + elems, text_header(elems.size()).size(), t,
                                    kLimits));
  elems = bytes_elements({"abc", "\xFF"});
  EXPECT_REJECTS(kApi, 400, "BYTES element 1 is not valid UTF-8",
                 parse_kserve_infer(text_header(elems.size()) + elems, text_header(elems.size()).size(), t,
                                    kLimits));
  elems = bytes_elements({"abc", "d", "e"});
  EXPECT_REJECTS(kApi, 400, "bytes after its 2 BYTES elements",
                 parse_kserve_infer(text_header(elems.size()) + elems, text_header(elems.size()).size(), t,
                                    kLimits));
}

TEST(ApiKServe, ParsesHeaderLength) {
  EXPECT_EQ(parse_header_length("123"), 123u);
  EXPECT_EQ(parse_header_length(" 7 "), 7u);
  EXPECT_REJECTS(kApi, 400, "Inference-Header-Content-Length must be a byte count",
                 parse_header_length("12x"));
  EXPECT_REJECTS(kApi, 400, "Inference-Header-Content-Length", parse_header_length("-1"));
  EXPECT_REJECTS(kApi, 400, "Inference-Header-Content-Length", parse_header_length(""));
}

TEST(ApiKServe, FormatsJsonResponses) {
  const ModelSignature m = tensor_model(2);
  const std::vector<float> out = {0.25f, -1, 3, 1e-8f};
  const KServeResponse r = format_kserve_infer(m, std::string("req-9"), out.data(), 2, false);
  EXPECT_FALSE(r.header_length.has_value());
  EXPECT_STREQ(r.content_type, "application/json");
  const Json j = Json::parse(r.body);
  EXPECT_EQ(j["model_name"], "mlp");
  EXPECT_EQ(j["model_version"], "1");
  EXPECT_EQ(j["id"], "req-9");
  EXPECT_EQ(j["outputs"][0]["name"], "output");
  EXPECT_EQ(j["outputs"][0]["datatype"], "FP32");
  EXPECT_EQ(j["outputs"][0]["shape"], Json::parse("[2,2]"));
  EXPECT_EQ(j["outputs"][0]["data"].get<std::vector<float>>(), out);
  EXPECT_FALSE(Json::parse(format_kserve_infer(m, std::nullopt, out.data(), 2, false).body).contains("id"));
}

TEST(ApiKServe, FormatsBinaryResponses) {
  const ModelSignature m = text_model();
  std::vector<float> out(2 * 384);
  for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<float>(i) / 7.0f;
  const KServeResponse r = format_kserve_infer(m, std::nullopt, out.data(), 2, true);
  ASSERT_TRUE(r.header_length.has_value());
  EXPECT_STREQ(r.content_type, "application/octet-stream");
  const Json j = Json::parse(r.body.substr(0, *r.header_length));
  EXPECT_EQ(j["outputs"][0]["name"], "embedding");
  EXPECT_EQ(j["outputs"][0]["shape"], Json::parse("[2,384]"));
  EXPECT_EQ(j["outputs"][0]["parameters"]["binary_data_size"], 2 * 384 * 4);
  EXPECT_FALSE(j["outputs"][0].contains("data"));
  ASSERT_EQ(r.body.size(), *r.header_length + out.size() * 4);
  EXPECT_EQ(r.body.substr(*r.header_length), f32s({out[0], out[1], out[2]}) +
                                                 r.body.substr(*r.header_length + 12));
  std::vector<float> back(out.size());
  for (size_t i = 0; i < out.size(); ++i) {
    uint32_t bits = 0;
    for (int k = 3; k >= 0; --k)
      bits = (bits << 8) | static_cast<unsigned char>(r.body[*r.header_length + 4 * i + k]);
    back[i] = std::bit_cast<float>(bits);
  }
  EXPECT_EQ(back, out);
}

}  // namespace
}  // namespace fanin::server::api
