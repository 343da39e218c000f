"""Fixtures of the fanin serve end-to-end tests: the servers (one per option
set, shared by the tests that use it) and the reference vectors."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest

import fanin_e2e as e2e

API_KEY = "e2e-secret-key"

BASE = ["--model", str(e2e.MODEL_DIR), "--backend", "cpu", "--host", "127.0.0.1", "--port", "0"]
MLP = ["--model", "mlp", "--backend", "cpu", "--host", "127.0.0.1", "--port", "0"]

# Option sets of the servers the tests start. Each is started once for the
# tests that use it (starting the MiniLM server costs a model load and warm-up).
OPTIONS = {
    "default": BASE,
    "mlp": MLP,
    "apikey": BASE + ["--api-key", API_KEY],
    # no-auto-truncate, strict model names, a renamed model and a 64 KiB body
    # limit together: the tests of each use bodies far below 64 KiB.
    "strict": BASE + ["--no-auto-truncate", "--strict-model", "--served-model-name", "embedder",
                      "--payload-limit", "65536"],
    # Two inputs in the engine at once, batches of one: a burst overloads it.
    "overload": BASE + ["--max-concurrent-requests", "2", "--max-batch-size", "1",
                        "--workers", "1"],
    # The slow-client and load tests.
    "load": BASE + ["--header-timeout-ms", "500", "--body-timeout-ms", "1000",
                    "--idle-timeout-ms", "1500"],
    # One worker that the background load keeps busy: a request then waits in
    # the queue behind a running batch, so a 1 ms deadline passes before it is
    # batched. (With a worker per core, an idle worker can take a request at
    # once, and a request that has started runs to the end: its deadline is
    # checked when its batch is formed.)
    "deadline": BASE + ["--workers", "1", "--max-batch-size", "4"],
}


def pytest_report_header(config):
    return (f"fanin: {e2e.FANIN_BIN} (sanitizer '{e2e.SANITIZE}', waits x{e2e.SLOW}, "
            f"load x{e2e.LOAD}); logs in {e2e.LOG_DIR}")


def serving(name: str, args: list[str], probe_while_loading: bool = False):
    """Starts a server, yields it, and on teardown sends SIGTERM and checks that
    it exits 0 with no sanitizer report or std::terminate in its stderr."""
    if not e2e.FANIN_BIN:
        pytest.fail("FANIN_BIN is not set: run tests/server/e2e/run.sh")
    server = e2e.Server(name, args)
    try:
        server.start(probe_while_loading=probe_while_loading)
    except e2e.ServerDied as err:
        pytest.fail(str(err))
    try:
        yield server
    finally:
        rc = server.stop()
        server.assert_clean_exit(rc)


@pytest.fixture(scope="session")
def server():
    yield from serving("default", OPTIONS["default"], probe_while_loading=True)


@pytest.fixture(scope="session")
def port(server):
    return server.port


@pytest.fixture(scope="module")
def mlp_server():
    yield from serving("mlp", OPTIONS["mlp"])


@pytest.fixture(scope="module")
def apikey_server():
    yield from serving("apikey", OPTIONS["apikey"])


@pytest.fixture(scope="module")
def strict_server():
    yield from serving("strict", OPTIONS["strict"])


@pytest.fixture(scope="module")
def overload_server():
    yield from serving("overload", OPTIONS["overload"])


@pytest.fixture(scope="module")
def load_server():
    yield from serving("load", OPTIONS["load"])


@pytest.fixture(scope="module")
def deadline_server():
    yield from serving("deadline", OPTIONS["deadline"])


@pytest.fixture(scope="session")
def sentences():
    """The test sentences the server takes: the file's last line is the empty
    string, which every API rejects (400 Empty), so it is left out here (and
    tested in test_bad_inputs.py)."""
    return [s for s in e2e.read_sentences() if s != ""]


@pytest.fixture(scope="session")
def refs():
    """tests/data/minilm_refs.json: sentence-transformers' vectors (without the
    empty sentence, as above)."""
    data = json.loads(e2e.REFS_FILE.read_text(encoding="utf-8"))
    assert len(data["sentences"]) == len(data["embeddings"])
    return {s: np.asarray(v, dtype=np.float32)
            for s, v in zip(data["sentences"], data["embeddings"]) if s != ""}


@pytest.fixture(scope="session")
def cli_vectors():
    """`fanin embed --model models/all-MiniLM-L6-v2 --backend cpu` over the test
    sentences and the long-input texts: text -> vector."""
    texts = e2e.read_sentences() + [e2e.LONG_TEXT, e2e.CUT_TEXT]
    stdin = ("\n".join(texts) + "\n").encode("utf-8")
    proc = subprocess.run([e2e.FANIN_BIN, "embed", "--model", str(e2e.MODEL_DIR),
                           "--backend", "cpu"], input=stdin, capture_output=True,
                          timeout=e2e.wait_s(300))
    assert proc.returncode == 0, f"fanin embed exited {proc.returncode}: {proc.stderr[-2000:]!r}"
    lines = proc.stdout.decode().splitlines()
    assert len(lines) == len(texts), f"fanin embed wrote {len(lines)} lines for {len(texts)}"
    vectors = [np.asarray(json.loads(l), dtype=np.float32) for l in lines]
    e2e.assert_unit_vectors(vectors)
    return dict(zip(texts, vectors))


@pytest.fixture(scope="session")
def tei_vectors(port):
    """texts -> /embed's vectors of exactly those texts in one request on the
    default server, for the client-package tests to compare with closely. The
    same request makes the same batch, and so the same numbers: on a CPU with
    bf16 matmul (Note [CPU bf16 matmul]) the kernel, and so the last bits,
    depend on the batch's rows, so vectors from a batch of other texts agree
    only to bf16 precision (cosine, as cli_vectors are compared)."""
    def vectors(texts):
        r = e2e.post(port, "/embed", {"inputs": list(texts)}, timeout=e2e.wait_s(120))
        assert r.status == 200, r
        return np.asarray(r.json(), dtype=np.float32)
    return vectors
