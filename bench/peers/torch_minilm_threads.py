#!/usr/bin/env python3
"""PyTorch peer for `fanin bench --model minilm --mode queue`: what users do
today to serve sentence embeddings from many threads. N threads, each with its
own CUDA stream, call sentence-transformers `model.encode([one sentence],
convert_to_tensor=True)` and copy the embedding back (`.cpu()`) in a closed
loop; each thread cycles through the same ~50 English sentences as fanin's
queue bench (its own starting offset). Tokenization is included, as in fanin's
submit_text. Prints one JSON object: per thread count, sentences/s and
p50/p99/p999 latency in microseconds.

  python3 bench/peers/torch_minilm_threads.py --model-dir models/all-MiniLM-L6-v2 \
      --threads 1,8,32,256 --seconds 5 --dtype f16
"""
import argparse
import json
import threading
import time

import torch
from sentence_transformers import SentenceTransformer

# The same sentences as tools/fanin/bench_minilm_queue.cpp (kSentences).
SENTENCES = [
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
]


def percentile(sorted_us, q):
    """Nearest rank, as fanin's summarize()."""
    if not sorted_us:
        return 0.0
    k = max(0, min(len(sorted_us) - 1, int(-(-q * len(sorted_us) // 1)) - 1))
    return sorted_us[k]


def run(model, threads, warmup, seconds):
    measuring = threading.Event()
    stop = threading.Event()
    lat = [[] for _ in range(threads)]
    errors = []

    def worker(t):
        try:
            stream = torch.cuda.Stream()
            i = (t * 7) % len(SENTENCES)
            with torch.cuda.stream(stream), torch.inference_mode():
                while not stop.is_set():
                    t0 = time.perf_counter()
                    e = model.encode([SENTENCES[i]], convert_to_tensor=True,
                                     show_progress_bar=False)
                    e.cpu()
                    if measuring.is_set():
                        lat[t].append((time.perf_counter() - t0) * 1e6)
                    i = (i + 1) % len(SENTENCES)
        except Exception as ex:  # report, do not hang the run
            errors.append(repr(ex))
            stop.set()

    ts = [threading.Thread(target=worker, args=(t,), daemon=True) for t in range(threads)]
    for th in ts:
        th.start()
    time.sleep(warmup)
    measuring.set()
    t0 = time.perf_counter()
    time.sleep(seconds)
    measuring.clear()
    elapsed = time.perf_counter() - t0
    stop.set()
    for th in ts:
        th.join()
    if errors:
        raise RuntimeError(f"{threads} threads: {errors[0]}")
    all_us = sorted(x for l in lat for x in l)
    return {
        "threads": threads,
        "requests": len(all_us),
        "elapsed_s": elapsed,
        "sentences_per_s": len(all_us) / elapsed,
        "p50_us": percentile(all_us, 0.50),
        "p99_us": percentile(all_us, 0.99),
        "p999_us": percentile(all_us, 0.999),
        "mean_us": sum(all_us) / len(all_us) if all_us else 0.0,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-dir", default="models/all-MiniLM-L6-v2",
                    help="a sentence-transformers folder (or a hub name)")
    ap.add_argument("--threads", default="1,8,32,256")
    ap.add_argument("--dtype", default="f16", choices=["f32", "f16", "bf16"])
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--warmup-seconds", type=float, default=1.0)
    a = ap.parse_args()
    dtype = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}[a.dtype]
    model = SentenceTransformer(a.model_dir, device="cuda")
    model = model.to(dtype).eval()
    rows = [run(model, int(n), a.warmup_seconds, a.seconds) for n in a.threads.split(",")]
    import sentence_transformers
    print(json.dumps({
        "peer": "torch-threads",
        "torch_version": torch.__version__,
        "sentence_transformers_version": sentence_transformers.__version__,
        "device": torch.cuda.get_device_name(0),
        "dtype": a.dtype,
        "weights": a.model_dir,
        "sentences": len(SENTENCES),
        "results": rows,
        "notes": ["N threads, each with its own torch.cuda.Stream, closed loop: "
                  "SentenceTransformer.encode([one sentence], convert_to_tensor=True) then "
                  ".cpu(); tokenization included; latency per request in microseconds "
                  "(nearest rank)"],
    }, indent=2))


if __name__ == "__main__":
    main()
