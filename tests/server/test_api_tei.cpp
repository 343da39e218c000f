// TEI POST /embed, /tokenize, /decode, GET /info and the x-* headers.
#include <gtest/gtest.h>

#include "server/api/tei.h"
#include "test_api_util.h"

namespace fanin::server::api {
namespace {

constexpr Api kApi = Api::kTei;
const ParseLimits kLimits{};

TEST(ApiTei, ParsesEmbedBodies) {
  auto r = parse_tei_embed(R"({"inputs": "What is Deep Learning?"})", kLimits);
  EXPECT_EQ(r.inputs.texts.size(), 1u);
  EXPECT_FALSE(r.inputs.batch);
  EXPECT_TRUE(r.normalize);
  EXPECT_FALSE(r.truncate.has_value());
  EXPECT_FALSE(r.truncate_left);

  r = parse_tei_embed(R"({"inputs": ["a", "b"], "truncate": true, "truncation_direction": "Left",
                          "normalize": false, "dimensions": 64, "prompt_name": "query"})",
                      kLimits);
  EXPECT_EQ(r.inputs.size(), 2u);
  EXPECT_TRUE(r.inputs.batch);
  EXPECT_EQ(r.truncate, true);
  EXPECT_TRUE(r.truncate_left);
  EXPECT_FALSE(r.normalize);
  EXPECT_EQ(r.dimensions, 64);
  EXPECT_EQ(r.prompt_name, "query");

  r = parse_tei_embed(R"({"inputs": [101, 102], "truncation_direction": "right"})", kLimits);
  EXPECT_TRUE(r.inputs.tokens);
  r = parse_tei_embed(R"({"inputs": [[101], [7, 102]]})", kLimits);
  EXPECT_EQ(r.inputs.token_ids.size(), 2u);
}

TEST(ApiTei, RejectsBadEmbedBodies) {
  EXPECT_REJECTS(kApi, 400, "invalid JSON at byte", parse_tei_embed("{", kLimits));
  EXPECT_REJECTS(kApi, 400, "nested deeper", parse_tei_embed(std::string(1000, '['), kLimits));
  EXPECT_REJECTS(kApi, 422, "`inputs` is required", parse_tei_embed("{}", kLimits));
  EXPECT_REJECTS(kApi, 400, "`inputs` must not be an empty list",
                 parse_tei_embed(R"({"inputs": []})", kLimits));
  EXPECT_REJECTS(kApi, 400, "`inputs` must not be empty",
                 parse_tei_embed(R"({"inputs": ""})", kLimits));
  EXPECT_REJECTS(kApi, 422, "`inputs`[1] must be a string, got boolean",
                 parse_tei_embed(R"({"inputs": ["a", true]})", kLimits));
  EXPECT_REJECTS(kApi, 422, "`truncate` must be a boolean, got string",
                 parse_tei_embed(R"({"inputs": "a", "truncate": "yes"})", kLimits));
  EXPECT_REJECTS(kApi, 422, "`normalize` must be a boolean, got number",
                 parse_tei_embed(R"({"inputs": "a", "normalize": 1})", kLimits));
  EXPECT_REJECTS(kApi, 422, "`truncation_direction` must be \"Left\" or \"Right\", got \"up\"",
                 parse_tei_embed(R"({"inputs": "a", "truncation_direction": "up"})", kLimits));
  EXPECT_REJECTS(kApi, 422, "`dimensions` must be a positive integer, got 0",
                 parse_tei_embed(R"({"inputs": "a", "dimensions": 0})", kLimits));
  EXPECT_REJECTS(kApi, 422, "`prompt_name` must be a string",
                 parse_tei_embed(R"({"inputs": "a", "prompt_name": []})", kLimits));
  std::string many = R"({"inputs": [)";
  for (int i = 0; i < 33; ++i) many += std::string(i ? "," : "") + "[1]";
  EXPECT_REJECTS(kApi, 422, "too many inputs: 33 > max_client_batch_size 32",
                 parse_tei_embed(many + "]}", kLimits));
}

