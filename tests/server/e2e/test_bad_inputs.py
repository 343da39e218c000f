"""Bad requests: each gets its API's error status and body (naming the field
where there is one), and the server answers a good request afterwards.

Statuses follow the error table (docs/server.md, "API layer"; TEI keeps
TEI's own statuses, KServe is 400 for every bad body):
  not JSON / too deep / empty body   OpenAI 400, TEI 400, v2 400
  a field of the wrong type or value OpenAI 400, TEI 422, v2 400
  no inputs, an empty input          OpenAI 400, TEI 400, v2 400
  more inputs than 32                OpenAI 400, TEI 422, v2 400
  body over --payload-limit          413 everywhere
"""

import socket
import struct
import time

import numpy as np
import pytest

import fanin_e2e as e2e

OPENAI = "/v1/embeddings"
TEI = "/embed"
V2 = "/v2/models/minilm/infer"
V2_MLP = "/v2/models/mlp/infer"

CHECK = {OPENAI: e2e.check_openai_error, TEI: e2e.check_tei_error, V2: e2e.check_v2_error,
         V2_MLP: e2e.check_v2_error}
# Per-reason statuses of each API (errors.cpp's table).
INVALID_JSON = {OPENAI: 400, TEI: 400, V2: 400, V2_MLP: 400}
VALIDATION = {OPENAI: 400, TEI: 422, V2: 400, V2_MLP: 400}
EMPTY = {OPENAI: 400, TEI: 400, V2: 400, V2_MLP: 400}
TOO_MANY = {OPENAI: 400, TEI: 422, V2: 400, V2_MLP: 400}


def check(route, resp, statuses, field=None):
    status = statuses[route] if isinstance(statuses, dict) else statuses
    return CHECK[route](resp, status, field)


def send(port, route, body: bytes, headers=None):
    return e2e.post(port, route, body, headers, timeout=e2e.wait_s(60))


DEEP = 10_000


def _ids(cases):
    """field-index ids for (body, field) cases, pytest.param ones included."""
    return [f"{(c.values if hasattr(c, 'values') else c)[1]}-{i}" for i, c in enumerate(cases)]

# ---- not JSON ----

MALFORMED = {
    "truncated": b'{"input": ["a"',
    "not_json": b"embed this please",
    "trailing_comma": b'{"input": ["a"],}',
    "single_quotes": b"{'input': 'a'}",
    "two_documents": b'{"input": "a"} {"input": "b"}',
    "nan_literal": b'{"input": NaN}',
    "deep_array": b'{"input": ' + b"[" * DEEP + b'"a"' + b"]" * DEEP + b"}",
    "deep_object": b'{"input": ' + b'{"a":' * DEEP + b"1" + b"}" * DEEP + b"}",
    "deep_top_level": b"[" * DEEP + b"]" * DEEP,
    "unclosed_deep": b"[" * DEEP,
}


@pytest.mark.parametrize("route", [OPENAI, TEI, V2])
@pytest.mark.parametrize("case", MALFORMED)
def test_malformed_json(port, route, case):
    body = MALFORMED[case]
    if route != OPENAI:
        body = body.replace(b'"input"', b'"inputs"')
    r = send(port, route, body)
    if case == "deep_top_level":
        # Valid JSON once the depth limit is lifted, but not an object anyway.
        check(route, r, {OPENAI: 400, TEI: (400, 422), V2: 400})
    else:
        check(route, r, INVALID_JSON)
    e2e.assert_serves(port)


@pytest.mark.parametrize("route", [OPENAI, TEI, V2])
def test_empty_body(port, route):
    check(route, send(port, route, b""), INVALID_JSON)
    e2e.assert_serves(port)


@pytest.mark.parametrize("route", [OPENAI, TEI, V2])
@pytest.mark.parametrize("body", [b"[]", b'"input"', b"5", b"null"])
def test_body_not_an_object(port, route, body):
    r = send(port, route, body)
    check(route, r, {OPENAI: 400, TEI: (400, 422), V2: 400})
    e2e.assert_serves(port)


