"""The informational routes, health, and what the server answers for routes
and methods it does not have."""

import pytest

import fanin_e2e as e2e


def test_health_while_loading_and_after(server):
    """Before 'fanin: ready' only liveness is 200; after it everything is."""
    for path in ("/v2/health/live", "/health", "/v2/health/ready"):
        seen = [status for p, status in server.loading_probes if p == path]
        if path == "/v2/health/live":
            assert all(s == 200 for s in seen), f"{path} while the model loaded: {seen}"
        else:
            # The last probe may race the ready line (readiness, then the print).
            assert all(s == 503 for s in seen[:-1]) and all(s in (200, 503) for s in seen[-1:]), \
                f"{path} while the model loaded: {seen}"
    for path in ("/health", "/v2/health/live", "/v2/health/ready", "/v2/models/minilm/ready"):
        r = e2e.get(server.port, path)
        assert r.status == 200, f"{path}: {r}"


def test_info(port):
    r = e2e.get(port, "/info")
    assert r.status == 200, r
    info = r.json()
    assert info["model_id"] in (e2e.MODEL_NAME, str(e2e.MODEL_DIR)), info
    assert info["max_input_length"] == e2e.MAX_TOKENS, info
    assert info["max_client_batch_size"] == 32, info
    assert info["max_concurrent_requests"] == 512, info
    assert info["auto_truncate"] is True, info
    assert isinstance(info["version"], str), info


def test_tokenize_and_decode(port):
    r = e2e.post(port, "/tokenize", {"inputs": "hello world"})
    assert r.status == 200, r
    toks = r.json()
    assert isinstance(toks, list) and len(toks) == 1, toks
    ids = [t["id"] for t in toks[0]]
    assert ids[0] == 101 and ids[-1] == 102, toks  # [CLS] ... [SEP]
    assert [t["special"] for t in toks[0]] == [True] + [False] * (len(ids) - 2) + [True]
    assert [t["text"] for t in toks[0][1:-1]] == ["hello", "world"], toks
    r = e2e.post(port, "/tokenize", {"inputs": ["hello world", "a"]})
    assert r.status == 200 and len(r.json()) == 2, r
    r = e2e.post(port, "/decode", {"ids": ids})
    assert r.status == 200, r
    decoded = r.json()
    if isinstance(decoded, list):
        decoded = decoded[0]
    assert decoded == "hello world", r


def test_tokenize_counts_the_long_input(port):
    r = e2e.post(port, "/tokenize", {"inputs": e2e.LONG_TEXT})
    assert r.status == 200, r
    n = len(r.json()[0])
    assert n in (402, e2e.MAX_TOKENS), f"{n} tokens for 400 one-token words"


def test_openai_models(port):
    r = e2e.get(port, "/v1/models")
    assert r.status == 200, r
    body = r.json()
    assert body["object"] == "list"
    assert [m["id"] for m in body["data"]] == [e2e.MODEL_NAME], body
    assert body["data"][0]["object"] == "model"


def test_v2_server_and_model_metadata(port):
    r = e2e.get(port, "/v2")
    assert r.status == 200, r
    meta = r.json()
    assert meta["name"] and meta["version"] and isinstance(meta["extensions"], list), meta
    for model in ("minilm", e2e.MODEL_NAME):
        r = e2e.get(port, f"/v2/models/{model}")
        assert r.status == 200, r
        md = r.json()
        assert md["inputs"][0]["name"] == "text" and md["inputs"][0]["datatype"] == "BYTES", md
        assert md["outputs"][0]["name"] == "embedding", md
        r = e2e.get(port, f"/v2/models/{model}/config")
        assert r.status == 200, r
        assert r.json().get("name"), r


def test_v2_unknown_model(port):
    r = e2e.get(port, "/v2/models/nope")
    e2e.check_v2_error(r, 404)
    r = e2e.get(port, "/v2/models/nope/ready")
    assert r.status in (400, 404), r
    r = e2e.v2_infer(port, e2e.v2_text_body(["a"]), model="nope")
    e2e.check_v2_error(r, 404)
    e2e.assert_serves(port)


def test_tei_timing_headers(port):
    r = e2e.tei_embed(port, ["hello world"])
    assert r.status == 200, r
    for h in ("x-compute-type", "x-compute-time", "x-compute-tokens", "x-total-time",
              "x-queue-time", "x-inference-time"):
        assert r.header(h) is not None, f"no {h} in {r.headers}"
    assert int(r.header("x-compute-tokens")) == 4, r.headers  # [CLS] hello world [SEP]


