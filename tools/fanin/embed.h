// tools/fanin/embed.h: `fanin embed`, sentence embeddings of stdin's lines.
#pragma once

#include <CLI/CLI.hpp>
#include <string>

namespace fanin::cli {

struct EmbedOptions {
  std::string model = "models/all-MiniLM-L6-v2";
  std::string backend = "cpu";
  std::string format = "jsonl";  // jsonl | npy
  std::string dtype;             // default: f32 on cpu, f16 on cuda
  std::string in;                // default: stdin
  std::string out;               // default: stdout
  int batch_size = 64;
  int max_length = 0;            // 0: the model folder's
  int chunk_lines = 0;           // lines per engine request; 0: 4096 (more with many workers)
  int threads = 0;               // engine workers; set only when threads_set
  bool threads_set = false;      // default: every usable core on cpu, 1 on cuda
  std::string on_error = "fail"; // fail | empty | skip: a line that is not valid UTF-8
};

CLI::App* add_embed_command(CLI::App& app, EmbedOptions& options);
int run_embed(const EmbedOptions& options);

}  // namespace fanin::cli
