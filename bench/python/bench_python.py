#!/usr/bin/env python3
"""The Python module's benchmark, with its peers in the same run.

1. Threads: N Python threads (32) each call ``encode(one sentence)`` in a
   closed loop for --seconds, cycling through bench/data/queue_sentences.txt
   from their own offsets (as ``fanin bench --model minilm --mode queue``
   producers do). Against:
   - the C++ in-process queue figure for the same sentences and producers
     (--cpp-json: the JSON ``fanin bench --model minilm --mode queue`` wrote
     in the same job, with the same engine settings);
   - sentence-transformers ``SentenceTransformer.encode(one sentence)``
     called from the same N threads;
   - sentence-transformers ``encode(the whole list, batch_size=B)``: what a
     user who can batch by hand gets.
2. Bulk: one ``encode`` of --bulk sentences (10,000; made from the queue
   sentences, two joined per line, so lengths vary) by fanin and by
   sentence-transformers, on the GPU (--device) and on the CPU (--cpu).

Writes one bench/results-style JSON (--out: device, commit, date, versions,
every figure, ratios) and, with --plot, a PNG made from it.

  python3 bench/python/bench_python.py --model-dir models/all-MiniLM-L6-v2 \\
      --device cuda --dtype float16 --cpp-json /tmp/cpp_queue.json \\
      --out bench/results/DATE-python.json --plot bench/results/DATE-python.png
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from typing import Any, Callable, Optional

import numpy as np

import fanin


def load_sentences(path: str) -> list[str]:
    with open(path, encoding="utf-8") as f:
        return [line for line in f.read().split("\n") if line]


def bulk_sentences(base: list[str], n: int) -> list[str]:
    """n sentences of varied length from the base list (deterministic)."""
    m = len(base)
    return [base[i % m] if i % 3 == 0 else base[i % m] + " " + base[(i * 7 + 3) % m] for i in range(n)]


def closed_loop(encode_one: Callable[[str], Any], sentences: list[str], threads: int,
                seconds: float, warmup: float) -> dict[str, Any]:
    """`threads` threads each calling encode_one in a loop; rate and latency
    over the measured interval (after `warmup` seconds)."""
    n = len(sentences)
    start_evt = threading.Barrier(threads + 1)
    lat: list[list[float]] = [[] for _ in range(threads)]
    counts = [0] * threads
    errors: list[BaseException] = []
    t_measure = [0.0]
    t_stop = [0.0]

    def worker(q: int) -> None:
        k = 0
        start_evt.wait()
        try:
            while True:
                t0 = time.perf_counter()
                if t0 >= t_stop[0]:
                    return
                encode_one(sentences[(q * 7 + k) % n])
                t1 = time.perf_counter()
                k += 1
                if t0 >= t_measure[0] and t1 <= t_stop[0]:
                    counts[q] += 1
                    lat[q].append(t1 - t0)
        except BaseException as e:  # reported by the caller
            errors.append(e)

    ts = [threading.Thread(target=worker, args=(q,), daemon=True) for q in range(threads)]
    for t in ts:
        t.start()
    now = time.perf_counter()
    t_measure[0] = now + warmup
    t_stop[0] = now + warmup + seconds
    start_evt.wait()
    for t in ts:
        t.join()
    if errors:
        raise errors[0]
    all_lat = sorted(x for per in lat for x in per)
    done = sum(counts)

    def pct(p: float) -> float:
        return all_lat[min(len(all_lat) - 1, int(p * len(all_lat)))] * 1e6 if all_lat else 0.0

    return {"threads": threads, "requests": done, "elapsed_s": seconds,
            "sentences_per_s": done / seconds, "p50_us": pct(0.50), "p99_us": pct(0.99),
            "mean_us": statistics.fmean(all_lat) * 1e6 if all_lat else 0.0}


def timed(fn: Callable[[], Any], repeats: int = 1) -> float:
    """Best wall seconds of `repeats` calls."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def cpp_queue_figure(path: Optional[str], producers: int) -> Optional[dict[str, Any]]:
    """sentences/s of `fanin bench --model minilm --mode queue` at `producers`."""
    if not path:
        return None
    with open(path) as f:
        data = json.load(f)
    found: list[dict] = []

    def walk(x: Any) -> None:
        if isinstance(x, dict):
            if x.get("producers") == producers and "sentences_per_s" in x:
                found.append(x)
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)

    walk(data.get("results", data))
    if not found:
        return None
    r = found[0]
    return {"producers": producers, "sentences_per_s": r["sentences_per_s"],
            "p50_us": r.get("p50_us"), "p99_us": r.get("p99_us"), "mean_batch": r.get("mean_batch"),
            "engine": data.get("engine"), "file": os.path.basename(path)}


