"""Helpers of the fanin serve end-to-end tests: the server process, raw HTTP,
error-body shapes, the Prometheus text parser, client fan-out.

Everything talks to 127.0.0.1 only. Every loop here is bounded in count and
time."""

from __future__ import annotations

import http.client
import json
import math
import os
import re
import signal
import socket
import subprocess
import threading
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# ---- configuration (run.sh exports these) ----
FANIN_BIN = os.environ.get("FANIN_BIN", "")
SOURCE_DIR = Path(os.environ.get("FANIN_SOURCE_DIR", Path(__file__).resolve().parents[3]))
BUILD_DIR = Path(os.environ.get("FANIN_BUILD_DIR", SOURCE_DIR / "build" / "e2e"))
LOG_DIR = Path(os.environ.get("FANIN_E2E_LOGDIR", BUILD_DIR / "e2e-logs"))
MODEL_DIR = SOURCE_DIR / "models" / "all-MiniLM-L6-v2"
MODEL_NAME = "all-MiniLM-L6-v2"
DIM = 384
MAX_TOKENS = 256
MLP_IN = 512
MLP_OUT = 512
SANITIZE = os.environ.get("FANIN_SANITIZE", "").strip()

# A sanitizer slows the server: ThreadSanitizer 5-10x, AddressSanitizer ~2-3x.
# SLOW stretches every wait; LOAD shrinks client counts (same assertions).
SLOW = {"thread": 8.0, "address": 3.0}.get(SANITIZE, 1.0)
LOAD = {"thread": 0.125, "address": 0.25}.get(SANITIZE, 1.0)


def scaled_clients(n: int, minimum: int = 4) -> int:
    return max(minimum, int(n * LOAD))


def wait_s(seconds: float) -> float:
    return seconds * SLOW


SENTENCES_FILE = SOURCE_DIR / "tests" / "data" / "embedding_sentences.txt"
REFS_FILE = SOURCE_DIR / "tests" / "data" / "minilm_refs.json"


def read_sentences() -> list[str]:
    """The lines of embedding_sentences.txt exactly as `fanin embed` reads them
    (split on \\n, a trailing \\r dropped, whitespace kept)."""
    text = SENTENCES_FILE.read_bytes().decode("utf-8")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [l[:-1] if l.endswith("\r") else l for l in lines]


def _single_token_words() -> list[str]:
    """Lowercase words that are one WordPiece token each (the whole word is in
    vocab.txt), so N words + [CLS] + [SEP] is exactly N + 2 tokens."""
    wanted = ("the quick brown fox jumps over lazy dog while five boxing wizards jump and "
              "a man is eating food woman playing violin two men pushed carts through "
              "woods monkey drums new movie cat sits outside great").split()
    try:
        vocab = set(MODEL_DIR.joinpath("vocab.txt").read_text(encoding="utf-8").split("\n"))
    except OSError:
        return wanted
    return [w for w in wanted if w in vocab]


WORDS = _single_token_words()
# 400 single-token words: 402 tokens, over the model's 256.
LONG_TEXT = " ".join(WORDS[i % len(WORDS)] for i in range(400))
# The same text cut at 256 tokens: [CLS] + 254 words + [SEP].
CUT_TEXT = " ".join(LONG_TEXT.split(" ")[: MAX_TOKENS - 2])


def cosine(a, b) -> float:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def assert_unit_vectors(vectors, dim: int = DIM):
    arr = np.asarray(vectors, dtype=np.float64)
    assert arr.ndim == 2 and arr.shape[1] == dim, f"expected [n,{dim}], got {arr.shape}"
    assert np.all(np.isfinite(arr))
    norms = np.linalg.norm(arr, axis=1)
    assert np.allclose(norms, 1.0, atol=1e-4), f"not L2-normalised: {norms}"


def assert_close_vectors(got, want, min_cos: float = 0.9999, what: str = ""):
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    worst = min(cosine(g, w) for g, w in zip(got, want))
    assert worst >= min_cos, f"{what}: worst cosine {worst:.7f} < {min_cos}"


def server_bug(reason: str):
    """A case the server gets wrong today (see the e2e report): expected to fail,
    strictly, so that the fix turns it into a failure until the mark goes."""
    import pytest
    return pytest.mark.xfail(strict=True, reason=f"server bug: {reason}")


# ---- the server process ----

