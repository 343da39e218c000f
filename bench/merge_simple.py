#!/usr/bin/env python3
"""Puts one run's fanin bench JSON and its PyTorch peer JSON in one results
file, with ratios taken inside that run, and an optional plot.
Usage: merge_simple.py KIND FANIN_JSON PEER_JSON OUT_JSON [OUT_PNG]
KIND: minilm (sentences/s by batch x seq), queue (req/s by producers; the
peer is torch_mlp.py eager, threads calling the model directly) or
textqueue (sentences/s by producers through the text Engine; the peer is
torch_minilm_threads.py, threads calling sentence-transformers)."""
import json
import sys


def main():
    kind, fanin_path, peer_path, out = sys.argv[1:5]
    png = sys.argv[5] if len(sys.argv) > 5 else None
    f, p = json.load(open(fanin_path)), json.load(open(peer_path))
    ratios = []
    if kind == "minilm":
        pk = {(r["batch"], r["seq"]): r for r in p["batch_mode"]}
        for r in f["batch_mode"]:
            k = (r["batch"], r["seq"])
            if k in pk:
                ratios.append({"batch": k[0], "seq": k[1], "fanin_sps": r["sentences_per_s"],
                               "torch_sps": pk[k]["sentences_per_s"],
                               "ratio": r["sentences_per_s"] / pk[k]["sentences_per_s"]})
    elif kind == "textqueue":
        pk = {r["threads"]: r for r in p["results"]}
        for r in f["results"]:
            n = r["producers"]
            if n in pk:
                ratios.append({"producers": n, "fanin_rps": r["sentences_per_s"],
                               "torch_threads_rps": pk[n]["sentences_per_s"],
                               "ratio": r["sentences_per_s"] / pk[n]["sentences_per_s"],
                               "fanin_p99_us": r["p99_us"], "torch_p99_us": pk[n]["p99_us"],
                               "mean_batch": r["mean_batch"]})
    else:
        pk = {r["threads"]: r for r in p["results"]["eager"]}
        for r in f["results"]:
            n = r["producers"]
            if n in pk:
                ratios.append({"producers": n, "fanin_rps": r["rps"], "torch_threads_rps": pk[n]["rps"],
                               "ratio": r["rps"] / pk[n]["rps"], "fanin_p99_us": r["p99_us"],
                               "torch_p99_us": pk[n]["p99_us"], "mean_batch": r["mean_batch"]})
    merged = {"kind": kind, "device": f["device"], "commit": f["commit"], "date": f["date"],
              "fanin": f, "peer": p, "ratios": ratios}
    json.dump(merged, open(out, "w"), indent=2)
    for r in ratios:
        print("  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in r.items()))
    if png and ratios:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(7, 4.5))
        if kind == "minilm":
            for seq in sorted({r["seq"] for r in ratios}):
                rs = [r for r in ratios if r["seq"] == seq]
                ax.plot([r["batch"] for r in rs], [r["fanin_sps"] for r in rs], "o-", label=f"fanin seq {seq}")
                ax.plot([r["batch"] for r in rs], [r["torch_sps"] for r in rs], "s--", label=f"PyTorch seq {seq}")
            ax.set_xlabel("batch size")
            ax.set_ylabel("sentences / s")
            ax.set_title("all-MiniLM-L6-v2 encoder, batch mode\n" + f["device"]["description"], fontsize=10)
        else:
            ax.plot([r["producers"] for r in ratios], [r["fanin_rps"] for r in ratios], "o-", label="fanin Engine (batch queue)")
            ax.plot([r["producers"] for r in ratios], [r["torch_threads_rps"] for r in ratios], "s--", label="PyTorch, threads call the model")
            ax.set_xlabel("producer threads")
            ax.set_ylabel("sentences / s" if kind == "textqueue" else "requests / s")
            what = "sentences" if kind == "textqueue" else "MLP batch-1 requests"
            ax.set_title(f"{what} through the queue\n" + f["device"]["description"], fontsize=10)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(png, dpi=120)


if __name__ == "__main__":
    main()
