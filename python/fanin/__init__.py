"""fanin: many threads, one device, batched inference.

    import fanin
    enc = fanin.SentenceEncoder("models/all-MiniLM-L6-v2")
    vectors = enc.encode(["hello world", "a cat sat on the mat"])  # float32 [2, 384]

Every call may come from many threads at once (and from asyncio: ``await
enc.embed(text)``); their inputs share the engine's batches. The GIL is
released while fanin tokenizes, waits and computes. See docs/python.md.
"""

from __future__ import annotations

import atexit

from . import _fanin
from ._encoder import SentenceEncoder
from ._engine import Engine
from ._errors import (
    Cancelled,
    ConcurrentEncoding,
    DeadlineExceeded,
    DeviceError,
    Error,
    InvalidArgument,
    OutOfMemory,
    PoolExhausted,
    QueueFull,
    Unavailable,
)
from ._errors import ERROR_TYPES as _ERROR_TYPES
from ._fanin import CancelToken, EngineOptions, Model, available_devices

__version__ = "0.1.0"

_fanin._set_error_types(_ERROR_TYPES)
# Note [Interpreter exit] (python/src/callback.cpp): live engines are
# cancelled before the interpreter finalizes.
atexit.register(_fanin._shutdown)

__all__ = [
    "SentenceEncoder",
    "Engine",
    "EngineOptions",
    "Model",
    "CancelToken",
    "available_devices",
    "Error",
    "InvalidArgument",
    "PoolExhausted",
    "ConcurrentEncoding",
    "QueueFull",
    "DeadlineExceeded",
    "Cancelled",
    "OutOfMemory",
    "DeviceError",
    "Unavailable",
]
