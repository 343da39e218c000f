// `fanin embed` end to end: the binary run on files, its rows, messages and
// exit codes (parity with sentence-transformers, --threads, --on-error,
// npy headers, empty input, truncation), and the core count it defaults to.
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "cores.h"  // tools/fanin

#if !defined(FANIN_SOURCE_DIR) || !defined(FANIN_CLI)
#error "FANIN_SOURCE_DIR and FANIN_CLI must be set (tests/CMakeLists.txt sets them)"
#endif

namespace fs = std::filesystem;

namespace {

const fs::path kSource = FANIN_SOURCE_DIR;
const fs::path kModel = kSource / "models" / "all-MiniLM-L6-v2";
const fs::path kSentences = kSource / "tests" / "data" / "embedding_sentences.txt";
const fs::path kRefs = kSource / "tests" / "data" / "minilm_refs.json";
constexpr size_t kDim = 384;

using Rows = std::vector<std::vector<float>>;

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void write_file(const fs::path& p, const std::string& text) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << text;
}

std::vector<std::string> lines_of(const fs::path& p) {
  std::vector<std::string> lines;
  std::ifstream in(p);
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  return lines;
}

struct Result {
  int rc = -1;
  std::string out, err;
};

class EmbedCli : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(kModel / "model.safetensors"))
      GTEST_SKIP() << kModel.string() << " is missing: run scripts/fetch_models.sh";
    char tmpl[] = "/tmp/fanin_embed_test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    if (!dir_.empty()) fs::remove_all(dir_);
  }

  // Runs `fanin embed --model M ARGS < input` with stdout and stderr in files.
  Result embed(const std::string& args, const fs::path& input) {
    const fs::path out = dir_ / "stdout", err = dir_ / "stderr";
    const std::string cmd = std::string("'") + FANIN_CLI + "' embed --model '" + kModel.string() +
                            "' " + args + " < '" + input.string() + "' > '" + out.string() +
                            "' 2> '" + err.string() + "'";
    const int status = std::system(cmd.c_str());
    Result r;
    r.rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    r.out = read_file(out);
    r.err = read_file(err);
    return r;
  }

  fs::path input(const std::string& name, const std::string& text) {
    const fs::path p = dir_ / name;
    write_file(p, text);
    return p;
  }

  // The test set's sentences without its one over 256 tokens (a batch pads
  // to its longest line: this keeps the runs short), as a file and lines,
  // and their sentence-transformers vectors (tests/data/minilm_refs.json).
  fs::path short_sentences(std::vector<std::string>* lines, Rows* refs) {
    const nlohmann::json j = nlohmann::json::parse(read_file(kRefs));
    const std::vector<std::string> all = j["sentences"].get<std::vector<std::string>>();
    const Rows vectors = j["embeddings"].get<Rows>();
    EXPECT_EQ(all, lines_of(kSentences));
    std::string text;
    for (size_t i = 0; i < all.size() && i < vectors.size(); ++i) {
      if (all[i].size() > 400) continue;
      lines->push_back(all[i]);
      refs->push_back(vectors[i]);
      text += all[i] + "\n";
    }
    return input("short.txt", text);
  }

  fs::path dir_;
};

Rows parse_jsonl(const std::string& text) {
  Rows rows;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    rows.push_back(nlohmann::json::parse(line).get<std::vector<float>>());
  return rows;
}

// A float32 .npy matrix: its shape from the header, and its rows.
Rows parse_npy(const std::string& bytes, size_t* header_rows) {
  EXPECT_GE(bytes.size(), 10u);
  EXPECT_EQ(bytes.compare(0, 6, "\x93NUMPY"), 0);
  const size_t hlen = static_cast<unsigned char>(bytes[8]) |
                      (static_cast<size_t>(static_cast<unsigned char>(bytes[9])) << 8);
  EXPECT_EQ((10 + hlen) % 64, 0u) << "npy header not 64-byte aligned";
  const std::string header = bytes.substr(10, hlen);
  const size_t at = header.find("'shape': (");
  EXPECT_NE(at, std::string::npos) << header;
  *header_rows = std::stoul(header.substr(at + 10));
  EXPECT_NE(header.find(", " + std::to_string(kDim) + ")"), std::string::npos) << header;
  const size_t data = 10 + hlen;
  EXPECT_EQ((bytes.size() - data) % (kDim * 4), 0u);
  Rows rows((bytes.size() - data) / (kDim * 4), std::vector<float>(kDim));
  for (size_t i = 0; i < rows.size(); ++i)
    std::memcpy(rows[i].data(), bytes.data() + data + i * kDim * 4, kDim * 4);
  return rows;
}

