"""The `tritonclient[http]` package, unchanged, against the KServe v2 routes."""

import numpy as np
import pytest
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

import fanin_e2e as e2e


def client(port):
    return httpclient.InferenceServerClient(f"127.0.0.1:{port}",
                                            connection_timeout=e2e.wait_s(60),
                                            network_timeout=e2e.wait_s(60))


def test_health_and_metadata(port):
    c = client(port)
    assert c.is_server_live()
    assert c.is_server_ready()
    assert c.is_model_ready("minilm")
    assert c.is_model_ready(e2e.MODEL_NAME)
    meta = c.get_server_metadata()
    assert isinstance(meta.get("name"), str) and isinstance(meta.get("version"), str), meta
    assert isinstance(meta.get("extensions"), list), meta
    md = c.get_model_metadata("minilm")
    inputs = {i["name"]: i for i in md["inputs"]}
    outputs = {o["name"]: o for o in md["outputs"]}
    assert inputs["text"]["datatype"] == "BYTES", md
    assert outputs["embedding"]["datatype"] == "FP32", md
    assert outputs["embedding"]["shape"][-1] == e2e.DIM, md
    cfg = c.get_model_config("minilm")
    assert isinstance(cfg, dict) and cfg, cfg


def test_unknown_model_is_not_ready(port):
    c = client(port)
    assert not c.is_model_ready("no-such-model")
    with pytest.raises(InferenceServerException):
        c.get_model_metadata("no-such-model")


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
@pytest.mark.parametrize("shape", ["n1", "n"])
def test_infer_bytes(port, sentences, tei_vectors, binary, shape):
    texts = sentences[:10]
    data = np.array([[t.encode("utf-8")] for t in texts], dtype=np.object_)
    if shape == "n":
        data = data.reshape(-1)
    inp = httpclient.InferInput("text", list(data.shape), "BYTES")
    inp.set_data_from_numpy(data, binary_data=binary)
    out = httpclient.InferRequestedOutput("embedding", binary_data=binary)
    res = client(port).infer("minilm", [inp], outputs=[out])
    emb = res.as_numpy("embedding")
    assert emb is not None, res.get_response()
    assert emb.dtype == np.float32
    assert emb.shape == (len(texts), e2e.DIM)
    np.testing.assert_allclose(emb, tei_vectors(texts), atol=1e-5)


def test_infer_without_requested_outputs(port, sentences, tei_vectors):
    """No outputs named: the client asks for every output in binary."""
    texts = sentences[10:14]
    inp = httpclient.InferInput("text", [len(texts)], "BYTES")
    inp.set_data_from_numpy(np.array([t.encode() for t in texts], dtype=np.object_))
    res = client(port).infer("minilm", [inp])
    emb = res.as_numpy("embedding")
    assert emb is not None and emb.shape == (len(texts), e2e.DIM), res.get_response()
    np.testing.assert_allclose(emb, tei_vectors(texts), atol=1e-5)


def test_infer_error_is_an_exception(port):
    inp = httpclient.InferInput("text", [2], "BYTES")
    inp.set_data_from_numpy(np.array([b"a", b"b"], dtype=np.object_), binary_data=False)
    inp.set_shape([3])  # the shape says 3, the data has 2
    with pytest.raises(InferenceServerException):
        client(port).infer("minilm", [inp])
    e2e.assert_serves(port)


# ---- the MLP ----

def test_mlp_health_and_metadata(mlp_server):
    c = client(mlp_server.port)
    assert c.is_server_live() and c.is_server_ready()
    assert c.is_model_ready("mlp")
    md = c.get_model_metadata("mlp")
    inputs = {i["name"]: i for i in md["inputs"]}
    outputs = {o["name"]: o for o in md["outputs"]}
    assert inputs["input"]["datatype"] == "FP32" and inputs["input"]["shape"][-1] == e2e.MLP_IN, md
    assert outputs["output"]["datatype"] == "FP32" and outputs["output"]["shape"][-1] == e2e.MLP_OUT, md


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_mlp_infer(mlp_server, binary):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((4, e2e.MLP_IN)).astype(np.float32)
    inp = httpclient.InferInput("input", [4, e2e.MLP_IN], "FP32")
    inp.set_data_from_numpy(x, binary_data=binary)
    out = httpclient.InferRequestedOutput("output", binary_data=binary)
    c = client(mlp_server.port)
    y = c.infer("mlp", [inp], outputs=[out]).as_numpy("output")
    assert y.dtype == np.float32 and y.shape == (4, e2e.MLP_OUT)
    assert np.all(np.isfinite(y))
    # The same input gives the same output, and the rows are independent.
    y2 = c.infer("mlp", [inp], outputs=[out]).as_numpy("output")
    np.testing.assert_allclose(y, y2, rtol=1e-5, atol=1e-6)
    one = httpclient.InferInput("input", [1, e2e.MLP_IN], "FP32")
    one.set_data_from_numpy(x[2:3], binary_data=binary)
    y1 = c.infer("mlp", [one], outputs=[out]).as_numpy("output")
    np.testing.assert_allclose(y1[0], y[2], rtol=1e-4, atol=1e-5)


def test_mlp_binary_and_json_agree(mlp_server):
    rng = np.random.default_rng(11)
    x = rng.standard_normal((3, e2e.MLP_IN)).astype(np.float32)
    c = client(mlp_server.port)
    got = []
    for binary in (True, False):
        inp = httpclient.InferInput("input", [3, e2e.MLP_IN], "FP32")
        inp.set_data_from_numpy(x, binary_data=binary)
        got.append(c.infer("mlp", [inp], outputs=[
            httpclient.InferRequestedOutput("output", binary_data=not binary)]).as_numpy("output"))
    np.testing.assert_allclose(got[0], got[1], rtol=1e-5, atol=1e-6)
