// OpenAI POST /v1/embeddings and GET /v1/models.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "server/api/openai.h"
#include "test_api_util.h"

namespace fanin::server::api {
namespace {

constexpr Api kApi = Api::kOpenAI;

OpenAIEmbeddingsRequest parse(std::string_view body, size_t max_inputs = 32) {
  ParseLimits limits;
  limits.max_inputs = max_inputs;
  return parse_openai_embeddings(body, limits);
}

TEST(ApiOpenAI, ParsesEveryInputShape) {
  auto r = parse(R"({"input": "hello", "model": "minilm"})");
  EXPECT_EQ(r.inputs.texts, std::vector<std::string>{"hello"});
  EXPECT_FALSE(r.inputs.tokens);
  EXPECT_FALSE(r.inputs.batch);
  EXPECT_EQ(r.model, "minilm");
  EXPECT_FALSE(r.base64);
  EXPECT_FALSE(r.dimensions.has_value());

  r = parse(R"({"input": ["a", "b\u00e9"], "model": "m"})");
  EXPECT_EQ(r.inputs.texts, (std::vector<std::string>{"a", "b\xC3\xA9"}));
  EXPECT_TRUE(r.inputs.batch);
  EXPECT_EQ(r.inputs.characters(), 3u);

  r = parse(R"({"input": [101, 2023, 102], "model": "m"})");
  ASSERT_TRUE(r.inputs.tokens);
  EXPECT_EQ(r.inputs.token_ids, (std::vector<std::vector<int32_t>>{{101, 2023, 102}}));
  EXPECT_EQ(r.inputs.size(), 1u);

  r = parse(R"({"input": [[1, 2], [3]], "model": "m", "encoding_format": "base64",
                "dimensions": 128, "user": "u-1", "unknown_field": {}})");
  EXPECT_EQ(r.inputs.token_ids, (std::vector<std::vector<int32_t>>{{1, 2}, {3}}));
  EXPECT_TRUE(r.base64);
  EXPECT_EQ(r.dimensions, 128);

