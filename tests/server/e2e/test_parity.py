"""The three embedding routes give the vectors of `fanin embed` and of
sentence-transformers (tests/data/minilm_refs.json)."""

import numpy as np
import pytest

import fanin_e2e as e2e


def _openai_vectors(port, texts):
    r = e2e.openai_embed(port, texts, encoding_format="float")
    assert r.status == 200, r
    body = r.json()
    assert body["object"] == "list"
    assert [d["index"] for d in body["data"]] == list(range(len(texts)))
    assert all(d["object"] == "embedding" for d in body["data"])
    return np.asarray([d["embedding"] for d in body["data"]], dtype=np.float32)


def _tei_vectors(port, texts):
    r = e2e.tei_embed(port, texts)
    assert r.status == 200, r
    return np.asarray(r.json(), dtype=np.float32)


def _v2_vectors(port, texts):
    r = e2e.v2_infer(port, e2e.v2_text_body(texts))
    assert r.status == 200, r
    body = r.json()
    assert body.get("model_name") in ("minilm", e2e.MODEL_NAME), body.get("model_name")
    emb = e2e.v2_embeddings(r)
    assert emb.shape == (len(texts), e2e.DIM)
    return emb


ROUTES = {"openai": _openai_vectors, "tei": _tei_vectors, "v2": _v2_vectors}


@pytest.mark.parametrize("route", ROUTES)
def test_route_matches_fanin_embed_and_sentence_transformers(port, sentences, cli_vectors, refs,
                                                             route):
    """One request of every test sentence (all of minilm_refs.json's but the
    empty one): cosine >= 0.9999 to `fanin embed` and to sentence-transformers."""
    assert set(refs) == set(sentences), "minilm_refs.json is not of embedding_sentences.txt"
    got = ROUTES[route](port, sentences)
    e2e.assert_unit_vectors(got)
    e2e.assert_close_vectors(got, [cli_vectors[s] for s in sentences], what=f"{route} vs fanin embed")
    e2e.assert_close_vectors(got, [refs[s] for s in sentences], what=f"{route} vs minilm_refs.json")


@pytest.mark.parametrize("route", ROUTES)
def test_one_sentence_at_a_time_equals_the_batch(port, sentences, cli_vectors, route):
    """A sentence alone gives the vector it gets inside a batch (padding and
    batching do not leak into it)."""
    for s in sentences[:6] + sentences[-4:]:
        got = ROUTES[route](port, [s])
        e2e.assert_close_vectors(got, [cli_vectors[s]], what=f"{route} alone: {s[:40]!r}")


def test_single_string_input(port, cli_vectors, sentences):
    """OpenAI and TEI take one string as well as a list of them."""
    s = sentences[0]
    r = e2e.openai_embed(port, s, encoding_format="float")
    assert r.status == 200, r
    assert len(r.json()["data"]) == 1
    e2e.assert_close_vectors([r.json()["data"][0]["embedding"]], [cli_vectors[s]], what="openai str")
    r = e2e.tei_embed(port, s)
    assert r.status == 200, r
    e2e.assert_close_vectors(r.json(), [cli_vectors[s]], what="tei str")


def test_v2_shape_n_by_1(port, sentences, cli_vectors):
    texts = sentences[:5]
    r = e2e.v2_infer(port, e2e.v2_text_body(texts, shape=[len(texts), 1]))
    assert r.status == 200, r
    e2e.assert_close_vectors(e2e.v2_embeddings(r), [cli_vectors[t] for t in texts], what="v2 [n,1]")


def test_v2_model_by_folder_name(port, sentences, cli_vectors):
    texts = sentences[:3]
    r = e2e.v2_infer(port, e2e.v2_text_body(texts), model=e2e.MODEL_NAME)
    assert r.status == 200, r
    e2e.assert_close_vectors(e2e.v2_embeddings(r), [cli_vectors[t] for t in texts],
                             what="v2 by folder name")


def test_openai_alias_route(port, sentences, cli_vectors):
    """POST /embeddings is /v1/embeddings."""
    r = e2e.post(port, "/embeddings", {"model": e2e.MODEL_NAME, "input": sentences[:2],
                                      "encoding_format": "float"})
    assert r.status == 200, r
    got = [d["embedding"] for d in r.json()["data"]]
    e2e.assert_close_vectors(got, [cli_vectors[s] for s in sentences[:2]], what="/embeddings")


