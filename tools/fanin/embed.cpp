// `fanin embed`: reads one text per line from stdin and writes one embedding
// per line (jsonl: a JSON array of floats) or one float32 matrix (npy).
#include "embed.h"

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli.h"
#include "fanin/device.h"
#include "fanin/sentence_encoder.h"
#include "fanin/stream.h"

namespace fanin::cli {
namespace {

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

void progress(size_t done, size_t total) {
  const int width = 40;
  const int filled = total ? static_cast<int>(width * done / total) : width;
  std::fprintf(stderr, "\r[%.*s%*s] %zu/%zu", filled, "########################################",
               width - filled, "", done, total);
  if (done == total) std::fputc('\n', stderr);
  std::fflush(stderr);
}

}  // namespace

CLI::App* add_embed_command(CLI::App& app, EmbedOptions& o) {
  CLI::App* cmd = app.add_subcommand(
      "embed", "Sentence embeddings of stdin's lines (all-MiniLM-L6-v2 folder from "
               "scripts/fetch_models.sh)");
  cmd->add_option("--model", o.model, "model folder (config.json, model.safetensors, vocab.txt)")
      ->capture_default_str();
  cmd->add_option("--backend", o.backend, "cpu, cuda or cuda:N")->capture_default_str();
  cmd->add_option("--format", o.format, "jsonl (one JSON array per line) or npy (float32 matrix)")
      ->capture_default_str();
  cmd->add_option("--dtype", o.dtype, "f32, f16 or bf16 (default: f32 on cpu, f16 on cuda)");
  cmd->add_option("--out", o.out, "write here instead of stdout");
  cmd->add_option("--batch-size", o.batch_size, "sentences per launch")->capture_default_str();
  cmd->add_option("--max-length", o.max_length, "tokens per sentence (0: the model's, 256)")
      ->capture_default_str();
  return cmd;
}

int run_embed(const EmbedOptions& o) {
  check_backend_name(o.backend);
  if (o.format != "jsonl" && o.format != "npy")
    throw UsageError("--format: expected jsonl or npy, got '" + o.format + "'");
  if (o.batch_size < 1) throw UsageError("--batch-size must be >= 1");
  Device& device = Device::get(o.backend);
  DType dtype = o.dtype.empty() ? (device.type() == DeviceType::kCpu ? DType::kF32 : DType::kF16)
                                : parse_dtype(o.dtype);
  auto encoder = SentenceEncoder::load(o.model, device, dtype, o.max_length);

  std::vector<std::string> lines;
  for (std::string line; std::getline(std::cin, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(std::move(line));
  }
  std::ofstream file;
  if (!o.out.empty()) {
    file.open(o.out, std::ios::binary | std::ios::trunc);
    if (!file.good()) throw UsageError("--out: cannot write '" + o.out + "'");
  }
  std::ostream& out = o.out.empty() ? std::cout : file;
  const bool show = isatty(STDERR_FILENO) && lines.size() > 256;
  const size_t chunk = 4096;
  StreamLease lease = device.stream_pool().acquire();
  if (o.format == "npy") out << npy_header(lines.size(), static_cast<size_t>(encoder->dim()));
  for (size_t start = 0; start < lines.size(); start += chunk) {
    const size_t n = std::min(chunk, lines.size() - start);
    std::vector<std::string> part(lines.begin() + static_cast<std::ptrdiff_t>(start),
                                  lines.begin() + static_cast<std::ptrdiff_t>(start + n));
    auto emb = encoder->embed(part, lease.stream(), o.batch_size);
    for (const auto& e : emb) {
      if (o.format == "npy") {
        out.write(reinterpret_cast<const char*>(e.data()),
                  static_cast<std::streamsize>(e.size() * sizeof(float)));
      } else {
        out << nlohmann::json(e).dump() << '\n';
      }
    }
    if (show) progress(start + n, lines.size());
  }
  out.flush();
  return out.good() ? kExitOk : kExitFailure;
}

}  // namespace fanin::cli
