#!/usr/bin/env python3
"""PyTorch peer for `fanin bench --model mlp --mode direct`.

Runs the same request as fanin's direct mode: N threads, each with its own
CUDA stream, each request = copy a batch-1 input host->device, forward the
MLP, copy the output device->host, synchronize the stream. Two variants:
  eager   the nn.Module called directly (what users do today);
  graphs  one CUDA graph per thread, replayed per request; capture is
          serialized under a lock because PyTorch cannot capture from two
          threads at once (checked and reported by --probe-capture).
Prints one JSON object on stdout.
"""
import argparse
import json
import threading
import time

import torch


def build_mlp(dims, dtype, device, seed):
    torch.manual_seed(seed)
    layers = []
    for i in range(len(dims) - 1):
        layers.append(torch.nn.Linear(dims[i], dims[i + 1]))
        if i + 2 < len(dims):
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers).to(device=device, dtype=dtype).eval()


def percentile(sorted_vals, q):
    if not sorted_vals:
        return 0.0
    k = min(len(sorted_vals) - 1, max(0, int(round(q * (len(sorted_vals) - 1)))))
    return sorted_vals[k]


def run_threads(n, seconds, warmup, make_worker):
    start_barrier = threading.Barrier(n + 1)
    stop = threading.Event()
    measuring = threading.Event()
    lat = [[] for _ in range(n)]
    errors = []

    def body(i):
        try:
            step = make_worker(i)
            start_barrier.wait()
            while not stop.is_set():
                t0 = time.perf_counter()
                step()
                t1 = time.perf_counter()
                if measuring.is_set():
                    lat[i].append(t1 - t0)
        except Exception as e:  # report, never hang the barrier
            errors.append(repr(e))
            try:
                start_barrier.abort()
            except Exception:
                pass

    threads = [threading.Thread(target=body, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    try:
        start_barrier.wait()
    except threading.BrokenBarrierError:
        pass
    time.sleep(warmup)
    measuring.set()
    t0 = time.perf_counter()
    time.sleep(seconds)
    measuring.clear()
    elapsed = time.perf_counter() - t0
    stop.set()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError("; ".join(errors[:3]))
    all_lat = sorted(x for l in lat for x in l)
    reqs = len(all_lat)
    return {
        "threads": n,
        "requests": reqs,
        "elapsed_s": elapsed,
        "rps": reqs / elapsed,
        "p50_us": percentile(all_lat, 0.50) * 1e6,
        "p99_us": percentile(all_lat, 0.99) * 1e6,
        "mean_us": (sum(all_lat) / reqs * 1e6) if reqs else 0.0,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", default="1,2,4,8,16")
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--warmup-seconds", type=float, default=0.5)
    ap.add_argument("--dims", default="512,1024,1024,512")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--dtype", default="f32", choices=["f32", "f16", "bf16"])
    ap.add_argument("--variants", default="eager,graphs")
    ap.add_argument("--probe-capture", type=int, default=5,
                    help="tries of two threads capturing at once (0: skip)")
    args = ap.parse_args()

    dims = [int(x) for x in args.dims.split(",")]
    dtype = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}[args.dtype]
    dev = torch.device("cuda")
    torch.backends.cuda.matmul.allow_tf32 = False
    model = build_mlp(dims, dtype, dev, 42)
    capture_lock = threading.Lock()

    def eager_worker(i):
        s = torch.cuda.Stream()
        x_host = torch.randn(args.batch, dims[0], dtype=dtype).pin_memory()
        y_host = torch.empty(args.batch, dims[-1], dtype=dtype).pin_memory()

        def step():
            with torch.no_grad(), torch.cuda.stream(s):
                x = x_host.to(dev, non_blocking=True)
                y = model(x)
                y_host.copy_(y, non_blocking=True)
            s.synchronize()
        return step

    def graph_worker(i):
        # Everything that touches the CUDA runtime before the replays runs
        # under the lock: PyTorch captures in global mode, so another thread's
        # pin_memory (cudaHostAlloc) during a capture fails the capture with
        # "operation not permitted when stream is capturing".
        with capture_lock:
            s = torch.cuda.Stream()
            x_host = torch.randn(args.batch, dims[0], dtype=dtype).pin_memory()
            y_host = torch.empty(args.batch, dims[-1], dtype=dtype).pin_memory()
            x_static = torch.zeros(args.batch, dims[0], dtype=dtype, device=dev)
            g = torch.cuda.CUDAGraph()
            with torch.no_grad(), torch.cuda.stream(s):
                for _ in range(3):
                    model(x_static)
                s.synchronize()
                with torch.cuda.graph(g, stream=s):
                    y_static = model(x_static)
            s.synchronize()

        def step():
            with torch.cuda.stream(s):
                x_static.copy_(x_host, non_blocking=True)
                g.replay()
                y_host.copy_(y_static, non_blocking=True)
            s.synchronize()
        return step

    out = {
        "peer": "torch",
        "torch_version": torch.__version__,
        "device": torch.cuda.get_device_name(0),
        "dims": dims, "batch": args.batch, "dtype": args.dtype,
        "seconds": args.seconds,
        "results": {},
    }
    thread_counts = [int(x) for x in args.threads.split(",")]
    for variant in args.variants.split(","):
        make = eager_worker if variant == "eager" else graph_worker
        rows = []
        for n in thread_counts:
            rows.append(run_threads(n, args.seconds, args.warmup_seconds, make))
        base = next((r["rps"] for r in rows if r["threads"] == 1), None)
        for r in rows:
            r["efficiency"] = (r["rps"] / (r["threads"] * base)) if base else None
        out["results"][variant] = rows

    if args.probe_capture > 0:
        failures, messages = 0, set()
        for _ in range(args.probe_capture):
            barrier = threading.Barrier(2)
            errs = []

            def cap():
                try:
                    s = torch.cuda.Stream()
                    x = torch.zeros(args.batch, dims[0], dtype=dtype, device=dev)
                    with torch.no_grad(), torch.cuda.stream(s):
                        model(x)
                    s.synchronize()
                    g = torch.cuda.CUDAGraph()
                    barrier.wait()
                    with torch.no_grad(), torch.cuda.graph(g, stream=s):
                        for _ in range(20):
                            model(x)
                except Exception as e:
                    errs.append(str(e).splitlines()[0][:200])
            ts = [threading.Thread(target=cap) for _ in range(2)]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            if errs:
                failures += 1
                messages.update(errs)
            torch.cuda.synchronize()
        out["concurrent_capture"] = {"tries": args.probe_capture, "failed": failures,
                                     "errors": sorted(messages)}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
