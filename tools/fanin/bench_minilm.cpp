// `fanin bench --model minilm`: the BERT encoder of all-MiniLM-L6-v2.
//
// Note [Bench minilm]
// Batch mode: for each batch B and sequence length S, token ids and lengths
// (every row S tokens) are uploaded once; then forward + synchronize runs in
// a loop for the measured seconds: sentences/s = B * iterations / time. This
// matches the PyTorch peer (bench/peers/torch_minilm.py), whose inputs are
// also on the device. Weights: the model folder's when --model-dir is given,
// else random weights of the same architecture. Single-sentence latency
// (tokenization, upload, forward, copy back; SentenceEncoder::embed) is
// measured when --model-dir is given (it needs the vocabulary).
#include <chrono>
#include <cstdio>
#include <random>

#include "bench_direct.h"
#include "bench_more.h"
#include "cli.h"
#include "fanin/bert.h"
#include "fanin/device.h"
#include "fanin/sentence_encoder.h"
#include "fanin/stream.h"

namespace fanin::cli {
namespace {

using json = nlohmann::json;
using SteadyClock = std::chrono::steady_clock;

double time_batch(const Bert& bert, int64_t b, int64_t s, double warmup, double seconds,
                  Stream& stream, uint64_t* iters_out) {
  std::mt19937 rng(7);
  std::uniform_int_distribution<int32_t> tok(1000, static_cast<int32_t>(bert.config().vocab_size) - 1);
  std::vector<int32_t> ids(static_cast<size_t>(b * s)), lengths(static_cast<size_t>(b), static_cast<int32_t>(s));
  for (auto& t : ids) t = tok(rng);
  Tensor t_ids = Tensor::from_host(ids.data(), ids.size() * 4, {b, s}, DType::kI32, stream);
  Tensor t_len = Tensor::from_host(lengths.data(), lengths.size() * 4, {b}, DType::kI32, stream);
  auto run_for = [&](double secs) {
    uint64_t n = 0;
    const auto t0 = SteadyClock::now();
    double el = 0;
    do {
      Tensor e = bert.forward(t_ids, t_len, stream);
      stream.synchronize();
      ++n;
      el = std::chrono::duration<double>(SteadyClock::now() - t0).count();
    } while (el < secs);
    return std::make_pair(n, el);
  };
  run_for(warmup);
  auto [n, el] = run_for(seconds);
  *iters_out = n;
  return static_cast<double>(b) * static_cast<double>(n) / el;
}

}  // namespace

json run_minilm_bench(const BenchOptions& o) {
  Device& device = Device::get(o.backend);
  const DType dtype = parse_dtype(o.dtype);
  std::shared_ptr<Bert> bert;
  std::shared_ptr<SentenceEncoder> encoder;
  if (!o.model_dir.empty()) {
    encoder = SentenceEncoder::load(o.model_dir, device, dtype);
    bert = std::shared_ptr<Bert>(encoder, const_cast<Bert*>(&encoder->model()));
  } else {
    bert = Bert::random(BertConfig{}, 1234, device, dtype);
  }
  StreamLease lease = device.stream_pool().acquire();
  Stream& s = lease.stream();
  std::fprintf(stderr, "fanin bench minilm: %s weights, %s on %s (%s)\n",
               o.model_dir.empty() ? "random" : o.model_dir.c_str(), o.dtype.c_str(),
               device.name().c_str(), device.description().c_str());
  json rows = json::array();
  for (int seq : o.seqs) {
    for (int b : o.batches) {
      uint64_t iters = 0;
      const double sps = time_batch(*bert, b, seq, o.warmup_seconds, o.seconds, s, &iters);
      std::fprintf(stderr, "fanin bench minilm: batch %4d x seq %4d  %10.0f sentences/s\n", b, seq,
                   sps);
      rows.push_back({{"batch", b}, {"seq", seq}, {"sentences_per_s", sps}, {"iterations", iters}});
    }
  }
  json j;
  j["model"] = {{"name", "all-MiniLM-L6-v2"},
                {"weights", o.model_dir.empty() ? "random (same architecture)" : o.model_dir},
                {"dtype", o.dtype},
                {"weight_bytes", bert->weight_bytes()}};
  j["device"] = {{"name", device.name()}, {"description", device.description()}};
  j["batch_mode"] = rows;
  if (encoder) {
    // One request, one sentence: tokenize, upload, forward, copy back.
    std::vector<double> us;
    const std::vector<std::string> one = {"A man is eating food on a sunny terrace."};
    auto t_end = SteadyClock::now() + std::chrono::duration<double>(o.warmup_seconds);
    while (SteadyClock::now() < t_end) encoder->embed(one, s, 1);
    t_end = SteadyClock::now() + std::chrono::duration<double>(o.seconds);
    while (SteadyClock::now() < t_end) {
      const auto t0 = SteadyClock::now();
      encoder->embed(one, s, 1);
      us.push_back(std::chrono::duration<double, std::micro>(SteadyClock::now() - t0).count());
    }
    LatencySummary l = summarize(us);
    std::fprintf(stderr, "fanin bench minilm: one sentence end to end  p50 %.1f us  p99 %.1f us\n",
                 l.p50_us, l.p99_us);
    j["single_sentence"] = {{"text", one[0]},
                            {"tokens", encoder->tokenize(one[0]).size()},
                            {"requests", us.size()},
                            {"p50_us", l.p50_us},
                            {"p99_us", l.p99_us},
                            {"mean_us", l.mean_us}};
  }
  j["notes"] = {"batch mode: inputs on the device, every row seq tokens; forward + synchronize",
                "single_sentence: SentenceEncoder::embed of one text, tokenization included"};
  return j;
}

}  // namespace fanin::cli
