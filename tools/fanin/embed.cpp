// `fanin embed`: reads one text per line from stdin (or --in) and writes one
// embedding per line (jsonl: a JSON array of floats) or one float32 matrix
// (npy), in input order.
//
// Note [embed through the Engine]: the command is a front end over the text
// Engine, which does all the batching. The input is read as a stream, in
// chunks of a few batches per worker; each chunk's lines are tokenized on
// this thread (a line that is not valid UTF-8 is found here and handled by
// --on-error before anything is queued), sorted by token count (so the
// queue's FIFO batches pad little, as SentenceEncoder::embed's bucketing
// did), and submitted as one submit_token_ids request. Up to kDepth chunks
// are in flight, so the workers always have queued work while this thread
// writes the oldest chunk's rows and reads the next one.
#include "embed.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <deque>
#include <fstream>
#include <future>
#include <iostream>
#include <nlohmann/json.hpp>
#include <numeric>
#include <optional>

#include "cli.h"
#include "cores.h"
#include "fanin/device.h"
#include "fanin/engine.h"
#include "fanin/sentence_encoder.h"
#include "fanin/stream.h"

namespace fanin::cli {
namespace {

using Seconds = std::chrono::duration<double>;

enum class OnError { kFail, kEmpty, kSkip };

OnError parse_on_error(const std::string& s) {
  if (s == "fail") return OnError::kFail;
  if (s == "empty") return OnError::kEmpty;
  if (s == "skip") return OnError::kSkip;
  throw UsageError("--on-error: expected fail, empty or skip, got '" + s + "'");
}

// NumPy .npy version 1.0 header for a little-endian float32 [rows, cols] matrix.
std::string npy_header(size_t rows, size_t cols) {
  std::string dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + std::to_string(rows) +
                     ", " + std::to_string(cols) + "), }";
  size_t total = 10 + dict.size() + 1;
  dict.append((64 - total % 64) % 64, ' ');
  dict.push_back('\n');
  std::string h = "\x93NUMPY";
  h.push_back('\x01');
  h.push_back('\x00');
  h.push_back(static_cast<char>(dict.size() & 0xff));
  h.push_back(static_cast<char>((dict.size() >> 8) & 0xff));
  return h + dict;
}

// Where the rows go, in input order. jsonl streams; npy needs the row count
// in its header, so into a regular file it writes a placeholder header and
// rewrites it at the end (same length: the padding to 64 bytes absorbs any
// count's digits), elsewhere (stdout, a pipe) it keeps the rows until then.
class RowWriter {
 public:
  RowWriter(const EmbedOptions& o, size_t dim) : npy_(o.format == "npy"), dim_(dim) {
    if (!o.out.empty()) {
      file_.open(o.out, std::ios::binary | std::ios::trunc);
      if (!file_.good()) throw UsageError("--out: cannot write '" + o.out + "'");
      struct stat st {};
      seek_ = npy_ && ::stat(o.out.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
              npy_header(0, dim).size() == npy_header(SIZE_MAX, dim).size();
    }
    if (seek_) out() << npy_header(0, dim_);
  }

  void row(const float* v) {
    ++rows_;
    if (!npy_) {
      out() << nlohmann::json(std::vector<float>(v, v + dim_)).dump() << '\n';
    } else if (seek_) {
      out().write(reinterpret_cast<const char*>(v), static_cast<std::streamsize>(dim_ * 4));
    } else {
      held_.insert(held_.end(), v, v + dim_);
    }
  }

  // Completes the file (npy: the header with the final row count). Returns
  // false when a write failed.
  bool finish() {
    if (npy_ && seek_) {
      out().seekp(0);
      out() << npy_header(rows_, dim_);
    } else if (npy_) {
      out() << npy_header(rows_, dim_);
      out().write(reinterpret_cast<const char*>(held_.data()),
                  static_cast<std::streamsize>(held_.size() * 4));
    }
    out().flush();
    return out().good();
  }

 private:
  std::ostream& out() { return file_.is_open() ? file_ : std::cout; }

  const bool npy_;
  const size_t dim_;
  std::ofstream file_;
  bool seek_ = false;
  size_t rows_ = 0;
  std::vector<float> held_;  // npy rows when the header cannot be rewritten
};

// Lines of one chunk and the request that embeds its valid ones.
struct Chunk {
  static constexpr int64_t kZeroRow = -1;  // --on-error empty
  static constexpr int64_t kNoRow = -2;    // --on-error skip
  std::vector<int64_t> row;  // per line: its row in the response, or kZeroRow / kNoRow
  std::future<Response> result;  // valid() when the chunk has a valid line
  uint64_t end_byte = 0;         // input bytes up to the chunk's last line
};

// The message of a tokenizer error without its "[op] " prefixes.
std::string reason_of(const Error& e) {
  std::string m = e.message();
  while (!m.empty() && m.front() == '[') {
    const size_t close = m.find("] ");
    if (close == std::string::npos) break;
    m.erase(0, close + 2);
  }
  return m;
}

// Input size in bytes when it is a regular file (for the progress bar):
// `path`, or the file behind `fd` when path is empty.
std::optional<uint64_t> input_size(int fd, const std::string& path) {
  struct stat st {};
  const int rc = path.empty() ? ::fstat(fd, &st) : ::stat(path.c_str(), &st);
  if (rc != 0 || !S_ISREG(st.st_mode)) return std::nullopt;
  return static_cast<uint64_t>(st.st_size);
}

void progress(size_t lines, uint64_t bytes, std::optional<uint64_t> total) {
  if (!total) {
    std::fprintf(stderr, "\r%zu lines", lines);
  } else {
    const int width = 40;
    const uint64_t t = std::max<uint64_t>(*total, 1);
    const int filled = static_cast<int>(width * std::min(bytes, t) / t);
    std::fprintf(stderr, "\r[%.*s%*s] %zu lines, %d%%", filled,
                 "########################################", width - filled, "", lines,
                 static_cast<int>(100 * std::min(bytes, t) / t));
  }
  std::fflush(stderr);
}

// The engine workers for this device: --threads, or every usable core on the
// CPU (one worker, each on its own stream, per core) and 1 on a GPU.
int worker_count(const EmbedOptions& o, bool cpu) {
  const int cores = usable_cores();
  const int most = std::min(cores, 256);  // the Engine's limit
  if (!o.threads_set) return cpu ? most : 1;
  if (o.threads < 1 || o.threads > most)
    throw UsageError("--threads: expected 1.." + std::to_string(most) + " (the cores this process " +
                     "may use: affinity mask and cgroup CPU quota), got " +
                     std::to_string(o.threads));
  return o.threads;
}

}  // namespace

CLI::App* add_embed_command(CLI::App& app, EmbedOptions& o) {
  CLI::App* cmd = app.add_subcommand(
      "embed", "Sentence embeddings of stdin's lines (all-MiniLM-L6-v2 folder from "
               "scripts/fetch_models.sh), one row per line in input order");
  cmd->add_option("--model", o.model, "model folder (config.json, model.safetensors, vocab.txt)")
      ->capture_default_str();
  cmd->add_option("--backend", o.backend, "cpu, cuda or cuda:N")->capture_default_str();
  cmd->add_option("--format", o.format, "jsonl (one JSON array per line) or npy (float32 matrix)")
      ->capture_default_str();
  cmd->add_option("--dtype", o.dtype, "f32, f16 or bf16 (default: f32 on cpu, f16 on cuda)");
  cmd->add_option("--in", o.in, "read the lines from this file instead of stdin");
  cmd->add_option("--out", o.out, "write here instead of stdout");
  cmd->add_option("--batch-size", o.batch_size, "sentences per batch")->capture_default_str();
  cmd->add_option("--max-length", o.max_length, "tokens per sentence (0: the model's, 256)")
      ->capture_default_str();
  cmd->add_option("--chunk-lines", o.chunk_lines,
                  "lines read, sorted by length and sent to the engine at a time, while earlier "
                  "ones run (0: 4096, or 4 batches per worker if more; smaller: output sooner "
                  "from a slow pipe, more padding)")
      ->capture_default_str();
  cmd->add_option_function<int>(
      "--threads",
      [&o](const int& n) {
        o.threads = n;
        o.threads_set = true;
      },
      "engine workers, each on its own stream (default: on cpu one per core this process may "
      "use, taskset/cgroup respected; on cuda 1)");
  cmd->add_option("--on-error", o.on_error,
                  "a line that is not valid UTF-8: fail (exit 1 naming it), empty (a zero row, "
                  "a warning) or skip (no row; the skipped lines listed at the end)")
      ->capture_default_str();
  cmd->footer(
      "Rows come in input order. stderr ends with one summary line (sentences, tokens, seconds,\n"
      "sentences/s); on a terminal it shows progress. Exit codes: 0 success (lines replaced or\n"
      "skipped under --on-error empty|skip included); 1 the run failed (a bad line under\n"
      "--on-error fail, named by its line number, the rows before it written; a model that\n"
      "does not load; a write error); 2 bad command line.");
  return cmd;
}

int run_embed(const EmbedOptions& o) {
  const auto t0 = std::chrono::steady_clock::now();
  check_backend_name(o.backend);
  if (o.format != "jsonl" && o.format != "npy")
    throw UsageError("--format: expected jsonl or npy, got '" + o.format + "'");
  if (o.batch_size < 1) throw UsageError("--batch-size must be >= 1");
  if (o.chunk_lines < 0 || o.chunk_lines > (1 << 20))
    throw UsageError("--chunk-lines: expected 1..1048576 (0: the default), got " +
                     std::to_string(o.chunk_lines));
  const OnError on_error = parse_on_error(o.on_error);
  std::ifstream in_file;
  if (!o.in.empty()) {
    in_file.open(o.in, std::ios::binary);
    if (!in_file.good()) throw UsageError("--in: cannot read '" + o.in + "'");
  }
  std::istream& in = o.in.empty() ? std::cin : in_file;
  Device& device = Device::get(o.backend);
  const bool cpu = device.type() == DeviceType::kCpu;
  const int workers = worker_count(o, cpu);
  if (workers > device.stream_pool().size())
    throw UsageError("--threads " + std::to_string(workers) + " exceeds the " +
                     std::to_string(device.stream_pool().size()) + " streams of " + device.name());
  const DType dtype = o.dtype.empty() ? (cpu ? DType::kF32 : DType::kF16) : parse_dtype(o.dtype);
  std::shared_ptr<const SentenceEncoder> encoder =
      SentenceEncoder::load(o.model, device, dtype, o.max_length);
  const size_t dim = static_cast<size_t>(encoder->dim());
  const int max_length = encoder->max_length();

  // A chunk: 4096 lines, or four batches for each worker if that is more (at
  // most 65536 lines, never less than one batch each). The longer the chunk,
  // the closer in length the lines of each sorted batch (less padding: with
  // 256-line chunks the 2,000 benchmark sentences took ~20% more CPU time);
  // the bound keeps memory small and output coming.
  const int64_t per_round = int64_t{o.batch_size} * workers;
  const size_t chunk_lines =
      o.chunk_lines > 0 ? static_cast<size_t>(o.chunk_lines)
                        : static_cast<size_t>(std::max(
                              per_round, std::clamp<int64_t>(4 * per_round, 4096, 65536)));
  constexpr size_t kDepth = 3;  // chunks in flight
  EngineOptions eo;
  eo.workers = workers;
  eo.max_batch_size = o.batch_size;
  eo.max_queue_length = std::max<size_t>(eo.max_queue_length, 2 * kDepth * chunk_lines);
  Engine engine(encoder, eo);
  RowWriter writer(o, dim);
  const auto t_loaded = std::chrono::steady_clock::now();

  const bool show = isatty(STDERR_FILENO) != 0;
  const std::optional<uint64_t> file_bytes =
      input_size(o.in.empty() ? STDIN_FILENO : -1, o.in);
  const std::vector<float> zeros(dim, 0.0f);
  std::deque<Chunk> pending;
  size_t line_no = 0, lines_done = 0, rows = 0, zero_rows = 0;
  uint64_t bytes = 0, tokens = 0, truncated = 0;
  std::vector<size_t> skipped;
  std::string skip_reason;
  std::optional<std::string> failure;  // --on-error fail: the bad line's message
  bool shown = false;

  auto write_oldest = [&] {
    Chunk c = std::move(pending.front());
    pending.pop_front();
    Response r;
    if (c.result.valid()) r = c.result.get();
    for (int64_t at : c.row) {
      if (at >= 0) {
        writer.row(r.output.data() + static_cast<size_t>(at) * dim);
        ++rows;
      } else if (at == Chunk::kZeroRow) {
        writer.row(zeros.data());
        ++zero_rows;
      }
    }
    lines_done += c.row.size();
    if (show && (shown || lines_done > 256)) {
      progress(lines_done, c.end_byte, file_bytes);
      shown = true;
    }
  };

  for (bool eof = false; !eof && !failure;) {
    Chunk c;
    std::vector<std::vector<int32_t>> ids;  // the chunk's valid lines, in input order
    std::string line;
    while (c.row.size() < chunk_lines) {
      if (!std::getline(in, line)) {
        eof = true;
        break;
      }
      bytes += line.size() + 1;
      ++line_no;
      if (!line.empty() && line.back() == '\r') line.pop_back();
      try {
        Tokenized t = engine.tokenize(line);
        tokens += t.ids.size();
        truncated += t.truncated ? 1 : 0;
        c.row.push_back(static_cast<int64_t>(ids.size()));
        ids.push_back(std::move(t.ids));
      } catch (const Error& e) {
        if (e.code() != ErrorCode::kInvalidArgument) throw;
        const std::string why = reason_of(e);
        if (on_error == OnError::kFail) {
          failure = "line " + std::to_string(line_no) + ": " + why;
          break;
        }
        if (on_error == OnError::kEmpty) {
          std::fprintf(stderr, "%sfanin embed: line %zu: %s; wrote a zero row\n",
                       shown ? "\n" : "", line_no, why.c_str());
          c.row.push_back(Chunk::kZeroRow);
        } else {
          if (skip_reason.empty()) skip_reason = why;
          skipped.push_back(line_no);
          c.row.push_back(Chunk::kNoRow);
        }
      }
    }
    c.end_byte = bytes;
    if (!ids.empty()) {
      // Sorted by token count (stable): each FIFO batch of the queue pads little.
      std::vector<size_t> order(ids.size());
      std::iota(order.begin(), order.end(), size_t{0});
      std::stable_sort(order.begin(), order.end(),
                       [&](size_t a, size_t b) { return ids[a].size() < ids[b].size(); });
      std::vector<int64_t> position(ids.size());
      std::vector<std::vector<int32_t>> sorted(ids.size());
      for (size_t k = 0; k < order.size(); ++k) {
        position[order[k]] = static_cast<int64_t>(k);
        sorted[k] = std::move(ids[order[k]]);
      }
      for (int64_t& at : c.row)
        if (at >= 0) at = position[static_cast<size_t>(at)];
      c.result = engine.submit_token_ids(std::move(sorted));
    }
    if (!c.row.empty()) pending.push_back(std::move(c));
    while (pending.size() >= kDepth || (!pending.empty() && (eof || failure))) write_oldest();
  }
  const bool written = writer.finish();
  const double seconds = Seconds(std::chrono::steady_clock::now() - t_loaded).count();
  if (shown) std::fputc('\n', stderr);

  if (!skipped.empty()) {
    std::string list;
    for (size_t n : skipped) list += (list.empty() ? "" : ",") + std::to_string(n);
    std::fprintf(stderr, "fanin embed: skipped %zu line%s (%s%s): %s\n", skipped.size(),
                 skipped.size() == 1 ? "" : "s", skip_reason.c_str(),
                 skipped.size() > 1 ? ", ..." : "", list.c_str());
  }
  if (failure) {
    std::fprintf(stderr,
                 "fanin embed: %s; the output holds the rows of the %zu line%s before it "
                 "(--on-error empty or skip to go on past such lines)\n",
                 failure->c_str(), rows + zero_rows, rows + zero_rows == 1 ? "" : "s");
    return kExitFailure;
  }
  std::string extra;
  if (truncated) extra += ", " + std::to_string(truncated) + " cut to " + std::to_string(max_length);
  if (zero_rows) extra += ", " + std::to_string(zero_rows) + " zero rows";
  if (!skipped.empty()) extra += ", " + std::to_string(skipped.size()) + " skipped";
  // How much of the run the workers spent on batches (formed -> results).
  double busy_us = 0;
  for (const EngineMetrics::Worker& w : engine.metrics().workers) busy_us += w.busy_us;
  const double busy = seconds > 0 ? busy_us / (1e6 * seconds * workers) : 0.0;
  std::fprintf(stderr,
               "fanin embed: %zu sentences, %llu tokens%s, %.2f s, %.1f sentences/s "
               "(%d worker%s on %s, %.0f%% busy; model load %.2f s)\n",
               rows, static_cast<unsigned long long>(tokens), extra.c_str(), seconds,
               seconds > 0 ? static_cast<double>(rows) / seconds : 0.0, workers,
               workers == 1 ? "" : "s", device.name().c_str(), 100 * std::min(busy, 1.0),
               Seconds(t_loaded - t0).count());
  if (!written) {
    std::fprintf(stderr, "fanin embed: writing the output failed\n");
    return kExitFailure;
  }
  return kExitOk;
}

}  // namespace fanin::cli