  r = parse(R"({"input": "x", "encoding_format": "float", "dimensions": null})");
  EXPECT_EQ(r.model, "");
  EXPECT_FALSE(r.dimensions.has_value());
}

TEST(ApiOpenAI, RejectsBadBodies) {
  EXPECT_REJECTS(kApi, 400, "invalid JSON at byte", parse(R"({"input": )"));
  EXPECT_REJECTS(kApi, 400, "nested deeper", parse(std::string(1000, '[')));
  EXPECT_REJECTS(kApi, 400, "nested deeper",
                 parse(R"({"input": "x", "user": )" + std::string(100, '[')));
  EXPECT_REJECTS(kApi, 400, "request body must be a JSON object", parse(R"("input")"));
  EXPECT_REJECTS(kApi, 400, "`input` is required", parse(R"({"model": "m"})"));
  EXPECT_REJECTS(kApi, 400, "`input` must be a string, a list of strings or a list of token ids, got number",
                 parse(R"({"input": 5})"));
  EXPECT_REJECTS(kApi, 400, "`input`[3] must be a string, got number",
                 parse(R"({"input": ["a", "b", "c", 4]})"));
  EXPECT_REJECTS(kApi, 400, "`input`[1] must be an integer, got string",
                 parse(R"({"input": [1, "b"]})"));
  EXPECT_REJECTS(kApi, 400, "`input`[1] must be a list of token ids, got string",
                 parse(R"({"input": [[1], "b"]})"));
  EXPECT_REJECTS(kApi, 400, "`input`[0] must be a string, a token id or a list of token ids, got object",
                 parse(R"({"input": [{}]})"));
  EXPECT_REJECTS(kApi, 400, "`input`[0] must be in [0, 2147483647], got -1",
                 parse(R"({"input": [-1]})"));
  EXPECT_REJECTS(kApi, 400, "`input`[1][0] must be in [0, 2147483647]",
                 parse(R"({"input": [[1], [4294967296]]})"));
  EXPECT_REJECTS(kApi, 400, "`input`[0] must be an integer, got number",
                 parse(R"({"input": [1.5]})"));
  EXPECT_REJECTS(kApi, 400, "`model` must be a string, got number",
                 parse(R"({"input": "x", "model": 3})"));
  EXPECT_REJECTS(kApi, 400, "`user` must be a string", parse(R"({"input": "x", "user": 3})"));
}

TEST(ApiOpenAI, RejectsEmptyInputs) {
  EXPECT_REJECTS(kApi, 400, "`input` must not be an empty list", parse(R"({"input": []})"));
  EXPECT_REJECTS(kApi, 400, "`input` must not be empty", parse(R"({"input": ""})"));
  EXPECT_REJECTS(kApi, 400, "`input`[1] must not be empty", parse(R"({"input": ["a", ""]})"));
  EXPECT_REJECTS(kApi, 400, "`input`[0] must not be an empty list", parse(R"({"input": [[]]})"));
  try {
    parse(R"({"input": []})");
  } catch (const ApiError& e) {
    EXPECT_EQ(e.reason(), Reason::kEmpty);
    EXPECT_EQ(e.param(), "input");
  }
}

TEST(ApiOpenAI, RejectsTooManyInputs) {
  std::string body = R"({"input": [)";
  for (int i = 0; i < 40; ++i) body += std::string(i ? "," : "") + "\"t\"";
  body += "]}";
  EXPECT_REJECTS(kApi, 400, "too many inputs: 40 > max_client_batch_size 32", parse(body));
  EXPECT_EQ(parse(body, 40).inputs.size(), 40u);
}

TEST(ApiOpenAI, RejectsBadDimensionsAndFormats) {
  EXPECT_REJECTS(kApi, 400, "`dimensions` must be a positive integer, got 0",
                 parse(R"({"input": "x", "dimensions": 0})"));
  EXPECT_REJECTS(kApi, 400, "`dimensions` must be a positive integer, got -3",
                 parse(R"({"input": "x", "dimensions": -3})"));
  EXPECT_REJECTS(kApi, 400, "`dimensions` must be an integer, got string",
                 parse(R"({"input": "x", "dimensions": "3"})"));
  EXPECT_REJECTS(kApi, 400, "`dimensions` must be an integer, got number",
                 parse(R"({"input": "x", "dimensions": 1.5})"));
  EXPECT_REJECTS(kApi, 400, "`dimensions` must be in",
                 parse(R"({"input": "x", "dimensions": 99999999999})"));
  EXPECT_REJECTS(kApi, 400, "`encoding_format` must be \"float\" or \"base64\", got \"int8\"",
                 parse(R"({"input": "x", "encoding_format": "int8"})"));
  EXPECT_REJECTS(kApi, 400, "`encoding_format` must be a string, got boolean",
                 parse(R"({"input": "x", "encoding_format": true})"));
}

TEST(ApiOpenAI, FormatsFloatEmbeddings) {
  const std::vector<float> rows = {0.1f, -0.25f, 1e-7f, 0.3333333f, 2.0f, -0.0f};
  const std::string body = format_openai_embeddings(rows.data(), 2, 3, false, "minilm", 17);
  const Json j = Json::parse(body);
  EXPECT_EQ(j["object"], "list");
  EXPECT_EQ(j["model"], "minilm");
  EXPECT_EQ(j["usage"], Json({{"prompt_tokens", 17}, {"total_tokens", 17}}));
  ASSERT_EQ(j["data"].size(), 2u);
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(j["data"][i]["object"], "embedding");
    EXPECT_EQ(j["data"][i]["index"], i);
    ASSERT_EQ(j["data"][i]["embedding"].size(), 3u);
    for (int k = 0; k < 3; ++k)
      EXPECT_EQ(j["data"][i]["embedding"][k].get<float>(), rows[i * 3 + k]);
  }
}

TEST(ApiOpenAI, FormatsBase64Embeddings) {
  std::vector<float> rows(2 * 384);
  for (size_t i = 0; i < rows.size(); ++i) rows[i] = std::sin(static_cast<float>(i));
  const Json j = Json::parse(format_openai_embeddings(rows.data(), 2, 384, true, "m", 5));
  for (int i = 0; i < 2; ++i) {
    const auto bytes = base64_decode(j["data"][i]["embedding"].get<std::string>());
    ASSERT_TRUE(bytes.has_value());
    ASSERT_EQ(bytes->size(), 384u * 4);
    std::vector<float> back(384);
    std::memcpy(back.data(), bytes->data(), bytes->size());
    EXPECT_EQ(back, std::vector<float>(rows.begin() + i * 384, rows.begin() + (i + 1) * 384));
  }
}

TEST(ApiOpenAI, FormatsModels) {
  EXPECT_EQ(Json::parse(format_openai_models("minilm")),
            Json::parse(R"({"object":"list","data":[{"id":"minilm","object":"model",
                            "created":0,"owned_by":"fanin"}]})"));
}

