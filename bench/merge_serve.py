#!/usr/bin/env python3
"""Puts one run of scripts/gpu_serve.sh in one results file: every http_load
figure (fanin serve, Infinity, the null server), the in-process Engine's
figures from the same run, versions, ratios taken inside that run, the
targets and whether they were met; and a plot.

Usage: merge_serve.py RAW_DIR OUT_JSON [OUT_PNG]
RAW_DIR holds what gpu_serve.sh wrote: http_load JSONs (named by --label:
SERVER_BACKEND_API_cC_kK.json, sink_*.json), inprocess_BACKEND.json (fanin
bench --mode queue), fanin_version.txt, infinity_versions.json, settings.json.
The plot needs matplotlib (on the GPU machine); without it, only the JSON.
"""
import glob
import json
import os
import re
import sys

LABEL = re.compile(r"^(?P<server>fanin|infinity)_(?P<backend>[a-z0-9]+)_(?P<api>[a-z0-9-]+)"
                   r"_c(?P<c>\d+)_k(?P<k>\d+)$")


def load_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        print(f"merge_serve: skipping {path}: {e}", file=sys.stderr)
        return None


def prom_sums(path):
    """{name: value} of the _sum and _count samples in a Prometheus text."""
    out = {}
    try:
        with open(path) as f:
            for line in f:
                parts = line.split()
                if len(parts) == 2 and (parts[0].endswith("_sum") or parts[0].endswith("_count")):
                    try:
                        out[parts[0]] = float(parts[1])
                    except ValueError:
                        pass
    except OSError:
        pass
    return out


def server_split(raw, label):
    """fanin's mean time per request by phase over one load (te_request_*
    histograms' sums and counts before and after it), in microseconds."""
    m0, m1 = (prom_sums(os.path.join(raw, label + ext)) for ext in (".m0", ".m1"))
    if not m1:
        return None
    out = {}
    for key, name in (("request", "te_request_duration"),
                      ("tokenization", "te_request_tokenization_duration"),
                      ("queue", "te_request_queue_duration"),
                      ("inference", "te_request_inference_duration"),
                      ("resolve", "fanin_request_resolve_duration"),
                      ("handoff", "fanin_request_handoff_duration"),
                      ("format", "fanin_request_format_duration")):
        n = m1.get(name + "_count", 0) - m0.get(name + "_count", 0)
        if n > 0:
            out[key] = (m1.get(name + "_sum", 0) - m0.get(name + "_sum", 0)) / n * 1e6
    # The engine's mean batch over the load (te_batch_next_size: requests
    # per batch), beside the phases: a front end that spreads its requests
    # out in time gets smaller batches from the same queue settings.
    n = m1.get("te_batch_next_size_count", 0) - m0.get("te_batch_next_size_count", 0)
    if n > 0:
        out["mean_batch"] = (m1.get("te_batch_next_size_sum", 0) -
                             m0.get("te_batch_next_size_sum", 0)) / n
    return out or None