LISTEN_RE = re.compile(rb"fanin: listening on http://127\.0\.0\.1:(\d+)")
READY_RE = re.compile(rb"fanin: ready")
# Strings that mean the server broke even where it exited 0.
BAD_STDERR = [
    re.compile(rb"AddressSanitizer"),
    re.compile(rb"ThreadSanitizer"),
    re.compile(rb"LeakSanitizer"),
    re.compile(rb"UndefinedBehaviorSanitizer"),
    re.compile(rb"^\S+:\d+:\d+: runtime error: ", re.M),  # UBSan
    re.compile(rb"terminate called"),
]

_counter = 0
_counter_lock = threading.Lock()


class ServerDied(Exception):
    pass


class Server:
    """`fanin serve --port 0 ...` as a subprocess. stderr goes to a file under
    LOG_DIR (a file never blocks the server, however much it logs)."""

    def __init__(self, name: str, args: list[str], env: dict | None = None):
        global _counter
        with _counter_lock:
            _counter += 1
            n = _counter
        self.name = name
        self.args = list(args)
        self.env = dict(os.environ, **(env or {}))
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        self.log_path = LOG_DIR / f"{os.getpid()}-{n:02d}-{name}.stderr"
        self.out_path = LOG_DIR / f"{os.getpid()}-{n:02d}-{name}.stdout"
        self.proc: subprocess.Popen | None = None
        self.port: int | None = None
        self.rc: int | None = None
        self.loading_probes: list[tuple[str, int]] = []

    @property
    def cmd(self) -> list[str]:
        return [FANIN_BIN, "serve", *self.args]

    def stderr_bytes(self) -> bytes:
        try:
            return self.log_path.read_bytes()
        except OSError:
            return b""

    def stderr_text(self) -> str:
        return self.stderr_bytes().decode("utf-8", "replace")

    def tail(self, n: int = 40) -> str:
        return "\n".join(self.stderr_text().splitlines()[-n:])

    def start(self, timeout: float = 120.0, probe_while_loading: bool = False) -> "Server":
        timeout = wait_s(timeout)
        with open(self.log_path, "wb") as err, open(self.out_path, "wb") as out:
            self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=err, env=self.env)
        deadline = time.monotonic() + timeout
        while True:
            data = self.stderr_bytes()
            if self.port is None:
                m = LISTEN_RE.search(data)
                if m:
                    self.port = int(m.group(1))
            if self.port is not None and READY_RE.search(data):
                break
            if self.port is not None and probe_while_loading:
                self._probe_loading()
            if self.proc.poll() is not None:
                self.rc = self.proc.returncode
                raise ServerDied(f"{self.name}: `{' '.join(self.cmd)}` exited {self.rc} before "
                                 f"'fanin: ready':\n{self.tail()}")
            if time.monotonic() > deadline:
                self.kill()
                raise ServerDied(f"{self.name}: no 'fanin: ready' within {timeout:.0f} s:\n"
                                 f"{self.tail()}")
            time.sleep(0.02)
        return self

    def _probe_loading(self):
        """Readiness while the model loads: whatever /health and the v2 probes
        say before the ready line, recorded for a test to judge."""
        if READY_RE.search(self.stderr_bytes()):
            return
        for path in ("/v2/health/live", "/health", "/v2/health/ready"):
            try:
                r = request(self.port, "GET", path, timeout=wait_s(2))
                # Only answers that came back while the log still says loading.
                if not READY_RE.search(self.stderr_bytes()):
                    self.loading_probes.append((path, r.status))
            except OSError:
                pass

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig=signal.SIGTERM):
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int | None:
        try:
            self.rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        return self.rc

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self, timeout: float = 60.0) -> int | None:
        """SIGTERM, then wait; None (and a SIGKILL) when it did not exit."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        rc = self.wait(wait_s(timeout))
        if rc is None:
            self.kill()
        return rc

    def problems(self) -> list[str]:
        """Sanitizer reports and std::terminate in stderr."""
        data = self.stderr_bytes()
        return [p.pattern.decode() for p in BAD_STDERR if p.search(data)]

    def assert_clean_exit(self, rc):
        assert rc is not None, f"{self.name}: did not exit after SIGTERM:\n{self.tail()}"
        assert rc == 0, f"{self.name}: exit code {rc} after SIGTERM:\n{self.tail()}"
        bad = self.problems()
        assert not bad, f"{self.name}: stderr has {bad}:\n{self.tail(80)}"


REQUEST_LOG_RE = re.compile(r"^fanin: (\S+) (\S+) (\d{3}) inputs=", re.M)


def logged_requests(server: Server, method: str, route: str) -> dict:
    """{status: count} of the server's per-request log lines (--log-level
    info, text format: `fanin: POST /embed 200 inputs=1 tokens=...`)."""
    out: dict = {}
    for m, r, status in REQUEST_LOG_RE.findall(server.stderr_text()):
        if m == method and r == route:
            out[int(status)] = out.get(int(status), 0) + 1
    return out


# ---- HTTP ----

@dataclass
class Response:
    status: int
    headers: dict  # lowercase names
    body: bytes
    elapsed: float = 0.0
    vector: object = None  # for tests that keep a decoded result with it

    def json(self):
        return json.loads(self.body)

    def header(self, name: str, default=None):
        return self.headers.get(name.lower(), default)

    def __repr__(self):
        return f"<{self.status} {self.body[:300]!r}>"


def request(port: int, method: str, path: str, body=None, headers: dict | None = None,
            timeout: float = 60.0, conn: http.client.HTTPConnection | None = None) -> Response:
    """One HTTP/1.1 request with http.client (Content-Length set, body bytes or a
    JSON-serialisable object). conn: reuse a keep-alive connection."""
    hdrs = {"Host": f"127.0.0.1:{port}"}
    if body is not None and not isinstance(body, (bytes, bytearray)):
        body = json.dumps(body).encode()
        hdrs["Content-Type"] = "application/json"
    elif body is not None:
        hdrs["Content-Type"] = "application/json"
    hdrs.update(headers or {})
    own = conn is None
    if own:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    t0 = time.monotonic()
    try:
        conn.request(method, path, body=body, headers=hdrs)
        r = conn.getresponse()
        data = r.read()
        return Response(r.status, {k.lower(): v for k, v in r.getheaders()}, data,
                        time.monotonic() - t0)
    finally:
        if own:
            conn.close()


def post(port: int, path: str, body, headers: dict | None = None, **kw) -> Response:
    return request(port, "POST", path, body, headers, **kw)


def get(port: int, path: str, headers: dict | None = None, **kw) -> Response:
    return request(port, "GET", path, None, headers, **kw)


# Bytes read past one response (pipelined answers), kept for the next read.
_leftover: "weakref.WeakKeyDictionary[socket.socket, bytes]" = weakref.WeakKeyDictionary()


def read_http_response(sock: socket.socket, timeout: float) -> Response | None:
    """Reads one response from a raw socket; None when the peer closed (or reset)
    before a status line. Content-Length, chunked and read-to-close bodies; 1xx,
    204 and 304 have none. Bytes past the response stay for the next call."""
    sock.settimeout(timeout)
    t0 = time.monotonic()
    buf = _leftover.pop(sock, b"")
    try:
        while b"\r\n\r\n" not in buf:
            chunk = sock.recv(65536)
            if not chunk:
                return None
            buf += chunk
    except (ConnectionResetError, BrokenPipeError):
        if not buf:
            return None
        raise
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()

    def more():
        c = sock.recv(65536)
        if not c:
            raise EOFError("connection closed inside the body")
        return c

    if 100 <= status < 200 or status in (204, 304):
        body = b""
    elif "content-length" in headers:
        n = int(headers["content-length"])
        while len(rest) < n:
            rest += more()
        body, rest = rest[:n], rest[n:]
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        body = b""
        while True:
            while b"\r\n" not in rest:
                rest += more()
            size_line, rest = rest.split(b"\r\n", 1)
            size = int(size_line.split(b";")[0], 16)
            while len(rest) < size + 2:
                rest += more()
            body += rest[:size]
            rest = rest[size + 2:]
            if size == 0:
                break
    else:
        body, rest = rest, b""
        try:
            while True:
                c = sock.recv(65536)
                if not c:
                    break
                body += c
        except (ConnectionResetError, socket.timeout):
            pass
    if rest:
        _leftover[sock] = rest
    return Response(status, headers, body, time.monotonic() - t0)


def raw(port: int, data: bytes, timeout: float = 30.0) -> Response | None:
    """Sends raw bytes on a fresh connection and reads one response."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        return read_http_response(s, timeout)


