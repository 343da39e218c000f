"""fanin.Engine (any Model behind the batch queue) and what it shares with
fanin.SentenceEncoder: options, lifetime, metrics."""

from __future__ import annotations

import concurrent.futures
import copy
import os
from typing import Any, Optional, Sequence, Union

import numpy as np

from . import _fanin, _requests
from ._fanin import EngineOptions, Model


def make_options(
    options: Optional[EngineOptions], overrides: dict[str, Any], devices: Sequence[str]
) -> EngineOptions:
    """``options`` (or the defaults) with ``overrides`` applied. On the CPU,
    ``workers`` defaults to the cores this process may run on, shared among
    the devices, so that many Python threads fill the machine (at most the
    stream slots still free on each device: a worker leases one)."""
    o = EngineOptions() if options is None else copy.copy(options)
    for key, value in overrides.items():
        if not hasattr(o, key):
            raise TypeError(f"unexpected engine option {key!r}")
        setattr(o, key, value)
    if "workers" not in overrides and (options is None) and all(
        d.startswith("cpu") for d in devices
    ):
        cores = len(os.sched_getaffinity(0)) // max(1, len(devices))
        free = min(_fanin.free_stream_slots(d) for d in devices)
        o.workers = max(1, min(cores, free))
    return o


class _Front:
    """An engine as the Python classes hold it: lifetime and introspection."""

    _core: _fanin.Engine

    def info(self) -> dict[str, Any]:
        """What the engine serves: kind, shapes, dtype, max length, devices."""
        return self._core.info()

    def ready(self) -> bool:
        """True while the engine accepts requests and can run them."""
        return self._core.ready()

    def metrics(self) -> dict[str, Any]:
        """Counters and histograms: submitted, completed, failed, batches, batch_fill, ..."""
        return self._core.metrics()

    def prometheus(self) -> str:
        """The metrics in Prometheus text format (names prefixed fanin_)."""
        return self._core.prometheus()

    def drain(self, timeout: Optional[float] = None) -> bool:
        """Stops accepting; waits up to ``timeout`` seconds (None: no limit) for
        accepted requests, then cancels what is left. True if all finished."""
        return self._core.drain(timeout)

    def cancel(self) -> None:
        """Stops accepting and fails every unfinished request with Cancelled."""
        self._core.cancel()

    def close(self) -> None:
        """Drains the engine (``with`` does this on exit)."""
        self.drain()

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


ArrayLike = Any  # numpy arrays, or any C-contiguous float32 buffer (buffer protocol / DLPack)


class Engine(_Front):
    """A Model (e.g. ``fanin.Model.mlp()``) behind fanin's batch queue.

    Many threads may call ``run`` and ``submit`` at once; their inputs are
    batched together. ``model`` is one Model, or one replica per device.
    Engine options are keyword arguments (``workers=4, max_batch_size=128``)
    or an ``EngineOptions``.
    """

    def __init__(
        self,
        model: Union[Model, Sequence[Model]],
        *,
        options: Optional[EngineOptions] = None,
        **engine_options: Any,
    ) -> None:
        models = [model] if isinstance(model, Model) else list(model)
        o = make_options(options, engine_options, [m.device for m in models])
        self._core = _fanin.Engine.for_models(models, o)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self._core.info()["input_shape"]

    @property
    def output_shape(self) -> tuple[int, ...]:
        return self._core.info()["output_shape"]

    def run(self, x: ArrayLike, *, priority: int = 0, timeout: Optional[float] = None) -> np.ndarray:
        """The output for one input (``input_shape``) or a batch ``[n, *input_shape]``,
        as a float32 array; blocks (GIL released) until it is ready."""
        return self._core.run(x, priority, timeout)

    def submit(
        self, x: ArrayLike, *, priority: int = 0, timeout: Optional[float] = None
    ) -> concurrent.futures.Future:
        """As ``run``, returning a Future at once; cancelling it cancels the request."""
        fut = _requests._Future()
        self._core.submit_rows_to(x, fut, fut._outcome, fut._token, priority, timeout)
        return fut

    async def run_async(
        self, x: ArrayLike, *, priority: int = 0, timeout: Optional[float] = None
    ) -> np.ndarray:
        """As ``run``, for asyncio; cancelling the Task cancels the request."""
        return await _requests.awaitable(
            lambda token, done: self._core.submit_rows(x, done, token, priority, timeout)
        )

