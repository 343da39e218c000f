#!/usr/bin/env python3
"""Writes the sentence-transformers reference embeddings that fanin's encoder
is checked against (tests/data/minilm_refs.json).

Usage: make_embedding_refs.py MODEL_FOLDER SENTENCES_FILE OUT_JSON
Runs sentence-transformers on the CPU in float32 (the reference), with the
model's own pipeline (max_seq_length 256, mean pooling, Normalize). Each line
of SENTENCES_FILE is one sentence (an empty line is the empty string).
Made on the GPU machine (sentence-transformers is installed there) with a
folder whose unused vocabulary rows were zeroed by prune_model.py; the
sentences only read rows they use, so the vectors are those of the full model.
"""
import datetime
import json
import sys

import sentence_transformers
import torch
from sentence_transformers import SentenceTransformer


def main():
    folder, sentences_file, out = sys.argv[1:4]
    with open(sentences_file, encoding="utf-8") as f:
        sentences = f.read().split("\n")
    if sentences and sentences[-1] == "":
        sentences.pop()  # the file's final newline
    model = SentenceTransformer(folder, device="cpu")
    emb = model.encode(sentences, batch_size=8, convert_to_numpy=True, show_progress_bar=False)
    json.dump({
        "what": "sentence-transformers reference embeddings of " + sentences_file,
        "model": "all-MiniLM-L6-v2",
        "sentence_transformers": sentence_transformers.__version__,
        "torch": torch.__version__,
        "device": "cpu, float32",
        "max_seq_length": model.max_seq_length,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"),
        "sentences": sentences,
        "embeddings": [[float(f"{x:.8g}") for x in row] for row in emb.tolist()],
    }, open(out, "w"), ensure_ascii=False, indent=1)
    print(f"wrote {len(sentences)} embeddings of dim {emb.shape[1]} to {out}")


if __name__ == "__main__":
    main()
