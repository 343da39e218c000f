// Mlp: deterministic random weights, forward against a host computation,
// save/load round trips, and rejection of bad .safetensors files.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>
#include <vector>

#include "fanin/fanin.h"
#include "models/safetensors.h"
#include "test_helpers.h"

namespace fanin {
namespace {

using fanin::testing::random_values;
using fanin::testing::throws_error;
namespace fs = std::filesystem;

// A fresh directory per test (ctest may run tests in parallel).
class MlpTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           ("fanin_mlp_" + std::string(info->name()) + "_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  Stream s{Device::cpu()};
  fs::path dir_;
};

MlpConfig small(Activation act = Activation::kRelu, DType dtype = DType::kF32) {
  MlpConfig c;
  c.dims = {16, 32, 24, 8};
  c.activation = act;
  c.dtype = dtype;
  return c;
}

std::vector<float> run(const Mlp& m, const std::vector<float>& x, int64_t batch, Stream& s) {
  Tensor in = Tensor::from_vector(x, {batch, m.config().dims.front()}, s);
  if (m.dtype() != DType::kF32) in = ops::cast(in, m.dtype(), s);
  return m.forward(in, s).to_vector(s);
}

std::vector<float> as_f32(const safetensors::TensorView& t) {
  std::vector<float> v(t.bytes / dtype_size(t.dtype));
  for (size_t i = 0; i < v.size(); ++i) {
    if (t.dtype == DType::kF32) {
      std::memcpy(&v[i], static_cast<const char*>(t.data) + 4 * i, 4);
    } else {
      uint16_t h;
      std::memcpy(&h, static_cast<const char*>(t.data) + 2 * i, 2);
      v[i] = t.dtype == DType::kF16 ? f16_to_f32(h) : bf16_to_f32(h);
    }
  }
  return v;
}

std::string read_bytes(const std::string& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void write_bytes(const std::string& p, const std::string& bytes) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// A raw safetensors image: 8-byte little-endian header size, header, data.
std::string image(const std::string& header, const std::string& data, uint64_t size_field = 0) {
  uint64_t n = size_field ? size_field : header.size();
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>(n >> (8 * i));
  return out + header + data;
}

TEST_F(MlpTest, RandomIsDeterministicPerSeed) {
  auto a = Mlp::random(small(), 1, Device::cpu());
  auto b = Mlp::random(small(), 1, Device::cpu());
  auto c = Mlp::random(small(), 2, Device::cpu());
  auto x = random_values(3 * 16, 100);
  const auto ya = run(*a, x, 3, s), yb = run(*b, x, 3, s), yc = run(*c, x, 3, s);
  EXPECT_EQ(ya, yb) << "same seed, different outputs";
  EXPECT_NE(ya, yc) << "different seeds, same outputs";
  a->save(path("a.safetensors"));
  b->save(path("b.safetensors"));
  c->save(path("c.safetensors"));
  EXPECT_EQ(read_bytes(path("a.safetensors")), read_bytes(path("b.safetensors")));
  EXPECT_NE(read_bytes(path("a.safetensors")), read_bytes(path("c.safetensors")));
}

TEST_F(MlpTest, Describes) {
  auto m = Mlp::random(small(), 3, Device::cpu());
  EXPECT_EQ(m->name(), "mlp-16-32-24-8");
  EXPECT_EQ(m->input_shape(), (Shape{16}));
  EXPECT_EQ(m->output_shape(), (Shape{8}));
  EXPECT_EQ(m->dtype(), DType::kF32);
  EXPECT_EQ(&m->device(), &Device::cpu());
  EXPECT_EQ(m->weight_bytes(), 4u * (16 * 32 + 32 + 32 * 24 + 24 + 24 * 8 + 8));
  auto h = Mlp::random(small(Activation::kRelu, DType::kBF16), 3, Device::cpu());
  EXPECT_EQ(h->weight_bytes(), m->weight_bytes() / 2);
}

TEST_F(MlpTest, WeightsAreUniformWithinTheFanInBound) {
  auto m = Mlp::random(small(), 4, Device::cpu());
  m->save(path("m.safetensors"));
  auto f = safetensors::File::open(path("m.safetensors"));
  const int64_t fan_in[] = {16, 32, 24};
  for (int l = 0; l < 3; ++l) {
    for (const char* part : {".weight", ".bias"}) {
      const auto v = as_f32(f->at("layers." + std::to_string(l) + part));
      const float bound = 1.0f / std::sqrt(static_cast<float>(fan_in[l]));
      float lo = 1e9f, hi = -1e9f;
      for (float w : v) {
        ASSERT_LE(std::fabs(w), bound) << "layer " << l << part;
        lo = std::min(lo, w);
        hi = std::max(hi, w);
      }
      // Spread over the range, both signs.
      EXPECT_LT(lo, -bound / 4) << "layer " << l << part;
      EXPECT_GT(hi, bound / 4) << "layer " << l << part;
    }
  }
}

// The forward pass against a naive double-precision computation from the
// saved weights.
TEST_F(MlpTest, ForwardMatchesHostComputation) {
  for (Activation act : {Activation::kRelu, Activation::kGelu}) {
    auto m = Mlp::random(small(act), 5, Device::cpu());
    m->save(path("m.safetensors"));
    auto f = safetensors::File::open(path("m.safetensors"));
    const int64_t batch = 5;
    auto x = random_values(batch * 16, 200);
    std::vector<double> h(x.begin(), x.end());
    int64_t in = 16;
    for (int l = 0; l < 3; ++l) {
      const auto w = as_f32(f->at("layers." + std::to_string(l) + ".weight"));
      const auto b = as_f32(f->at("layers." + std::to_string(l) + ".bias"));
      const int64_t out = static_cast<int64_t>(b.size());
      std::vector<double> next(batch * out);
      for (int64_t i = 0; i < batch; ++i) {
        for (int64_t j = 0; j < out; ++j) {
          double acc = b[j];
          for (int64_t k = 0; k < in; ++k) acc += h[i * in + k] * w[j * in + k];
          if (l < 2) {
            acc = act == Activation::kRelu ? std::max(acc, 0.0)
                                           : 0.5 * acc * (1 + std::erf(acc / std::sqrt(2.0)));
          }
          next[i * out + j] = acc;
        }
      }
      h = std::move(next);
      in = out;
    }
    const auto y = run(*m, x, batch, s);
    ASSERT_EQ(y.size(), h.size());
    double ss = 0;
    for (double v : h) ss += v * v;
    const double rms = std::sqrt(ss / h.size());
    for (size_t i = 0; i < y.size(); ++i)
      EXPECT_NEAR(y[i], h[i], 1e-5 * (std::fabs(h[i]) + rms)) << to_string(act) << " " << i;
  }
}

TEST_F(MlpTest, SaveThenLoadGivesIdenticalOutputs) {
  for (DType dt : {DType::kF32, DType::kF16, DType::kBF16}) {
    auto m = Mlp::random(small(Activation::kGelu, dt), 6, Device::cpu());
    const std::string p = path(std::string("m_") + to_string(dt) + ".safetensors");
    m->save(p);
    auto loaded = Mlp::load(p, Device::cpu(), Activation::kGelu);
    EXPECT_EQ(loaded->dtype(), dt);
    EXPECT_EQ(loaded->config().dims, m->config().dims);
    EXPECT_EQ(loaded->name(), m->name());
    EXPECT_EQ(loaded->weight_bytes(), m->weight_bytes());
    auto x = random_values(4 * 16, 300);
    EXPECT_EQ(run(*loaded, x, 4, s), run(*m, x, 4, s)) << to_string(dt);
    // The activation is the caller's choice, not the file's.
    auto relu = Mlp::load(p, Device::cpu(), Activation::kRelu);
    EXPECT_NE(run(*relu, x, 4, s), run(*m, x, 4, s)) << to_string(dt);
  }
}

TEST_F(MlpTest, ForwardFromManyThreadsSharesTheWeights) {
  auto m = Mlp::random(small(), 7, Device::cpu());
  auto x = random_values(2 * 16, 400);
  const auto want = run(*m, x, 2, s);
  std::vector<std::thread> threads;
  std::atomic<int> mismatches{0};
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([&] {
      Stream mine(Device::cpu());
      for (int i = 0; i < 20; ++i)
        if (run(*m, x, 2, mine) != want) ++mismatches;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(mismatches.load(), 0);
}

// Making, saving and loading a model needs a stream for the uploads, but
// must not depend on a free slot in the device's default pool: a server's
// worker threads may hold all of them.
TEST_F(MlpTest, WorksWhileTheDefaultPoolIsFullyLeased) {
  StreamPool& pool = Device::cpu().stream_pool();
  std::vector<StreamLease> all;
  while (auto l = pool.try_acquire()) all.push_back(std::move(*l));
  ASSERT_EQ(pool.leased(), pool.size());
  auto start = std::chrono::steady_clock::now();
  try {
    auto m = Mlp::random(small(), 10, Device::cpu());
    m->save(path("m.safetensors"));
    auto loaded = Mlp::load(path("m.safetensors"), Device::cpu());
    auto x = random_values(2 * 16, 500);
    EXPECT_EQ(run(*loaded, x, 2, s), run(*m, x, 2, s));
  } catch (const Error& e) {
    ADD_FAILURE() << e.what();
  }
  EXPECT_LT(fanin::testing::ms_since(start), 5000.0) << "waited for the default pool";
}

TEST_F(MlpTest, BadConfigs) {
  MlpConfig c = small();
  c.dims = {16};
  EXPECT_TRUE(throws_error([&] { Mlp::random(c, 1, Device::cpu()); }, ErrorCode::kInvalidArgument,
                           {"[Mlp::random]", "at least 2 dims", "got 1"}));
  c.dims = {16, 0, 8};
  EXPECT_TRUE(throws_error([&] { Mlp::random(c, 1, Device::cpu()); }, ErrorCode::kInvalidArgument,
                           {"[Mlp::random]", "[16, 0, 8]"}));
  c.dims = {16, -4, 8};
  EXPECT_TRUE(throws_error([&] { Mlp::random(c, 1, Device::cpu()); }, ErrorCode::kInvalidArgument,
                           {"[16, -4, 8]"}));
  c = small(Activation::kRelu, DType::kI32);
  EXPECT_TRUE(throws_error([&] { Mlp::random(c, 1, Device::cpu()); }, ErrorCode::kInvalidArgument,
                           {"float dtype"}));
}

TEST_F(MlpTest, ForwardRejectsBadInput) {
  auto m = Mlp::random(small(), 8, Device::cpu());
  EXPECT_TRUE(throws_error([&] { m->forward(Tensor(), s); }, ErrorCode::kInvalidArgument,
                           {"[Mlp::forward]", "null"}));
  Tensor wrong = Tensor::from_vector(random_values(2 * 15, 1), {2, 15}, s);
  EXPECT_TRUE(throws_error([&] { m->forward(wrong, s); }, ErrorCode::kInvalidArgument,
                           {"[Mlp::forward]", "[2, 15]", "[batch, 16]"}));
  Tensor flat = Tensor::from_vector(random_values(16, 1), {16}, s);
  EXPECT_TRUE(throws_error([&] { m->forward(flat, s); }, ErrorCode::kInvalidArgument,
                           {"[Mlp::forward]", "[16]"}));
  Tensor half = ops::cast(Tensor::from_vector(random_values(32, 1), {2, 16}, s), DType::kF16, s);
  EXPECT_TRUE(throws_error([&] { m->forward(half, s); }, ErrorCode::kInvalidArgument,
                           {"[Mlp::forward]", "dtype f16", "model has f32"}));
}

// ---- loading bad files: InvalidArgument naming the file and the tensor ----

// A valid two-layer file's tensors, to be broken one way or another.
std::vector<safetensors::NamedData> two_layers(int64_t in = 4, int64_t hidden = 6, int64_t out = 3) {
  auto bytes = [](int64_t n) {
    std::vector<float> v = random_values(n, static_cast<uint32_t>(n));
    std::vector<uint8_t> b(n * 4);
    std::memcpy(b.data(), v.data(), b.size());
    return b;
  };
  return {{"layers.0.weight", DType::kF32, {hidden, in}, bytes(hidden * in)},
          {"layers.0.bias", DType::kF32, {hidden}, bytes(hidden)},
          {"layers.1.weight", DType::kF32, {out, hidden}, bytes(out * hidden)},
          {"layers.1.bias", DType::kF32, {out}, bytes(out)}};
}

TEST_F(MlpTest, LoadsAHandWrittenFile) {
  safetensors::write(path("ok.safetensors"), two_layers());
  auto m = Mlp::load(path("ok.safetensors"), Device::cpu());
  EXPECT_EQ(m->config().dims, (std::vector<int64_t>{4, 6, 3}));
}

TEST_F(MlpTest, LoadRejectsAMissingFile) {
  const std::string p = path("absent.safetensors");
  EXPECT_TRUE(throws_error([&] { Mlp::load(p, Device::cpu()); }, ErrorCode::kInvalidArgument,
                           {"cannot open", p}));
  EXPECT_TRUE(throws_error([&] { Mlp::load(dir_.string(), Device::cpu()); },
                           ErrorCode::kInvalidArgument, {"not a regular file"}));
}

TEST_F(MlpTest, LoadRejectsAMissingLayerTensor) {
  auto t = two_layers();
  t.pop_back();  // no layers.1.bias
  const std::string p = path("missing.safetensors");
  safetensors::write(p, t);
  EXPECT_TRUE(throws_error([&] { Mlp::load(p, Device::cpu()); }, ErrorCode::kInvalidArgument,
                           {p, "layers.1.bias"}));
  // A bias whose weight is missing.
  t = two_layers();
  t.erase(t.begin() + 2);  // no layers.1.weight
  safetensors::write(p, t);
  EXPECT_TRUE(throws_error([&] { Mlp::load(p, Device::cpu()); }, ErrorCode::kInvalidArgument,
                           {p, "layers.1.bias", "no layers.1.weight"}));
  // No layers at all.
  safetensors::write(p, {{"something.else", DType::kF32, {1}, {0, 0, 128, 63}}});
  EXPECT_TRUE(throws_error([&] { Mlp::load(p, Device::cpu()); }, ErrorCode::kInvalidArgument,
                           {p, "layers.0.weight"}));
}

TEST_F(MlpTest, LoadRejectsWrongShapes) {
  const std::string p = path("shapes.safetensors");
  auto t = two_layers();
  t[2] = {"layers.1.weight", DType::kF32, {3, 5}, std::vector<uint8_t>(60)};  // hidden is 6
  safetensors::write(p, t);
  EXPECT_TRUE(throws_error([&] { Mlp::load(p, Device::cpu()); }, ErrorCode::kInvalidArgument,
                           {"[Mlp::load]", p, "layers.1.weight", "[3, 5]",
                            "previous layer outputs 6"}));
  t = two_layers();
  t[1] = {"layers.0.bias", DType::kF32, {5}, std::vector<uint8_t>(20)};
  safetensors::write(p, t);
  EXPECT_TRUE(throws_error([&] { Mlp::load(p, Device::cpu()); }, ErrorCode::kInvalidArgument,
                           {p, "layers.0.bias", "[5]", "expected [6]"}));
  t = two_layers();
  t[0] = {"layers.0.weight", DType::kF32, {6, 2, 2}, std::vector<uint8_t>(96)};
  safetensors::write(p, t);
  EXPECT_TRUE(throws_error([&] { Mlp::load(p, Device::cpu()); }, ErrorCode::kInvalidArgument,
                           {p, "layers.0.weight", "[6, 2, 2]"}));
}

TEST_F(MlpTest, LoadRejectsMixedDtypes) {
  const std::string p = path("mixed.safetensors");
  auto t = two_layers();
  t[3] = {"layers.1.bias", DType::kF16, {3}, std::vector<uint8_t>(6)};
  safetensors::write(p, t);
  EXPECT_TRUE(throws_error([&] { Mlp::load(p, Device::cpu()); }, ErrorCode::kInvalidArgument,
                           {p, "layer 1", "f16"}));
}

TEST_F(MlpTest, LoadRejectsATruncatedFile) {
  const std::string p = path("trunc.safetensors");
  safetensors::write(p, two_layers());
  std::string bytes = read_bytes(p);
  write_bytes(p, bytes.substr(0, bytes.size() - 7));
  EXPECT_TRUE(throws_error([&] { Mlp::load(p, Device::cpu()); }, ErrorCode::kInvalidArgument,
                           {"[safetensors]", p, "layers.1.bias", "outside the data area"}));
  write_bytes(p, bytes.substr(0, 5));
  EXPECT_TRUE(throws_error([&] { Mlp::load(p, Device::cpu()); }, ErrorCode::kInvalidArgument,
                           {p, "5 bytes", "too short"}));
  write_bytes(p, "");
  EXPECT_TRUE(throws_error([&] { Mlp::load(p, Device::cpu()); }, ErrorCode::kInvalidArgument,
                           {p, "too short"}));
}

TEST_F(MlpTest, LoadRejectsAGarbageHeader) {
  const std::string p = path("garbage.safetensors");
  write_bytes(p, image("{\"layers.0.weight\": [1, 2", std::string(64, 'x')));
  EXPECT_TRUE(throws_error([&] { Mlp::load(p, Device::cpu()); }, ErrorCode::kInvalidArgument,
                           {p, "not valid JSON"}));
  write_bytes(p, image("[1, 2, 3]", ""));
  EXPECT_TRUE(throws_error([&] { Mlp::load(p, Device::cpu()); }, ErrorCode::kInvalidArgument,
                           {p, "not a JSON object"}));
  write_bytes(p, image("{\"layers.0.weight\": 7}", ""));
  EXPECT_TRUE(throws_error([&] { Mlp::load(p, Device::cpu()); }, ErrorCode::kInvalidArgument,
                           {p, "layers.0.weight", "not an object"}));
}

TEST_F(MlpTest, LoadRejectsAHeaderSizePastTheEnd) {
  const std::string p = path("past.safetensors");
  const std::string header = R"({"layers.0.weight":{"dtype":"F32","shape":[1,1],"data_offsets":[0,4]}})";
  write_bytes(p, image(header, "abcd", header.size() + 100));
  EXPECT_TRUE(throws_error([&] { Mlp::load(p, Device::cpu()); }, ErrorCode::kInvalidArgument,
                           {p, "header size " + std::to_string(header.size() + 100),
                            "past the end"}));
  write_bytes(p, image(header, "abcd", uint64_t{1} << 62));
  EXPECT_TRUE(throws_error([&] { Mlp::load(p, Device::cpu()); }, ErrorCode::kInvalidArgument,
                           {p, "exceeds the cap"}));
}

TEST_F(MlpTest, LoadRejectsOverlappingOffsets) {
  const std::string p = path("overlap.safetensors");
  const std::string header =
      R"({"layers.0.weight":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},)"
      R"("layers.0.bias":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})";
  write_bytes(p, image(header, std::string(16, '\0')));
  EXPECT_TRUE(throws_error([&] { Mlp::load(p, Device::cpu()); }, ErrorCode::kInvalidArgument,
                           {p, "layers.0.weight", "layers.0.bias", "overlap"}));
}

TEST_F(MlpTest, LoadRejectsAnUnsupportedDtype) {
  const std::string p = path("f64.safetensors");
  const std::string header =
      R"({"layers.0.weight":{"dtype":"F64","shape":[1,2],"data_offsets":[0,16]},)"
      R"("layers.0.bias":{"dtype":"F64","shape":[1],"data_offsets":[16,24]}})";
  write_bytes(p, image(header, std::string(24, '\0')));
  EXPECT_TRUE(throws_error([&] { Mlp::load(p, Device::cpu()); }, ErrorCode::kInvalidArgument,
                           {p, "layers.0", "dtype F64"}));
  // i32 is a dtype fanin reads, but not one an MLP computes in.
  safetensors::write(p, {{"layers.0.weight", DType::kI32, {1, 1}, {1, 0, 0, 0}},
                         {"layers.0.bias", DType::kI32, {1}, {1, 0, 0, 0}}});
  EXPECT_TRUE(throws_error([&] { Mlp::load(p, Device::cpu()); }, ErrorCode::kInvalidArgument,
                           {"[Mlp::load]", "float dtype"}));
}

}  // namespace
}  // namespace fanin