@pytest.mark.parametrize("method,path", [
    ("GET", "/nope"), ("POST", "/nope"), ("GET", "/v1/nope"), ("POST", "/v1/embeddingz"),
    ("GET", "/v2/models/minilm/nope"), ("GET", "/" + "a" * 3000),
])
def test_unknown_route_is_404(port, method, path):
    r = e2e.request(port, method, path, b"{}" if method == "POST" else None)
    assert r.status == 404, r
    e2e.assert_serves(port)


@pytest.mark.parametrize("method,path", [
    ("GET", "/v1/embeddings"), ("GET", "/embed"), ("PUT", "/embed"), ("DELETE", "/v1/models"),
    ("POST", "/v1/models"), ("POST", "/health"), ("GET", "/v2/models/minilm/infer"),
    ("POST", "/metrics"), ("PATCH", "/info"),
])
def test_wrong_method_is_405(port, method, path):
    r = e2e.request(port, method, path, b"{}" if method in ("POST", "PUT", "PATCH") else None)
    assert r.status == 405, r
    allow = r.header("allow")
    assert allow, f"405 without Allow: {r.headers}"
    assert method not in [m.strip() for m in allow.split(",")], allow
    e2e.assert_serves(port)


def test_keep_alive_serves_many_requests_on_one_connection(port):
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=e2e.wait_s(60))
    try:
        for i in range(20):
            r = e2e.request(port, "POST", "/embed", {"inputs": f"sentence {i}"}, conn=conn)
            assert r.status == 200, r
            e2e.assert_unit_vectors(r.json())
    finally:
        conn.close()


def test_pipelined_requests_are_answered_in_order(port):
    body = [b'{"inputs":"%d"}' % i for i in range(3)]
    data = b"".join(b"POST /embed HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (len(b), b) for b in body)
    import socket
    with socket.create_connection(("127.0.0.1", port), timeout=e2e.wait_s(30)) as s:
        s.sendall(data)
        got = [e2e.read_http_response(s, e2e.wait_s(30)) for _ in body]
    assert all(r is not None and r.status == 200 for r in got), got
    # Each answer is its own request's: "0", "1", "2" embed differently.
    vecs = [r.json()[0] for r in got]
    assert e2e.cosine(vecs[0], vecs[1]) < 0.9999 and e2e.cosine(vecs[1], vecs[2]) < 0.9999
    solo = [e2e.tei_embed(port, str(i)).json()[0] for i in range(3)]
    for v, w in zip(vecs, solo):
        assert e2e.cosine(v, w) > 0.9999


def test_expect_100_continue(port):
    """curl sends `Expect: 100-continue` for bodies over 1 KiB and waits for it."""
    import socket
    body = b'{"inputs": ["' + b"word " * 300 + b'"]}'
    with socket.create_connection(("127.0.0.1", port), timeout=e2e.wait_s(30)) as s:
        s.sendall(b"POST /embed HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Expect: 100-continue\r\nContent-Length: %d\r\n\r\n" % len(body))
        interim = e2e.read_http_response(s, e2e.wait_s(5))
        assert interim is not None and interim.status == 100, interim
        s.sendall(body)
        r = e2e.read_http_response(s, e2e.wait_s(30))
    assert r is not None and r.status == 200, r
    e2e.assert_unit_vectors(r.json())


def test_http_1_0_gets_an_answer_and_a_close(port):
    r = e2e.raw(port, b"GET /health HTTP/1.0\r\n\r\n")
    assert r is not None and r.status == 200, r
    body = b'{"inputs": "one point oh"}'
    r = e2e.raw(port, b"POST /embed HTTP/1.0\r\nContent-Type: application/json\r\n"
                      b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    assert r is not None and r.status == 200, r
    e2e.assert_unit_vectors(r.json())


def test_header_over_the_limit_is_431(port):
    import socket
    with socket.create_connection(("127.0.0.1", port), timeout=e2e.wait_s(30)) as s:
        try:
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 32768 + b"\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        r = e2e.read_http_response(s, e2e.wait_s(10))
    assert r is not None and r.status == 431, r
    e2e.assert_serves(port)


@pytest.mark.parametrize("value", ["abc", "-1", "0", "1.5", ""])
def test_bad_request_timeout_header(port, value):
    r = e2e.tei_embed(port, ["a"], headers={"X-Request-Timeout-Ms": value})
    e2e.check_tei_error(r, 422, "X-Request-Timeout-Ms")
    e2e.assert_serves(port)
