"""Merges one scripts/gpu_python_gil.sh call's files (cpp_queue*.json,
overhead-*.json) into a results file and a plot: each Python figure over the
C++ in-process queue's at the same thread count, all from that one call.

Usage: python3 bench/python/merge_gil.py DIR OUT.json OUT.png
"""
import glob
import json
import os
import sys


def cpp_figure(path, producers):
    with open(path) as f:
        d = json.load(f)
    for r in d["results"]:
        if r.get("producers") == producers:
            return r["sentences_per_s"], r.get("mean_batch"), d
    return None, None, d


def main():
    src, out_json, out_png = sys.argv[1:4]
    rows = []
    meta = None
    for p in sorted(glob.glob(os.path.join(src, "overhead-*.json"))):
        with open(p) as f:
            o = json.load(f)
        queue = os.path.join(src, "cpp_queue_tiny.json" if o["tiny"] else "cpp_queue.json")
        for r in o["results"]:
            cpp, cpp_batch, d = cpp_figure(queue, r["threads"])
            meta = meta or d
            rows.append({"model": "tiny-bert" if o["tiny"] else "all-MiniLM-L6-v2",
                         "gil_spin_us": int(o["gil_spin_us"]), "gil_spinners": int(o["gil_spinners"]),
                         "mode": r["mode"], "threads": r["threads"],
                         "calls_per_s": r["calls_per_s"], "mean_batch": r["mean_batch"],
                         "cpu_us_per_call": r["cpu_us_per_call"],
                         "cpp_queue_sentences_per_s": cpp, "cpp_queue_mean_batch": cpp_batch,
                         "of_cpp_queue": r["calls_per_s"] / cpp if cpp else None})
    target = [r for r in rows if r["model"] == "all-MiniLM-L6-v2" and r["gil_spin_us"] == 0
              and r["mode"] == "encode" and r["threads"] == 32]
    res = {"benchmark": "Python module per-call cost vs the C++ queue (scripts/gpu_python_gil.sh)",
           "commit": meta.get("commit"), "date": meta.get("date"), "device": meta.get("device"),
           "host": meta.get("host"), "engine": meta.get("engine"),
           "target": {"what": "32 Python threads calling encode(sentence), default settings "
                              "(no GIL spinning), >= 0.80 of the C++ queue with 32 producers",
                      "value": target[0]["of_cpp_queue"] if target else None,
                      "met": bool(target and target[0]["of_cpp_queue"] >= 0.8)},
           "rows": rows,
           "notes": ["every ratio is inside this one call",
                     "no peer in this call: sentence-transformers from 32 threads and batched "
                     "are in 2026-12-02-python.json (another call; not compared with these)"]}
    with open(out_json, "w") as f:
        json.dump(res, f, indent=2)
    print(json.dumps(res["target"]))
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib missing: no plot")
        return
    sel = [r for r in rows if r["threads"] == 32 and r["of_cpp_queue"]]
    labels = ["%s %s\nspin %dx%d" % (r["model"][:4], r["mode"], r["gil_spin_us"], r["gil_spinners"])
              for r in sel]
    fig, ax = plt.subplots(figsize=(10, 4))
    ax.bar(range(len(sel)), [r["of_cpp_queue"] for r in sel])
    ax.axhline(0.8, color="k", linestyle="--", label="target 0.80")
    ax.set_xticks(range(len(sel)))
    ax.set_xticklabels(labels, fontsize=7)
    ax.set_ylabel("Python calls/s / C++ queue sentences/s (32 threads)")
    ax.set_title("fanin Python module, 32 threads, H200 (%s)" % res["commit"])
    ax.legend()
    fig.tight_layout()
    fig.savefig(out_png, dpi=120)


if __name__ == "__main__":
    main()
