"""Completions run on the module's completer thread, never on an engine
worker: a Python thread that holds the GIL does not stall the engine."""

from __future__ import annotations

import asyncio
import concurrent.futures
import random
import sys
import threading
import time

import numpy as np
import pytest

import fanin
from fanin import _fanin

from test_lifetime import run_script


def _submit_raw(engine, done) -> None:
    """done(result, error) straight from the compiled module, no Future."""
    engine._core.submit_rows(np.ones(engine.input_shape, np.float32), done, _fanin.CancelToken(), 0, None)


def test_done_callbacks_run_on_the_completer_thread(mlp_engine):
    idents = []
    all_done = threading.Event()
    n = 40
    with fanin.Engine(fanin.Model.mlp(dims=[4, 8, 2]), workers=2) as other:
        def done(result, error):
            assert error is None and result.shape == (2,)
            idents.append(threading.get_ident())
            if len(idents) == n:
                all_done.set()

        for i in range(n):
            _submit_raw(mlp_engine if i % 2 else other, done)
        assert all_done.wait(30)
    completer = _fanin._completer_ident()
    # One thread for both engines (so not a worker of either), and not ours.
    assert set(idents) == {completer}, (set(idents), completer)
    assert completer not in (0, threading.get_ident())
    # A Future's done-callbacks run there too.
    seen = []
    gate = threading.Event()
    f = mlp_engine.submit(np.ones(4, np.float32), timeout=30)
    f.add_done_callback(lambda _f: (seen.append(threading.get_ident()), gate.set()))
    f.result(timeout=30)
    assert gate.wait(30)
    assert seen[0] in (completer, threading.get_ident())


def test_engine_completes_requests_while_python_holds_the_gil():
    """With callbacks on an engine worker, the worker would wait for the GIL
    that this thread keeps (up to 5 s), and the queue behind it would stop."""
    n = 50
    switch = sys.getswitchinterval()
    with fanin.Engine(fanin.Model.mlp(dims=[4, 8, 2]), workers=1, max_batch_size=1,
                      max_queue_delay=0) as e:
        x = np.ones(4, np.float32)
        e.run(x)  # warm
        try:
            sys.setswitchinterval(100.0)  # this thread keeps the GIL below
            futures = [e.submit(x) for _ in range(n)]
            # metrics() keeps the GIL: the worker has to run without it.
            end = time.perf_counter() + 5
            while e.metrics()["completed"] < n + 1 and time.perf_counter() < end:
                pass
            completed = e.metrics()["completed"]
        finally:
            sys.setswitchinterval(switch)
        for f in futures:
            f.result(timeout=30)
        assert completed >= n + 1, completed  # the warm-up run and all n


def test_a_future_cancelled_after_its_request_ran_stays_cancelled(monkeypatch):
    """The engine has finished the request but the completer has not set the
    Future's result (this thread keeps the GIL): cancel() wins, and the
    completer drops the late result without an error."""
    unraisable = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: unraisable.append(u.exc_value))
    switch = sys.getswitchinterval()
    with fanin.Engine(fanin.Model.mlp(dims=[4, 4096, 4096, 2]), workers=1, max_batch_size=1,
                      max_queue_delay=0) as e:
        x = np.ones(4, np.float32)
        e.run(x)  # warm
        for attempt in range(20):
            try:
                sys.setswitchinterval(100.0)  # this thread keeps the GIL below
                before = e.metrics()["completed"]
                # f's request waits behind these on the one worker (a few ms
                # each), so that it runs once this thread has the GIL back
                # from submit: the completer cannot set its result before
                # cancel(). (Run at once, a loaded machine could run the
                # request and the completer while submit released the GIL.)
                ahead = [e.submit(x) for _ in range(20)]
                f = e.submit(x)
                end = time.perf_counter() + 10
                while e.metrics()["completed"] < before + 21 and time.perf_counter() < end:
                    pass
                ran = e.metrics()["completed"] == before + 21
                # Done already: this thread lost the GIL to the completer
                # after f's request ran (it should not); try again.
                done_before = f.done()
                cancelled = f.cancel()
            finally:
                sys.setswitchinterval(switch)
            if not done_before:
                break
        assert e.drain(30)  # the completer has tried to set the result
    assert ran and not done_before and cancelled, (attempt, ran, done_before)
    assert f.cancelled()
    assert all(a.done() and a.exception() is None for a in ahead)
    with pytest.raises(concurrent.futures.CancelledError):
        f.result(timeout=1)
    assert unraisable == []