def summary(r):
    """The figures of one http_load run that the tables need."""
    lat = r["latency_us"]
    w = r["window"]
    non_200 = sum(v for k, v in w["status"].items() if k != "200")
    return {
        "connections": r["connections"], "inputs": r["inputs_per_request"],
        "sentences_per_s": r["sentences_per_s"], "requests_per_s": r["requests_per_s"],
        "mean_us": lat.get("mean"), "p50_us": lat["p50"], "p90_us": lat["p90"], "p99_us": lat["p99"], "max_us": lat["max"],
        "non_200": non_200, "errors": sum(w["errors"].values()),
        "generator_cores": r["generator"]["cores_used"],
        "generator_threads": r["generator"]["threads"],
        "generator_saturated": r["generator"]["saturated"],
        "check_ok": bool(r.get("check") and r["check"].get("ok")),
    }


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    raw, out = sys.argv[1], sys.argv[2]
    png = sys.argv[3] if len(sys.argv) > 3 else None
    loads, sink, full = [], {}, {}
    for path in sorted(glob.glob(os.path.join(raw, "*.json"))):
        r = load_json(path)
        if not r or r.get("tool") != "http_load":
            continue
        label = r.get("label") or os.path.basename(path)[:-5]
        full[label] = r
        if label.startswith("sink_"):
            sink[label] = summary(r)
            continue
        m = LABEL.match(label)
        if not m:
            continue
        s = {"label": label, "server": m["server"], "backend": m["backend"], "api": m["api"]}
        s.update(summary(r))
        try:  # the server's CPU cores over the load (gpu_serve.sh's load())
            with open(os.path.join(raw, label + ".cpu")) as f:
                s["server_cores"] = float(f.read())
        except (OSError, ValueError):
            s["server_cores"] = None
        # The server's CPU per request by thread group (bench/thread_cpu.py).
        t = load_json(os.path.join(raw, label + ".threads.json")) \
            if os.path.exists(os.path.join(raw, label + ".threads.json")) else None
        if t:
            s["server_cpu_us_per_request"] = t.get("total_us_per_request")
            s["server_cpu_us_per_request_by_group"] = {
                k: g["us_per_request"] for k, g in t["groups"].items() if g["threads"]}
        split = server_split(raw, label)
        if split:
            s["server_mean_us"] = split
            if s.get("mean_us") is not None and "request" in split:
                # What the client waited beyond fanin's own handling: the
                # socket hops, HTTP parse and write on both sides.
                s["outside_handler_us"] = s["mean_us"] - split["request"]
        loads.append(s)

    inprocess = {}
    meta = {}
    for path in sorted(glob.glob(os.path.join(raw, "inprocess_*.json"))):
        r = load_json(path)
        if not r:
            continue
        backend = os.path.basename(path)[len("inprocess_"):-5]
        inprocess[backend] = r
        if not meta or backend == "cuda":
            meta = {"device": r.get("device"), "commit": r.get("commit"), "date": r.get("date")}
    versions = {}
    try:
        versions["fanin"] = open(os.path.join(raw, "fanin_version.txt")).read().strip()
    except OSError:
        pass
    iv = load_json(os.path.join(raw, "infinity_versions.json")) \
        if os.path.exists(os.path.join(raw, "infinity_versions.json")) else None
    if iv:
        versions.update(iv)
    settings = load_json(os.path.join(raw, "settings.json")) \
        if os.path.exists(os.path.join(raw, "settings.json")) else None

    def find(server, backend, api, c, k):
        for s in loads:
            if (s["server"], s["backend"], s["api"], s["connections"], s["inputs"]) == \
                    (server, backend, api, c, k):
                return s
        return None

    # fanin / Infinity, same load, same run (Infinity's device is the GPU
    # run's; in a dry run both are cpu).
    vs_infinity = []
    for s in loads:
        if s["server"] != "fanin" or s["api"] != "openai":
            continue
        p = find("infinity", s["backend"], "openai", s["connections"], s["inputs"])
        if p and p["sentences_per_s"] > 0:
            vs_infinity.append({
                "backend": s["backend"], "connections": s["connections"], "inputs": s["inputs"],
                "fanin_sps": s["sentences_per_s"], "infinity_sps": p["sentences_per_s"],
                "ratio": s["sentences_per_s"] / p["sentences_per_s"],
                "fanin_p50_us": s["p50_us"], "infinity_p50_us": p["p50_us"],
                "fanin_p99_us": s["p99_us"], "infinity_p99_us": p["p99_us"]})

    # HTTP / in-process: connections against the same number of producers.
    vs_inprocess = []
    for backend, r in inprocess.items():
        # inprocess_cuda-d0.json pairs with the openai-d0 loads (no queue delay).
        base, _, variant = backend.partition("-")
        api = "openai-" + variant if variant else "openai"
        for row in r.get("results", []):
            s = find("fanin", base, api, row["producers"], 1)
            if s and row["sentences_per_s"] > 0:
                vs_inprocess.append({
                    "backend": backend, "api": api, "connections": row["producers"],
                    "http_sps": s["sentences_per_s"], "inprocess_sps": row["sentences_per_s"],
                    "ratio": s["sentences_per_s"] / row["sentences_per_s"],
                    "http_p50_us": s["p50_us"], "inprocess_p50_us": row["p50_us"],
                    "http_p99_us": s["p99_us"], "inprocess_p99_us": row["p99_us"],
                    "inprocess_mean_batch": row.get("mean_batch")})

    gpu = "cuda" if any(s["backend"] == "cuda" for s in loads) else \
        (loads[0]["backend"] if loads else "cuda")
    # A target is checked on the main settings and on each settings variant
    # of the run (openai-io4, openai-d0, ...: one flag changed); "label"
    # names the load that decided it.
    def variants(c):
        return [s for s in loads if s["server"] == "fanin" and s["backend"] == gpu
                and s["api"].startswith("openai") and "base64" not in s["api"]
                and s["connections"] == c and s["inputs"] == 1]

    targets = []
    ok256 = [s for s in variants(256) if s["sentences_per_s"] >= 50000 and s["p99_us"] <= 10000]
    s = max(ok256 or variants(256) or [None], key=lambda v: v["sentences_per_s"] if v else 0)
    targets.append({"target": "256 connections: >= 50,000 sentences/s with p99 <= 10 ms",
                    "label": s and s["label"],
                    "sentences_per_s": s and s["sentences_per_s"], "p99_us": s and s["p99_us"],
                    "met": bool(ok256)})
    r64 = next((r for r in vs_inprocess if r["backend"] == gpu and r["connections"] == 64), None)
    # (the in-process figure at 64 producers exists for the main settings only)
    targets.append({"target": "64 connections: HTTP at most 10% below in-process",
                    "ratio": r64 and r64["ratio"], "met": bool(r64 and r64["ratio"] >= 0.9)})
    # Variants at 64 connections (SWEEP64: I/O and load-generator threads)
    # against the same in-process figure (the engine settings are the same).
    if r64:
        for v in variants(64):
            if v["api"] == "openai":
                continue
            # A variant with its own in-process figure (VARIANTS) pairs with it.
            own = next((r for r in vs_inprocess if r["api"] == v["api"]
                        and r["connections"] == 64 and r["backend"].startswith(gpu + "-")), None)
            ip_sps = own["inprocess_sps"] if own else r64["inprocess_sps"]
            ratio = v["sentences_per_s"] / ip_sps
            targets.append({"target": "64 connections: HTTP at most 10% below in-process",
                            "label": v["label"], "variant": v["api"],
                            "http_sps": v["sentences_per_s"], "p50_us": v["p50_us"],
                            "inprocess_sps": ip_sps, "ratio": ratio,
                            "met": ratio >= 0.9})
    s = min(variants(1) or [None], key=lambda v: v["p50_us"] if v else 0)
    targets.append({"target": "1 connection: p50 <= 1 ms", "label": s and s["label"],
                    "p50_us": s and s["p50_us"], "met": bool(s and s["p50_us"] <= 1000)})

    merged = {
        "kind": "serve",
        "device": meta.get("device"), "commit": meta.get("commit"), "date": meta.get("date"),
        "versions": versions, "settings": settings,
        "targets": targets,
        "ratios": {"fanin_over_infinity": vs_infinity, "http_over_inprocess": vs_inprocess},
        "loads": loads,
        "generator_ceiling": sink,
        "inprocess": inprocess,
        "http_load": full,
        "notes": [
            "closed loop: each connection sends a request and waits for the whole response "
            "(bench/http_load/http_load.cpp); sentences/s counts 200 responses in the window",
            "ratios are taken within this run: fanin serve / Infinity at the same connections "
            "and inputs per request; HTTP / in-process Engine at connections = producers",
            "generator_ceiling: the same load generator against a null server "
            "(bench/http_load/http_sink.cpp) on the same machine",
            "generator_cores: CPU cores the load generator used in the window (of "
            "generator_threads); saturated = above 85% of them",
            "server_cores: CPU cores the server process used over the load, warm-up included "
            "(/proc/PID/stat; for Infinity its main process and threads)",
            "server_mean_us: fanin's mean time per request by phase over the load (warm-up "
            "included), from its te_request_*_duration histograms (request = from its header read "
            "to its response formatted, on the I/O thread; resolve = the batch's results ready to "
            "the engine's callback for the request, handoff = that callback to the reply begun "
            "on the connection's I/O thread, format = the reply's formatting: the fanin_request_"
            "*_duration histograms), mean_batch = the engine's requests per batch over the load "
            "(te_batch_next_size); outside_handler_us = the client's mean latency minus "
            "request: socket hops, HTTP parse and write on both sides",
            "server_cpu_us_per_request_by_group: the server's CPU microseconds (user + system) "
            "per answered request over the load, by thread name (bench/thread_cpu.py): io = HTTP "
            "I/O threads, workers = engine workers (on a GPU, waiting on the device included), "
            "compute = the CPU backend's stream threads, other = the rest",
        ],
    }
    with open(out, "w") as f:
        json.dump(merged, f, indent=2)

    print(f"{'load':44s} {'sent/s':>10s} {'p50 us':>9s} {'p99 us':>9s} {'non200':>6s} "
          f"{'err':>4s} {'gen cores':>9s} {'srv cores':>9s}")
    for s in sorted(loads, key=lambda s: (s["server"], s["backend"], s["api"], s["inputs"],
                                          s["connections"])):
        print(f"{s['label']:44s} {s['sentences_per_s']:10.0f} {s['p50_us']:9.0f} "
              f"{s['p99_us']:9.0f} {s['non_200']:6d} {s['errors']:4d} {s['generator_cores']:9.2f} "
              f"{s['server_cores'] if s['server_cores'] is not None else float('nan'):9.2f}")
    for s in loads:
        g = s.get("server_cpu_us_per_request_by_group")
        if g:
            print(f"{s['label']:44s} server CPU us/request: "
                  f"{s['server_cpu_us_per_request']:.1f} = " +
                  " + ".join(f"{k} {v:.1f}" for k, v in g.items()))
    for s in loads:
        m = s.get("server_mean_us")
        if m:
            print(f"{s['label']:44s} server mean us: " +
                  ", ".join(f"{k} {v:.0f}" for k, v in m.items()) +
                  f"; client mean {s.get('mean_us') or 0:.0f}, outside {s.get('outside_handler_us') or 0:.0f}")
    for k, s in sink.items():
        print(f"{k:44s} {s['requests_per_s']:10.0f} {s['p50_us']:9.0f} {s['p99_us']:9.0f} "
              f"{s['non_200']:6d} {s['errors']:4d} {s['generator_cores']:9.2f}")
    for r in vs_infinity:
        print(f"fanin/Infinity [{r['backend']}] {r['connections']}x{r['inputs']}: {r['ratio']:.2f}x")
    for r in vs_inprocess:
        print(f"HTTP/in-process [{r['backend']}] {r['connections']}: {r['ratio']:.3f}")
    for t in targets:
        print(f"target {'MET' if t['met'] else 'not met'}: {t['target']}")

    if png and loads:
        try:
            import matplotlib
            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            print("merge_serve: no matplotlib, no plot", file=sys.stderr)
            return
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.5))
        series = [("fanin", gpu, "o-", "fanin serve (HTTP)"),
                  ("infinity", gpu, "s--", "Infinity 0.0.78 (HTTP)")]
        for server, backend, style, name in series:
            rs = sorted((s for s in loads if s["server"] == server and s["backend"] == backend
                         and s["api"] == "openai" and s["inputs"] == 1),
                        key=lambda s: s["connections"])
            if not rs:
                continue
            line = ax1.plot([s["connections"] for s in rs], [s["sentences_per_s"] for s in rs],
                            style, label=name)[0]
            ax2.plot([s["connections"] for s in rs], [s["p99_us"] / 1000 for s in rs], style,
                     color=line.get_color(), label=name + " p99")
            ax2.plot([s["connections"] for s in rs], [s["p50_us"] / 1000 for s in rs], ":",
                     color=line.get_color(), label=name + " p50")
            b = find(server, backend, "openai", 8, 32)
            if b:
                ax1.plot([8], [b["sentences_per_s"]], "*", ms=12, color=line.get_color(),
                         label=name + ", 8 conn x 32 sentences")
        ip = inprocess.get(gpu, {}).get("results", [])
        if ip:
            ax1.plot([r["producers"] for r in ip], [r["sentences_per_s"] for r in ip], "^:",
                     label="fanin Engine in-process (producer threads)")
        ax1.set_xlabel("connections (closed loop, 1 sentence per request)")
        ax1.set_ylabel("sentences / s")
        ax2.set_xlabel("connections")
        ax2.set_ylabel("latency (ms)")
        for ax in (ax1, ax2):
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=7)
        desc = (meta.get("device") or {}).get("description", gpu)
        fig.suptitle(f"all-MiniLM-L6-v2 over HTTP, OpenAI /embeddings: {desc}", fontsize=10)
        fig.tight_layout()
        fig.savefig(png, dpi=120)


if __name__ == "__main__":
    main()