TEST(ApiEmbeddings, DimensionsTruncateAndRenormalise) {
  std::vector<float> rows = {3, 4, 12, 0, /*row 2*/ 0, 0, 5, 1};
  const int64_t d = apply_dimensions(rows, 2, 4, 2);
  EXPECT_EQ(d, 2);
  ASSERT_EQ(rows.size(), 4u);
  EXPECT_FLOAT_EQ(rows[0], 0.6f);
  EXPECT_FLOAT_EQ(rows[1], 0.8f);
  EXPECT_EQ(rows[2], 0.0f);  // an all-zero cut stays zero
  EXPECT_EQ(rows[3], 0.0f);
  std::vector<float> raw = {3, 4, 12};
  EXPECT_EQ(apply_dimensions(raw, 1, 3, 2, /*renormalize=*/false), 2);
  EXPECT_EQ(raw, (std::vector<float>{3, 4}));
  std::vector<float> same = {1, 2};
  EXPECT_EQ(apply_dimensions(same, 1, 2, std::nullopt), 2);
  EXPECT_REJECTS(kApi, 400, "`dimensions` 5 must be in [1, 4]", apply_dimensions(rows, 1, 4, 5));
}


// Note [OpenAI fast path]: wherever the one-pass reader takes a body, the
// general parser returns the same request; everything else (and so every
// error) is left to the general parser. Valid bodies in many spellings, and
// each of them cut short and with single bytes replaced.
TEST(ApiOpenAI, FastPathAgreesWithTheGeneralParser) {
  const std::vector<std::string> bodies = {
      R"({"input":"hello world","model":"all-MiniLM-L6-v2","encoding_format":"float"})",
      R"({"input":["a b","c d e"],"model":"m","encoding_format":"base64"})",
      R"( { "input" : [ "x" , "y" ] , "user" : "u1" } )",
      "{\n\t\"model\": \"m\",\r\n \"input\": \"caf\xC3\xA9 \xE2\x82\xAC\"\n}\n",
      R"({"input":"only"})",
      R"({"input":["one"]})",
      R"({"input":"a","model":""})",
      R"({"input":"a\"b"})",
      R"({"input":"a","dimensions":8})",
      R"({"input":[1,2,3]})",
      R"({"input":null,"model":"m"})",
      R"({"input":"a","input":"b"})",
      R"({"input":"a","extra":{"k":[1]}})",
      R"({"input":"a","encoding_format":"hex"})",
      R"({"input":[]})",
      R"({"input":[""]})",
      R"({"input":""})",
      R"({"model":"m"})",
      R"({"input":"a"} x)",
      R"({"input":"a",})",
      "{\"input\":\"\xFF\"}",
      "{\"input\":\"a\x01\"}",
  };
  std::vector<std::string> all = bodies;
  std::string many = R"({"input":[)";
  for (int i = 0; i < 40; ++i) many += (i ? ",\"s" : "\"s") + std::to_string(i) + "\"";
  all.push_back(many + "]}");
  for (const std::string& b : bodies) {
    for (size_t n = 0; n < b.size(); ++n) all.push_back(b.substr(0, n));
    for (size_t i = 0; i < b.size(); ++i)
      for (const char c : std::string("\"\\[]{},: x0\x01\xC3", 14)) {
        std::string m = b;
        m[i] = c;
        all.push_back(m);
      }
  }
  for (const int depth : {32, 1}) {
    ParseLimits limits;
    limits.max_inputs = 32;
    limits.max_depth = depth;
    size_t taken = 0;
    for (const std::string& body : all) {
      const auto fast = parse_openai_embeddings_fast(body, limits);
      std::optional<OpenAIEmbeddingsRequest> general;
      try {
        general = parse_openai_embeddings_general(body, limits);
      } catch (const ApiError&) {
      }
      if (!fast) continue;
      ++taken;
      ASSERT_TRUE(general.has_value()) << "the fast path took a body the general parser refuses: " << body;
      EXPECT_EQ(fast->inputs.texts, general->inputs.texts) << body;
      EXPECT_EQ(fast->inputs.batch, general->inputs.batch) << body;
      EXPECT_EQ(fast->inputs.tokens, general->inputs.tokens) << body;
      EXPECT_EQ(fast->model, general->model) << body;
      EXPECT_EQ(fast->base64, general->base64) << body;
      EXPECT_EQ(fast->dimensions, general->dimensions) << body;
    }
    // The common shapes do take the fast path (at depth 1 none may).
    if (depth == 32) EXPECT_GT(taken, 20u);
    else EXPECT_EQ(taken, 0u);
  }
}

}  // namespace
}  // namespace fanin::server::api