def test_a_waiter_completes_its_future_while_the_completer_is_busy(mlp_engine):
    """Note [Waiting on a Future]: result() is woken by the engine and
    completes the Future itself, so it returns while the completer is stuck
    in a done-callback; a Future with a done-callback waits for the
    completer, which runs the callback."""
    release = threading.Event()
    entered = threading.Event()

    def stuck(result, error):
        entered.set()
        release.wait(30)

    x = np.ones(4, np.float32)
    _submit_raw(mlp_engine, stuck)
    try:
        assert entered.wait(30)
        f = mlp_engine.submit(x)
        assert f.result(timeout=10).shape == (2,)  # the completer is stuck
        assert f.done() and f.exception() is None
        seen = []
        g = mlp_engine.submit(x)
        g.add_done_callback(lambda _g: seen.append(threading.get_ident()))
        with pytest.raises(concurrent.futures.TimeoutError):
            g.result(timeout=0.3)  # its callback runs on the completer, which is stuck
    finally:
        release.set()
    assert g.result(timeout=30).shape == (2,)
    assert seen == [_fanin._completer_ident()]


def test_cancel_wakes_a_thread_waiting_on_the_future():
    """A request far back in the queue: cancel() ends a result() that waits
    for it at once, not when the engine reaches the request; a timeout ends
    it after that timeout."""
    with fanin.Engine(fanin.Model.mlp(dims=[512, 2048, 2048, 512]), workers=1,
                      max_batch_size=1, max_queue_delay=0) as e:
        busy = [e.submit(np.ones((64, 512), np.float32)) for _ in range(200)]
        f = e.submit(np.ones(512, np.float32))
        start = time.perf_counter()
        with pytest.raises(concurrent.futures.TimeoutError):
            f.result(timeout=0.2)
        waited = time.perf_counter() - start
        assert 0.19 < waited < 2, waited
        got = []

        def wait() -> None:
            try:
                f.result(timeout=60)
            except BaseException as err:  # checked below
                got.append(err)

        t = threading.Thread(target=wait)
        t.start()
        time.sleep(0.1)
        start = time.perf_counter()
        assert f.cancel()
        t.join(timeout=30)
        woke = time.perf_counter() - start
        assert not t.is_alive()
        assert len(got) == 1 and isinstance(got[0], concurrent.futures.CancelledError), got
        assert woke < 2, woke
        still_busy = sum(not b.done() for b in busy)
        e.cancel()
    assert still_busy > 0  # the engine had not reached the cancelled request
    assert f.cancelled()


def test_a_done_callback_waiting_for_another_request_raises(mlp_engine):
    """The completer cannot complete a Future it is waiting on: result()
    there raises instead of hanging."""
    errors = []
    gate = threading.Event()

    def done(result, error):
        inner = mlp_engine.submit(np.ones(4, np.float32))
        try:
            inner.result(timeout=5)
        except RuntimeError as err:
            errors.append(err)
        gate.set()

    _submit_raw(mlp_engine, done)
    assert gate.wait(30)
    assert errors and "completer" in str(errors[0]), errors


