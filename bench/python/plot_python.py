#!/usr/bin/env python3
"""Plot of a bench_python.py results file: sentences/s of each way to embed
the same sentences (log scale), from 32 threads and in one bulk encode.

  python3 bench/python/plot_python.py bench/results/DATE-python.json [OUT.png]
"""

from __future__ import annotations

import json
import sys
from typing import Any


def bars(r: dict[str, Any]) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
    t = r["settings"]["threads"]
    threads = [(f"fanin, {t} Python threads\nencode(sentence)", r["fanin"]["threads"]["sentences_per_s"]),
               (f"fanin, {t} Python threads\nsubmit(sentence).result()",
                r["fanin"]["threads_submit"]["sentences_per_s"])]
    if r.get("cpp_queue"):
        threads.append((f"fanin C++ queue\n{t} producers", r["cpp_queue"]["sentences_per_s"]))
    st = r.get("sentence_transformers")
    if st:
        threads.append((f"sentence-transformers\n{t} threads", st["threads"]["sentences_per_s"]))
    bulk = [(f"fanin encode(list)\nbatch_size={k}", v) for k, v in r["fanin"]["bulk_sentences_per_s"].items()]
    if st:
        bulk += [(f"sentence-transformers\nencode(list, batch_size={k})", v)
                 for k, v in st["bulk_sentences_per_s"].items()]
    cpu = r.get("cpu")
    if cpu:
        bulk.append((f"fanin CPU\n{cpu['fanin_workers']} workers", cpu["fanin_sentences_per_s"]))
        if "st_sentences_per_s" in cpu:
            bulk.append((f"sentence-transformers CPU\n{cpu['st_torch_threads']} threads", cpu["st_sentences_per_s"]))
    return threads, bulk


def plot(r: dict[str, Any], out: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    threads, bulk = bars(r)
    fig, axes = plt.subplots(1, 2, figsize=(14, 5.5))
    titles = [f"single sentences from {r['settings']['threads']} threads",
              f"one encode of {r['sentences']['bulk']} sentences"]
    for ax, data, title in zip(axes, (threads, bulk), titles):
        labels = [d[0] for d in data]
        values = [d[1] for d in data]
        colors = ["tab:blue" if "fanin" in l else "tab:gray" for l in labels]
        ax.barh(range(len(data)), values, color=colors)
        ax.set_yticks(range(len(data)), labels, fontsize=8)
        ax.set_xscale("log")
        ax.invert_yaxis()
        ax.set_xlabel("sentences/s (log scale)")
        ax.set_title(title)
        for i, v in enumerate(values):
            ax.text(v, i, f" {v:,.0f}", va="center", fontsize=8)
    dev = r["device"].get("description", r["device"]["name"])
    fig.suptitle(f"fanin Python module, all-MiniLM-L6-v2, {dev}, commit {r['commit']}, {r['date'][:10]}")
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def main() -> int:
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    with open(sys.argv[1]) as f:
        r = json.load(f)
    out = sys.argv[2] if len(sys.argv) > 2 else sys.argv[1].rsplit(".", 1)[0] + ".png"
    plot(r, out)
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
