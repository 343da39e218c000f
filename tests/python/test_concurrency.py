"""Many Python threads and asyncio tasks on one encoder; cancellation."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time

import numpy as np
import pytest

import fanin
from conftest import cosine


def test_16_threads_give_the_sequential_vectors(encoder, refs):
    sentences = refs["sentences"]
    sequential = [encoder.encode(s) for s in sentences]
    barrier = threading.Barrier(16)
    results: dict[int, list] = {}
    errors = []

    def worker(t: int) -> None:
        try:
            barrier.wait()
            # Each thread walks the list from its own offset, one sentence a call.
            order = [(t + k) % len(sentences) for k in range(len(sentences))]
            results[t] = [(i, encoder.encode(sentences[i])) for i in order]
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(16)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=300)
    assert not errors, errors
    assert len(results) == 16
    for rows in results.values():
        for i, v in rows:
            assert cosine(v, sequential[i]) >= 0.99999


def test_threads_share_batches(model_dir):
    """Single sentences from 8 threads are batched together by the queue."""
    with fanin.SentenceEncoder(model_dir, workers=1, max_queue_delay=0.02) as enc:
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(enc.encode, ["sentence %d" % i for i in range(64)]))
        m = enc.metrics()
        assert m["completed"] == 64
        assert m["batches"] < 64, m["batch_fill"]


def test_submit_futures(encoder, refs):
    futures = [encoder.submit(s) for s in refs["sentences"]]
    for f, want in zip(futures, refs["embeddings"]):
        assert cosine(f.result(timeout=60), want) >= 0.9999
    many = encoder.submit(refs["sentences"][:3]).result(timeout=60)
    assert many.shape == (3, 384)
    assert encoder.submit(b"bytes").result(timeout=60).shape == (384,)
    assert encoder.submit(("a", "b")).result(timeout=60).shape == (2, 384)
    assert encoder.submit(iter(["a"])).result(timeout=60).shape == (1, 384)


def test_1000_asyncio_tasks_all_resolve(encoder):
    async def main():
        tasks = [asyncio.create_task(encoder.embed(f"task number {i}")) for i in range(1000)]
        return await asyncio.gather(*tasks)

    out = asyncio.run(main())
    assert len(out) == 1000
    assert all(v.shape == (384,) for v in out)
    np.testing.assert_allclose(out[7], encoder.encode("task number 7"), rtol=1e-5, atol=1e-6)


def _busy_encoder(model_dir):
    """One worker, one text a batch: later requests wait behind earlier ones."""
    return fanin.SentenceEncoder(model_dir, workers=1, max_batch_size=1)


def test_cancelled_future_resolves_cancelled(model_dir):
    with _busy_encoder(model_dir) as enc:
        ahead = [enc.submit("a long sentence to keep the worker busy " * 8) for _ in range(20)]
        victim = enc.submit("never run")
        assert victim.cancel()
        assert victim.cancelled()
        with pytest.raises(concurrent.futures.CancelledError):
            victim.result(timeout=1)
        for f in ahead:
            f.result(timeout=120)
        enc.drain()
        m = enc.metrics()
    assert m["cancelled"] == 1 and m["completed"] == 20, m


def test_cancelled_task_cancels_the_request(model_dir):
    with _busy_encoder(model_dir) as enc:

        async def main():
            ahead = [asyncio.create_task(enc.embed("keep the worker busy " * 16)) for _ in range(10)]
            victim = asyncio.create_task(enc.embed("never run"))
            await asyncio.sleep(0)  # submitted
            victim.cancel()
            with pytest.raises(asyncio.CancelledError):
                await victim
            await asyncio.gather(*ahead)

        asyncio.run(main())
        enc.drain()
        assert enc.metrics()["cancelled"] == 1


def test_engine_cancel_fails_pending_futures(model_dir):
    enc = _busy_encoder(model_dir)
    futures = [enc.submit("pending " * 32) for _ in range(30)]
    enc.cancel()
    outcomes = set()
    for f in futures:
        e = f.exception(timeout=60)
        outcomes.add(type(e))
    assert fanin.Cancelled in outcomes
    assert outcomes <= {type(None), fanin.Cancelled}


def test_drain_finishes_what_was_accepted(model_dir):
    enc = fanin.SentenceEncoder(model_dir, workers=1)
    futures = [enc.submit(f"drain {i}") for i in range(50)]
    assert enc.drain(timeout=120)
    assert all(f.done() and f.exception() is None for f in futures)


def test_gil_is_released_while_encoding(encoder):
    """Another Python thread runs while encode computes. With a 1 s switch
    interval, a call that held the GIL would stop it for the whole call."""
    import sys

    stop = threading.Event()
    stamps: list[float] = []

    def ticker():
        while not stop.is_set():
            stamps.append(time.perf_counter())
            time.sleep(0.001)

    old = sys.getswitchinterval()
    sys.setswitchinterval(1.0)
    t = threading.Thread(target=ticker)
    t.start()
    try:
        time.sleep(0.02)
        start = time.perf_counter()
        encoder.encode(["the GIL is released while this runs " * 8] * 64)
        end = time.perf_counter()
    finally:
        stop.set()
        t.join()
        sys.setswitchinterval(old)
    inside = sum(start < s < end for s in stamps)
    assert end - start > 0.05, "encode too fast to tell"
    assert inside >= 5, (inside, end - start)


def test_spinning_for_the_gil(encoder, refs):
    """Note [Spinning for the GIL] (opt-in): threads that spin for the GIL
    get the same vectors; the hint is set while a thread that took the GIL
    back in fanin holds it."""
    from fanin import _fanin

    sentences = refs["sentences"][:8]
    want = [encoder.encode(s) for s in sentences]
    _fanin._gil_spin(200, 2)
    try:
        errors = []

        def worker(t: int) -> None:
            try:
                for k in range(20):
                    i = (t + k) % len(sentences)
                    assert cosine(encoder.encode(sentences[i]), want[i]) >= 0.99999
            except BaseException as e:  # reported below
                errors.append(e)

        threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(timeout=120)
        assert not errors, errors
        encoder.encode("this thread takes the GIL back")
        assert _fanin._gil_held()
    finally:
        _fanin._gil_spin(0)
