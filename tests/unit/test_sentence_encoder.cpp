// The sentence encoder against sentence-transformers' reference vectors
// (tests/data/minilm_refs.json, made by scripts/make_embedding_refs.py), and
// its errors for bad model folders.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "backends/cpu/gemm.h"
#include "fanin/device.h"
#include "fanin/error.h"
#include "fanin/sentence_encoder.h"
#include "fanin/stream.h"
#include "test_helpers.h"

#ifndef FANIN_SOURCE_DIR
#error "FANIN_SOURCE_DIR must name the source tree (tests/CMakeLists.txt sets it)"
#endif

namespace fs = std::filesystem;
using fanin::Device;
using fanin::DType;
using fanin::ErrorCode;
using fanin::SentenceEncoder;

namespace {

const fs::path kSource = FANIN_SOURCE_DIR;
const fs::path kModel = kSource / "models" / "all-MiniLM-L6-v2";
const fs::path kRefs = kSource / "tests" / "data" / "minilm_refs.json";

struct Refs {
  std::vector<std::string> sentences;
  std::vector<std::vector<float>> embeddings;
};

Refs load_refs() {
  std::ifstream in(kRefs);
  nlohmann::json j = nlohmann::json::parse(in);
  Refs r;
  r.sentences = j["sentences"].get<std::vector<std::string>>();
  r.embeddings = j["embeddings"].get<std::vector<std::vector<float>>>();
  return r;
}

using fanin::testing::cosine;

void check_parity(const std::string& device_name, DType dtype, double min_cosine) {
  if (!fs::exists(kModel / "model.safetensors"))
    GTEST_SKIP() << kModel.string() << " is missing: run scripts/fetch_models.sh";
  if (!Device::is_available(device_name))
    GTEST_SKIP() << "no " << device_name << " device: this parity test runs on the GPU machine";
  ASSERT_TRUE(fs::exists(kRefs)) << kRefs;
  Refs refs = load_refs();
  ASSERT_EQ(refs.sentences.size(), refs.embeddings.size());
  ASSERT_GE(refs.sentences.size(), 20u);
  Device& device = Device::get(device_name);
  auto enc = SentenceEncoder::load(kModel.string(), device, dtype);
  fanin::StreamLease lease = device.stream_pool().acquire();
  // Odd batch size: rows of different lengths share batches.
  auto got = enc->embed(refs.sentences, lease.stream(), 7);
  ASSERT_EQ(got.size(), refs.sentences.size());
  double worst = 1.0;
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_EQ(got[i].size(), refs.embeddings[i].size());
    const double c = cosine(got[i], refs.embeddings[i]);
    worst = std::min(worst, c);
    EXPECT_GE(c, min_cosine) << "sentence " << i << ": '" << refs.sentences[i] << "'";
  }
  std::printf("[parity] %s %s: worst cosine %.9f over %zu sentences\n", device_name.c_str(),
              fanin::to_string(dtype), worst, got.size());
}

}  // namespace

TEST(SentenceEncoderParity, CpuF32MatchesSentenceTransformers) {
  check_parity("cpu", DType::kF32, 0.9999);
}

// The linear layers in bf16 (Note [CPU bf16 matmul]): the default where the
// CPU has bf16 instructions, and ctest's cpu_bf16_matmul entry runs it with
// FANIN_CPU_MATMUL=bf16 everywhere (emulated where the CPU has none). The bar
// is the f32 path's: the GEMMs round their inputs to bf16 but sum in f32.
TEST(SentenceEncoderParity, CpuBf16LinearLayersMatchSentenceTransformers) {
  if (fanin::backend::cpu::cpu_matmul() != fanin::backend::cpu::CpuMatmul::kBf16)
    GTEST_SKIP() << "the linear layers run in f32 here (FANIN_CPU_MATMUL=bf16 runs them in bf16)";
  std::printf("[parity] linear layers in bf16 on %s\n",
              fanin::backend::cpu::bf16_matmul_library().c_str());
  check_parity("cpu", DType::kF32, 0.9999);
}

TEST(SentenceEncoderParity, CudaF16MatchesSentenceTransformers) {
  check_parity("cuda", DType::kF16, 0.999);
}

TEST(SentenceEncoderParity, EmbeddingsDoNotDependOnBatchComposition) {
  if (!fs::exists(kModel / "model.safetensors"))
    GTEST_SKIP() << kModel.string() << " is missing: run scripts/fetch_models.sh";
  Device& cpu = Device::cpu();
  auto enc = SentenceEncoder::load(kModel.string(), cpu);
  fanin::StreamLease lease = cpu.stream_pool().acquire();
  std::vector<std::string> texts = {"short", "a somewhat longer sentence with more words in it",
                                    "", "mid length text here"};
  auto together = enc->embed(texts, lease.stream(), 4);
  for (size_t i = 0; i < texts.size(); ++i) {
    auto alone = enc->embed({texts[i]}, lease.stream(), 1);
    EXPECT_GE(cosine(alone[0], together[i]), 0.999999) << texts[i];
  }
}

// ---- bad model folders ----

namespace {

class BadFolder : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("fanin_bad_model_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  void write(const std::string& name, const std::string& content) {
    std::ofstream(dir_ / name, std::ios::binary) << content;
  }
  // Loads and returns the error message (fails the test if nothing throws).
  std::string load_error() {
    try {
      SentenceEncoder::load(dir_.string(), Device::cpu());
    } catch (const fanin::Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument) << e.what();
      return e.what();
    }
    ADD_FAILURE() << "loading " << dir_ << " did not throw";
    return "";
  }
  fs::path dir_;
};

const char* kTinyConfig =
    R"({"vocab_size": 8, "hidden_size": 4, "num_hidden_layers": 1, "num_attention_heads": 2,)"
    R"( "intermediate_size": 8, "max_position_embeddings": 16, "type_vocab_size": 2})";

}  // namespace

TEST_F(BadFolder, MissingConfigNamesTheFile) {
  const std::string msg = load_error();
  EXPECT_NE(msg.find("config.json"), std::string::npos) << msg;
}

TEST_F(BadFolder, MissingWeightsNameTheFile) {
  write("config.json", kTinyConfig);
  const std::string msg = load_error();
  EXPECT_NE(msg.find("model.safetensors"), std::string::npos) << msg;
}

TEST_F(BadFolder, TruncatedSafetensorsIsRejected) {
  write("config.json", kTinyConfig);
  write("model.safetensors", std::string("\x40\x00\x00\x00\x00\x00\x00\x00{\"a\":", 13));
  const std::string msg = load_error();
  EXPECT_NE(msg.find("model.safetensors"), std::string::npos) << msg;
}

TEST_F(BadFolder, ConfigWithBadFieldNamesIt) {
  write("config.json", R"({"vocab_size": -3, "hidden_size": 4})");
  const std::string msg = load_error();
  EXPECT_NE(msg.find("vocab_size"), std::string::npos) << msg;
}

TEST_F(BadFolder, WrongShapeNamesTheTensor) {
  if (!fs::exists(kModel / "model.safetensors"))
    GTEST_SKIP() << kModel.string() << " is missing: run scripts/fetch_models.sh";
  // The real weights with a config that claims a different hidden size.
  fs::copy_file(kModel / "model.safetensors", dir_ / "model.safetensors");
  write("config.json",
        R"({"vocab_size": 30522, "hidden_size": 256, "num_hidden_layers": 6,)"
        R"( "num_attention_heads": 8, "intermediate_size": 1536})");
  const std::string msg = load_error();
  EXPECT_NE(msg.find("word_embeddings"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[30522, 384]"), std::string::npos) << msg;
}
