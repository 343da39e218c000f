"""fanin.Engine over a Model: run, submit, inputs from any float32 buffer."""

from __future__ import annotations

import array
import asyncio

import numpy as np
import pytest

import fanin


def test_run_one_and_many(mlp_engine):
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    many = mlp_engine.run(x)
    assert many.shape == (3, 2) and many.dtype == np.float32
    for i in range(3):
        np.testing.assert_allclose(mlp_engine.run(x[i]), many[i], rtol=1e-5)
    assert mlp_engine.input_shape == (4,) and mlp_engine.output_shape == (2,)


def test_inputs_from_other_buffers(mlp_engine):
    x = np.ones(4, dtype=np.float32)
    want = mlp_engine.run(x)
    np.testing.assert_allclose(mlp_engine.run(array.array("f", [1, 1, 1, 1])), want, rtol=1e-6)
    np.testing.assert_allclose(mlp_engine.run(memoryview(x)), want, rtol=1e-6)
    np.testing.assert_allclose(mlp_engine.run(np.ones(4, dtype=np.float64)), want, rtol=1e-6)
    np.testing.assert_allclose(mlp_engine.run(np.ones((4, 2), np.float32)[:, 0]), want, rtol=1e-6)


def test_submit_and_async(mlp_engine):
    x = np.ones((5, 4), dtype=np.float32)
    want = mlp_engine.run(x)
    np.testing.assert_allclose(mlp_engine.submit(x).result(timeout=30), want, rtol=1e-6)

    async def main():
        return await asyncio.gather(*(mlp_engine.run_async(x[i]) for i in range(5)))

    got = asyncio.run(main())
    np.testing.assert_allclose(np.stack(got), want, rtol=1e-6)


def test_model_properties():
    m = fanin.Model.mlp(dims=[8, 16, 3], seed=1)
    assert m.input_shape == (8,) and m.output_shape == (3,) and m.device == "cpu"
    assert m.dtype == "f32" and "mlp" in m.name


def test_replicas_on_two_devices():
    models = [fanin.Model.mlp(dims=[4, 2], device=d) for d in ("cpu", "cpu:1")]
    with fanin.Engine(models, workers=1) as e:
        assert e.run(np.ones((64, 4), np.float32)).shape == (64, 2)
        assert e.info()["devices"] == ["cpu", "cpu:1"]