def git_commit() -> str:
    if os.environ.get("FANIN_COMMIT"):
        return os.environ["FANIN_COMMIT"]
    try:
        return subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def st_model(model_dir: str, device: str, dtype: str):
    import torch
    from sentence_transformers import SentenceTransformer

    m = SentenceTransformer(model_dir, device=device)
    if dtype in ("float16", "f16") and device != "cpu":
        m = m.half()
    m.eval()
    torch.set_grad_enabled(False)
    return m


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-dir", default="models/all-MiniLM-L6-v2")
    ap.add_argument("--sentences", default="bench/data/queue_sentences.txt")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--dtype", default="float16", help="fanin's and the peer's dtype on the GPU")
    ap.add_argument("--threads", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--peer-seconds", type=float, default=5.0,
                    help="measured seconds of sentence-transformers from threads")
    ap.add_argument("--st-batch", type=int, default=256, help="sentence-transformers' batch_size on the whole list")
    ap.add_argument("--bulk", type=int, default=10000)
    ap.add_argument("--cpu", action="store_true", help="also the bulk encode on the CPU")
    ap.add_argument("--cpu-bulk", type=int, default=0, help="sentences of the CPU bulk run (default --bulk)")
    ap.add_argument("--max-batch", type=int, default=256)
    ap.add_argument("--max-delay-us", type=float, default=200)
    ap.add_argument("--workers", type=int, default=2, help="fanin workers per GPU")
    ap.add_argument("--cpp-json", help="fanin bench --model minilm --mode queue output of this run")
    ap.add_argument("--skip-peers", action="store_true")
    ap.add_argument("--out", required=True)
    ap.add_argument("--plot")
    args = ap.parse_args()

    sentences = load_sentences(args.sentences)
    bulk = bulk_sentences(sentences, args.bulk)
    log = lambda *a: print("bench_python:", *a, file=sys.stderr, flush=True)  # noqa: E731
    result: dict[str, Any] = {
        "kind": "python",
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "commit": git_commit(),
        "host": {"hostname": platform.node(), "cpu_cores": len(os.sched_getaffinity(0)),
                 "python": platform.python_version()},
        "versions": {"fanin": fanin.__version__, "numpy": np.__version__},
        "sentences": {"file": args.sentences, "count": len(sentences), "bulk": len(bulk)},
        "settings": {"threads": args.threads, "seconds": args.seconds, "warmup_s": args.warmup,
                     "dtype": args.dtype, "max_batch_size": args.max_batch,
                     "max_queue_delay_us": args.max_delay_us, "workers_per_gpu": args.workers,
                     "st_batch_size": args.st_batch},
    }

    # ---- fanin on the device ----
    enc = fanin.SentenceEncoder(args.model_dir, device=args.device, dtype=args.dtype,
                                workers=args.workers, max_batch_size=args.max_batch,
                                max_queue_delay=args.max_delay_us * 1e-6, warmup=True)
    result["device"] = {"name": enc.info()["devices"][0], "fanin_dtype": enc.info()["dtype"]}
    log(f"fanin {enc!r}")
    single = closed_loop(enc.encode, sentences, 1, args.seconds, args.warmup)
    log(f"fanin 1 thread: {single['sentences_per_s']:.0f} sentences/s")
    threads = closed_loop(enc.encode, sentences, args.threads, args.seconds, args.warmup)
    m = enc.metrics()
    threads["mean_batch"] = m["completed"] / max(1, m["batches"])
    log(f"fanin {args.threads} threads: {threads['sentences_per_s']:.0f} sentences/s")
    submit = closed_loop(lambda s: enc.submit(s).result(), sentences, args.threads, args.seconds,
                         args.warmup)
    log(f"fanin {args.threads} threads submit().result(): {submit['sentences_per_s']:.0f} sentences/s")
    enc.encode(bulk[:1000])
    fanin_bulk = {bs: len(bulk) / timed(lambda: enc.encode(bulk, batch_size=bs), 2) for bs in (32, 256)}
    log(f"fanin bulk encode of {len(bulk)}: {fanin_bulk}")
    enc.close()
    result["fanin"] = {"threads_1": single, "threads": threads, "threads_submit": submit,
                       "bulk_sentences_per_s": {str(k): v for k, v in fanin_bulk.items()}}

    cpp = cpp_queue_figure(args.cpp_json, args.threads)
    result["cpp_queue"] = cpp
    ratios: dict[str, Any] = {}
    if cpp:
        ratios["python_threads_vs_cpp_queue"] = threads["sentences_per_s"] / cpp["sentences_per_s"]
        ratios["target_python_threads_vs_cpp_queue"] = 0.8

    # ---- sentence-transformers on the device ----
    if not args.skip_peers:
        import sentence_transformers
        import torch

        result["versions"].update({"torch": torch.__version__,
                                   "sentence_transformers": sentence_transformers.__version__})
        if torch.cuda.is_available() and args.device != "cpu":
            result["device"]["description"] = torch.cuda.get_device_name(0)
        st = st_model(args.model_dir, args.device, args.dtype)
        st.encode(sentences)
        st_threads = closed_loop(lambda s: st.encode(s), sentences, args.threads, args.peer_seconds,
                                 args.warmup)
        log(f"sentence-transformers {args.threads} threads: {st_threads['sentences_per_s']:.1f} sentences/s")
        st_list = len(bulk) / timed(lambda: st.encode(bulk, batch_size=args.st_batch), 2)
        st_list_32 = len(bulk) / timed(lambda: st.encode(bulk, batch_size=32), 1)
        log(f"sentence-transformers encode(list of {len(bulk)}): {st_list:.0f} (batch {args.st_batch}), "
            f"{st_list_32:.0f} (batch 32) sentences/s")
        result["sentence_transformers"] = {
            "threads": st_threads,
            "bulk_sentences_per_s": {str(args.st_batch): st_list, "32": st_list_32},
            "dtype": args.dtype if args.device != "cpu" else "float32",
        }
        ratios["python_threads_vs_st_threads"] = threads["sentences_per_s"] / st_threads["sentences_per_s"]
        ratios["python_threads_vs_st_batched_list"] = threads["sentences_per_s"] / st_list
        ratios["bulk_vs_st_bulk_batch32"] = fanin_bulk[32] / st_list_32
        ratios[f"bulk_vs_st_bulk_batch{args.st_batch}"] = fanin_bulk[256] / st_list
        del st
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    # ---- the CPU: one encode of the bulk list ----
    if args.cpu:
        cpu_list = bulk[: args.cpu_bulk] if args.cpu_bulk else bulk
        with fanin.SentenceEncoder(args.model_dir, device="cpu") as cpu_enc:
            cpu_enc.encode(cpu_list[:200])
            f_cpu = len(cpu_list) / timed(lambda: cpu_enc.encode(cpu_list), 1)
            workers = len(cpu_enc.metrics()["workers"])
        log(f"fanin cpu ({workers} workers) encode of {len(cpu_list)}: {f_cpu:.0f} sentences/s")
        cpu: dict[str, Any] = {"sentences": len(cpu_list), "fanin_workers": workers,
                               "fanin_sentences_per_s": f_cpu}
        if not args.skip_peers:
            import torch

            st_cpu = st_model(args.model_dir, "cpu", "float32")
            st_cpu.encode(cpu_list[:200])
            s_cpu = len(cpu_list) / timed(lambda: st_cpu.encode(cpu_list, batch_size=32), 1)
            log(f"sentence-transformers cpu ({torch.get_num_threads()} torch threads): {s_cpu:.0f} sentences/s")
            cpu.update({"st_sentences_per_s": s_cpu, "st_torch_threads": torch.get_num_threads()})
            ratios["cpu_bulk_vs_st"] = f_cpu / s_cpu
        result["cpu"] = cpu

    result["ratios"] = ratios
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    log(f"wrote {args.out}")
    if args.plot:
        from plot_python import plot

        plot(result, args.plot)
        log(f"wrote {args.plot}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    sys.exit(main())