double cosine(const std::vector<float>& a, const std::vector<float>& b) {
  double ab = 0, aa = 0, bb = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    ab += double(a[i]) * b[i];
    aa += double(a[i]) * a[i];
    bb += double(b[i]) * b[i];
  }
  return aa > 0 && bb > 0 ? ab / std::sqrt(aa * bb) : 0.0;
}

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  double d = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i)
    d = std::max(d, std::fabs(double(a[i]) - b[i]));
  return d;
}

TEST_F(EmbedCli, MatchesSentenceTransformersAndSummarises) {
  const nlohmann::json refs = nlohmann::json::parse(read_file(kRefs));
  const Rows want = refs["embeddings"].get<Rows>();
  Result r = embed("--threads 1", kSentences);
  ASSERT_EQ(r.rc, 0) << r.err;
  const Rows got = parse_jsonl(r.out);
  ASSERT_EQ(got.size(), want.size());
  ASSERT_EQ(got.size(), lines_of(kSentences).size());
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_EQ(got[i].size(), kDim);
    EXPECT_GE(cosine(got[i], want[i]), 0.9999) << "line " << i + 1;
  }
  EXPECT_NE(r.err.find("fanin embed: 26 sentences, "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(" tokens, "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(" sentences/s (1 worker on cpu, "), std::string::npos) << r.err;
}

// Many small batches (--batch-size 4), so rows come back from both workers:
// same vectors, in input order, with one worker or two.
TEST_F(EmbedCli, OneAndTwoThreadsGiveTheSameRowsInInputOrder) {
  std::vector<std::string> sentences;
  Rows base;
  short_sentences(&sentences, &base);
  std::string text;
  for (int rep = 0; rep < 3; ++rep)
    for (const std::string& s : sentences) text += s + "\n";
  const fs::path in = input("repeated.txt", text);
  Result one = embed("--threads 1 --batch-size 4", in);
  ASSERT_EQ(one.rc, 0) << one.err;
  // --in reads the same lines as stdin.
  Result two = embed("--threads 2 --batch-size 4 --in '" + in.string() + "'", "/dev/null");
  ASSERT_EQ(two.rc, 0) << two.err;
  EXPECT_NE(two.err.find("(2 workers on cpu, "), std::string::npos) << two.err;
  const Rows a = parse_jsonl(one.out), b = parse_jsonl(two.out);
  ASSERT_EQ(a.size(), 3 * sentences.size());
  ASSERT_EQ(b.size(), a.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_LE(max_abs_diff(a[i], b[i]), 1e-5) << "line " << i + 1;
    EXPECT_GE(cosine(a[i], base[i % sentences.size()]), 0.9999) << "line " << i + 1;
  }
}

// Lines 3 and 8 are not UTF-8 (a lone continuation byte, a truncated
// sequence); every other line is a sentence of the test set.
class EmbedBadLines : public EmbedCli {
 protected:
  void SetUp() override {
    EmbedCli::SetUp();
    if (IsSkipped()) return;
    short_sentences(&good_, &base_);
    std::string text;
    for (int line = 1, g = 0; line <= 9; ++line)
      text += (line == 3 ? std::string("caf\x80 noir") : line == 8 ? std::string("na\xc3")
                                                                    : good_[g++]) + "\n";
    in_ = input("bad.txt", text);
  }
  // The reference row of input line `line` (1-based, not 3 or 8).
  const std::vector<float>& want(int line) const {
    return base_[static_cast<size_t>(line - 1 - (line > 3) - (line > 8))];
  }
  std::vector<std::string> good_;
  Rows base_;
  fs::path in_;
};

TEST_F(EmbedBadLines, FailNamesTheFirstBadLineAndKeepsTheRowsBeforeIt) {
  Result r = embed("--threads 2", in_);
  EXPECT_EQ(r.rc, 1) << r.err;
  EXPECT_NE(r.err.find("line 3: invalid UTF-8 at byte offset 3"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("text 2"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("line 8"), std::string::npos) << r.err;
  const Rows rows = parse_jsonl(r.out);
  ASSERT_EQ(rows.size(), 2u);
  for (int line = 1; line <= 2; ++line) EXPECT_GE(cosine(rows[line - 1], want(line)), 0.9999);
  // --on-error fail is the default.
  Result d = embed("--threads 1 --on-error fail", in_);
  EXPECT_EQ(d.rc, 1);
  EXPECT_EQ(d.out, r.out);
}

TEST_F(EmbedBadLines, EmptyWritesZeroRowsAndWarnsPerLine) {
  Result r = embed("--threads 2 --on-error empty", in_);
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.err.find("line 3: invalid UTF-8"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("line 8: invalid UTF-8"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("7 sentences, "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("2 zero rows"), std::string::npos) << r.err;
  const Rows rows = parse_jsonl(r.out);
  ASSERT_EQ(rows.size(), 9u);
  for (int line = 1; line <= 9; ++line) {
    const std::vector<float>& row = rows[static_cast<size_t>(line - 1)];
    if (line == 3 || line == 8) {
      EXPECT_EQ(row, std::vector<float>(kDim, 0.0f)) << "line " << line;
    } else {
      EXPECT_GE(cosine(row, want(line)), 0.9999) << "line " << line;
    }
  }
}

TEST_F(EmbedBadLines, SkipOmitsTheRowsAndListsTheLines) {
  Result r = embed("--threads 2 --on-error skip", in_);
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.err.find("skipped 2 lines (invalid UTF-8"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("): 3,8\n"), std::string::npos) << r.err;
  const Rows rows = parse_jsonl(r.out);
  ASSERT_EQ(rows.size(), 7u);
  size_t k = 0;
  for (int line = 1; line <= 9; ++line) {
    if (line == 3 || line == 8) continue;
    EXPECT_GE(cosine(rows[k++], want(line)), 0.9999) << "line " << line;
  }
  // npy: the header counts the rows written, to a file (header rewritten at
  // the end) and to stdout (rows held), byte for byte the same.
  const fs::path file = dir_ / "skip.npy";
  Result f = embed("--threads 2 --on-error skip --format npy --out '" + file.string() + "'", in_);
  ASSERT_EQ(f.rc, 0) << f.err;
  EXPECT_TRUE(f.out.empty());
  Result s = embed("--threads 1 --on-error skip --format npy", in_);
  ASSERT_EQ(s.rc, 0) << s.err;
  const std::string bytes = read_file(file);
  EXPECT_EQ(bytes, s.out);
  size_t header_rows = 0;
  const Rows npy = parse_npy(bytes, &header_rows);
  EXPECT_EQ(header_rows, 7u);
  ASSERT_EQ(npy.size(), 7u);
  for (size_t i = 0; i < npy.size(); ++i) EXPECT_LE(max_abs_diff(npy[i], rows[i]), 1e-6);
}

// 300 lines in chunks of 64 (--chunk-lines), so several requests are in
// flight: mostly empty lines (cheap: [CLS] [SEP]), a sentence every 10th
// line, bad UTF-8 at lines 65 (a chunk's first) and 200. Row order and line
// numbers hold across chunks.
TEST_F(EmbedCli, LineNumbersAndRowOrderHoldAcrossChunks) {
  std::vector<std::string> sentences;
  Rows base;
  short_sentences(&sentences, &base);
  std::string text;
  std::vector<int> sentence_of(301, -1);
  for (int line = 1; line <= 300; ++line) {
    if (line == 65 || line == 200) {
      text += "\xff\n";
    } else if (line % 10 == 1) {
      sentence_of[line] = (line / 10) % static_cast<int>(sentences.size());
      text += sentences[static_cast<size_t>(sentence_of[line])] + "\n";
    } else {
      text += "\n";
    }
  }
  const fs::path in = input("many.txt", text);
  Result r = embed("--threads 2 --batch-size 8 --chunk-lines 64 --on-error skip", in);
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.err.find("skipped 2 lines (invalid UTF-8 at byte offset 0"), std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("): 65,200\n"), std::string::npos) << r.err;
  const Rows rows = parse_jsonl(r.out);
  ASSERT_EQ(rows.size(), 298u);
  const std::vector<float>& blank = rows[1];
  for (int line = 1, k = 0; line <= 300; ++line) {
    if (line == 65 || line == 200) continue;
    const std::vector<float>& row = rows[static_cast<size_t>(k++)];
    if (sentence_of[line] >= 0) {
      EXPECT_GE(cosine(row, base[static_cast<size_t>(sentence_of[line])]), 0.9999)
          << "line " << line;
    } else {
      EXPECT_LE(max_abs_diff(row, blank), 1e-6) << "line " << line;
    }
  }
  Result f = embed("--threads 2 --batch-size 8 --chunk-lines 64", in);
  EXPECT_EQ(f.rc, 1);
  EXPECT_NE(f.err.find("line 65: invalid UTF-8"), std::string::npos) << f.err;
  EXPECT_EQ(parse_jsonl(f.out).size(), 64u);
}

TEST_F(EmbedCli, EmptyInputGivesNoRows) {
  const fs::path in = input("empty.txt", "");
  Result j = embed("", in);
  EXPECT_EQ(j.rc, 0) << j.err;
  EXPECT_TRUE(j.out.empty());
  EXPECT_NE(j.err.find("fanin embed: 0 sentences, 0 tokens"), std::string::npos) << j.err;
  Result n = embed("--format npy", in);
  ASSERT_EQ(n.rc, 0) << n.err;
  size_t header_rows = 99;
  EXPECT_TRUE(parse_npy(n.out, &header_rows).empty());
  EXPECT_EQ(header_rows, 0u);
}

// A line over 256 tokens is cut to its first 254 pieces: its row is that of
// those pieces alone, whatever followed them.
TEST_F(EmbedCli, LinesOverTheMaxLengthAreCut) {
  std::string head, tail;
  for (int i = 0; i < 254; ++i) head += "word ";
  for (int i = 0; i < 300; ++i) tail += i < 100 ? "cat " : "dog ";
  const fs::path in = input("long.txt", head + "\n" + head + tail + "\n" + tail.substr(0, 400) + "\n");
  Result r = embed("--threads 2", in);
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.err.find("1 cut to 256"), std::string::npos) << r.err;
  const Rows rows = parse_jsonl(r.out);
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_GE(cosine(rows[0], rows[1]), 0.99999);
  EXPECT_LT(cosine(rows[0], rows[2]), 0.9);  // the cut part mattered
}

TEST(UsableCores, QuotaTexts) {
  using fanin::cli::parse_cfs_quota;
  using fanin::cli::parse_cpu_max;
  EXPECT_EQ(parse_cpu_max("max 100000\n"), std::nullopt);
  EXPECT_EQ(parse_cpu_max("200000 100000\n"), 2);
  EXPECT_EQ(parse_cpu_max("150000 100000\n"), 2);
  EXPECT_EQ(parse_cpu_max("50000 100000"), 1);
  EXPECT_EQ(parse_cpu_max("garbage"), std::nullopt);
  EXPECT_EQ(parse_cpu_max("12x 100000"), std::nullopt);
  EXPECT_EQ(parse_cfs_quota("-1\n", "100000\n"), std::nullopt);
  EXPECT_EQ(parse_cfs_quota("400000\n", "100000\n"), 4);
  EXPECT_EQ(parse_cfs_quota("", "100000"), std::nullopt);
}

TEST(UsableCores, AtLeastOneAndNoMoreThanTheAffinityMask) {
  const int n = fanin::cli::usable_cores();
  cpu_set_t set;
  CPU_ZERO(&set);
  ASSERT_EQ(sched_getaffinity(0, sizeof set, &set), 0);
  EXPECT_GE(n, 1);
  EXPECT_LE(n, CPU_COUNT(&set));
}

}  // namespace
