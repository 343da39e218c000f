"""Server options a user sets: --api-key, --strict-model with
--served-model-name, --max-concurrent-requests (overload)."""

import http.client

import pytest

import fanin_e2e as e2e
from conftest import API_KEY

INFERENCE = {
    "openai": ("/v1/embeddings", {"model": e2e.MODEL_NAME, "input": ["a"]}, e2e.check_openai_error),
    "tei": ("/embed", {"inputs": ["a"]}, e2e.check_tei_error),
    "v2": ("/v2/models/minilm/infer", e2e.v2_text_body(["a"]), e2e.check_v2_error),
}
GOOD = {"Authorization": f"Bearer {API_KEY}"}
BAD_AUTH = {
    "missing": None,
    "wrong_key": f"Bearer {API_KEY}x",
    "prefix_of_key": f"Bearer {API_KEY[:-1]}",
    "no_bearer": API_KEY,
    "basic": f"Basic {API_KEY}",
    "empty_bearer": "Bearer ",
    "empty": "",
}


@pytest.mark.parametrize("auth", BAD_AUTH)
@pytest.mark.parametrize("api", INFERENCE)
def test_api_key_required_on_inference_routes(apikey_server, api, auth):
    route, body, check = INFERENCE[api]
    headers = {} if BAD_AUTH[auth] is None else {"Authorization": BAD_AUTH[auth]}
    r = e2e.post(apikey_server.port, route, body, headers)
    check(r, 401)
    r = e2e.post(apikey_server.port, route, body, GOOD)
    assert r.status == 200, r


def test_api_key_is_checked_before_the_body(apikey_server):
    """A bad request without the key is 401, not 400: nothing of it is parsed."""
    r = e2e.post(apikey_server.port, "/embed", b"{not json")
    e2e.check_tei_error(r, 401)
    r = e2e.post(apikey_server.port, "/embed", b"{not json", GOOD)
    e2e.check_tei_error(r, 400)


@pytest.mark.parametrize("path", ["/health", "/v2/health/live", "/v2/health/ready", "/metrics",
                                  "/info", "/v2", "/v2/models/minilm", "/v2/models/minilm/ready"])
def test_open_routes_need_no_key(apikey_server, path):
    r = e2e.get(apikey_server.port, path)
    assert r.status == 200, r


@pytest.mark.parametrize("method,path,body", [
    ("GET", "/v1/models", None), ("POST", "/embeddings", {"input": "a"}),
    ("POST", "/tokenize", {"inputs": "a"}), ("POST", "/decode", {"ids": [101, 102]}),
])
def test_other_inference_routes_need_the_key(apikey_server, method, path, body):
    """docs/server.md: /v1/*, /embeddings, /embed, /tokenize, /decode and v2
    infer are the inference routes."""
    r = e2e.request(apikey_server.port, method, path, body)
    assert r.status == 401, r
    r = e2e.request(apikey_server.port, method, path, body, GOOD)
    assert r.status == 200, r


def test_served_model_name_and_strict_model(strict_server):
    port = strict_server.port
    r = e2e.get(port, "/v1/models")
    assert [m["id"] for m in r.json()["data"]] == ["embedder"], r
    r = e2e.openai_embed(port, ["a"], model="embedder")
    assert r.status == 200 and r.json()["model"] == "embedder", r
    for model in ("gpt-4", e2e.MODEL_NAME, "EMBEDDER", "embedder "):
        r = e2e.openai_embed(port, ["a"], model=model)
        err = e2e.check_openai_error(r, 404, "model")
        assert err["code"] == "model_not_found", err
    # No model (or "") means the served one.
    for body in ({"input": ["a"]}, {"input": ["a"], "model": ""}):
        r = e2e.post(port, "/v1/embeddings", body)
        assert r.status == 200, f"{body}: {r}"
    # KServe: the served name and the kind alias.
    for model in ("embedder", "minilm"):
        r = e2e.v2_infer(port, e2e.v2_text_body(["a"]), model=model)
        assert r.status == 200, f"{model}: {r}"
    r = e2e.v2_infer(port, e2e.v2_text_body(["a"]), model="gpt-4")
    e2e.check_v2_error(r, 404)
    assert e2e.get(port, "/info").json()["auto_truncate"] is False
    e2e.assert_serves(port)


def test_any_model_name_without_strict_model(port):
    for model in ("gpt-4", "text-embedding-3-small", ""):
        r = e2e.openai_embed(port, ["a"], model=model)
        assert r.status == 200, f"{model!r}: {r}"
    r = e2e.post(port, "/v1/embeddings", {"input": ["a"]})
    assert r.status == 200, r


OVERLOAD = {
    "openai": ("/v1/embeddings", {"model": e2e.MODEL_NAME, "input": [e2e.LONG_TEXT]},
               e2e.check_openai_error, 429),
    "tei": ("/embed", {"inputs": [e2e.LONG_TEXT]}, e2e.check_tei_error, 429),
    "v2": ("/v2/models/minilm/infer", e2e.v2_text_body([e2e.LONG_TEXT]), e2e.check_v2_error, 503),
}


@pytest.mark.parametrize("api", OVERLOAD)
def test_overload_is_refused_with_retry_after(overload_server, api):
    """--max-concurrent-requests 2: a burst of 24 clients gets some answers and
    some refusals (429, v2 503) with Retry-After, never anything else."""
    route, body, check, refused = OVERLOAD[api]
    port = overload_server.port
    n = 24
    seen: dict = {}
    for _ in range(3):  # a burst can be served too fast to overload: try again
        results = e2e.run_threads(n, lambda i: e2e.post(port, route, body, timeout=e2e.wait_s(120)),
                                  timeout=e2e.wait_s(300))
        for r in results:
            assert isinstance(r, e2e.Response), f"a client failed: {r!r}"
            assert r.status in (200, refused), r
            seen.setdefault(r.status, []).append(r)
        if seen.get(refused):
            break
    assert seen.get(200), "no request of the burst was served"
    assert seen.get(refused), f"no request of 3 bursts of {n} was refused: {list(seen)}"
    for r in seen[refused]:
        check(r, refused)
        assert r.header("retry-after") is not None, f"{refused} without Retry-After: {r.headers}"
        assert int(r.header("retry-after")) >= 0
    e2e.assert_serves(port)
