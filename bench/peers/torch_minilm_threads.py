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

# The sentences fanin's queue bench sends too (bench/data/queue_sentences.txt).
def load_sentences(path):
    with open(path, encoding="utf-8") as f:
        return [line for line in f.read().split("\n") if line]


SENTENCES = []  # filled from --sentences in main()


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
    ap.add_argument("--sentences", default="bench/data/queue_sentences.txt")
    ap.add_argument("--dtype", default="f16", choices=["f32", "f16", "bf16"])
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--warmup-seconds", type=float, default=1.0)
    a = ap.parse_args()
    dtype = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}[a.dtype]
    SENTENCES.extend(load_sentences(a.sentences))
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