def test_an_exception_in_one_callback_does_not_stop_the_others(mlp_engine, monkeypatch):
    unraisable = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: unraisable.append(u.exc_value))
    ok = []
    gate = threading.Event()

    def done_bad(result, error):
        gate.wait(5)
        raise ValueError("from a done callback")

    def done_good(result, error):
        ok.append(error is None)

    token = _fanin.CancelToken()
    x = np.ones(4, np.float32)
    mlp_engine._core.submit_rows(x, done_bad, token, 0, None)
    for _ in range(10):
        mlp_engine._core.submit_rows(x, done_good, _fanin.CancelToken(), 0, None)
    gate.set()
    deadline = time.perf_counter() + 10
    while len(ok) < 10 and time.perf_counter() < deadline:
        time.sleep(0.01)
    assert ok == [True] * 10
    assert any(isinstance(u, ValueError) for u in unraisable), unraisable


def _stress(enc, mlp, seconds: float, threads: int = 32) -> dict:
    """threads x submit().result() on both engines, asyncio tasks and
    cancellations, for `seconds`; every future must resolve."""
    stop = time.perf_counter() + seconds
    counts = {"results": 0, "cancelled": 0, "tasks": 0}
    lock = threading.Lock()
    failures = []
    x = np.ones((2, 512), np.float32)

    def worker(k: int) -> None:
        rnd = random.Random(k)
        try:
            while time.perf_counter() < stop:
                f = enc.submit(f"stress {k} " * rnd.randint(1, 20)) if k % 2 else mlp.submit(x)
                if rnd.random() < 0.2:
                    f.cancel()
                try:
                    f.result(timeout=60)
                    with lock:
                        counts["results"] += 1
                except concurrent.futures.CancelledError:
                    with lock:
                        counts["cancelled"] += 1
        except BaseException as err:  # noqa: BLE001 - reported below
            failures.append(err)

    async def tasks() -> None:
        while time.perf_counter() < stop:
            ts = [asyncio.ensure_future(enc.embed(f"task {i}")) for i in range(16)]
            ts += [asyncio.ensure_future(mlp.run_async(x)) for _ in range(16)]
            for t in ts[::5]:
                t.cancel()
            done = await asyncio.wait_for(asyncio.gather(*ts, return_exceptions=True), 60)
            for r in done:
                if not isinstance(r, (np.ndarray, asyncio.CancelledError)):
                    failures.append(r)
            counts["tasks"] += len(done)

    ts = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    for t in ts:
        t.start()
    asyncio.run(tasks())
    for t in ts:
        t.join(120)
        assert not t.is_alive()
    assert not failures, failures[:3]
    return counts


def test_stress_threads_tasks_and_cancellations(model_dir):
    with fanin.SentenceEncoder(model_dir, workers=2, max_batch_size=32) as enc, \
            fanin.Engine(fanin.Model.mlp(), workers=2) as mlp:
        counts = _stress(enc, mlp, seconds=3.0)
    assert counts["results"] > 0 and counts["cancelled"] > 0 and counts["tasks"] > 0, counts


def test_exit_in_the_middle_of_the_stress(model_dir):
    r = run_script("""
        import sys, time
        sys.path.insert(0, %r)
        from test_completer import _stress
        enc = fanin.SentenceEncoder(MODEL, workers=2, max_batch_size=32)
        mlp = fanin.Engine(fanin.Model.mlp(), workers=2)
        def forever():
            while True:
                f = enc.submit("daemon " * 8)
                f.add_done_callback(lambda f: f.cancelled() or f.exception())
                try:
                    f.result()
                except Exception:
                    pass
        for _ in range(16):
            threading.Thread(target=forever, daemon=True).start()
        async def spin():
            while True:
                await asyncio.gather(*[enc.embed("loop") for _ in range(8)], return_exceptions=True)
        threading.Thread(target=lambda: asyncio.run(spin()), daemon=True).start()
        time.sleep(1.0)
        print("submitted", flush=True)
    """ % str(__import__("pathlib").Path(__file__).parent), model_dir)
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr[-2000:])
    assert "submitted" in r.stdout
    assert "Fatal" not in r.stderr and "terminate" not in r.stderr, r.stderr[-2000:]


