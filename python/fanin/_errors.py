"""fanin.Error and one subclass per fanin::Error code.

The compiled module raises these (and passes them to futures) for every
fanin::Error; ``str(e)`` is the message, which names the operation and the
values involved, e.g. ``[Engine] queue is full (65536 requests)``.
"""

from __future__ import annotations


class Error(Exception):
    """Base class of every error fanin raises; ``code`` names the fanin::Error code."""

    code: str = ""


class InvalidArgument(Error, ValueError):
    """Bad input or option: shape, dtype, size, UTF-8, NaN (with check_inputs), file."""

    code = "InvalidArgument"


class PoolExhausted(Error):
    """Every stream slot of a device stayed leased past the lease timeout."""

    code = "PoolExhausted"


class ConcurrentEncoding(Error):
    """A second thread began encoding into a command buffer that was busy."""

    code = "ConcurrentEncoding"


class QueueFull(Error):
    """The engine's queue is at max_queue_length: retry later."""

    code = "QueueFull"


class DeadlineExceeded(Error, TimeoutError):
    """The request's timeout passed before it ran."""

    code = "DeadlineExceeded"


class Cancelled(Error):
    """The request was cancelled, or the engine shut down before it ran."""

    code = "Cancelled"


class OutOfMemory(Error, MemoryError):
    """The device allocator could not satisfy a request."""

    code = "OutOfMemory"


class DeviceError(Error):
    """The device or its library reported a failure."""

    code = "DeviceError"


class Unavailable(Error):
    """The backend or device is not built or not present, or no device is left."""

    code = "Unavailable"


ERROR_TYPES: dict[str, type[Error]] = {
    cls.code: cls
    for cls in (
        InvalidArgument,
        PoolExhausted,
        ConcurrentEncoding,
        QueueFull,
        DeadlineExceeded,
        Cancelled,
        OutOfMemory,
        DeviceError,
        Unavailable,
    )
}

# Shown as fanin.QueueFull (not fanin._errors.QueueFull) in tracebacks.
for _cls in (Error, *ERROR_TYPES.values()):
    _cls.__module__ = "fanin"
del _cls
