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
    enc2_f32 = load(os.path.join(raw, "encoder_2cores_f32.json")) or {}
    enc_all_f32 = load(os.path.join(raw, "encoder_all_f32.json")) or {}
    prof_f32 = load(os.path.join(raw, "profile_1core_f32.json"))
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
    fanin_f32 = {1: fanin_sps(enc2_f32, 1), 2: fanin_sps(enc2_f32, 2),
                 all_cores: fanin_sps(enc_all_f32, 0) or fanin_sps(enc_all_f32, all_cores)}
    ratio = lambda a, b: a / b if a and b else None
    rows = []
    for cores, f in sorted(fanin.items()):
        p = peers.get(cores, {})
        st = p.get("sentence_transformers", {}).get("sentences_per_s")
        st16 = p.get("sentence_transformers_bf16", {}).get("sentences_per_s")
        ort = p.get("onnxruntime", {}).get("sentences_per_s")
        f32 = fanin_f32.get(cores)
        rows.append({"cores": cores, "fanin_sentences_per_s": f,
                     "fanin_f32_linear_sentences_per_s": f32,
                     "sentence_transformers_sentences_per_s": st,
                     "sentence_transformers_bf16_autocast_sentences_per_s": st16,
                     "onnxruntime_sentences_per_s": ort,
                     "fanin_vs_sentence_transformers": ratio(f, st),
                     "fanin_vs_sentence_transformers_bf16": ratio(f, st16),
                     "fanin_f32_vs_sentence_transformers": ratio(f32, st),
                     "fanin_vs_onnxruntime": ratio(f, ort),
                     "onnxruntime_min_cosine_vs_st":
                         p.get("onnxruntime", {}).get("min_cosine_vs_sentence_transformers"),
                     "st_bf16_min_cosine_vs_st_f32":
                         p.get("sentence_transformers_bf16", {}).get("min_cosine_vs_f32")})
    # Interleaved 2-core rounds (fanin, fanin with OpenBLAS GEMMs, ST): the
    # median of each, and of the per-round ratio, stands for the 2-core row.
    rounds = []
    for p in sorted(glob.glob(os.path.join(raw, "round*_fanin.json"))):
        r = os.path.basename(p)[len("round"):-len("_fanin.json")]
        fj = load(p)
        fj32 = load(os.path.join(raw, "round%s_fanin_f32.json" % r))
        st = load(os.path.join(raw, "round%s_st.json" % r))
        if not (fj and st):
            continue
        f = fj["results"][0]["sentences_per_s"]
        s_ = st["sentence_transformers"]["sentences_per_s"]
        s16 = st.get("sentence_transformers_bf16", {}).get("sentences_per_s")
        o = fj32["results"][0]["sentences_per_s"] if fj32 else None
        rounds.append({"round": int(r), "fanin": f, "fanin_f32_linear": o,
                       "sentence_transformers": s_, "sentence_transformers_bf16_autocast": s16,
                       "fanin_vs_st": f / s_, "fanin_vs_st_bf16": ratio(f, s16),
                       "fanin_f32_vs_st": ratio(o, s_)})
    two_core = None
    if rounds:
        def med(k):
            v = [x[k] for x in rounds if x[k] is not None]
            return statistics.median(v) if v else None
        two_core = {"rounds": rounds, "median_fanin": med("fanin"),
                    "median_fanin_f32_linear": med("fanin_f32_linear"),
                    "median_sentence_transformers": med("sentence_transformers"),
                    "median_sentence_transformers_bf16_autocast":
                        med("sentence_transformers_bf16_autocast"),
                    "median_fanin_vs_st": med("fanin_vs_st"),
                    "median_fanin_vs_st_bf16": med("fanin_vs_st_bf16"),
                    "median_fanin_f32_vs_st": med("fanin_f32_vs_st"),
                    "note": "taskset -c 0-1, 2,000 sentences, batch 32, rounds interleaved"}
        for row in rows:
            if row["cores"] == 2:
                row["single_run"] = {k: row[k] for k in ("fanin_sentences_per_s",
                                     "sentence_transformers_sentences_per_s",
                                     "fanin_vs_sentence_transformers")}
                row["fanin_sentences_per_s"] = two_core["median_fanin"]
                row["sentence_transformers_sentences_per_s"] = two_core["median_sentence_transformers"]
                row["fanin_vs_sentence_transformers"] = two_core["median_fanin_vs_st"]
                row["fanin_f32_linear_sentences_per_s"] = two_core["median_fanin_f32_linear"]
                row["sentence_transformers_bf16_autocast_sentences_per_s"] = \
                    two_core["median_sentence_transformers_bf16_autocast"]
                row["fanin_vs_sentence_transformers_bf16"] = two_core["median_fanin_vs_st_bf16"]
                row["fanin_f32_vs_sentence_transformers"] = two_core["median_fanin_f32_vs_st"]
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
        "profile_1core_f32_linear": None if not prof_f32 else {
            "sentences_per_s": (prof_f32.get("layouts") or [{}])[0].get("sentences_per_s"),
            "ops": (prof_f32.get("layouts") or [{}])[0].get("ops")},
        "encoder_2cores_f32_linear": enc2_f32, "encoder_all_f32_linear": enc_all_f32,
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
    series = [("fanin (default)", "fanin_sentences_per_s"),
              ("fanin, f32 linear", "fanin_f32_linear_sentences_per_s"),
              ("sentence-transformers f32", "sentence_transformers_sentences_per_s"),
              ("sentence-transformers bf16 autocast",
               "sentence_transformers_bf16_autocast_sentences_per_s"),
              ("ONNX Runtime f32", "onnxruntime_sentences_per_s")]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    w = 0.16
    for k, (name, key) in enumerate(series):
        ys = [r.get(key) or 0 for r in rows]
        xs = [i + (k - 2) * w for i in range(len(rows))]
        ax.bar(xs, ys, w, label=name)
        for x, y in zip(xs, ys):
            ax.text(x, y, f"{y:.0f}", ha="center", va="bottom", fontsize=6)
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels(labels)
    ax.set_xlabel("cores (taskset)")
    ax.set_ylabel("sentences/s (all-MiniLM-L6-v2)")
    ax.set_title((prof.get("device") or {}).get("description", "CPU")[:70], fontsize=8)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out_png, dpi=120)


if __name__ == "__main__":
    main()