# ---- wrong types and values, by field ----

OPENAI_BAD_FIELDS = [
    ({"model": e2e.MODEL_NAME}, "input"),
    ({"input": 5}, "input"),
    ({"input": True}, "input"),
    ({"input": None}, "input"),
    ({"input": {"text": "a"}}, "input"),
    ({"input": [None]}, "input"),
    ({"input": ["a", 5]}, "input"),
    ({"input": [["a"]]}, "input"),
    ({"input": [1.5]}, "input"),
    ({"input": [-1]}, "input"),
    ({"input": [2 ** 31]}, "input"),
    ({"input": ["a"], "model": 5}, "model"),
    ({"input": ["a"], "encoding_format": "hex"}, "encoding_format"),
    ({"input": ["a"], "encoding_format": 5}, "encoding_format"),
    ({"input": ["a"], "dimensions": "128"}, "dimensions"),
    ({"input": ["a"], "dimensions": 0}, "dimensions"),
    ({"input": ["a"], "dimensions": -3}, "dimensions"),
    ({"input": ["a"], "dimensions": 1.5}, "dimensions"),
    ({"input": ["a"], "dimensions": 385}, "dimensions"),
    ({"input": ["a"], "user": 5}, "user"),
]


@pytest.mark.parametrize("body,field", OPENAI_BAD_FIELDS, ids=_ids(OPENAI_BAD_FIELDS))
def test_openai_wrong_field(port, body, field):
    err = check(OPENAI, e2e.post(port, OPENAI, body), VALIDATION, field)
    assert err["type"] == "invalid_request_error", err
    e2e.assert_serves(port)


TEI_BAD_FIELDS = [
    ({"input": ["a"]}, "inputs"),
    ({"inputs": 5}, "inputs"),
    ({"inputs": None}, "inputs"),
    ({"inputs": {"a": 1}}, "inputs"),
    ({"inputs": [None]}, "inputs"),
    ({"inputs": ["a", 5]}, "inputs"),
    ({"inputs": ["a"], "truncate": "yes"}, "truncate"),
    ({"inputs": ["a"], "normalize": "yes"}, "normalize"),
    ({"inputs": ["a"], "truncation_direction": "Up"}, "truncation_direction"),
    ({"inputs": ["a"], "dimensions": 0}, "dimensions"),
    ({"inputs": ["a"], "dimensions": 385}, "dimensions"),
    ({"inputs": ["a"], "prompt_name": 5}, "prompt_name"),
    # Valid TEI, but not supported here (docs/server.md): 422 naming the field.
    ({"inputs": ["a"], "normalize": False}, "normalize"),
    ({"inputs": ["a"], "truncation_direction": "Left"}, "truncation_direction"),
    ({"inputs": ["a"], "prompt_name": "query"}, "prompt_name"),
]


@pytest.mark.parametrize("body,field", TEI_BAD_FIELDS, ids=_ids(TEI_BAD_FIELDS))
def test_tei_wrong_field(port, body, field):
    check(TEI, e2e.post(port, TEI, body), VALIDATION, field)
    e2e.assert_serves(port)


def _text_input(**over):
    t = {"name": "text", "shape": [1], "datatype": "BYTES", "data": ["a"]}
    t.update(over)
    return {"inputs": [{k: v for k, v in t.items() if v is not None}]}


V2_BAD_FIELDS = [
    ({}, "inputs"),
    ({"inputs": 5}, "inputs"),
    ({"inputs": [5]}, "inputs"),
    ({"inputs": []}, "input"),
    (_text_input(name="txt"), "input"),
    (_text_input(name=None), "name"),
    (_text_input(datatype="FP32"), "datatype"),
    (_text_input(datatype=None), "datatype"),
    (_text_input(shape="1"), "shape"),
    (_text_input(shape=None), "shape"),
    (_text_input(shape=[-1]), "shape"),
    (_text_input(shape=[1, 2], data=["a", "b"]), "shape"),
    (_text_input(shape=[1.5]), "shape"),
    (_text_input(data=None), "data"),
    (_text_input(data="a"), "data"),
    (_text_input(data=[1]), "data"),
    (_text_input(data=[None]), "data"),
    (dict(_text_input(), outputs=[{"name": "nope"}]), "output"),
    (dict(_text_input(), outputs="embedding"), "outputs"),
]