def test_long_input_is_truncated_to_256_tokens(port, cli_vectors):
    """By default an input over 256 tokens is cut: its vector is the one of the
    text cut at 256 tokens, on every route, and fanin embed agrees."""
    want = cli_vectors[e2e.CUT_TEXT]
    e2e.assert_close_vectors([cli_vectors[e2e.LONG_TEXT]], [want], what="fanin embed long vs cut")
    for route, fn in ROUTES.items():
        got = fn(port, [e2e.LONG_TEXT])
        e2e.assert_close_vectors(got, [want], what=f"{route}: long input vs cut at 256 tokens")
    # And the cut is at 256, not earlier: the text cut at 200 tokens is further.
    at_200 = " ".join(e2e.CUT_TEXT.split(" ")[:198])
    long_vec = _tei_vectors(port, [e2e.LONG_TEXT])[0]
    assert e2e.cosine(long_vec, _tei_vectors(port, [at_200])[0]) < e2e.cosine(long_vec, want), \
        "the long input is cut before 256 tokens"


def test_token_ids_embed_like_their_text(port, sentences, cli_vectors):
    """`inputs`/`input` as token ids (from /tokenize) give the text's vector;
    ids without [CLS]/[SEP] get them added."""
    texts = sentences[:3]
    r = e2e.post(port, "/tokenize", {"inputs": texts})
    assert r.status == 200, r
    ids = [[t["id"] for t in toks] for toks in r.json()]
    want = [cli_vectors[t] for t in texts]
    r = e2e.tei_embed(port, ids)
    assert r.status == 200, r
    e2e.assert_close_vectors(r.json(), want, what="TEI token ids")
    r = e2e.openai_embed(port, ids, encoding_format="float")
    assert r.status == 200, r
    e2e.assert_close_vectors([d["embedding"] for d in r.json()["data"]], want, what="OpenAI token ids")
    r = e2e.tei_embed(port, [i[1:-1] for i in ids])
    assert r.status == 200, r
    e2e.assert_close_vectors(r.json(), want, what="token ids without [CLS]/[SEP]")
    # One list of ints is one input.
    r = e2e.openai_embed(port, ids[0], encoding_format="float")
    assert r.status == 200 and len(r.json()["data"]) == 1, r
    e2e.assert_close_vectors([r.json()["data"][0]["embedding"]], want[:1], what="OpenAI [int]")


def test_v2_request_id_is_echoed(port):
    body = e2e.v2_text_body(["an id"])
    body["id"] = "req-42"
    r = e2e.v2_infer(port, body)
    assert r.status == 200 and r.json().get("id") == "req-42", r


def test_tei_dimensions_is_a_renormalised_prefix(port, sentences, cli_vectors):
    texts = sentences[:3]
    r = e2e.tei_embed(port, texts, dimensions=128)
    assert r.status == 200, r
    got = np.asarray(r.json(), dtype=np.float64)
    e2e.assert_unit_vectors(got, dim=128)
    # Against the full vectors of the same request (the same batch, so the
    # same numbers, bf16 matmul or not), and close to fanin embed's.
    for g, full, t in zip(got, _tei_vectors(port, texts), texts):
        p = np.asarray(full[:128], dtype=np.float64)
        np.testing.assert_allclose(g, p / np.linalg.norm(p), atol=1e-5)
        c = cli_vectors[t][:128].astype(np.float64)
        assert e2e.cosine(g, c / np.linalg.norm(c)) >= 0.9999


def test_v2_mlp_nested_data_equals_flat(mlp_server):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, e2e.MLP_IN)).astype(np.float32)
    outs = []
    for data in (x.reshape(-1).tolist(), x.tolist()):
        body = {"inputs": [{"name": "input", "shape": [2, e2e.MLP_IN], "datatype": "FP32",
                            "data": data}]}
        r = e2e.post(mlp_server.port, "/v2/models/mlp/infer", body)
        assert r.status == 200, r
        o = r.json()["outputs"][0]
        assert o["name"] == "output" and o["shape"] == [2, e2e.MLP_OUT], o
        outs.append(np.asarray(o["data"], dtype=np.float32))
    np.testing.assert_allclose(outs[0], outs[1], rtol=1e-6, atol=1e-6)
