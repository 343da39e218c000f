"""SentenceEncoder.encode as sentence-transformers' encode: values, shapes, options."""

from __future__ import annotations

import numpy as np
import pytest

import fanin
from conftest import cosine


def test_parity_with_sentence_transformers(encoder, refs):
    got = encoder.encode(refs["sentences"])
    assert got.dtype == np.float32
    assert got.shape == refs["embeddings"].shape == (len(refs["sentences"]), 384)
    worst = min(cosine(g, r) for g, r in zip(got, refs["embeddings"]))
    assert worst >= 0.9999, worst


def test_order_and_chunking_do_not_change_rows(encoder, refs):
    whole = encoder.encode(refs["sentences"], batch_size=32)
    small = encoder.encode(refs["sentences"], batch_size=3)
    one_by_one = np.stack([encoder.encode(s) for s in refs["sentences"]])
    for other in (small, one_by_one):
        assert min(cosine(a, b) for a, b in zip(whole, other)) >= 0.99999


def test_shapes(encoder):
    assert encoder.encode("hello world").shape == (384,)
    assert encoder.encode(["hello world"]).shape == (1, 384)
    assert encoder.encode([]).shape == (0, 384)
    assert encoder.encode(("a", "b")).shape == (2, 384)
    assert encoder.get_embedding_dimension() == 384
    assert encoder.get_sentence_embedding_dimension() == 384
    assert encoder.max_seq_length == 256


def test_result_owns_its_memory(encoder):
    out = encoder.encode(["hello world", "x"])
    assert out.flags["C_CONTIGUOUS"] and out.flags["WRITEABLE"]
    assert out.base is not None  # the capsule holding fanin's buffer, not a copy
    out[:] = 0  # ours to change
    # One string (the fast path): a [dim] array of its own, not a row of a view.
    one = encoder.encode("hello world")
    assert one.shape == (384,) and one.dtype == np.float32
    assert one.flags["OWNDATA"] and one.flags["WRITEABLE"] and one.base is None
    np.testing.assert_allclose(one, encoder.encode(["hello world"])[0], rtol=1e-6, atol=1e-7)
    one[:] = 0
    assert encoder.encode("hello world")[0] != 0  # a new array each call


def test_truncate_and_normalize(encoder):
    full = encoder.encode(["a cat sat on the mat"])
    np.testing.assert_allclose(np.linalg.norm(full, axis=1), 1.0, rtol=1e-5)
    cut = encoder.encode(["a cat sat on the mat"], truncate_dim=64)
    assert cut.shape == (1, 64)
    np.testing.assert_allclose(cut, full[:, :64])
    cut_norm = encoder.encode(["a cat sat on the mat"], truncate_dim=64, normalize_embeddings=True)
    np.testing.assert_allclose(np.linalg.norm(cut_norm, axis=1), 1.0, rtol=1e-5)
    with pytest.raises(fanin.InvalidArgument):
        encoder.encode("x", truncate_dim=1000)


def test_output_forms(encoder):
    rows = encoder.encode(["a", "b"], convert_to_numpy=False)
    assert isinstance(rows, list) and len(rows) == 2 and rows[0].shape == (384,)
    with_prompt = encoder.encode("cat", prompt="query: ")
    np.testing.assert_allclose(with_prompt, encoder.encode("query: cat"), rtol=1e-6)


def test_bytes_and_str_agree(encoder):
    np.testing.assert_allclose(encoder.encode("héllo"), encoder.encode("héllo".encode()), rtol=1e-6)


def test_long_input_is_cut_to_max_seq_length(encoder):
    long_text = "word " * 1000
    tok = encoder.tokenize([long_text, "hello world"])
    assert tok["input_ids"].shape == (2, 256)
    assert tok["input_ids"][0, 0] == 101 and tok["input_ids"][0, -1] == 102  # [CLS] ... [SEP]
    assert tok["attention_mask"][1].sum() == 4
    assert encoder.encode(long_text).shape == (384,)


def test_tokenize_matches_bert_ids(encoder):
    tok = encoder.tokenize("hello world")
    assert tok["input_ids"].tolist() == [[101, 7592, 2088, 102]]
    assert tok["input_ids"].dtype == np.int64


def test_max_seq_length_option(model_dir):
    with fanin.SentenceEncoder(model_dir, max_seq_length=8, workers=1) as enc:
        assert enc.max_seq_length == 8
        assert enc.tokenize("one two three four five six seven eight")["input_ids"].shape == (1, 8)


def test_info_metrics_and_context_manager(model_dir):
    with fanin.SentenceEncoder(model_dir, workers=2, max_batch_size=16) as enc:
        enc.encode(["a", "b", "c"])
        info = enc.info()
        assert info["kind"] == "text" and info["output_shape"] == (384,)
        assert info["max_batch_size"] == 16 and info["devices"] == ["cpu"]
        m = enc.metrics()
        assert m["submitted"] == 3 and m["completed"] == 3 and m["failed"] == 0
        assert len(m["workers"]) == 2
        assert "fanin_" in enc.prometheus()
        assert enc.ready()
    assert not enc.ready()
    with pytest.raises(fanin.Cancelled):
        enc.encode("after the with block")


def test_cpu_workers_default_to_the_cores(model_dir):
    import os

    want = min(len(os.sched_getaffinity(0)), fanin._fanin.free_stream_slots("cpu"))
    with fanin.SentenceEncoder(model_dir) as enc:
        assert len(enc.metrics()["workers"]) == want


def test_engine_options_object(model_dir):
    o = fanin.EngineOptions(workers=1, max_batch_size=8, max_queue_delay=0.001)
    assert o.max_queue_delay == pytest.approx(0.001)
    with fanin.SentenceEncoder(model_dir, options=o, max_batch_size=4) as enc:
        assert enc.info()["max_batch_size"] == 4
        assert len(enc.metrics()["workers"]) == 1
    assert o.max_batch_size == 8  # the caller's options are not changed
    with pytest.raises(TypeError):
        fanin.EngineOptions(no_such_option=1)
    assert fanin.EngineOptions().adaptive_queue_delay is True
    fixed = fanin.EngineOptions(adaptive_queue_delay=False)
    assert fixed.adaptive_queue_delay is False
    assert "adaptive_queue_delay=False" in repr(fixed)
    with pytest.raises(TypeError):
        fanin.SentenceEncoder(model_dir, no_such_option=1)
