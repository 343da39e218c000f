// `fanin bench --model minilm --mode queue`: single sentences from N producer
// threads through an Engine serving the sentence encoder.
//
// Producers are driven as in Note [Bench queue mode] (queue_driver.h); each
// cycles through the sentences of --sentences (bench/data/queue_sentences.txt,
// the PyTorch peer sends the same) from its own starting offset. Latency runs
// from submit_text (which tokenizes on the producer's thread) to the result.
// Mean tokens per batch is the tokens of the requests finished in the
// measured interval over the batches run in it. The texts need the
// vocabulary, so --model-dir is required.
#include <chrono>
#include <cstdio>
#include <fstream>

#include "bench_more.h"
#include "queue_driver.h"
#include "cli.h"
#include "fanin/device.h"
#include "fanin/engine.h"
#include "fanin/sentence_encoder.h"

namespace fanin::cli {
namespace {

using json = nlohmann::json;
using SteadyClock = std::chrono::steady_clock;

}  // namespace

std::vector<std::string> load_sentences(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw UsageError("--sentences: cannot read '" + path + "'");
  std::vector<std::string> out;
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) out.push_back(line);
  if (out.empty()) throw UsageError("--sentences: '" + path + "' has no sentences");
  return out;
}

json run_minilm_queue_bench(const BenchOptions& o) {
  if (o.model_dir.empty())
    throw UsageError(
        "--model minilm --mode queue needs --model-dir (the texts need the vocabulary)");
  const DType dtype = parse_dtype(o.dtype);
  // Note [Bench device sets]: the first device alone, then all of them.
  const std::vector<std::vector<Device*>> sets = bench_device_sets(o.devices, o.backend);
  const std::vector<std::string> sentences = load_sentences(o.sentences);
  const size_t n_sent = sentences.size();
  std::vector<int64_t> token_counts;
  size_t weight_bytes = 0;
  EngineOptions eo;
  eo.workers = o.workers;
  eo.max_batch_size = o.max_batch;
  eo.max_queue_delay = std::chrono::microseconds(o.max_delay_us);
  eo.adaptive_queue_delay = !o.fixed_delay;
  eo.warmup = true;  // graphs, plans and routing estimates before the first request
  eo.max_tokens_per_batch = o.max_tokens;
  json scaling = json::array();
  for (const std::vector<Device*>& set : sets) {
    auto replicas = load_replicas<SentenceEncoder>(
        set, [&](Device& d) { return SentenceEncoder::load(o.model_dir, d, dtype); });
    if (token_counts.empty()) {
      for (const std::string& s : sentences)
        token_counts.push_back(static_cast<int64_t>(replicas.front()->tokenize(s).size()));
      weight_bytes = replicas.front()->model().weight_bytes();
    }
    Engine engine(replicas, eo);
    const std::string names = device_names(set);
    std::fprintf(stderr,
                 "fanin bench minilm queue: %s %s on %s (%s), %d worker(s) per device, max batch "
                 "%d, delay %d us, max tokens %lld\n",
                 o.model_dir.c_str(), o.dtype.c_str(), names.c_str(),
                 set.front()->description().c_str(), o.workers, o.max_batch, o.max_delay_us,
                 static_cast<long long>(o.max_tokens));
    json runs = json::array();
    for (int p : o.producers) {
      auto sentence = [&](int q, uint64_t k) { return (static_cast<size_t>(q) * 7 + k) % n_sent; };
      std::vector<uint64_t> tokens(static_cast<size_t>(p), 0);  // each producer its own slot
      QueueRun r = drive_queue(
          engine, p, o.window, o.warmup_seconds, o.seconds,
          [&](int q, uint64_t k) { return engine.submit_text(sentences[sentence(q, k)]); },
          [&](int q, uint64_t k) {
            tokens[static_cast<size_t>(q)] += static_cast<uint64_t>(token_counts[sentence(q, k)]);
          });
      uint64_t total_tokens = 0;
      for (uint64_t t : tokens) total_tokens += t;
      const double tokens_per_batch =
          r.batches ? static_cast<double>(total_tokens) / static_cast<double>(r.batches) : 0.0;
      std::fprintf(stderr,
                   "fanin bench minilm queue: [%s] %3d producers  %10.0f sentences/s  p50 %8.1f "
                   "us  p99 %8.1f us  p999 %8.1f us  mean batch %.1f  mean tokens/batch %.1f\n",
                   names.c_str(), p, r.rate, r.latency.p50_us, r.latency.p99_us,
                   r.latency.p999_us, r.mean_batch, tokens_per_batch);
      runs.push_back({{"producers", p},
                      {"window", o.window},
                      {"requests", r.requests},
                      {"elapsed_s", r.elapsed_s},
                      {"sentences_per_s", r.rate},
                      {"p50_us", r.latency.p50_us},
                      {"p99_us", r.latency.p99_us},
                      {"p999_us", r.latency.p999_us},
                      {"mean_us", r.latency.mean_us},
                      {"mean_batch", r.mean_batch},
                      {"mean_tokens_per_batch", tokens_per_batch},
                      {"queue_full_retries", r.rejected},
                      {"batch_fill", r.fill}});
    }
    engine.drain();
    scaling.push_back(device_set_json(set, runs, engine));
  }
  int64_t min_tok = token_counts[0], max_tok = token_counts[0], sum_tok = 0;
  for (int64_t t : token_counts) {
    min_tok = std::min(min_tok, t);
    max_tok = std::max(max_tok, t);
    sum_tok += t;
  }
  json j;
  j["model"] = {{"name", "all-MiniLM-L6-v2"}, {"weights", o.model_dir}, {"dtype", o.dtype},
                {"weight_bytes", weight_bytes}};
  j["engine"] = {{"workers_per_device", o.workers}, {"max_batch_size", o.max_batch},
                 {"max_queue_delay_us", o.max_delay_us}, {"adaptive_queue_delay", !o.fixed_delay},
                 {"max_tokens_per_batch", o.max_tokens}};
  j["sentences"] = {{"file", o.sentences},
                    {"count", n_sent},
                    {"tokens_min", min_tok},
                    {"tokens_max", max_tok},
                    {"tokens_mean", static_cast<double>(sum_tok) / static_cast<double>(n_sent)}};
  put_device_sets(j, sets, scaling, "sentences_per_s", "fanin bench minilm queue");
  j["notes"] = {
      "each producer cycles through the sentence list, keeping `window` requests in flight "
      "(1 = closed loop)",
      "latency = Engine::submit_text (tokenization on the producer thread included) to result",
      "mean_batch and batch_fill come from Engine::metrics over the measured interval; "
      "mean_tokens_per_batch = tokens of requests finished in it / batches run in it",
      "with several devices: results = all devices; scaling = first device alone, then all, "
      "same producers; speedup = sentences_per_s(all) / sentences_per_s(first)"};
  return j;
}

}  // namespace fanin::cli
