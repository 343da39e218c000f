"""Slow, broken and many clients against one server (--header-timeout-ms 500,
--body-timeout-ms 1000, --idle-timeout-ms 1500).

Under a sanitizer (FANIN_SANITIZE) the client counts shrink (fanin_e2e.LOAD);
the assertions stay the same."""

import http.client
import socket
import struct
import threading
import time

import numpy as np
import pytest

import fanin_e2e as e2e

HEADER_TIMEOUT_S = 0.5
# How late past --header-timeout-ms a disconnect may come (timer granularity,
# a loaded machine, a sanitizer).
SLACK_S = e2e.wait_s(2.0)


def _wait_closed(sock: socket.socket, limit: float, drip: bytes = b"") -> tuple[float, bytes]:
    """Seconds until the peer closes the connection (EOF or reset), and what it
    sent first; drip: send one byte of it every 0.1 s meanwhile."""
    t0 = time.monotonic()
    got = b""
    sock.settimeout(0.1)
    i = 0
    while time.monotonic() - t0 < limit:
        try:
            chunk = sock.recv(4096)
            if not chunk:
                return time.monotonic() - t0, got
            got += chunk
        except socket.timeout:
            if drip and i < len(drip):
                try:
                    sock.sendall(drip[i:i + 1])
                except (BrokenPipeError, ConnectionResetError):
                    return time.monotonic() - t0, got
                i += 1
        except ConnectionResetError:
            return time.monotonic() - t0, got
    return float("inf"), got


def _assert_dropped(took: float, got: bytes, what: str):
    assert took <= HEADER_TIMEOUT_S + SLACK_S, \
        f"{what}: still connected {took:.2f} s after it stalled (--header-timeout-ms 500)"
    # Closing silently or with a 408 are both fine; anything else is not.
    assert got == b"" or got.startswith(b"HTTP/1.1 408"), f"{what}: the server sent {got[:200]!r}"


def test_half_headers_then_stall_is_disconnected(load_server):
    with socket.create_connection(("127.0.0.1", load_server.port)) as s:
        s.sendall(b"POST /embed HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Ty")
        took, got = _wait_closed(s, HEADER_TIMEOUT_S + SLACK_S + 5)
    _assert_dropped(took, got, "half headers")
    assert took >= HEADER_TIMEOUT_S * 0.8, f"dropped after {took:.2f} s, before the timeout"
    e2e.assert_serves(load_server.port)


def test_silent_connection_is_disconnected(load_server):
    with socket.create_connection(("127.0.0.1", load_server.port)) as s:
        took, got = _wait_closed(s, HEADER_TIMEOUT_S + SLACK_S + 5)
    _assert_dropped(took, got, "a connection that sends nothing")


def test_dripping_headers_are_disconnected(load_server):
    """One header byte every 0.1 s keeps the connection busy but the headers
    never end: the timeout counts from the first byte, not from the last."""
    drip = b"Host: 127.0.0.1\r\n" + b"X-Slow: " + b"a" * 200
    with socket.create_connection(("127.0.0.1", load_server.port)) as s:
        s.sendall(b"GET /health HTTP/1.1\r\n")
        took, got = _wait_closed(s, HEADER_TIMEOUT_S + SLACK_S + 5, drip=drip)
    _assert_dropped(took, got, "dripping headers")


def test_stalled_body_is_408_and_closed(load_server):
    """Headers done, half the body, then nothing: 408 within --body-timeout-ms."""
    body = b'{"inputs": ["' + b"a" * 100 + b'"]}'
    with socket.create_connection(("127.0.0.1", load_server.port)) as s:
        s.sendall(b"POST /embed HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: %d\r\n\r\n" % len(body) + body[:50])
        t0 = time.monotonic()
        r = e2e.read_http_response(s, 1.0 + SLACK_S + 5)
        took = time.monotonic() - t0
    assert r is not None, "closed without a 408"
    e2e.check_tei_error(r, 408)
    assert 0.8 <= took <= 1.0 + SLACK_S, f"408 after {took:.2f} s (--body-timeout-ms 1000)"
    e2e.assert_serves(load_server.port)


def test_idle_keep_alive_connection_is_closed(load_server):
    """A keep-alive connection idle past --idle-timeout-ms is closed, quietly."""
    with socket.create_connection(("127.0.0.1", load_server.port)) as s:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        r = e2e.read_http_response(s, e2e.wait_s(10))
        assert r is not None and r.status == 200, r
        assert (r.header("connection") or "").lower() != "close", r.headers
        took, got = _wait_closed(s, 1.5 + SLACK_S + 5)
    assert got == b"", f"the server sent {got[:200]!r} on an idle connection"
    assert 1.2 <= took <= 1.5 + SLACK_S, f"closed {took:.2f} s after idling (--idle-timeout-ms 1500)"