@pytest.mark.parametrize("body,field", V2_BAD_FIELDS, ids=_ids(V2_BAD_FIELDS))
def test_v2_wrong_field(port, body, field):
    statuses = VALIDATION if body.get("inputs") != [] else (400,)
    check(V2, e2e.post(port, V2, body), statuses, field)
    e2e.assert_serves(port)


@pytest.mark.parametrize("shape,n", [([3], 2), ([2], 3), ([2, 1], 3), ([4, 1], 1)])
def test_v2_shape_mismatch(port, shape, n):
    r = e2e.post(port, V2, _text_input(shape=shape, data=["a"] * n))
    err = check(V2, r, 400)
    assert "shape" in err["error"] or "data" in err["error"] or "element" in err["error"], err
    e2e.assert_serves(port)


# ---- the MLP's FP32 tensors ----

def _mlp_body(shape, data):
    return {"inputs": [{"name": "input", "shape": shape, "datatype": "FP32", "data": data}]}


@pytest.fixture(scope="module")
def mlp_port(mlp_server):
    return mlp_server.port


def _mlp_serves(port):
    r = e2e.post(port, V2_MLP, _mlp_body([1, e2e.MLP_IN], [0.5] * e2e.MLP_IN))
    assert r.status == 200, f"a good MLP request after the bad one got {r}"
    out = r.json()["outputs"][0]
    assert out["shape"] == [1, e2e.MLP_OUT] and len(out["data"]) == e2e.MLP_OUT


@pytest.mark.parametrize("case", ["nan_literal", "nan_string", "infinity_literal", "overflow",
                                  "string_value", "null_value"])
def test_mlp_bad_values(mlp_port, case):
    good = ", ".join(["0.5"] * (e2e.MLP_IN - 1))
    bad = {"nan_literal": "NaN", "nan_string": '"NaN"', "infinity_literal": "Infinity",
           "overflow": "1e39", "string_value": '"x"', "null_value": "null"}[case]
    body = (f'{{"inputs": [{{"name": "input", "shape": [1, {e2e.MLP_IN}], "datatype": "FP32", '
            f'"data": [{good}, {bad}]}}]}}').encode()
    r = send(mlp_port, V2_MLP, body)
    if case in ("nan_literal", "infinity_literal"):
        check(V2_MLP, r, 400)  # not JSON
    else:
        check(V2_MLP, r, 400, "data")
    _mlp_serves(mlp_port)