def raw_post(path: str, body: bytes, port: int, extra_headers: str = "",
             content_type: str = "application/json", timeout: float = 30.0) -> Response | None:
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
            f"Connection: close\r\n{extra_headers}\r\n").encode()
    return raw(port, head + body, timeout)


# ---- the three APIs' requests and error bodies ----

def openai_embed(port, inputs, model=MODEL_NAME, headers=None, **fields) -> Response:
    return post(port, "/v1/embeddings", {"model": model, "input": inputs, **fields}, headers)


def tei_embed(port, inputs, headers=None, **fields) -> Response:
    return post(port, "/embed", {"inputs": inputs, **fields}, headers)


def v2_text_body(texts, shape=None):
    return {"inputs": [{"name": "text", "shape": shape or [len(texts)], "datatype": "BYTES",
                        "data": list(texts)}]}


def v2_infer(port, body, model="minilm", headers=None) -> Response:
    return post(port, f"/v2/models/{model}/infer", body, headers)


def v2_embeddings(resp: Response) -> np.ndarray:
    out = resp.json()["outputs"]
    emb = [o for o in out if o["name"] == "embedding"]
    assert emb, f"no 'embedding' output in {out}"
    o = emb[0]
    assert o["datatype"] == "FP32", o
    return np.asarray(o["data"], dtype=np.float32).reshape(o["shape"])