def test_stalled_clients_do_not_block_others(load_server):
    port = load_server.port
    stalled = []
    try:
        for _ in range(e2e.scaled_clients(64)):
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(b"POST /embed HTTP/1.1\r\nHost: x\r\n")
            stalled.append(s)
        t0 = time.monotonic()
        e2e.assert_serves(port)
        assert time.monotonic() - t0 < e2e.wait_s(5)
        # And each stalled one is dropped in time.
        time.sleep(HEADER_TIMEOUT_S + SLACK_S)
        for s in stalled:
            took, got = _wait_closed(s, 1.0)
            _assert_dropped(took, got, "one of many stalled")
    finally:
        for s in stalled:
            s.close()
    e2e.assert_serves(port)


def _heavy_request(port, n=8 if e2e.LOAD == 1.0 else 2) -> bytes:
    import json
    body = json.dumps({"inputs": [e2e.LONG_TEXT] * n}).encode()
    return (b"POST /embed HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body)) + body


@pytest.mark.parametrize("how", ["close", "reset", "mid_body", "after_headers"])
def test_client_gone_before_the_answer(load_server, how):
    """Clients that leave before their answer: the server keeps serving the
    others, and /metrics still answers."""
    port = load_server.port
    req = _heavy_request(port)
    for _ in range(3 if e2e.LOAD == 1.0 else 2):
        s = socket.create_connection(("127.0.0.1", port))
        if how == "mid_body":
            s.sendall(req[: len(req) // 2])
        elif how == "after_headers":
            s.sendall(req.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n")
        else:
            s.sendall(req)
        if how == "reset":
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        time.sleep(0.02)
        s.close()
    # While those are (or were) being computed, others are served.
    e2e.assert_serves(port)
    m = e2e.metrics(port)
    assert m.has("te_request_count")
    time.sleep(0.5)
    assert load_server.alive(), f"the server died:\n{load_server.tail()}"
    e2e.assert_serves(port)
    e2e.metrics(port)


def _batches_over_one(m: e2e.Metrics) -> float:
    """Batches of more than one request so far (fanin_batch_fill)."""
    ones = m.value("fanin_batch_fill_bucket", le="1")
    return m.value("fanin_batch_fill_count") - ones


def test_many_concurrent_clients(load_server, sentences, cli_vectors):
    """256 clients at once, each sending single-sentence requests (/embed,
    some /v1/embeddings and v2 infer) on its own keep-alive connection: every
    answer is 200 with its own sentence's vector, and the engine batched
    requests of different clients together."""
    port = load_server.port
    clients = e2e.scaled_clients(256, minimum=16)
    per_client = 3 if e2e.LOAD == 1.0 else 2
    # Short sentences: a batch is padded to its longest input, and the point
    # here is the batching of many clients, not long inputs.
    short = [s for s in sentences if len(s.encode()) <= 64]
    assert len(short) >= 10
    before = e2e.metrics(port)

    def client(i):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=e2e.wait_s(120))
        out = []
        try:
            for k in range(per_client):
                text = short[(i + k) % len(short)]
                # Mostly TEI; every fourth client OpenAI, every eighth v2.
                if i % 8 == 7:
                    r = e2e.request(port, "POST", "/v2/models/minilm/infer",
                                    e2e.v2_text_body([text]), conn=conn)
                    r.vector = e2e.v2_embeddings(r) if r.status == 200 else None
                elif i % 4 == 3:
                    r = e2e.request(port, "POST", "/v1/embeddings",
                                    {"input": text, "encoding_format": "float"}, conn=conn)
                    r.vector = [r.json()["data"][0]["embedding"]] if r.status == 200 else None
                else:
                    r = e2e.request(port, "POST", "/embed", {"inputs": text}, conn=conn)
                    r.vector = r.json() if r.status == 200 else None
                out.append((text, r))
        finally:
            conn.close()
        return out

    t0 = time.monotonic()
    results = e2e.run_threads(clients, client, timeout=e2e.wait_s(240))
    took = time.monotonic() - t0
    failures = [r for r in results if not isinstance(r, list)]
    assert not failures, f"{len(failures)} clients failed, e.g. {failures[0]!r}"
    statuses = {}
    for out in results:
        for text, r in out:
            statuses[r.status] = statuses.get(r.status, 0) + 1
            if r.status == 200:
                v = np.asarray(r.vector, dtype=np.float32)
                e2e.assert_close_vectors(v, [cli_vectors[text]], what=f"concurrent {text[:30]!r}")
    assert statuses == {200: clients * per_client}, statuses
    after = e2e.metrics(port)
    grew = _batches_over_one(after) - _batches_over_one(before)
    assert grew > 0, "no batch held more than one request: the queue never saw the clients together"
    mean_fill = ((after.value("fanin_batch_fill_sum") - before.value("fanin_batch_fill_sum")) /
                 max(1.0, after.value("fanin_batch_fill_count") - before.value("fanin_batch_fill_count")))
    print(f"{clients} clients x {per_client}: {took:.1f} s, {grew:.0f} batches of >1, "
          f"mean fill {mean_fill:.1f}")
    assert after.value("te_request_count") - before.value("te_request_count") >= clients * per_client
    e2e.assert_serves(port)


LOAD_INPUTS = 4 if e2e.LOAD == 1.0 else 1


def test_request_timeout_header_under_load(deadline_server):
    """X-Request-Timeout-Ms: 1 while the server's one worker is kept busy:
    requests that miss it get 504 with the API's error body; the rest 200; a
    generous timeout is 200."""
    port = deadline_server.port
    stop = threading.Event()
    load_errors = []

    def background():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=e2e.wait_s(120))
        deadline = time.monotonic() + e2e.wait_s(60)
        try:
            while not stop.is_set() and time.monotonic() < deadline:
                r = e2e.request(port, "POST", "/embed", {"inputs": [e2e.LONG_TEXT] * LOAD_INPUTS},
                                conn=conn)
                if r.status != 200:
                    load_errors.append(r)
        except Exception as err:  # noqa: BLE001
            load_errors.append(err)
        finally:
            conn.close()

    loaders = [threading.Thread(target=background, daemon=True)
               for _ in range(max(2, int(4 * e2e.LOAD)))]
    for t in loaders:
        t.start()
    try:
        time.sleep(0.3)
        n = 8
        hdr = {"X-Request-Timeout-Ms": "1"}
        tei = e2e.run_threads(n, lambda i: e2e.tei_embed(port, [e2e.LONG_TEXT], headers=hdr,
                                                         timeout=e2e.wait_s(60)),
                              timeout=e2e.wait_s(120))
        oai = e2e.run_threads(n, lambda i: e2e.openai_embed(port, [e2e.LONG_TEXT], headers=hdr,
                                                            timeout=e2e.wait_s(60)),
                              timeout=e2e.wait_s(120))
        generous = e2e.tei_embed(port, ["plenty of time"], headers={"X-Request-Timeout-Ms": "600000"},
                                 timeout=e2e.wait_s(120))
    finally:
        stop.set()
        for t in loaders:
            t.join(e2e.wait_s(120))
    for results, check in ((tei, e2e.check_tei_error), (oai, e2e.check_openai_error)):
        for r in results:
            assert isinstance(r, e2e.Response), f"a client failed: {r!r}"
            assert r.status in (200, 504), r
        timed_out = [r for r in results if r.status == 504]
        assert timed_out, f"no request missed a 1 ms timeout under load: {[r.status for r in results]}"
        for r in timed_out:
            check(r, 504)
    assert generous.status == 200, generous
    assert not load_errors, f"the background load failed: {load_errors[:3]}"
    e2e.assert_serves(port)


def test_garbage_bytes_do_not_break_the_server(load_server):
    """A few hundred connections of seeded random bytes and mangled requests:
    each is answered (4xx) or closed, and the server serves on."""
    import random
    rng = random.Random(1234)
    port = load_server.port
    good = (b"POST /embed HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 17\r\n\r\n{\"inputs\": \"ab\"}")
    cases = []
    for _ in range(e2e.scaled_clients(300, minimum=40)):
        kind = rng.randrange(4)
        if kind == 0:
            data = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 400)))
        elif kind == 1:  # a good request with bytes flipped
            b = bytearray(good)
            for _ in range(rng.randrange(1, 6)):
                b[rng.randrange(len(b))] = rng.randrange(256)
            data = bytes(b)
        elif kind == 2:  # cut anywhere
            data = good[: rng.randrange(1, len(good))]
        else:  # pieces of good requests pasted together
            data = good[: rng.randrange(len(good))] + good[rng.randrange(len(good)):]
        cases.append(data)
    for data in cases:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=e2e.wait_s(10)) as s:
                s.sendall(data)
                s.shutdown(socket.SHUT_WR)
                r = e2e.read_http_response(s, e2e.wait_s(10))
        except (ConnectionResetError, BrokenPipeError, EOFError):
            r = None
        if r is not None:
            assert r.status < 500, f"{data[:80]!r}: {r}"
    assert load_server.alive(), load_server.tail()
    e2e.assert_serves(port)
