#!/usr/bin/env python3
"""Merges one run's fanin bench outputs and the PyTorch peer output into a
single results file (bench/results/<date>-mlp-direct.json) and plots
requests/s against threads. Ratios are computed only between figures of
this one run."""
import argparse
import json


def by_threads(rows):
    return {r["threads"]: r for r in rows}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fanin-eager", required=True)
    ap.add_argument("--fanin-graphs", required=True)
    ap.add_argument("--peer", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--plot")
    a = ap.parse_args()
    eager = json.load(open(a.fanin_eager))
    graphs = json.load(open(a.fanin_graphs))
    peer = json.load(open(a.peer))
    fe, fg = by_threads(eager["results"]), by_threads(graphs["results"])
    te = by_threads(peer["results"].get("eager", []))
    tg = by_threads(peer["results"].get("graphs", []))
    ratios = []
    for n in sorted(fg):
        row = {"threads": n}
        if n in tg:
            row["fanin_graphs_over_torch_graphs"] = fg[n]["rps"] / tg[n]["rps"]
        if n in te and n in fe:
            row["fanin_eager_over_torch_eager"] = fe[n]["rps"] / te[n]["rps"]
        ratios.append(row)
    merged = {
        "what": "MLP batch-1 requests (H2D copy, forward, D2H copy, stream sync), "
                "N threads each with its own stream",
        "device": eager["device"],
        "commit": eager["commit"],
        "date": eager["date"],
        "model": eager["model"],
        "fanin": {"eager": eager, "graphs": graphs},
        "peer": peer,
        "ratios": ratios,
    }
    json.dump(merged, open(a.out, "w"), indent=2)
    print(f"{'threads':>7} {'fanin eager':>12} {'fanin graphs':>13} {'eff':>6} "
          f"{'torch eager':>12} {'torch graphs':>13} {'ratio g/g':>9}")
    for n in sorted(fg):
        print(f"{n:>7} {fe.get(n, {}).get('rps', 0):>12.0f} {fg[n]['rps']:>13.0f} "
              f"{fg[n].get('efficiency', 0):>6.2f} {te.get(n, {}).get('rps', 0):>12.0f} "
              f"{tg.get(n, {}).get('rps', 0):>13.0f} "
              f"{(fg[n]['rps'] / tg[n]['rps']) if n in tg else 0:>9.1f}")
    if a.plot:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for label, rows, style in [("fanin graphs", fg, "o-"), ("fanin eager", fe, "s-"),
                                   ("PyTorch graphs (capture serialized)", tg, "o--"),
                                   ("PyTorch eager", te, "s--")]:
            if rows:
                xs = sorted(rows)
                ax.plot(xs, [rows[x]["rps"] for x in xs], style, label=label)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("threads (each with its own stream)")
        ax.set_ylabel("requests / s")
        ax.set_title(f"MLP {'-'.join(map(str, eager['model']['dims']))}, batch 1\n"
                     f"{eager['device'].get('description', '')}", fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(a.plot, dpi=120)


if __name__ == "__main__":
    main()
