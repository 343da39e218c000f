"""The `openai` package, unchanged, against /v1."""

import base64

import numpy as np
import openai
import pytest
from openai import OpenAI

import fanin_e2e as e2e
from conftest import API_KEY


def client(port, api_key="x", **kw):
    return OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=api_key,
                  timeout=e2e.wait_s(60), **kw)


def test_default_encoding_is_base64_and_decodes(port, sentences, tei_vectors, cli_vectors):
    """The client asks for base64 when no encoding_format is given and decodes it
    itself: the floats it hands over are /embed's, bit for bit or nearly."""
    texts = sentences[:8]
    res = client(port).embeddings.create(model=e2e.MODEL_NAME, input=texts)
    assert res.object == "list"
    assert res.model == e2e.MODEL_NAME
    assert len(res.data) == len(texts)
    got = np.asarray([d.embedding for d in res.data], dtype=np.float32)
    assert got.shape == (len(texts), e2e.DIM)
    assert [d.index for d in res.data] == list(range(len(texts)))
    np.testing.assert_allclose(got, tei_vectors(texts), atol=1e-6)
    e2e.assert_close_vectors(got, [cli_vectors[t] for t in texts], what="openai base64")
    assert res.usage.prompt_tokens > 0
    assert res.usage.total_tokens >= res.usage.prompt_tokens


def test_float_encoding(port, sentences, tei_vectors):
    texts = sentences[8:20]
    res = client(port).embeddings.create(model=e2e.MODEL_NAME, input=texts,
                                         encoding_format="float")
    got = np.asarray([d.embedding for d in res.data], dtype=np.float32)
    np.testing.assert_allclose(got, tei_vectors(texts), atol=1e-6)
    assert res.usage.prompt_tokens > 0


def test_prompt_tokens_count_the_tokens(port):
    """usage.prompt_tokens grows with the input: 10 single-token words are 12
    tokens with [CLS] and [SEP] (or 10 without them)."""
    words = " ".join(e2e.WORDS[:10])
    res = client(port).embeddings.create(model=e2e.MODEL_NAME, input=[words])
    assert res.usage.prompt_tokens in (10, 12), res.usage
    res2 = client(port).embeddings.create(model=e2e.MODEL_NAME, input=[words, words])
    assert res2.usage.prompt_tokens == 2 * res.usage.prompt_tokens, res2.usage


@pytest.mark.parametrize("encoding", ["base64", "float"])
def test_dimensions_gives_a_renormalised_prefix(port, sentences, tei_vectors, encoding):
    texts = sentences[:4]
    res = client(port).embeddings.create(model=e2e.MODEL_NAME, input=texts, dimensions=128,
                                         encoding_format=encoding)
    # The client decodes base64 only where it chose it; asked for, it is the string.
    got = np.asarray([np.frombuffer(base64.b64decode(d.embedding), dtype="<f4")
                      if isinstance(d.embedding, str) else d.embedding for d in res.data],
                     dtype=np.float64)
    assert got.shape == (4, 128)
    e2e.assert_unit_vectors(got, dim=128)
    for g, full in zip(got, tei_vectors(texts)):
        prefix = full[:128].astype(np.float64)
        np.testing.assert_allclose(g, prefix / np.linalg.norm(prefix), atol=1e-5)


def test_models_list(port):
    ids = [m.id for m in client(port).models.list()]
    assert e2e.MODEL_NAME in ids, ids


def test_bad_request_raises_bad_request_error(port):
    with pytest.raises(openai.BadRequestError) as err:
        client(port, max_retries=0).embeddings.create(model=e2e.MODEL_NAME, input=["x"] * 33)
    assert err.value.status_code == 400
    e2e.assert_serves(port)


def test_wrong_key_raises_authentication_error(apikey_server):
    with pytest.raises(openai.AuthenticationError) as err:
        client(apikey_server.port, api_key="wrong", max_retries=0).embeddings.create(
            model=e2e.MODEL_NAME, input=["x"])
    assert err.value.status_code == 401
    res = client(apikey_server.port, api_key=API_KEY).embeddings.create(
        model=e2e.MODEL_NAME, input=["x"])
    assert len(res.data[0].embedding) == e2e.DIM


def test_unknown_model_with_strict_model_raises_not_found(strict_server):
    with pytest.raises(openai.NotFoundError) as err:
        client(strict_server.port, max_retries=0).embeddings.create(model="gpt-4", input=["x"])
    assert err.value.status_code == 404
    res = client(strict_server.port).embeddings.create(model="embedder", input=["x"])
    assert res.model == "embedder"
    assert len(res.data[0].embedding) == e2e.DIM
