#!/usr/bin/env python3
"""Makes the model folder that travels to the GPU machine for the server
benchmark: a copy of a BERT sentence-transformers folder whose F32 tensors
are stored as F16 and whose word-embedding rows are zero except for the
token ids the given sentence files use (as scripts/prune_model.py does).

Why F16: the wheels of the Infinity peer (~19 MiB) travel in the same call
as the build and the model, under the 64 MiB limit; F32 weights (90 MB,
~45 MB compressed after pruning) would not fit beside them. Both servers run
the model in f16 on the GPU (fanin's cuda default, Infinity --dtype
float16), so both read the same f16-rounded weights: the comparison stays
like for like. fanin and sentence-transformers both load F16 safetensors.

Usage: travel_model.py MODEL_FOLDER OUT_FOLDER SENTENCES_FILE...
Needs: numpy, tokenizers.
"""
import json
import os
import shutil
import struct
import sys

import numpy as np
from tokenizers import BertWordPieceTokenizer


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    src, dst, sentence_files = sys.argv[1], sys.argv[2], sys.argv[3:]
    os.makedirs(dst, exist_ok=True)
    for name in os.listdir(src):
        p = os.path.join(src, name)
        if name not in ("model.safetensors", "README.md", "data_config.json") \
                and not name.startswith(("onnx", "openvino", "pytorch_model", "tf_", "rust_")):
            (shutil.copytree if os.path.isdir(p) else shutil.copy)(p, os.path.join(dst, name))
    tok = BertWordPieceTokenizer(os.path.join(src, "vocab.txt"), lowercase=True)
    tok.enable_truncation(512)
    used = set()
    for path in sentence_files:
        with open(path, encoding="utf-8") as f:
            for s in f.read().split("\n"):
                used.update(tok.encode(s).ids)
    raw = open(os.path.join(src, "model.safetensors"), "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    out_header, chunks, offset = {}, [], 0
    kept = rows = 0
    for key, info in header.items():
        if key == "__metadata__":
            out_header[key] = info
            continue
        begin, end = info["data_offsets"]
        blob = data[begin:end]
        dtype = info["dtype"]
        if dtype == "F32":
            a = np.frombuffer(blob, dtype="<f4").reshape(info["shape"])
            if key.endswith("embeddings.word_embeddings.weight"):
                rows = a.shape[0]
                keep = np.zeros(rows, dtype=bool)
                keep[sorted(used)] = True
                kept = int(keep.sum())
                a = a.copy()
                a[~keep] = 0
            blob = a.astype("<f2").tobytes()
            dtype = "F16"
        out_header[key] = {"dtype": dtype, "shape": info["shape"],
                           "data_offsets": [offset, offset + len(blob)]}
        chunks.append(blob)
        offset += len(blob)
    h = json.dumps(out_header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)  # the data starts 8-byte aligned
    with open(os.path.join(dst, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for c in chunks:
            f.write(c)
    print(f"travel_model: F16, kept {kept} of {rows} vocabulary rows -> {dst}")


if __name__ == "__main__":
    main()