def check_openai_error(resp: Response, status, field: str | None = None):
    """{"error": {"message", "type", "param", "code"}}; field: named in param or
    message."""
    statuses = status if isinstance(status, (tuple, list, set)) else (status,)
    assert resp.status in statuses, f"expected {statuses}, got {resp}"
    body = resp.json()
    assert isinstance(body, dict) and isinstance(body.get("error"), dict), body
    err = body["error"]
    for key in ("message", "type", "param", "code"):
        assert key in err, f"OpenAI error without '{key}': {body}"
    assert isinstance(err["message"], str) and err["message"], body
    assert isinstance(err["type"], str) and err["type"], body
    if field is not None:
        assert field in (err.get("param") or "") or field in err["message"], \
            f"the error names no '{field}': {body}"
    return err


def check_tei_error(resp: Response, status, field: str | None = None):
    """{"error": str, "error_type": str}."""
    statuses = status if isinstance(status, (tuple, list, set)) else (status,)
    assert resp.status in statuses, f"expected {statuses}, got {resp}"
    body = resp.json()
    assert isinstance(body, dict), body
    assert isinstance(body.get("error"), str) and body["error"], body
    assert isinstance(body.get("error_type"), str) and body["error_type"], body
    if field is not None:
        assert field in body["error"], f"the error names no '{field}': {body}"
    return body


def check_v2_error(resp: Response, status, field: str | None = None):
    """{"error": str}."""
    statuses = status if isinstance(status, (tuple, list, set)) else (status,)
    assert resp.status in statuses, f"expected {statuses}, got {resp}"
    body = resp.json()
    assert isinstance(body, dict), body
    assert isinstance(body.get("error"), str) and body["error"], body
    if field is not None:
        assert field in body["error"], f"the error names no '{field}': {body}"
    return body


def assert_serves(port: int, headers: dict | None = None, text: str = "still serving"):
    """The server still answers a good request with a good vector."""
    r = tei_embed(port, [text], headers=headers, timeout=wait_s(60))
    assert r.status == 200, f"a good /embed after the bad input got {r}"
    assert_unit_vectors(r.json())


# ---- Prometheus text exposition format ----

METRIC_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
SAMPLE_RE = re.compile(rf"^({METRIC_NAME})(?:\{{(.*)\}})?[ \t]+(\S+)(?:[ \t]+(-?\d+))?$")
LABEL_RE = re.compile(r'[ \t]*([a-zA-Z_][a-zA-Z0-9_]*)[ \t]*=[ \t]*"((?:[^"\\\n]|\\[\\"n])*)"[ \t]*(,|$)')
HELP_RE = re.compile(rf"^#[ \t]+HELP[ \t]+({METRIC_NAME})(?:[ \t]+(.*))?$")
TYPE_RE = re.compile(rf"^#[ \t]+TYPE[ \t]+({METRIC_NAME})[ \t]+"
                     r"(counter|gauge|histogram|summary|untyped)$")


