"""Every fanin.Error subclass, raised by the input that should raise it."""

from __future__ import annotations

import numpy as np
import pytest

import fanin
from fanin import _fanin


def test_hierarchy():
    for name in ("InvalidArgument", "PoolExhausted", "ConcurrentEncoding", "QueueFull",
                 "DeadlineExceeded", "Cancelled", "OutOfMemory", "DeviceError", "Unavailable"):
        cls = getattr(fanin, name)
        assert issubclass(cls, fanin.Error) and cls.code == name
    assert issubclass(fanin.InvalidArgument, ValueError)
    assert issubclass(fanin.DeadlineExceeded, TimeoutError)
    assert issubclass(fanin.OutOfMemory, MemoryError)


@pytest.mark.parametrize("code", sorted(fanin._errors.ERROR_TYPES))
def test_each_code_maps_to_its_class(code):
    # ConcurrentEncoding and OutOfMemory cannot be provoked through the Engine
    # (its workers own their streams; a host allocation that fails first is
    # std::bad_alloc): their mapping is checked from a C++ throw here.
    with pytest.raises(getattr(fanin, code), match="^\\[test\\] the message$"):
        _fanin._raise(code, "[test] the message")


def test_bad_shape(mlp_engine):
    with pytest.raises(fanin.InvalidArgument, match=r"shape \[3, 5\].*\[4\] or \[n, 4\]"):
        mlp_engine.run(np.ones((3, 5), np.float32))
    with pytest.raises(ValueError):  # InvalidArgument is a ValueError too
        mlp_engine.submit(np.ones((2, 2, 4), np.float32))


def test_nan_with_checks_on_fails_that_request_alone(mlp_engine):
    bad = mlp_engine.submit(np.array([1, np.nan, 1, 1], np.float32))
    good = mlp_engine.submit(np.ones(4, np.float32))
    with pytest.raises(fanin.InvalidArgument, match="NaN"):
        bad.result(timeout=30)
    assert good.result(timeout=30).shape == (2,)


def test_invalid_utf8(encoder):
    with pytest.raises(fanin.InvalidArgument, match="UTF-8"):
        encoder.encode(b"ok \xff\xfe")
    with pytest.raises(fanin.InvalidArgument, match="UTF-8"):
        encoder.encode("lone surrogate \udcff")  # as os.fsdecode makes them
    with pytest.raises(fanin.InvalidArgument, match="text 1"):
        encoder.submit(["fine", b"\xc3"])
    with pytest.raises(TypeError, match="input 1 is int"):
        encoder.encode(["fine", 3])


def test_bad_arguments(encoder, model_dir):
    with pytest.raises(fanin.InvalidArgument, match="batch_size"):
        encoder.encode(["a"], batch_size=0)
    with pytest.raises(fanin.InvalidArgument, match="priority"):
        encoder.encode("a", priority=5)
    with pytest.raises(fanin.InvalidArgument):
        fanin.SentenceEncoder(model_dir, dtype="float64")
    with pytest.raises(fanin.InvalidArgument):
        fanin.SentenceEncoder(model_dir + "-missing")
    with pytest.raises(fanin.InvalidArgument):
        fanin.EngineOptions(max_queue_delay=-1)
    with pytest.raises(fanin.InvalidArgument):
        fanin.SentenceEncoder(model_dir, workers=0)


def test_queue_full(model_dir):
    with fanin.SentenceEncoder(model_dir, workers=1, max_queue_length=4) as enc:
        with pytest.raises(fanin.QueueFull, match="max_queue_length 4"):
            enc.submit(["x"] * 5)
        # encode of more texts than the queue holds waits for room instead.
        assert enc.encode(["y"] * 12, batch_size=2).shape == (12, 384)


def test_timeout(model_dir):
    with fanin.SentenceEncoder(model_dir, workers=1, max_batch_size=1) as enc:
        with pytest.raises(fanin.DeadlineExceeded, match="never ran"):
            enc.encode("late", timeout=0)
        busy = [enc.submit("busy " * 64) for _ in range(10)]
        late = enc.submit("late", timeout=0.001)
        with pytest.raises(TimeoutError):
            late.result(timeout=120)
        for f in busy:
            f.result(timeout=120)


def test_cancelled_after_drain(model_dir):
    enc = fanin.SentenceEncoder(model_dir, workers=1)
    enc.drain()
    with pytest.raises(fanin.Cancelled, match="shutting down"):
        enc.encode("too late")
    with pytest.raises(fanin.Cancelled):
        enc.submit("too late")


def test_unavailable_device(model_dir):
    if "cuda:7" in fanin.available_devices():
        pytest.skip("a machine with 8 GPUs")
    with pytest.raises(fanin.Unavailable, match="cuda:7"):
        fanin.SentenceEncoder(model_dir, device="cuda:7")


def test_pool_exhausted():
    # The first engine leases all 32 stream slots of cpu:5; the second
    # engine's worker waits lease_timeout for one.
    with fanin.Engine(fanin.Model.mlp(dims=[4, 4], device="cpu:5"), workers=32):
        with pytest.raises(fanin.PoolExhausted, match="32 stream slots"):
            fanin.Engine(fanin.Model.mlp(dims=[4, 4], device="cpu:5"), workers=1, lease_timeout=0.05)


def test_device_error_then_unavailable():
    model = fanin.Model.mlp(dims=[4, 4], device="cpu:6")
    with fanin.Engine(model, workers=1) as e:
        _fanin._set_device_fault("cpu:6", "injected by the test")
        try:
            with pytest.raises(fanin.DeviceError, match="injected by the test"):
                e.run(np.ones(4, np.float32))
            # The device left rotation: no device is left for the next request.
            with pytest.raises(fanin.Unavailable):
                e.run(np.ones(4, np.float32))
        finally:
            _fanin._set_device_fault("cpu:6", "")


def test_out_of_memory_is_a_memory_error():
    with pytest.raises(MemoryError):
        fanin.Model.mlp(dims=[1 << 20, 1 << 20])  # 4 TiB of weights
