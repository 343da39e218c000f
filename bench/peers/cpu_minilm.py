#!/usr/bin/env python3
"""CPU peers of `fanin bench --model minilm --mode cpu-encoder`: the same
sentences embedded on the CPU by

  * sentence-transformers (PyTorch, float32), `model.encode(texts,
    batch_size=32)`: what users run today; it sorts by length and pads each
    batch to its longest, mean-pools and L2-normalises;
  * ONNX Runtime's CPU execution provider (--onnx), running the same BERT
    exported with torch.onnx (dynamic batch and sequence axes), fed the
    same length-sorted batches of 32 from the model's own fast tokenizer,
    mean-pooled and L2-normalised in numpy; its embeddings are checked
    against sentence-transformers' (cosine).

Both use --threads intra-op threads (torch.set_num_threads; ORT
intra_op_num_threads), one inter-op thread; pin the process with taskset to
the same cores fanin gets. Tokenization is inside the timed pass, as in
fanin. One unmeasured pass first. Prints one JSON object on stdout.

  taskset -c 0-1 python3 bench/peers/cpu_minilm.py --model-dir models/all-MiniLM-L6-v2 \
      --threads 2 --count 2000 --onnx /tmp/minilm.onnx
"""
import argparse
import json
import os
import platform
import sys
import time


def load_texts(path, count):
    with open(path, encoding="utf-8") as f:
        lines = [s for s in f.read().split("\n") if s]
    return [lines[i % len(lines)] for i in range(count)]


def affinity():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-dir", default="models/all-MiniLM-L6-v2")
    ap.add_argument("--sentences", default="bench/data/queue_sentences.txt")
    ap.add_argument("--count", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=0, help="0: the affinity's cores")
    ap.add_argument("--onnx", default="", help="export the model here and run ONNX Runtime too")
    ap.add_argument("--skip-st", action="store_true")
    ap.add_argument("--bf16", action="store_true",
                    help="also sentence-transformers under torch.autocast('cpu', bfloat16): "
                         "its linear layers in bf16 (oneDNN's AMX/AVX512-BF16 kernels), "
                         "as fanin's CPU bf16 matmul")
    ap.add_argument("--only-onnx-export", action="store_true", help="export --onnx and stop")
    a = ap.parse_args()
    threads = a.threads or affinity()
    t_import = time.perf_counter()
    import numpy as np
    import torch
    torch.set_num_threads(threads)
    torch.set_num_interop_threads(1)
    from sentence_transformers import SentenceTransformer
    import_s = time.perf_counter() - t_import
    texts = load_texts(a.sentences, a.count)
    out = {"tool": "bench/peers/cpu_minilm.py", "threads": threads, "affinity_cores": affinity(),
           "count": len(texts), "batch": a.batch, "python": platform.python_version(),
           "versions": {"torch": torch.__version__, "numpy": np.__version__},
           "torch_parallel_info": torch.__config__.parallel_info().splitlines()[:6],
           "torch_import_s": import_s}
    try:
        import sentence_transformers
        out["versions"]["sentence_transformers"] = sentence_transformers.__version__
    except Exception:  # noqa: BLE001
        pass
    t0 = time.perf_counter()
    model = SentenceTransformer(a.model_dir, device="cpu")
    model.eval()
    out["st_load_s"] = time.perf_counter() - t0
    ref = None
    if a.only_onnx_export:
        print(json.dumps(run_onnx(a, model, texts[:64], threads, None, out["versions"])))
        return
    if not a.skip_st:
        with torch.inference_mode():
            model.encode(texts[: 4 * a.batch], batch_size=a.batch, show_progress_bar=False)
            t0 = time.perf_counter()
            ref = model.encode(texts, batch_size=a.batch, show_progress_bar=False,
                               convert_to_numpy=True, normalize_embeddings=False)
            el = time.perf_counter() - t0
        out["sentence_transformers"] = {"seconds": el, "sentences_per_s": len(texts) / el}
        print(f"cpu peers: sentence-transformers {threads} threads: {len(texts) / el:.1f} "
              f"sentences/s", file=sys.stderr)
        if a.bf16:
            with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
                model.encode(texts[: 4 * a.batch], batch_size=a.batch, show_progress_bar=False)
                t0 = time.perf_counter()
                got = model.encode(texts, batch_size=a.batch, show_progress_bar=False,
                                   convert_to_numpy=True, normalize_embeddings=False)
                el = time.perf_counter() - t0
            got = got.astype(np.float64)
            r64 = ref.astype(np.float64)
            cos = (got * r64).sum(1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(r64, axis=1))
            out["sentence_transformers_bf16"] = {
                "seconds": el, "sentences_per_s": len(texts) / el,
                "how": "torch.autocast('cpu', dtype=torch.bfloat16) around model.encode",
                "min_cosine_vs_f32": float(cos.min())}
            print(f"cpu peers: sentence-transformers bf16 autocast {threads} threads: "
                  f"{len(texts) / el:.1f} sentences/s, min cosine to f32 {cos.min():.6f}",
                  file=sys.stderr)
    if a.onnx:
        out["onnxruntime"] = run_onnx(a, model, texts, threads, ref, out["versions"])
    print(json.dumps(out, indent=2))