@dataclass
class Metrics:
    types: dict = field(default_factory=dict)       # family -> type
    samples: list = field(default_factory=list)      # (name, labels, value)

    def values(self, name: str, **labels) -> list[float]:
        return [v for n, l, v in self.samples
                if n == name and all(l.get(k) == str(x) for k, x in labels.items())]

    def value(self, name: str, **labels) -> float:
        """The sum over every label set that matches (0 when none)."""
        return float(sum(self.values(name, **labels)))

    def names(self) -> set[str]:
        return {n for n, _, _ in self.samples}

    def has(self, name: str) -> bool:
        return name in self.names() or name in self.types


def _parse_labels(text: str, lineno: int) -> dict:
    labels = {}
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = LABEL_RE.match(text, pos)
        assert m and m.end() > pos, f"line {lineno}: bad label set {{{text}}}"
        assert m.group(1) not in labels, f"line {lineno}: label {m.group(1)} twice"
        labels[m.group(1)] = m.group(2)
        pos = m.end()
    return labels


def parse_prometheus(text: str) -> Metrics:
    """A strict reader of the text format (version 0.0.4): every line is a
    comment, HELP, TYPE or a sample; TYPE comes before the family's samples and
    once; values are floats (+Inf, -Inf, NaN)."""
    m = Metrics()
    seen_samples_of: set[str] = set()
    for lineno, line in enumerate(text.split("\n"), 1):
        if line == "":
            continue
        if line.startswith("#"):
            t = TYPE_RE.match(line)
            if t:
                fam = t.group(1)
                assert fam not in m.types, f"line {lineno}: TYPE of {fam} twice"
                assert fam not in seen_samples_of, f"line {lineno}: TYPE of {fam} after its samples"
                m.types[fam] = t.group(2)
                continue
            if line.split()[1:2] in (["TYPE"],):
                raise AssertionError(f"line {lineno}: bad TYPE line {line!r}")
            if line.split()[1:2] == ["HELP"]:
                assert HELP_RE.match(line), f"line {lineno}: bad HELP line {line!r}"
            continue
        s = SAMPLE_RE.match(line)
        assert s, f"line {lineno}: not a Prometheus sample: {line!r}"
        name, label_text, value = s.group(1), s.group(2), s.group(3)
        labels = _parse_labels(label_text, lineno) if label_text else {}
        try:
            v = float(value)
        except ValueError:
            raise AssertionError(f"line {lineno}: value {value!r} is not a float")
        fam = name
        for suffix in ("_bucket", "_sum", "_count"):
            if name.endswith(suffix) and name[: -len(suffix)] in m.types:
                fam = name[: -len(suffix)]
        seen_samples_of.add(fam)
        m.samples.append((name, labels, v))
    return m


def check_histogram(m: Metrics, family: str):
    """Buckets cumulative in le, +Inf bucket == _count, per label set."""
    groups: dict = {}
    for n, labels, v in m.samples:
        if n == family + "_bucket":
            key = tuple(sorted((k, x) for k, x in labels.items() if k != "le"))
            assert "le" in labels, f"{n} without le"
            groups.setdefault(key, []).append((float(labels["le"]), v))
    assert groups, f"no {family}_bucket samples"
    for key, buckets in groups.items():
        buckets.sort()
        counts = [c for _, c in buckets]
        assert counts == sorted(counts), f"{family}{dict(key)}: buckets not cumulative {buckets}"
        assert math.isinf(buckets[-1][0]), f"{family}{dict(key)}: no +Inf bucket"
        count = [v for n, l, v in m.samples if n == family + "_count"
                 and tuple(sorted((k, x) for k, x in l.items())) == key]
        assert count and count[0] == buckets[-1][1], \
            f"{family}{dict(key)}: _count {count} != +Inf bucket {buckets[-1][1]}"
    return groups


def metrics(port: int, headers=None) -> Metrics:
    r = get(port, "/metrics", headers=headers, timeout=wait_s(30))
    assert r.status == 200, r
    return parse_prometheus(r.body.decode("utf-8"))


# ---- fan-out ----

def run_threads(n: int, target, timeout: float) -> list:
    """Runs target(i) in n threads started together; returns their results (an
    exception is returned as the result). Fails when a thread outlives timeout."""
    results: list = [None] * n
    barrier = threading.Barrier(n)

    def body(i):
        try:
            barrier.wait(timeout=timeout)
            results[i] = target(i)
        except BaseException as e:  # noqa: BLE001 - reported to the test
            results[i] = e

    threads = [threading.Thread(target=body, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    hung = sum(t.is_alive() for t in threads)
    assert hung == 0, f"{hung} of {n} client threads still running after {timeout:.0f} s"
    return results
