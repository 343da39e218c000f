"""Engine requests as concurrent.futures.Future objects and asyncio awaitables.

The compiled module completes a request on its completer thread, exactly
once and holding the GIL (never on an engine worker, which only queues the
completion): a Future with ``set_result``/``set_exception`` (its
``submit_*_to`` methods; Future is thread-safe, its done-callbacks run on the
completer), or a callable ``done(result, error)`` (its ``submit_*``
methods), which for asyncio hands over to the event loop with
``call_soon_threadsafe``. Cancelling the Future or the awaiting Task cancels
the request through its CancelToken: the engine drops it before it runs, or
discards its result.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from typing import Any, Callable, Optional

from . import _fanin

Done = Callable[[Any, Optional[BaseException]], None]
Submit = Callable[[_fanin.CancelToken, Done], None]
Wrap = Callable[[Any], Any]


def _identity(x: Any) -> Any:
    return x


class _Future(concurrent.futures.Future):
    """The Future of one request: the compiled module completes it on the
    completer thread (set_result / set_exception); cancelling it cancels the
    request through its token. Its wait raises on the completer thread (in a
    done-callback), where it would wait forever: only that thread can
    complete it."""

    def __init__(self) -> None:
        super().__init__()
        self._token = _fanin.CancelToken()

    def cancel(self) -> bool:
        if not super().cancel():
            return False
        self._token.cancel()  # the engine drops the request, or discards its result
        return True

    def _check_thread(self) -> None:
        if threading.get_ident() == _fanin._completer_ident() and not self.done():
            raise RuntimeError(
                "waiting on a fanin Future in a done-callback would never end: done-callbacks "
                "run on fanin's completer thread, which completes the Future"
            )

    def result(self, timeout: Optional[float] = None) -> Any:
        self._check_thread()
        return super().result(timeout)

    def exception(self, timeout: Optional[float] = None) -> Optional[BaseException]:
        self._check_thread()
        return super().exception(timeout)


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
