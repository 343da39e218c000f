// tools/fanin/serve.h: `fanin serve`, the HTTP server (OpenAI, TEI and
// KServe v2 APIs over one Engine; docs/server.md).
#pragma once

#include <CLI/CLI.hpp>
#include <string>

namespace fanin::cli {

struct ServeOptions {
  std::string model = "models/all-MiniLM-L6-v2";  // a sentence-transformers folder, or "mlp"
  std::string backend = "cpu";
  std::string devices;  // "cuda:0,cpu:1" or "all": one replica each (overrides --backend)
  std::string dtype;    // default: f32 on cpu, f16 on cuda
  std::string host = "127.0.0.1";
  int port = 8080;
  std::string served_model_name;  // default: the folder's name, or "mlp"
  std::string api_key;            // or FANIN_API_KEY
  int64_t payload_limit = 2000000;
  int max_client_batch_size = 32;
  int64_t max_concurrent_requests = 512;  // counted in inputs
  bool no_auto_truncate = false;
  bool strict_model = false;
  int max_batch_size = 64;
  int64_t max_batch_tokens = 16384;
  int64_t max_queue_delay_us = 500;
  bool fixed_queue_delay = false;  // EngineOptions::adaptive_queue_delay off
  int64_t max_queue_length = 1 << 16;
  int workers = 0;  // 0: one per usable core on cpu devices, 1 with a GPU
  int io_threads = 0;
  int64_t io_poll_us = 0;
  int max_length = 0;
  int64_t request_timeout_ms = 0;
  int64_t header_timeout_ms = 10000;
  int64_t body_timeout_ms = 30000;
  int64_t idle_timeout_ms = 60000;
  int64_t drain_timeout_ms = 30000;
  int64_t max_connections = 4096;
  bool no_warmup = false;
  bool json_output = false;
  std::string log_level = "info";  // error | warn | info
};

CLI::App* add_serve_command(CLI::App& app, ServeOptions& options);
int run_serve(const ServeOptions& options);

}  // namespace fanin::cli