@pytest.mark.parametrize("shape,count", [([1, e2e.MLP_IN - 1], e2e.MLP_IN - 1),
                                         ([1, e2e.MLP_IN], e2e.MLP_IN - 1),
                                         ([e2e.MLP_IN], e2e.MLP_IN),
                                         ([2, e2e.MLP_IN], e2e.MLP_IN),
                                         ([1, 2, e2e.MLP_IN // 2], e2e.MLP_IN)])
def test_mlp_shape_mismatch(mlp_port, shape, count):
    r = e2e.post(mlp_port, V2_MLP, _mlp_body(shape, [0.25] * count))
    check(V2_MLP, r, 400)
    _mlp_serves(mlp_port)


def test_mlp_wrong_datatype_and_name(mlp_port):
    body = _mlp_body([1, e2e.MLP_IN], [0.5] * e2e.MLP_IN)
    body["inputs"][0]["datatype"] = "FP16"
    check(V2_MLP, e2e.post(mlp_port, V2_MLP, body), 400, "datatype")
    body = _mlp_body([1, e2e.MLP_IN], [0.5] * e2e.MLP_IN)
    body["inputs"][0]["name"] = "text"
    check(V2_MLP, e2e.post(mlp_port, V2_MLP, body), 400, "input")
    # The MLP is not a text model: /embed and /v1/embeddings do not serve it.
    r = e2e.tei_embed(mlp_port, ["a"])
    assert 400 <= r.status < 500, r
    _mlp_serves(mlp_port)


def test_mlp_nan_in_binary_data(mlp_port):
    x = np.full((1, e2e.MLP_IN), 0.5, dtype=np.float32)
    x[0, 100] = np.nan
    r = _binary_request(mlp_port, V2_MLP, "input", "FP32", [1, e2e.MLP_IN], x.tobytes())
    check(V2_MLP, r, 400, "input")
    x[0, 100] = np.inf
    r = _binary_request(mlp_port, V2_MLP, "input", "FP32", [1, e2e.MLP_IN], x.tobytes())
    check(V2_MLP, r, 400)
    _mlp_serves(mlp_port)


# ---- empty inputs ----

EMPTY_INPUTS = {"empty_list": [], "empty_string": "", "list_of_empty_string": [""],
                "one_empty_among_others": ["a", ""], "empty_token_list": [[]]}


@pytest.mark.parametrize("case", EMPTY_INPUTS)
@pytest.mark.parametrize("route", [OPENAI, TEI])
def test_empty_input(port, route, case):
    value = EMPTY_INPUTS[case]
    body = {"model": e2e.MODEL_NAME, "input": value} if route == OPENAI else {"inputs": value}
    r = e2e.post(port, route, body)
    check(route, r, EMPTY, "input")
    if route == TEI:
        assert r.json()["error_type"] == "Empty", r
    e2e.assert_serves(port)


def test_v2_empty_batch(port):
    r = e2e.post(port, V2, _text_input(shape=[0], data=[]))
    check(V2, r, 400, "text")
    e2e.assert_serves(port)


# ---- too many inputs ----

@pytest.mark.parametrize("route", [OPENAI, TEI, V2])
def test_too_many_inputs(port, route):
    texts = [f"text {i}" for i in range(33)]
    if route == OPENAI:
        r = e2e.openai_embed(port, texts)
    elif route == TEI:
        r = e2e.tei_embed(port, texts)
    else:
        r = e2e.v2_infer(port, e2e.v2_text_body(texts))
    err = check(route, r, TOO_MANY)
    text = str(err)
    assert "33" in text and "32" in text, f"the error does not give the counts: {err}"
    # 32 is fine.
    r = e2e.tei_embed(port, texts[:32])
    assert r.status == 200 and len(r.json()) == 32, r


# ---- invalid UTF-8 (bytes on the wire, not a Python str) ----

@pytest.mark.parametrize("route", [OPENAI, TEI, V2])
@pytest.mark.parametrize("bad", [b"\xff", b"ab\xc3", b"\xed\xa0\x80", b"\xc0\xaf"],
                         ids=["ff", "truncated", "surrogate", "overlong"])
def test_invalid_utf8(port, route, bad):
    text = b'"abc' + bad + b'def"'
    if route == OPENAI:
        body = b'{"model": "%s", "input": [%s]}' % (e2e.MODEL_NAME.encode(), text)
    elif route == TEI:
        body = b'{"inputs": [%s]}' % text
    else:
        body = (b'{"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", '
                b'"data": [%s]}]}' % text)
    r = send(port, route, body)
    # The JSON reader may reject it (400) or the field check (validation).
    err = check(route, r, {OPENAI: 400, TEI: (400, 422), V2: 400})
    assert "utf" in str(err).lower(), f"the error does not say UTF-8: {err}"
    e2e.assert_serves(port)


# ---- body size ----

def _headers_only(port, route, length, extra=""):
    """Sends only the headers of a request claiming `length` body bytes; returns
    (response, seconds)."""
    t0 = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=e2e.wait_s(30)) as s:
        s.sendall((f"POST {route} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                   f"Content-Length: {length}\r\n{extra}\r\n").encode())
        r = e2e.read_http_response(s, e2e.wait_s(10))
    return r, time.monotonic() - t0


@pytest.mark.parametrize("route", [OPENAI, TEI, V2])
def test_huge_content_length_is_413_before_the_body(port, route):
    r, took = _headers_only(port, route, 100_000_000)
    assert r is not None, "the server closed without answering"
    check(route, r, 413)
    assert took < e2e.wait_s(3), f"413 took {took:.1f} s: was the body awaited?"
    e2e.assert_serves(port)


def test_content_length_at_the_limit_is_read(port):
    """2,000,000 bytes is the default limit: a body of exactly that is parsed
    (and rejected for what it says, not for its size)."""
    limit = 2_000_000
    prefix = b'{"inputs": ["a"], "pad": "'
    body = prefix + b"x" * (limit - len(prefix) - 2) + b'"}'
    assert len(body) == limit
    r = send(port, TEI, body)
    assert r.status == 200, r
    r = send(port, TEI, body[:-2] + b'x"}')
    check(TEI, r, 413)
    e2e.assert_serves(port)


def test_body_over_a_small_limit(strict_server):
    port = strict_server.port
    big = b'{"inputs": ["' + b"word " * 20_000 + b'"]}'  # 100 KB > 64 KiB
    check(TEI, send(port, TEI, big), 413)
    check(OPENAI, send(port, OPENAI, big.replace(b'"inputs"', b'"input"')), 413)
    # Chunked: no Content-Length to refuse up front, still 413.
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(big[i:i + 8192]), big[i:i + 8192])
                      for i in range(0, len(big), 8192)) + b"0\r\n\r\n"
    r = e2e.raw(port, b"POST /embed HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Transfer-Encoding: chunked\r\n\r\n" + chunks, timeout=e2e.wait_s(30))
    assert r is not None, "no answer to an over-limit chunked body"
    check(TEI, r, 413)
    r, _ = _headers_only(port, TEI, 70_000)
    check(TEI, r, 413)
    e2e.assert_serves(port)
    # The HTTP layer's own answers are logged like the routes' (--log-level
    # info is the default): the three 413s above on /embed, one on OpenAI's.
    logged = e2e.logged_requests(strict_server, "POST", "/embed")
    assert logged.get(413, 0) >= 3, f"413s logged on /embed: {logged}"
    assert e2e.logged_requests(strict_server, "POST", "/v1/embeddings").get(413, 0) >= 1


def test_chunked_body_is_accepted(port):
    body = b'{"inputs": ["chunked request"]}'
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 7]), body[i:i + 7])
                      for i in range(0, len(body), 7)) + b"0\r\n\r\n"
    r = e2e.raw(port, b"POST /embed HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + chunks)
    assert r is not None and r.status == 200, r
    e2e.assert_unit_vectors(r.json())


def test_malformed_http_is_400(port):
    for data in (b"GARBAGE\r\n\r\n", b"POST /embed HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
                 b"POST /embed HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
                 b"POST /embed HTTP/1.1\r\nBad Header Line\r\n\r\n"):
        try:
            r = e2e.raw(port, data, timeout=e2e.wait_s(10))
        except ConnectionResetError:
            r = None
        assert r is None or r.status == 400, f"{data!r}: {r}"
    e2e.assert_serves(port)


# ---- too-long inputs without truncation ----

def test_too_long_input_without_auto_truncate(strict_server):
    port = strict_server.port
    r = e2e.openai_embed(port, [e2e.LONG_TEXT], model="embedder")
    check(OPENAI, r, 400, "input")
    r = e2e.tei_embed(port, [e2e.LONG_TEXT])
    check(TEI, r, 422, "input")
    r = e2e.v2_infer(port, e2e.v2_text_body([e2e.LONG_TEXT]))
    check(V2, r, 400)
    # 256 tokens exactly is not too long.
    r = e2e.tei_embed(port, [e2e.CUT_TEXT])
    assert r.status == 200, r
    e2e.assert_serves(port)


def test_truncate_true_overrides_no_auto_truncate(strict_server, cli_vectors):
    r = e2e.tei_embed(strict_server.port, [e2e.LONG_TEXT], truncate=True)
    assert r.status == 200, r
    e2e.assert_close_vectors(r.json(), [cli_vectors[e2e.CUT_TEXT]], what="truncate: true")


def test_truncate_false_on_the_default_server(port):
    r = e2e.tei_embed(port, [e2e.LONG_TEXT], truncate=False)
    check(TEI, r, 422, "input")
    e2e.assert_serves(port)


# ---- the binary tensor extension ----

def _binary_request(port, route, name, datatype, shape, data: bytes, header_length=None,
                    json_extra=None):
    header = {"inputs": [{"name": name, "shape": shape, "datatype": datatype,
                          "parameters": {"binary_data_size": len(data)}}]}
    if json_extra:
        header.update(json_extra)
    import json
    js = json.dumps(header).encode()
    hl = str(len(js)) if header_length is None else header_length
    return e2e.post(port, route, js + data, {"Inference-Header-Content-Length": hl,
                                             "Content-Type": "application/octet-stream"},
                    timeout=e2e.wait_s(60))


def _bytes_tensor(texts):
    return b"".join(struct.pack("<I", len(t)) + t for t in texts)


def test_binary_text_input_works(port, cli_vectors, sentences):
    texts = [s.encode() for s in sentences[:3]]
    r = _binary_request(port, V2, "text", "BYTES", [3], _bytes_tensor(texts))
    assert r.status == 200, r
    e2e.assert_close_vectors(e2e.v2_embeddings(r), [cli_vectors[s] for s in sentences[:3]],
                             what="binary BYTES input")


@pytest.mark.parametrize("case", ["not_a_number", "negative", "past_the_end", "inside_the_json",
                                  "empty", "hex", "huge"])
def test_binary_bad_header_length(port, case):
    texts = [b"hello", b"world"]
    data = _bytes_tensor(texts)
    import json
    js_len = len(json.dumps({"inputs": [{"name": "text", "shape": [2], "datatype": "BYTES",
                                         "parameters": {"binary_data_size": len(data)}}]}))
    value = {"not_a_number": "abc", "negative": "-5", "past_the_end": str(js_len + len(data) + 10),
             "inside_the_json": str(js_len // 2), "empty": "", "hex": "0x10",
             "huge": "99999999999999999999999"}[case]
    r = _binary_request(port, V2, "text", "BYTES", [2], data, header_length=value)
    check(V2, r, 400)
    e2e.assert_serves(port)


@pytest.mark.parametrize("case", ["size_over_data", "size_under_data", "length_prefix_past_end",
                                  "invalid_utf8", "count_mismatch"])
def test_binary_bad_tensor_bytes(port, case):
    import json
    texts = [b"hello", b"world"]
    data = _bytes_tensor(texts)
    shape = [2]
    size = len(data)
    if case == "size_over_data":
        size = len(data) + 16
    elif case == "size_under_data":
        size = len(data) - 3
    elif case == "length_prefix_past_end":
        data = struct.pack("<I", 1000) + b"short"
        size = len(data)
        shape = [1]
    elif case == "invalid_utf8":
        data = _bytes_tensor([b"ok", b"\xff\xfe"])
        size = len(data)
    elif case == "count_mismatch":
        shape = [3]
    header = json.dumps({"inputs": [{"name": "text", "shape": shape, "datatype": "BYTES",
                                     "parameters": {"binary_data_size": size}}]}).encode()
    r = e2e.post(port, V2, header + data, {"Inference-Header-Content-Length": str(len(header)),
                                           "Content-Type": "application/octet-stream"})
    check(V2, r, 400)
    e2e.assert_serves(port)
