// `fanin bench --model minilm --mode queue`: single sentences from N producer
// threads through an Engine serving the sentence encoder.
//
// Note [Bench minilm queue]
// Each producer cycles through kSentences (its own starting offset) and keeps
// `window` requests in flight (1 = closed loop): it waits for its oldest
// future, records that request's latency (submit_text, which tokenizes on the
// producer's thread, to result) and submits the next sentence. Throughput
// counts results inside the measured interval. Mean batch comes from the
// engine's metrics over the interval; mean tokens per batch is the tokens of
// the requests finished in the interval over the batches run in it. The
// texts need the vocabulary, so --model-dir is required.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <deque>
#include <future>
#include <thread>

#include "bench_direct.h"
#include "bench_more.h"
#include "cli.h"
#include "fanin/device.h"
#include "fanin/engine.h"
#include "fanin/sentence_encoder.h"

namespace fanin::cli {
namespace {

using json = nlohmann::json;
using SteadyClock = std::chrono::steady_clock;

// ~50 English sentences of 5-30 words.
const char* const kSentences[] = {
    "A man is eating food.",
    "The new movie is awesome and everyone should see it this weekend.",
    "The cat sits outside on the warm stone wall.",
    "How do I reset my password if I no longer have access to my email account?",
    "Stock markets fell sharply on Monday after the central bank raised interest rates again.",
    "She plays the guitar in a small band.",
    "What is the best way to learn a new programming language quickly and without burning out?",
    "The train to Berlin leaves at seven in the morning.",
    "Our quarterly revenue grew by twelve percent, driven mostly by strong demand in Asia.",
    "Please send me the report by Friday.",
    "Researchers found that regular exercise improves memory and reduces stress in older adults.",
    "The restaurant was closed for renovation.",
    "Can you recommend a good book about the history of mathematics for a curious teenager?",
    "It rained all day, so we stayed inside, played board games and cooked a big dinner.",
    "The battery lasts about ten hours.",
    "A woman is slicing tomatoes in a bright kitchen while listening to the radio.",
    "Two dogs are running through a snowy field.",
    "The committee will announce its decision after reviewing every application submitted this "
    "year.",
    "Why does my laptop get so hot when I watch videos?",
    "Customer support answered my question within five minutes, which was a pleasant surprise.",
    "The bridge was built in 1932.",
    "Photosynthesis converts light energy into chemical energy that plants store as sugar.",
    "I forgot my umbrella at the office again.",
    "Heavy traffic delayed the delivery by two hours, but the package arrived undamaged.",
    "Which vaccines are recommended before travelling to Southeast Asia for a month?",
    "The children built a sandcastle near the water.",
    "This update fixes a crash that happened when opening large files on older devices.",
    "He finally finished the marathon after five hours and forty minutes.",
    "The museum offers free entry on the first Sunday of every month.",
    "Is it safe to eat raw cookie dough?",
    "The orchestra rehearsed the symphony for weeks before the sold-out premiere last night.",
    "Solar panels are becoming cheaper every year.",
    "My flight was cancelled, and the airline offered a hotel voucher and a seat on the next "
    "morning's plane.",
    "The soup needs more salt and a little pepper, but otherwise it is "
    "one of the best I have tasted since we moved to this small coastal town last spring.",
    "Scientists discovered a new species of frog in the rainforests of Ecuador.",
    "Where can I find the user manual for this washing machine?",
    "The city council approved a plan to add fifty kilometres of protected bike lanes.",
    "A boy is jumping into a swimming pool.",
    "Learning to cook at home saved us a lot of money during the last two years.",
    "The software engineer fixed the memory leak before the release.",
    "Our team meeting has been moved to Thursday afternoon because of the holiday.",
    "The mountain trail is steep but the view from the top is breathtaking.",
    "What are the symptoms of vitamin D deficiency?",
    "The library extended its opening hours for students preparing for final exams.",
    "Fresh bread from the corner bakery smells wonderful.",
    "The detective followed the muddy footprints from the garden gate to the broken window.",
    "Electric cars need less maintenance than cars with combustion engines.",
    "I would like to cancel my subscription and get a refund for the unused months.",
    "The sun sets behind the hills while farmers drive their tractors home along the narrow road, "
    "and the last birds circle over the quiet village before night falls.",
    "After the storm, volunteers spent the whole weekend clearing fallen trees from the roads.",
};
constexpr size_t kNumSentences = sizeof(kSentences) / sizeof(kSentences[0]);

struct TextRun {
  int producers = 0;
  uint64_t requests = 0, rejected = 0, tokens = 0;
  double elapsed_s = 0, sps = 0, mean_batch = 0, mean_tokens_per_batch = 0;
  LatencySummary latency;
  std::vector<uint64_t> fill;
};

TextRun run_one(Engine& engine, const std::vector<int64_t>& token_counts, int producers,
                int window, double warmup, double seconds) {
  std::atomic<bool> measuring{false}, stop{false};
  std::vector<std::vector<double>> lat(static_cast<size_t>(producers));
  std::vector<uint64_t> tokens(static_cast<size_t>(producers), 0);
  std::atomic<uint64_t> rejected{0};
  std::vector<std::thread> threads;
  for (int p = 0; p < producers; ++p) {
    threads.emplace_back([&, p] {
      size_t next = static_cast<size_t>(p * 7) % kNumSentences;
      struct InFlight {
        SteadyClock::time_point t0;
        size_t sentence;
        std::future<Response> f;
      };
      std::deque<InFlight> inflight;
      auto submit = [&] {
        for (;;) {
          try {
            const auto t0 = SteadyClock::now();
            inflight.push_back({t0, next, engine.submit_text(kSentences[next])});
            next = (next + 1) % kNumSentences;
            return;
          } catch (const Error& e) {
            if (e.code() != ErrorCode::kQueueFull) throw;
            rejected.fetch_add(1, std::memory_order_relaxed);
            std::this_thread::yield();
          }
        }
      };
      while (!stop.load(std::memory_order_relaxed)) {
        while (static_cast<int>(inflight.size()) < window) submit();
        InFlight r = std::move(inflight.front());
        inflight.pop_front();
        r.f.get();
        if (measuring.load(std::memory_order_relaxed)) {
          lat[static_cast<size_t>(p)].push_back(
              std::chrono::duration<double, std::micro>(SteadyClock::now() - r.t0).count());
          tokens[static_cast<size_t>(p)] += static_cast<uint64_t>(token_counts[r.sentence]);
        }
      }
      for (auto& r : inflight) r.f.get();
    });
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(warmup));
  const EngineMetrics before = engine.metrics();
  const auto start = SteadyClock::now();
  measuring = true;
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  measuring = false;
  const auto end = SteadyClock::now();
  const EngineMetrics after = engine.metrics();
  stop = true;
  for (auto& t : threads) t.join();
  TextRun r;
  r.producers = producers;
  std::vector<double> all;
  for (auto& l : lat) all.insert(all.end(), l.begin(), l.end());
  for (uint64_t t : tokens) r.tokens += t;
  r.requests = all.size();
  r.elapsed_s = std::chrono::duration<double>(end - start).count();
  r.sps = static_cast<double>(r.requests) / r.elapsed_s;
  r.latency = summarize(all);
  r.rejected = rejected.load();
  const uint64_t batches = after.batches - before.batches;
  const uint64_t done = after.completed - before.completed;
  r.mean_batch = batches ? static_cast<double>(done) / static_cast<double>(batches) : 0.0;
  r.mean_tokens_per_batch =
      batches ? static_cast<double>(r.tokens) / static_cast<double>(batches) : 0.0;
  r.fill.resize(after.batch_fill.size());
  for (size_t i = 0; i < r.fill.size(); ++i) r.fill[i] = after.batch_fill[i] - before.batch_fill[i];
  return r;
}

}  // namespace

json run_minilm_queue_bench(const BenchOptions& o) {
  if (o.model_dir.empty())
    throw UsageError(
        "--model minilm --mode queue needs --model-dir (the texts need the vocabulary)");
  Device& device = Device::get(o.backend);
  const DType dtype = parse_dtype(o.dtype);
  auto encoder = SentenceEncoder::load(o.model_dir, device, dtype);
  std::vector<int64_t> token_counts;
  for (const char* s : kSentences)
    token_counts.push_back(static_cast<int64_t>(encoder->tokenize(s).size()));
  EngineOptions eo;
  eo.workers = o.workers;
  eo.max_batch_size = o.max_batch;
  eo.max_queue_delay = std::chrono::microseconds(o.max_delay_us);
  eo.max_tokens_per_batch = o.max_tokens;
  Engine engine(encoder, eo);
  std::fprintf(stderr,
               "fanin bench minilm queue: %s %s on %s (%s), %d worker(s), max batch %d, delay "
               "%d us, max tokens %lld\n",
               o.model_dir.c_str(), o.dtype.c_str(), device.name().c_str(),
               device.description().c_str(), o.workers, o.max_batch, o.max_delay_us,
               static_cast<long long>(o.max_tokens));
  json runs = json::array();
  for (int p : o.producers) {
    TextRun r = run_one(engine, token_counts, p, o.window, o.warmup_seconds, o.seconds);
    std::fprintf(stderr,
                 "fanin bench minilm queue: %3d producers  %10.0f sentences/s  p50 %8.1f us  "
                 "p99 %8.1f us  p999 %8.1f us  mean batch %.1f  mean tokens/batch %.1f\n",
                 p, r.sps, r.latency.p50_us, r.latency.p99_us, r.latency.p999_us, r.mean_batch,
                 r.mean_tokens_per_batch);
    runs.push_back({{"producers", p},
                    {"window", o.window},
                    {"requests", r.requests},
                    {"elapsed_s", r.elapsed_s},
                    {"sentences_per_s", r.sps},
                    {"p50_us", r.latency.p50_us},
                    {"p99_us", r.latency.p99_us},
                    {"p999_us", r.latency.p999_us},
                    {"mean_us", r.latency.mean_us},
                    {"mean_batch", r.mean_batch},
                    {"mean_tokens_per_batch", r.mean_tokens_per_batch},
                    {"queue_full_retries", r.rejected},
                    {"batch_fill", r.fill}});
  }
  engine.drain();
  int64_t min_tok = token_counts[0], max_tok = token_counts[0], sum_tok = 0;
  for (int64_t t : token_counts) {
    min_tok = std::min(min_tok, t);
    max_tok = std::max(max_tok, t);
    sum_tok += t;
  }
  json j;
  j["model"] = {{"name", "all-MiniLM-L6-v2"}, {"weights", o.model_dir}, {"dtype", o.dtype},
                {"weight_bytes", encoder->model().weight_bytes()}};
  j["device"] = {{"name", device.name()}, {"description", device.description()}};
  j["engine"] = {{"workers", o.workers}, {"max_batch_size", o.max_batch},
                 {"max_queue_delay_us", o.max_delay_us}, {"max_tokens_per_batch", o.max_tokens}};
  j["sentences"] = {{"count", kNumSentences},
                    {"tokens_min", min_tok},
                    {"tokens_max", max_tok},
                    {"tokens_mean", static_cast<double>(sum_tok) / kNumSentences}};
  j["results"] = runs;
  j["notes"] = {
      "each producer cycles through the sentence list, keeping `window` requests in flight "
      "(1 = closed loop)",
      "latency = Engine::submit_text (tokenization on the producer thread included) to result",
      "mean_batch and batch_fill come from Engine::metrics over the measured interval; "
      "mean_tokens_per_batch = tokens of requests finished in it / batches run in it"};
  return j;
}

}  // namespace fanin::cli
