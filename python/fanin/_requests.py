"""Engine requests as concurrent.futures.Future objects and asyncio awaitables.

The compiled module completes a request exactly once and holding the GIL
(never on an engine worker, which only fills in the outcome and queues the
completion): a Future with ``set_result``/``set_exception`` (its
``submit_*_to`` methods; Future is thread-safe, its done-callbacks run on the
completer), on the completer thread or on a thread waiting for it, or a
callable ``done(result, error)`` on the completer (its ``submit_*``
methods), which for asyncio hands over to the event loop with
``call_soon_threadsafe``. Cancelling the Future or the awaiting Task cancels
the request through its CancelToken: the engine drops it before it runs, or
discards its result.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from concurrent.futures._base import PENDING as _PENDING
from typing import Any, Callable, Optional

from . import _fanin

Done = Callable[[Any, Optional[BaseException]], None]
Submit = Callable[[_fanin.CancelToken, Done], None]
Wrap = Callable[[Any], Any]


def _identity(x: Any) -> Any:
    return x


class _Future(concurrent.futures.Future):
    """The Future of one request. The compiled module completes it, on the
    completer thread or, when a thread waits in result() / exception() and
    no done-callback is registered, on that thread, which the engine wakes
    directly (Note [Waiting on a Future] in python/src/callback.cpp).
    Cancelling it cancels the request through its token. Its wait raises on
    the completer thread (in a done-callback), where it would wait forever:
    only that thread can complete it."""

    def __init__(self) -> None:
        super().__init__()
        self._token = _fanin.CancelToken()
        self._outcome = _fanin.Outcome()

    def cancel(self) -> bool:
        if not super().cancel():
            return False
        self._token.cancel()  # the engine drops the request, or discards its result
        self._outcome.wake()
        return True

    def _wait(self, timeout: Optional[float]) -> Optional[float]:
        """Waits for the engine with the GIL released and completes the Future
        here if nobody has; returns what is left of `timeout`."""
        if self._state != _PENDING:
            return timeout
        if threading.get_ident() == _fanin._completer_ident():
            raise RuntimeError(
                "waiting on a fanin Future in a done-callback would never end: done-callbacks "
                "run on fanin's completer thread, which completes the Future"
            )
        end = None if timeout is None else time.monotonic() + timeout
        outcome = self._outcome
        # The wait is inside the try: CPython handles a pending signal (a
        # KeyboardInterrupt) as a call returns, so an exception may leave
        # outcome.wait() after it returned True, and the completion left to
        # this thread must still go back to the completer.
        try:
            if outcome.wait(timeout):
                with self._condition:
                    if not self._done_callbacks:  # else the completer runs them
                        outcome.claim()
        finally:
            outcome.hand_back()  # unless claimed or never handed: the completer completes it
        return None if end is None else max(0.0, end - time.monotonic())

    def result(self, timeout: Optional[float] = None) -> Any:
        return super().result(self._wait(timeout))

    def exception(self, timeout: Optional[float] = None) -> Optional[BaseException]:
        return super().exception(self._wait(timeout))


async def awaitable(submit: Submit, wrap: Wrap = _identity) -> Any:
    """Calls ``submit(token, done)`` and waits on the running loop for ``done``."""
    loop = asyncio.get_running_loop()
    fut: asyncio.Future = loop.create_future()
    token = _fanin.CancelToken()

    def resolve(result: Any, error: Optional[BaseException]) -> None:
        if fut.done():
            return  # cancelled meanwhile
        if error is None:
            fut.set_result(wrap(result))
        else:
            fut.set_exception(error)

    def done(result: Any, error: Optional[BaseException]) -> None:
        try:
            loop.call_soon_threadsafe(resolve, result, error)
        except RuntimeError:
            pass  # the loop is closed: nobody waits for this any more

    submit(token, done)
    try:
        return await fut
    except asyncio.CancelledError:
        token.cancel()
        raise
