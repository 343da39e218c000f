"""SIGTERM under load: the server drains and exits 0.

What counts, per request (one connection per request, `Connection: close`, so
no keep-alive race blurs the picture):
  ok           a 200 with a good vector
  unavailable  a clean 503 with the TEI error body (drain had begun)
  refused      connect() refused: the listener was closed
  unanswered   connected, then EOF or reset before any response byte
  broken       a response that started and did not finish
  hung         no answer within the client timeout
  other        any other status
Rules:
  * a request fully sent (ACCEPT_S) before SIGTERM was sent is ok or
    unavailable;
  * a request sent after it may also be refused or unanswered (it may sit in
    the kernel's accept queue when the listener closes: the server never saw
    it), never broken, hung or other;
  * the process exits 0 within --drain-timeout-ms (plus a margin), and then
    nothing listens on the port.
"""

import errno
import json
import signal
import socket
import threading
import time

import pytest

import fanin_e2e as e2e
from conftest import BASE

DRAIN_MS = 10_000
ACCEPT_S = e2e.wait_s(0.1)


def _one_request(port, text, timeout):
    """(outcome, t_sent, t_done, detail)."""
    body = json.dumps({"inputs": text}).encode()
    req = (b"POST /embed HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
           b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(body)) + body
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    except ConnectionRefusedError:
        return "refused", time.monotonic(), time.monotonic(), None
    except OSError as err:
        if err.errno == errno.ECONNREFUSED:
            return "refused", time.monotonic(), time.monotonic(), None
        raise
    with s:
        try:
            s.sendall(req)
        except (BrokenPipeError, ConnectionResetError):
            return "unanswered", time.monotonic(), time.monotonic(), "reset while sending"
        t_sent = time.monotonic()
        try:
            r = e2e.read_http_response(s, timeout)
        except socket.timeout:
            return "hung", t_sent, time.monotonic(), None
        except (EOFError, ConnectionResetError) as err:
            return "broken", t_sent, time.monotonic(), repr(err)
        t_done = time.monotonic()
        if r is None:
            return "unanswered", t_sent, t_done, None
        if r.status == 200:
            try:
                e2e.assert_unit_vectors(r.json())
            except Exception as err:  # noqa: BLE001
                return "broken", t_sent, t_done, f"bad 200 body: {err}"
            return "ok", t_sent, t_done, None
        if r.status == 503:
            try:
                e2e.check_tei_error(r, 503)
            except AssertionError as err:
                return "other", t_sent, t_done, f"503 body: {err}"
            return "unavailable", t_sent, t_done, None
        return "other", t_sent, t_done, repr(r)


