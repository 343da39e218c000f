#!/usr/bin/env python3
"""Merges the raw files of scripts/gpu_cpu_bench.sh into one results file
(bench/results style: device, commit, date, every figure, peer versions,
the ratios taken inside this one run) and a bar chart.

Usage: merge_cpu.py RAW_DIR OUT_JSON OUT_PNG
"""
import glob
import json
import statistics
import os
import sys


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def main():
    raw, out_json, out_png = sys.argv[1:4]
    prof = load(os.path.join(raw, "profile_1core.json")) or {}
    prof_det = load(os.path.join(raw, "profile_1core_detected.json"))
    enc2 = load(os.path.join(raw, "encoder_2cores.json")) or {}
    enc_all = load(os.path.join(raw, "encoder_all.json")) or {}
    peers = {}
    for p in glob.glob(os.path.join(raw, "peer_*.json")):
        j = load(p)
        if j:
            peers[j["threads"]] = j
    embeds = [load(p) for p in sorted(glob.glob(os.path.join(raw, "embed_*.json")))]
    all_cores = max([r["workers"] for r in enc_all.get("results", [])] + [0])

    def fanin_sps(enc, workers):
        for r in enc.get("results", []):
            if r["workers"] == workers:
                return r["sentences_per_s"]
        return None

    fanin = {1: fanin_sps(enc2, 1), 2: fanin_sps(enc2, 2), all_cores: fanin_sps(enc_all, all_cores)}
    rows = []
    for cores, f in sorted(fanin.items()):
        p = peers.get(cores, {})
        st = p.get("sentence_transformers", {}).get("sentences_per_s")
        ort = p.get("onnxruntime", {}).get("sentences_per_s")
        rows.append({"cores": cores, "fanin_sentences_per_s": f,
                     "sentence_transformers_sentences_per_s": st,
                     "onnxruntime_sentences_per_s": ort,
                     "fanin_vs_sentence_transformers": f / st if f and st else None,
                     "fanin_vs_onnxruntime": f / ort if f and ort else None,
                     "onnxruntime_min_cosine_vs_st":
                         p.get("onnxruntime", {}).get("min_cosine_vs_sentence_transformers")})
    # Interleaved 2-core rounds (fanin, fanin with OpenBLAS GEMMs, ST): the
    # median of each, and of the per-round ratio, stands for the 2-core row.
    rounds = []
    for p in sorted(glob.glob(os.path.join(raw, "round*_fanin.json"))):
        r = os.path.basename(p)[len("round"):-len("_fanin.json")]
        fj = load(p)
        ob = load(os.path.join(raw, "round%s_fanin_openblas.json" % r))
        st = load(os.path.join(raw, "round%s_st.json" % r))
        if not (fj and st):
            continue
        f = fj["results"][0]["sentences_per_s"]
        s_ = st["sentence_transformers"]["sentences_per_s"]
        o = ob["results"][0]["sentences_per_s"] if ob else None
        rounds.append({"round": int(r), "fanin": f, "fanin_openblas_gemm": o,
                       "sentence_transformers": s_, "fanin_vs_st": f / s_,
                       "onednn_vs_openblas": f / o if o else None})
    two_core = None
    if rounds:
        med = lambda k: statistics.median([x[k] for x in rounds if x[k] is not None])
        two_core = {"rounds": rounds, "median_fanin": med("fanin"),
                    "median_fanin_openblas_gemm": med("fanin_openblas_gemm"),
                    "median_sentence_transformers": med("sentence_transformers"),
                    "median_fanin_vs_st": med("fanin_vs_st"),
                    "median_onednn_vs_openblas": med("onednn_vs_openblas"),
                    "note": "taskset -c 0-1, 2,000 sentences, batch 32, rounds interleaved"}
        for row in rows:
            if row["cores"] == 2:
                row["single_run"] = {k: row[k] for k in ("fanin_sentences_per_s",
                                     "sentence_transformers_sentences_per_s",
                                     "fanin_vs_sentence_transformers")}
                row["fanin_sentences_per_s"] = two_core["median_fanin"]
                row["sentence_transformers_sentences_per_s"] = two_core["median_sentence_transformers"]
                row["fanin_vs_sentence_transformers"] = two_core["median_fanin_vs_st"]
                row["from"] = "medians of the interleaved rounds"
    packed = (prof.get("layouts") or [{}])[0]
    res = {
        "benchmark": "CPU sentence encoder vs CPU peers (scripts/gpu_cpu_bench.sh)",
        "date": prof.get("date"), "commit": prof.get("commit"),
        "device": prof.get("device"), "machine": prof.get("machine"),
        "host": prof.get("host"),
        "sentences": {"file": "bench/data/queue_sentences.txt", "count": 2000,
                      "note": "the file's 50 sentences cycled; batch 32"},
        "summary": rows,
        "fanin_embed_wall_s": embeds,
        "profile_1core": {
            "sentences_per_s": packed.get("sentences_per_s"),
            "ms_per_batch": packed.get("wall_ms_per_batch"),
            "ops": packed.get("ops"), "sgemm_peak": prof.get("sgemm_peak"),
            "tokenizer": prof.get("tokenizer"), "layouts": prof.get("layouts")},
        "profile_1core_openblas_own_choice": None if not prof_det else {
            "core": prof_det["machine"]["openblas_core"],
            "sentences_per_s": prof_det["layouts"][0]["sentences_per_s"]},
        "encoder_2cores": enc2, "encoder_all": enc_all,
        "two_core_rounds": two_core,
        "peers": peers,
        "notes": ["fanin: Engine with W workers on the CPU backend (one stream, one thread "
                  "each; BLAS one thread per call), all sentences submitted at once",
                  "peers: --threads intra-op threads, taskset to the same cores",
                  "ratios are taken inside this run only"],
    }
    with open(out_json, "w") as f:
        json.dump(res, f, indent=2)
    for r in rows:
        print(json.dumps(r))
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib missing: no plot")
        return
    labels = [str(r["cores"]) for r in rows]
    series = [("fanin", "fanin_sentences_per_s"),
              ("sentence-transformers", "sentence_transformers_sentences_per_s"),
              ("ONNX Runtime", "onnxruntime_sentences_per_s")]
    fig, ax = plt.subplots(figsize=(7, 4))
    w = 0.27
    for k, (name, key) in enumerate(series):
        ys = [r[key] or 0 for r in rows]
        xs = [i + (k - 1) * w for i in range(len(rows))]
        ax.bar(xs, ys, w, label=name)
        for x, y in zip(xs, ys):
            ax.text(x, y, f"{y:.0f}", ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels(labels)
    ax.set_xlabel("cores (taskset)")
    ax.set_ylabel("sentences/s (all-MiniLM-L6-v2, f32)")
    ax.set_title((prof.get("device") or {}).get("description", "CPU")[:70], fontsize=8)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out_png, dpi=120)


if __name__ == "__main__":
    main()
