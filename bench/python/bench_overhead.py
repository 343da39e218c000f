#!/usr/bin/env python3
"""The Python module's own cost per call, apart from the model's compute.

N Python threads each call ``encode(one sentence)`` (or ``submit(s).result()``,
or ``Engine.run(x)`` on a tiny MLP) in a closed loop; the figure is calls/s
and the engine's average batch size over the measured interval. With
--tiny, the encoder is a BERT of the real vocabulary and tokenizer but one
layer of hidden size 32 (random weights, made in a temporary folder), so
that its compute is small next to the Python side and the calls/s show
what the GIL and the bindings cost: compare with
``fanin bench --model minilm --mode queue --model-dir TINY_DIR`` (the C++
queue, same sentences and producers; --keep-tiny DIR keeps the folder).

--calls N runs N sequential calls on the main thread instead (no threads,
no timing): the loop to count instructions of under callgrind.

  python3 bench/python/bench_overhead.py --tiny --threads 1,32 --seconds 3
  valgrind --tool=callgrind --separate-threads=yes python3 \\
      bench/python/bench_overhead.py --tiny --calls 2000 --mode encode
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import struct
import sys
import tempfile
import threading
import time
from typing import Any, Callable

import numpy as np

import fanin


def load_sentences(path: str) -> list[str]:
    with open(path, encoding="utf-8") as f:
        return [line for line in f.read().split("\n") if line]


def make_tiny_model(src: str, dst: str, hidden: int = 32, layers: int = 1) -> str:
    """A BERT folder with src's vocabulary and tokenizer settings, `layers`
    layers of size `hidden` and random weights."""
    os.makedirs(dst, exist_ok=True)
    for name in ("vocab.txt", "sentence_bert_config.json", "tokenizer_config.json",
                 "special_tokens_map.json", "modules.json"):
        if os.path.exists(os.path.join(src, name)):
            shutil.copy(os.path.join(src, name), os.path.join(dst, name))
    with open(os.path.join(src, "config.json")) as f:
        config = json.load(f)
    config.update(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=2,
                  intermediate_size=hidden)
    with open(os.path.join(dst, "config.json"), "w") as f:
        json.dump(config, f)
    H, V, P = hidden, config["vocab_size"], config["max_position_embeddings"]
    shapes = {"embeddings.word_embeddings.weight": (V, H),
              "embeddings.position_embeddings.weight": (P, H),
              "embeddings.token_type_embeddings.weight": (config["type_vocab_size"], H),
              "embeddings.LayerNorm.weight": (H,), "embeddings.LayerNorm.bias": (H,)}
    for l in range(layers):
        p = f"encoder.layer.{l}."
        for part in ("query", "key", "value"):
            shapes[p + f"attention.self.{part}.weight"] = (H, H)
            shapes[p + f"attention.self.{part}.bias"] = (H,)
        shapes.update({p + "attention.output.dense.weight": (H, H),
                       p + "attention.output.dense.bias": (H,),
                       p + "attention.output.LayerNorm.weight": (H,),
                       p + "attention.output.LayerNorm.bias": (H,),
                       p + "intermediate.dense.weight": (H, H), p + "intermediate.dense.bias": (H,),
                       p + "output.dense.weight": (H, H), p + "output.dense.bias": (H,),
                       p + "output.LayerNorm.weight": (H,), p + "output.LayerNorm.bias": (H,)})
    rng = np.random.default_rng(0)
    header: dict[str, Any] = {}
    blobs = []
    offset = 0
    for name, shape in shapes.items():
        a = (1.0 + 0.1 * rng.standard_normal(shape) if "LayerNorm.weight" in name
             else 0.05 * rng.standard_normal(shape)).astype("<f4")
        header[name] = {"dtype": "F32", "shape": list(shape), "data_offsets": [offset, offset + a.nbytes]}
        blobs.append(a.tobytes())
        offset += a.nbytes
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    with open(os.path.join(dst, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw)
        for b in blobs:
            f.write(b)
    return dst


def closed_loop(call: Callable[[int], Any], threads: int, seconds: float,
                warmup: float) -> dict[str, Any]:
    """`threads` threads each calling call(k) in a loop; calls/s over the
    measured interval."""
    barrier = threading.Barrier(threads + 1)
    counts = [0] * threads
    errors: list[BaseException] = []
    window = [0.0, 0.0]

    def worker(q: int) -> None:
        k = q * 7
        barrier.wait()
        try:
            while True:
                t0 = time.perf_counter()
                if t0 >= window[1]:
                    return
                call(k)
                k += 1
                if t0 >= window[0]:
                    counts[q] += 1
        except BaseException as e:  # reported by the caller
            errors.append(e)

    ts = [threading.Thread(target=worker, args=(q,), daemon=True) for q in range(threads)]
    for t in ts:
        t.start()
    now = time.perf_counter()
    window[:] = [now + warmup, now + warmup + seconds]
    barrier.wait()
    time.sleep(max(0.0, window[0] - time.perf_counter()))
    cpu0 = time.process_time()  # the process's CPU time over the measured window (every thread)
    time.sleep(max(0.0, window[1] - time.perf_counter()))
    cpu = time.process_time() - cpu0
    for t in ts:
        t.join()
    if errors:
        raise errors[0]
    return {"threads": threads, "calls": sum(counts), "calls_per_s": sum(counts) / seconds,
            "cpu_us_per_call": cpu / max(1, sum(counts)) * 1e6}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-dir", default="models/all-MiniLM-L6-v2")
    ap.add_argument("--tiny", action="store_true", help="a 1-layer, hidden-32 BERT of the same vocabulary")
    ap.add_argument("--keep-tiny", help="make the tiny model in this folder and keep it")
    ap.add_argument("--sentences", default="bench/data/queue_sentences.txt")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default=None, help="the encoder's dtype (default float32)")
    ap.add_argument("--engine-warmup", action="store_true", help="warm-up batches before measuring (GPU)")
    ap.add_argument("--mode", default="encode,submit,run",
                    help="comma-separated: encode, submit (submit(s).result()), run (Engine.run on an MLP 4->4)")
    ap.add_argument("--threads", default="1,32")
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--warmup", type=float, default=0.5)
    ap.add_argument("--repeat", type=int, default=1, help="runs per figure; the best is kept")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--max-batch", type=int, default=256)
    ap.add_argument("--max-delay-us", type=float, default=200)
    ap.add_argument("--calls", type=int, default=0, help="N sequential calls on the main thread (callgrind)")
    ap.add_argument("--out", help="also write the JSON here")
    args = ap.parse_args()

    sentences = load_sentences(args.sentences)
    modes = args.mode.split(",")
    tmp = None
    model_dir = args.model_dir
    if args.tiny or args.keep_tiny:
        tmp = None if args.keep_tiny else tempfile.mkdtemp(prefix="fanin-tiny-")
        model_dir = make_tiny_model(args.model_dir, args.keep_tiny or tmp)
    try:
        return run(args, model_dir, modes, sentences, tiny=tmp is not None or bool(args.keep_tiny))
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


def run(args: argparse.Namespace, model_dir: str, modes: list[str], sentences: list[str],
        tiny: bool) -> int:
    n = len(sentences)
    opts: dict[str, Any] = dict(workers=args.workers, max_batch_size=args.max_batch,
                                max_queue_delay=args.max_delay_us * 1e-6)
    if args.engine_warmup:
        opts["warmup"] = True
    enc = (fanin.SentenceEncoder(model_dir, device=args.device, dtype=args.dtype, **opts)
           if {"encode", "submit"} & set(modes) else None)
    mlp = fanin.Engine(fanin.Model.mlp(dims=[4, 4], device=args.device), **opts) if "run" in modes else None
    x = np.ones(4, np.float32)
    calls = {
        "encode": lambda k: enc.encode(sentences[k % n]),
        "submit": lambda k: enc.submit(sentences[k % n]).result(),
        "run": lambda k: mlp.run(x),
    }
    if args.calls:
        for mode in modes:
            call = calls[mode]
            for k in range(args.calls):
                call(k)
        return 0

    out: dict[str, Any] = {"python": sys.version.split()[0], "model_dir": model_dir, "tiny": tiny,
                           "device": args.device, "dtype": args.dtype or "float32", "settings": opts,
                           "gil_spin_us": os.environ.get("FANIN_GIL_SPIN_US", "0"),
                           "gil_spinners": os.environ.get("FANIN_GIL_SPINNERS", "1"),
                           "results": []}
    for mode in modes:
        engine = mlp if mode == "run" else enc
        for threads in (int(t) for t in args.threads.split(",")):
            best = None
            for _ in range(args.repeat):
                before = engine.metrics()
                r = closed_loop(calls[mode], threads, args.seconds, args.warmup)
                after = engine.metrics()
                batches = after["batches"] - before["batches"]
                r["mean_batch"] = (after["completed"] - before["completed"]) / max(1, batches)
                if best is None or r["calls_per_s"] > best["calls_per_s"]:
                    best = r
            best["mode"] = mode
            out["results"].append(best)
            print(f"{mode:7s} {threads:3d} threads: {best['calls_per_s']:9.0f} calls/s, "
                  f"mean batch {best['mean_batch']:.1f}, {best['cpu_us_per_call']:.1f} CPU us/call "
                  f"(GIL spin {out['gil_spin_us']} us "
                  f"x{out['gil_spinners']})", flush=True)
    for e in (enc, mlp):
        if e is not None:
            e.close()
    if args.out:
        with open(args.out, "w") as f:
            json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