def run_onnx(a, model, texts, threads, ref, versions):
    import numpy as np
    import torch
    try:
        import onnxruntime as ort
    except ImportError as e:
        return {"error": f"onnxruntime not installed: {e}"}
    versions["onnxruntime"] = ort.__version__
    bert = model[0].auto_model
    tok = model.tokenizer
    if not os.path.exists(a.onnx):
        sample = tok(["a b c", "d"], padding=True, return_tensors="pt")
        names = ["input_ids", "attention_mask", "token_type_ids"]
        dyn = {n: {0: "batch", 1: "seq"} for n in names}
        dyn["last_hidden_state"] = {0: "batch", 1: "seq"}
        class Wrapped(torch.nn.Module):  # keyword arguments: robust to forward()'s order
            def __init__(self, m):
                super().__init__()
                self.m = m

            def forward(self, input_ids, attention_mask, token_type_ids):
                return self.m(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).last_hidden_state

        t0 = time.perf_counter()
        with torch.no_grad():
            torch.onnx.export(Wrapped(bert).eval(), tuple(sample[n] for n in names), a.onnx,
                              input_names=names, output_names=["last_hidden_state"],
                              dynamic_axes=dyn, opset_version=17, dynamo=False)
        print(f"cpu peers: exported {a.onnx} in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(a.onnx, so, providers=["CPUExecutionProvider"])
    feeds_names = [i.name for i in sess.get_inputs()]
    max_len = model.get_max_seq_length()

    def encode(batch_texts):
        order = sorted(range(len(batch_texts)), key=lambda i: -len(batch_texts[i]))
        out = np.zeros((len(batch_texts), bert.config.hidden_size), dtype=np.float32)
        for s in range(0, len(order), a.batch):
            idx = order[s:s + a.batch]
            enc = tok([batch_texts[i] for i in idx], padding=True, truncation=True,
                      max_length=max_len, return_tensors="np")
            feeds = {n: enc[n].astype(np.int64) for n in feeds_names}
            h = sess.run(None, feeds)[0]
            m = enc["attention_mask"].astype(np.float32)[:, :, None]
            e = (h * m).sum(1) / np.maximum(m.sum(1), 1e-9)
            out[idx] = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
        return out

    encode(texts[: 4 * a.batch])
    t0 = time.perf_counter()
    emb = encode(texts)
    el = time.perf_counter() - t0
    r = {"seconds": el, "sentences_per_s": len(texts) / el, "providers": sess.get_providers()}
    if ref is not None:
        refn = ref / np.linalg.norm(ref, axis=1, keepdims=True)
        r["min_cosine_vs_sentence_transformers"] = float((refn * emb).sum(1).min())
    print(f"cpu peers: onnxruntime {threads} threads: {len(texts) / el:.1f} sentences/s",
          file=sys.stderr)
    return r


if __name__ == "__main__":
    main()
