"""The interpreter exits cleanly with requests in flight; no leaks."""

from __future__ import annotations

import gc
import subprocess
import sys
import textwrap
import tracemalloc

import numpy as np
import pytest

import fanin


def run_script(body: str, model_dir: str, timeout: float = 120) -> subprocess.CompletedProcess:
    script = f"import fanin, threading, asyncio, numpy as np\nMODEL = {model_dir!r}\n"
    script += textwrap.dedent(body)
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=timeout)


EXIT_CASES = {
    # Futures pending in the queue when the main thread ends.
    "pending_futures": """
        enc = fanin.SentenceEncoder(MODEL, workers=1, max_batch_size=1)
        futures = [enc.submit("in flight " * 32) for _ in range(200)]
        print("submitted", flush=True)
    """,
    # Daemon threads blocked in encode, and callbacks with done-callbacks.
    "daemon_threads_in_encode": """
        enc = fanin.SentenceEncoder(MODEL, workers=1)
        def loop():
            while True:
                enc.encode(["daemon " * 64] * 16)
        for _ in range(4):
            threading.Thread(target=loop, daemon=True).start()
        for _ in range(50):
            enc.submit("x").add_done_callback(lambda f: f.exception())
        import time; time.sleep(0.3)
        print("submitted", flush=True)
    """,
    # An event loop that is closed with embed() tasks still waiting.
    "closed_event_loop": """
        enc = fanin.SentenceEncoder(MODEL, workers=1, max_batch_size=1)
        loop = asyncio.new_event_loop()
        tasks = [loop.create_task(enc.embed("waiting " * 32)) for _ in range(100)]
        loop.run_until_complete(asyncio.sleep(0.05))
        loop.close()
        print("submitted", flush=True)
    """,
    # sys.exit from a callback thread's point of view: the engine is a global
    # destroyed during finalization, with a tensor engine alongside.
    "globals_at_finalization": """
        enc = fanin.SentenceEncoder(MODEL, workers=2)
        mlp = fanin.Engine(fanin.Model.mlp(), workers=2)
        fs = [mlp.submit(np.ones((64, 512), np.float32)) for _ in range(100)]
        gs = [enc.submit("bye " * 16) for _ in range(100)]
        print("submitted", flush=True)
        raise SystemExit(0)
    """,
}


@pytest.mark.parametrize("case", sorted(EXIT_CASES))
def test_exit_with_requests_in_flight(case, model_dir):
    r = run_script(EXIT_CASES[case], model_dir)
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr[-2000:])
    assert "submitted" in r.stdout
    assert "Fatal" not in r.stderr and "terminate" not in r.stderr, r.stderr[-2000:]


def _growth(call, n: int) -> tuple[int, int]:
    """Python objects and traced bytes added by n more calls (after a warm-up)."""
    for _ in range(200):
        call()
    gc.collect()
    tracemalloc.start()
    objects = len(gc.get_objects())
    before = tracemalloc.get_traced_memory()[0]
    for _ in range(n):
        call()
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return len(gc.get_objects()) - objects, after - before


def test_no_leak_over_10000_tensor_calls():
    with fanin.Engine(fanin.Model.mlp(dims=[4, 4]), workers=1, max_queue_delay=0) as e:
        x = np.ones(4, np.float32)
        refs_before = sys.getrefcount(x)
        objects, nbytes = _growth(lambda: (e.run(x), e.submit(x).result()), 5000)
        assert sys.getrefcount(x) == refs_before
    # One leaked array or Future per call would be >= 5000 objects and
    # hundreds of kB.
    assert objects < 100, objects
    assert nbytes < 64 * 1024, nbytes


def test_no_leak_over_text_calls(encoder):
    text = "a"
    refs_before = sys.getrefcount(text)
    objects, nbytes = _growth(lambda: (encoder.encode(text), encoder.submit([text]).result()), 1000)
    assert sys.getrefcount(text) == refs_before
    assert objects < 100, objects
    assert nbytes < 64 * 1024, nbytes


def test_result_memory_is_freed():
    """The capsule frees fanin's buffer when the array goes: RSS stays flat
    over 2,000 results of 1 MB each."""
    def rss() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * 4096

    with fanin.Engine(fanin.Model.mlp(dims=[4, 1 << 16]), workers=1, max_queue_delay=0) as e:
        x = np.ones((4, 4), np.float32)  # 4 rows x 65536 floats = 1 MiB out
        for _ in range(50):
            e.run(x)
        start = rss()
        for _ in range(2000):
            e.run(x)
        grown = rss() - start
    assert grown < 200 << 20, grown  # 2,000 leaked results would be 2 GiB