def test_futures_waited_on_are_done_when_drain_or_cancel_return():
    """Threads waiting in result(): the engine leaves those completions to
    them (Note [Waiting on a Future]), and every Future is done when drain or
    cancel returns (flush_completions waits for those claims as for the
    completer's queue; the waiters usually win the GIL before this thread
    anyway, so this checks the handing over more than that wait)."""
    x = np.ones((8, 512), np.float32)
    switch = sys.getswitchinterval()
    for how in ("drain", "cancel"):
        for _ in range(5):
            e = fanin.Engine(fanin.Model.mlp(), workers=1, max_batch_size=4)
            futures = [e.submit(x) for _ in range(40)]

            def wait(f) -> None:
                try:
                    f.result(timeout=60)
                except BaseException:  # Cancelled: checked through f below
                    pass

            waiters = [threading.Thread(target=wait, args=(f,)) for f in futures[1::3]]
            for t in waiters:
                t.start()
            time.sleep(0.05)  # the waiters are inside Outcome.wait
            try:
                # This thread keeps the GIL until the engine is done, so that
                # the woken waiters have claimed nothing when drain begins.
                sys.setswitchinterval(100.0)
                end = time.perf_counter() + 30
                if how == "drain":
                    while e.metrics()["completed"] < len(futures) and time.perf_counter() < end:
                        pass
                getattr(e, how)()
                done = [f.done() for f in futures]
            finally:
                sys.setswitchinterval(switch)
            for t in waiters:
                t.join(timeout=60)
            assert all(done), (how, done.count(False))
            if how == "drain":
                assert all(f.exception() is None for f in futures)


def test_futures_are_done_when_drain_cancel_or_close_return():
    x = np.ones((8, 512), np.float32)
    for how in ("drain", "cancel", "close"):
        for _ in range(5):
            e = fanin.Engine(fanin.Model.mlp(), workers=1, max_batch_size=4)
            futures = [e.submit(x) for _ in range(40)]
            # The completer is still busy with this one when the engine is done.
            futures[20].add_done_callback(lambda _f: time.sleep(0.05))
            getattr(e, how)()
            assert all(f.done() for f in futures), how
            if how == "drain":
                assert all(f.exception() is None for f in futures)


class _RaisesAfterWait:
    """A Future's Outcome whose wait() raises KeyboardInterrupt after the real
    wait returned True: what CPython does when it handles a pending signal
    (Ctrl-C) as that call returns."""

    def __init__(self, outcome) -> None:
        self._outcome = outcome
        self.raised = 0

    def wait(self, timeout):
        if self._outcome.wait(timeout):
            self.raised += 1
            raise KeyboardInterrupt
        return False

    def claim(self):
        return self._outcome.claim()

    def hand_back(self):
        return self._outcome.hand_back()


def test_an_exception_as_the_wait_returns_still_hands_the_completion_back():
    """Note [Waiting on a Future]: a completion left to a waiting thread goes
    back to the completer (hand_back, in _wait's finally) whatever stops the
    waiter, also an exception raised as Outcome.wait returns True (found by
    verify/future_wait.pml -DWAIT_OUTSIDE_TRY: the Future stayed pending and
    drain() waited forever)."""
    x = np.ones((8, 512), np.float32)
    for _ in range(10):
        e = fanin.Engine(fanin.Model.mlp(), workers=1, max_batch_size=4)
        futures = [e.submit(x) for _ in range(40)]
        last = futures[-1]
        proxy = _RaisesAfterWait(last._outcome)
        last._outcome = proxy
        with pytest.raises(KeyboardInterrupt):
            last.result(timeout=60)
        assert proxy.raised == 1
        drained = threading.Event()
        threading.Thread(target=lambda: (e.drain(), drained.set()), daemon=True).start()
        assert drained.wait(30), "drain() did not return"
        assert last.done() and last.exception() is None
        assert all(f.done() for f in futures)
        e.close()



