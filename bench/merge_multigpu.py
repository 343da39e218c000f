#!/usr/bin/env python3
"""Puts one multi-device run in one results file (issue 7): the MLP queue
bench and the encoder queue bench, each run by `fanin bench --mode queue
--devices ...` on the first device alone and then on all (their "scaling"
and "speedup" sections), plus the PyTorch peer of the same run when given.
Usage: merge_multigpu.py MLP_JSON TEXT_JSON OUT_JSON [MLP_PEER_JSON] [TEXT_PEER_JSON]
Every figure is quoted from the inputs; the summary holds the speedups
(rate on all devices / rate on the first) per producer count."""
import json
import sys


def summary(run, key):
    out = []
    for s in run.get("speedup", []):
        out.append({"producers": s["producers"], "first_device": s["first_device"],
                    "all_devices": s["all_devices"], "speedup": s["speedup"]})
    return {"devices": [d["name"] for d in run.get("devices", [run["device"]])],
            "rate_key": key, "speedup": out}


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    mlp, text = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
    out = sys.argv[3]
    peers = [json.load(open(p)) if p else None for p in (sys.argv[4:6] + [None, None])[:2]]
    merged = {
        "kind": "multigpu",
        "device": mlp["devices"] if "devices" in mlp else [mlp["device"]],
        "commit": mlp["commit"],
        "date": mlp["date"],
        "summary": {"mlp_queue": summary(mlp, "rps"),
                    "encoder_queue": summary(text, "sentences_per_s")},
        "target": "speedup >= 1.9 on 2 GPUs (issue 7)",
        "fanin": {"mlp_queue": mlp, "encoder_queue": text},
        "peer": {"mlp_threads": peers[0], "encoder_threads": peers[1]},
    }
    if mlp["commit"] != text["commit"]:
        sys.exit("the two runs come from different commits")
    json.dump(merged, open(out, "w"), indent=2)
    for name, s in merged["summary"].items():
        for r in s["speedup"]:
            print(f"{name}: {r['producers']:4d} producers  {len(s['devices'])} devices / 1: "
                  f"{r['speedup']:.2f}x  ({r['first_device']:.0f} -> {r['all_devices']:.0f})")


if __name__ == "__main__":
    main()