def test_sigterm_under_load(sentences):
    clients = e2e.scaled_clients(64, minimum=8)
    server = e2e.Server("sigterm", BASE + ["--drain-timeout-ms", str(DRAIN_MS)])
    try:
        server.start()
    except e2e.ServerDied as err:
        pytest.fail(str(err))
    port = server.port
    # Short sentences: a batch is padded to its longest input, and a batch of
    # 64 long ones can outlast the drain timeout on a busy 2-core machine
    # (then the rest is cut off, which test_drain_timeout_bounds_the_exit covers).
    short = [s for s in sentences if len(s.encode()) <= 64]
    results: list = []
    lock = threading.Lock()
    stop = threading.Event()
    client_timeout = e2e.wait_s(60)

    def client(i):
        for k in range(100_000):  # bounded; ends at the first refusal or stop
            if stop.is_set():
                break
            out = _one_request(port, short[(i + k) % len(short)], client_timeout)
            with lock:
                results.append(out)
            if out[0] in ("refused", "hung"):
                break

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    try:
        for t in threads:
            t.start()
        # Load first: wait until every client had answers (bounded in time).
        deadline = time.monotonic() + e2e.wait_s(20)
        while time.monotonic() < deadline:
            time.sleep(0.1)
            with lock:
                ok = sum(1 for r in results if r[0] == "ok")
            if ok >= 3 * clients:
                break
        t_sig = time.monotonic()
        server.signal(signal.SIGTERM)
        rc = server.wait(DRAIN_MS / 1000 + e2e.wait_s(10))
        t_exit = time.monotonic()
        stop.set()
        for t in threads:
            t.join(client_timeout + 5)
        assert not any(t.is_alive() for t in threads), "a client thread hung"
    finally:
        stop.set()
        server.kill()

    counts: dict = {}
    for outcome, *_ in results:
        counts[outcome] = counts.get(outcome, 0) + 1
    summary = f"{clients} clients: {counts}, exit {t_exit - t_sig:.2f} s after SIGTERM"
    print(summary)
    server.assert_clean_exit(rc)
    assert t_exit - t_sig <= DRAIN_MS / 1000 + e2e.wait_s(2), summary

    bad = [r for r in results if r[0] in ("broken", "hung", "other")]
    assert not bad, f"{summary}; e.g. {bad[:3]}"
    # Sent ACCEPT_S before the signal: the server has accepted the connection by
    # then (its accept loop runs on the I/O threads, not behind the model).
    before = [r for r in results if r[1] < t_sig - ACCEPT_S]
    lost = [r for r in before if r[0] not in ("ok", "unavailable")]
    assert not lost, f"{len(lost)} requests sent before SIGTERM got no answer: {lost[:3]}; {summary}"
    assert counts.get("ok", 0) > 0, summary
    # The drain finished requests that were in flight when the signal came.
    drained = [r for r in results if r[0] == "ok" and r[1] < t_sig < r[2]]
    assert drained, f"no request in flight at SIGTERM was answered after it; {summary}"
    # Every answer the server logged reached its client, and no more.
    logged = e2e.logged_requests(server, "POST", "/embed")
    assert logged.get(200, 0) == counts.get("ok", 0), f"log {logged}; {summary}"
    assert logged.get(503, 0) == counts.get("unavailable", 0), f"log {logged}; {summary}"
    # After the exit nothing listens there.
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_drain_timeout_bounds_the_exit():
    """--drain-timeout-ms 300 with many batches of work in flight: the process
    exits 0 once the batch running at the deadline is done (a forward pass is
    not interrupted) while the queued rest is cancelled, so well before the
    queued work could have run; each client gets its answer or a closed
    connection, none hangs."""
    # Batches of 8 inputs: the batch running at the deadline is one unit.
    server = e2e.Server("sigterm-short-drain", BASE + ["--drain-timeout-ms", "300",
                                                       "--max-batch-size", "8"])
    try:
        server.start()
    except e2e.ServerDied as err:
        pytest.fail(str(err))
    per_request = 8
    body = json.dumps({"inputs": [e2e.LONG_TEXT] * per_request}).encode()
    req = (b"POST /embed HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
           b"Content-Length: %d\r\n\r\n" % len(body)) + body
    socks = []
    try:
        # One request of 8 long inputs alone: the unit of work, one batch.
        t0 = time.monotonic()
        r = e2e.post(server.port, "/embed", body, timeout=e2e.wait_s(300))
        unit = time.monotonic() - t0
        assert r.status == 200, r
        requests = 8  # 8 units queued
        for _ in range(requests):
            s = socket.create_connection(("127.0.0.1", server.port))
            s.sendall(req)
            socks.append(s)
        time.sleep(0.3)
        t0 = time.monotonic()
        server.signal(signal.SIGTERM)
        rc = server.wait(requests * unit + e2e.wait_s(30))
        took = time.monotonic() - t0
        outcomes = []
        for s in socks:
            try:
                r = e2e.read_http_response(s, e2e.wait_s(5))
                outcomes.append("closed" if r is None else r.status)
            except socket.timeout:
                outcomes.append("hung")
            except (EOFError, ConnectionResetError):
                outcomes.append("closed")
    finally:
        for s in socks:
            s.close()
        server.kill()
    server.assert_clean_exit(rc)
    print(f"unit {unit:.2f} s; exit {took:.2f} s after SIGTERM; {outcomes}")
    # The running batch (one unit) may finish; the rest may not run.
    assert took <= 0.3 + 2 * unit + e2e.wait_s(2), \
        f"exit {took:.2f} s after SIGTERM with a 300 ms drain (one unit of work: {unit:.2f} s)"
    assert "hung" not in outcomes, outcomes
    assert set(outcomes) <= {200, 503, "closed"}, outcomes


def test_sigterm_with_idle_and_stalled_connections_exits_promptly():
    """Idle keep-alive connections and a client stuck in its headers do not
    hold the drain: the exit comes well before --drain-timeout-ms."""
    server = e2e.Server("sigterm-idle", BASE + ["--drain-timeout-ms", str(DRAIN_MS)])
    try:
        server.start()
    except e2e.ServerDied as err:
        pytest.fail(str(err))
    socks = []
    try:
        import http.client
        conns = []
        for _ in range(4):
            c = http.client.HTTPConnection("127.0.0.1", server.port, timeout=e2e.wait_s(30))
            r = e2e.request(server.port, "POST", "/embed", {"inputs": "keep me open"}, conn=c)
            assert r.status == 200, r
            conns.append(c)
        for _ in range(2):
            s = socket.create_connection(("127.0.0.1", server.port))
            s.sendall(b"POST /embed HTTP/1.1\r\nHost: x\r\n")
            socks.append(s)
        t0 = time.monotonic()
        server.signal(signal.SIGTERM)
        rc = server.wait(DRAIN_MS / 1000 + e2e.wait_s(10))
        took = time.monotonic() - t0
    finally:
        for s in socks:
            s.close()
        server.kill()
    server.assert_clean_exit(rc)
    assert took < min(DRAIN_MS / 1000, e2e.wait_s(5)), \
        f"exit took {took:.2f} s with idle connections open (drain timeout {DRAIN_MS} ms)"


def test_sigint_exits_zero():
    server = e2e.Server("sigint", BASE)
    try:
        server.start()
    except e2e.ServerDied as err:
        pytest.fail(str(err))
    try:
        e2e.assert_serves(server.port)
        server.signal(signal.SIGINT)
        rc = server.wait(e2e.wait_s(30))
    finally:
        server.kill()
    server.assert_clean_exit(rc)
