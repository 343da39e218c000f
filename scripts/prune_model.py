#!/usr/bin/env python3
"""Makes a copy of a BERT model folder whose word-embedding rows are zero
except for the token ids that SENTENCES_FILE uses, so the copy compresses to
about half the size and can travel to the GPU machine (whose uploads are
capped). Embeddings of those sentences are unchanged: no other row is read.

Usage: prune_model.py MODEL_FOLDER SENTENCES_FILE OUT_FOLDER
Needs: tokenizers, numpy (reads and writes safetensors by hand).
"""
import json
import os
import shutil
import struct
import sys

import numpy as np
from tokenizers import BertWordPieceTokenizer


def main():
    src, sentences_file, dst = sys.argv[1:4]
    os.makedirs(dst, exist_ok=True)
    for name in os.listdir(src):
        p = os.path.join(src, name)
        if name != "model.safetensors":
            (shutil.copytree if os.path.isdir(p) else shutil.copy)(p, os.path.join(dst, name))
    tok = BertWordPieceTokenizer(os.path.join(src, "vocab.txt"), lowercase=True)
    tok.enable_truncation(512)
    with open(sentences_file, encoding="utf-8") as f:
        sentences = f.read().split("\n")
    used = set()
    for s in sentences:
        used.update(tok.encode(s).ids)
    raw = open(os.path.join(src, "model.safetensors"), "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    data = bytearray(raw[8 + n:])
    key = next(k for k in header if k.endswith("embeddings.word_embeddings.weight"))
    info = header[key]
    assert info["dtype"] == "F32"
    rows, cols = info["shape"]
    begin, end = info["data_offsets"]
    table = np.frombuffer(bytes(data[begin:end]), dtype="<f4").reshape(rows, cols).copy()
    keep = np.zeros(rows, dtype=bool)
    keep[sorted(used)] = True
    table[~keep] = 0
    data[begin:end] = table.tobytes()
    with open(os.path.join(dst, "model.safetensors"), "wb") as f:
        f.write(raw[:8 + n])
        f.write(data)
    print(f"kept {keep.sum()} of {rows} vocabulary rows")


if __name__ == "__main__":
    main()
