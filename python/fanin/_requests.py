"""Engine requests as concurrent.futures.Future objects and asyncio awaitables.

The compiled module's ``submit_*`` methods take ``done(result, error)``, which
the module's completer thread calls exactly once (holding the GIL; never an
engine worker, which only queues the completion). Here it completes a Future
directly (Future is thread-safe; its done-callbacks run on the completer), or
hands over to the event loop with ``call_soon_threadsafe``. Cancelling the Future or the awaiting Task cancels
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
    """A Future whose wait raises on the completer thread (in a done-callback),
    where it would wait forever: only that thread can complete it."""

    def _check_thread(self) -> None:
        if not self.done() and threading.get_ident() == _fanin._completer_ident():
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


def future(submit: Submit, wrap: Wrap = _identity) -> concurrent.futures.Future:
    """Calls ``submit(token, done)`` and returns the Future that ``done`` completes."""
    fut: concurrent.futures.Future = _Future()
    token = _fanin.CancelToken()

    def done(result: Any, error: Optional[BaseException]) -> None:
        try:
            if error is None:
                fut.set_result(wrap(result))
            else:
                fut.set_exception(error)
        except concurrent.futures.InvalidStateError:
            pass  # the caller cancelled it meanwhile

    def on_done(f: concurrent.futures.Future) -> None:
        if f.cancelled():
            token.cancel()

    fut.add_done_callback(on_done)
    submit(token, done)  # raises at once (QueueFull, InvalidArgument, ...)
    return fut


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