TEST(ApiTei, ParsesTokenizeAndDecode) {
  auto t = parse_tei_tokenize(R"({"inputs": "hi there", "add_special_tokens": false})", kLimits);
  EXPECT_EQ(t.texts, std::vector<std::string>{"hi there"});
  EXPECT_FALSE(t.add_special_tokens);
  t = parse_tei_tokenize(R"({"inputs": ["a", "b"]})", kLimits);
  EXPECT_TRUE(t.batch);
  EXPECT_TRUE(t.add_special_tokens);
  EXPECT_REJECTS(kApi, 422, "`inputs`[0] must be a string, got number",
                 parse_tei_tokenize(R"({"inputs": [1, 2]})", kLimits));
  EXPECT_REJECTS(kApi, 422, "`add_special_tokens` must be a boolean",
                 parse_tei_tokenize(R"({"inputs": "a", "add_special_tokens": "no"})", kLimits));

  auto d = parse_tei_decode(R"({"ids": [101, 7592, 102]})", kLimits);
  EXPECT_EQ(d.ids, (std::vector<std::vector<int32_t>>{{101, 7592, 102}}));
  EXPECT_TRUE(d.skip_special_tokens);
  d = parse_tei_decode(R"({"ids": [[1], [2, 3]], "skip_special_tokens": false})", kLimits);
  EXPECT_EQ(d.ids.size(), 2u);
  EXPECT_TRUE(d.batch);
  EXPECT_FALSE(d.skip_special_tokens);
  EXPECT_REJECTS(kApi, 422, "`ids` must be a list of token ids, got string",
                 parse_tei_decode(R"({"ids": "abc"})", kLimits));
  EXPECT_REJECTS(kApi, 422, "`ids`[0] must be a token id or a list of token ids, got string",
                 parse_tei_decode(R"({"ids": ["abc"]})", kLimits));
  EXPECT_REJECTS(kApi, 400, "`ids` must not be an empty list",
                 parse_tei_decode(R"({"ids": []})", kLimits));
  EXPECT_REJECTS(kApi, 422, "`ids` is required", parse_tei_decode(R"({})", kLimits));
}

TEST(ApiTei, FormatsResponses) {
  const std::vector<float> rows = {0.5f, -0.125f, 1.0f, 0.0f};
  EXPECT_EQ(format_tei_embed(rows.data(), 2, 2), "[[0.5,-0.125],[1,0]]");
  TeiTokens t{{101, 7592, 102}, {"[CLS]", "hello", "[SEP]"}, {true, false, true}};
  const Json tok = Json::parse(format_tei_tokenize({t}));
  ASSERT_EQ(tok.size(), 1u);
  ASSERT_EQ(tok[0].size(), 3u);
  EXPECT_EQ(tok[0][0], Json::parse(R"({"id":101,"text":"[CLS]","special":true,"start":null,
                                       "stop":null})"));
  EXPECT_EQ(tok[0][1]["special"], false);
  EXPECT_EQ(format_tei_decode({"hello world", "a\"b"}), R"(["hello world","a\"b"])");
}

TEST(ApiTei, FormatsInfo) {
  EngineInfo info;
  info.kind = PayloadKind::kText;
  info.model_name = "bert-6x384";
  info.input_shape = {256};
  info.output_shape = {384};
  info.max_length = 256;
  info.max_batch_size = 64;
  info.max_tokens_per_batch = 16384;
  ServerLimits limits;
  limits.model_id = "sentence-transformers/all-MiniLM-L6-v2";
  limits.max_client_batch_size = 32;
  limits.version = "0.1.0";
  const Json j = Json::parse(format_tei_info(info, limits));
  EXPECT_EQ(j["model_id"], "sentence-transformers/all-MiniLM-L6-v2");
  EXPECT_TRUE(j["model_sha"].is_null());
  EXPECT_EQ(j["model_dtype"], "float32");
  EXPECT_EQ(j["model_type"], Json::parse(R"({"embedding":{"pooling":"mean"}})"));
  EXPECT_EQ(j["max_concurrent_requests"], 512);
  EXPECT_EQ(j["max_input_length"], 256);
  EXPECT_EQ(j["max_batch_tokens"], 16384);
  EXPECT_EQ(j["max_batch_requests"], 64);
  EXPECT_EQ(j["max_client_batch_size"], 32);
  EXPECT_EQ(j["auto_truncate"], true);
  EXPECT_EQ(j["tokenization_workers"], 1);
  EXPECT_EQ(j["version"], "0.1.0");
}

TEST(ApiTei, HeadersAreWholeMilliseconds) {
  TeiTiming t;
  t.total_us = 12999;
  t.tokenization_us = 400;
  t.queue_us = 2500;
  t.inference_us = 9100;
  t.tokens = 42;
  t.characters = 120;
  const auto h = tei_headers(t);
  auto get = [&](std::string_view name) {
    for (const auto& [k, v] : h)
      if (k == name) return v;
    return std::string("missing");
  };
  EXPECT_EQ(get("x-compute-time"), "12");
  EXPECT_EQ(get("x-total-time"), "12");
  EXPECT_EQ(get("x-tokenization-time"), "0");
  EXPECT_EQ(get("x-queue-time"), "2");
  EXPECT_EQ(get("x-inference-time"), "9");
  EXPECT_EQ(get("x-compute-tokens"), "42");
  EXPECT_EQ(get("x-compute-characters"), "120");
  EXPECT_EQ(get("x-compute-type"), "cpu");
}

}  // namespace
}  // namespace fanin::server::api