# The last reference to an engine may go anywhere: in a garbage collection on
# any thread (as in this suite: the mlp_engine of
# test_a_done_callback_waiting_for_another_request_raises is kept in a cycle
# by its error's traceback, and a stress worker's allocation freed it), also
# inside a waiter's set_result or under a Future's _condition. Waiting for the
# completer there (flush_completions) deadlocked (Note [The completer]). Each
# case runs in a child that dumps its stacks and exits if it hangs.
_ANYWHERE = {
    # A thread waiting in result() is handed the completion and calls
    # set_result itself; a collection there (gc.collect() stands for an
    # automatic one) frees an engine, whose destruction waited for that
    # completion: the thread waited for itself.
    "freed_inside_a_waiters_set_result": """
        f = handed_to_the_waiter(lambda: gc.collect())
        assert f.result(timeout=10).shape == (2,)
        assert where == [threading.current_thread()], where  # the waiter claimed it
    """,
    # The completer has the Future's completion queued (it is in a done
    # callback meanwhile) while this thread holds the Future's _condition, as
    # Future.cancel(), result() and concurrent.futures.wait() do, and frees an
    # engine there: its destruction waited for the completer, which waited
    # for the _condition in set_result.
    "freed_under_a_futures_condition": """
        release = threading.Event()
        entered = threading.Event()
        a._core.submit_rows(x, lambda r, e: (entered.set(), release.wait(5)),
                            _fanin.CancelToken(), 0, None)
        assert entered.wait(10)
        before = a.metrics()["completed"]
        f = a.submit(x)
        end = time.monotonic() + 10
        while a.metrics()["completed"] == before and time.monotonic() < end:
            time.sleep(0.001)
        assert not f.done()  # queued for the busy completer
        with f._condition:
            gc.collect()
        release.set()
        assert f.result(timeout=10).shape == (2,)
    """,
    # Engine.drain() from code run inside a waiter's set_result (a finalizer,
    # a weakref callback, a signal handler): the waiter is completing its
    # Future, and the drain would wait for that completion.
    "drain_inside_a_waiters_set_result": """
        f = handed_to_the_waiter(lambda: other.drain(5))
        assert f.result(timeout=10).shape == (2,)
        assert where == [threading.current_thread()], where
    """,
}


@pytest.mark.parametrize("case", sorted(_ANYWHERE))
def test_an_engine_freed_or_drained_anywhere_does_not_wait_for_itself(model_dir, case):
    body = """
        import concurrent.futures, faulthandler, gc, time
        from fanin import _fanin
        faulthandler.dump_traceback_later(20, exit=True)
        x = np.ones(4, np.float32)
        a = fanin.Engine(fanin.Model.mlp(dims=[4, 4096, 4096, 2]), workers=1, max_batch_size=1,
                         max_queue_delay=0)
        other = fanin.Engine(fanin.Model.mlp(dims=[4, 8, 2]), workers=1)
        b = fanin.Engine(fanin.Model.mlp(dims=[4, 8, 2]), workers=1)
        b.cycle = b  # garbage that only a collection frees
        gc.disable()
        del b
        where = []

        def handed_to_the_waiter(inside):
            # f's request waits behind 20 others on the one worker, so that
            # this thread is in f.result() when it completes: the engine
            # leaves the completion to it, and its set_result runs inside().
            for _ in range(20):
                a.submit(x)
            f = a.submit(x)
            real = concurrent.futures.Future.set_result
            def set_result(result):
                where.append(threading.current_thread())
                inside()
                real(f, result)
            f.set_result = set_result
            return f
    """ + _ANYWHERE[case] + """
        print("ok", flush=True)
    """
    r = run_script(body, model_dir, timeout=60)
    assert r.returncode == 0 and "ok" in r.stdout, (r.returncode, r.stdout, r.stderr[-3000:])
