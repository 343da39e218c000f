"""GET /metrics is Prometheus text with TEI's te_* names and fanin's own."""

import pytest

import fanin_e2e as e2e


def test_metrics_parse_and_name_the_families(port):
    e2e.assert_serves(port)
    r = e2e.get(port, "/metrics")
    assert r.status == 200, r
    assert r.header("content-type", "").startswith("text/plain"), r.headers
    m = e2e.parse_prometheus(r.body.decode("utf-8"))
    for name in ("te_request_count", "te_request_duration_bucket", "te_queue_size",
                 "fanin_device_healthy"):
        assert name in m.names(), f"/metrics has no {name}"
    assert m.types.get("te_request_duration") == "histogram"
    assert m.types.get("te_queue_size") == "gauge"
    assert m.types.get("te_request_count") == "counter"
    for family, kind in m.types.items():
        if kind == "histogram":
            e2e.check_histogram(m, family)
    healthy = m.values("fanin_device_healthy")
    assert healthy and all(v == 1 for v in healthy), healthy
    for name, _, v in m.samples:
        if m.types.get(name) == "counter":
            assert v >= 0, f"{name} is {v}"


def test_request_counters_move(port):
    before = e2e.metrics(port)
    for i in range(3):
        assert e2e.tei_embed(port, [f"count me {i}"]).status == 200
    assert e2e.openai_embed(port, ["a", "b"]).status == 200
    after = e2e.metrics(port)
    assert after.value("te_request_count") == before.value("te_request_count") + 4
    assert after.value("te_request_success") == before.value("te_request_success") + 4
    assert after.value("te_request_count", method="batch") == \
        before.value("te_request_count", method="batch") + 4
    assert after.value("te_embed_success") == before.value("te_embed_success") + 5
    assert after.value("te_request_duration_count") == before.value("te_request_duration_count") + 4
    # Note [Reply path]: each request the engine answered has its three
    # steps timed; together they fit in the request's own duration.
    for step in ("resolve", "handoff", "format"):
        name = f"fanin_request_{step}_duration"
        assert after.value(name + "_count") == before.value(name + "_count") + 4, name
    reply_s = sum(after.value(f"fanin_request_{s}_duration_sum") -
                  before.value(f"fanin_request_{s}_duration_sum")
                  for s in ("resolve", "handoff", "format"))
    total_s = after.value("te_request_duration_sum") - before.value("te_request_duration_sum")
    assert 0 < reply_s < total_s, (reply_s, total_s)
    assert after.value("te_queue_size") >= 0


@pytest.mark.parametrize("body,err", [({"inputs": []}, "validation"),
                                      ({"inputs": ["a"] * 33}, "batch_size"),
                                      ({"inputs": 5}, "validation")])
def test_failed_requests_are_counted(port, body, err):
    """docs/server.md's error table gives each reason a te_request_failure
    label (Empty and Validation: validation; TooManyInputs: batch_size): an
    inference request rejected for its body is a failed inference request,
    as in TEI (which counts it in te_request_count and te_request_failure)."""
    before = e2e.metrics(port)
    r = e2e.post(port, "/embed", body)
    assert 400 <= r.status < 500, r
    after = e2e.metrics(port)
    assert after.value("te_request_failure", err=err) == \
        before.value("te_request_failure", err=err) + 1, \
        f"te_request_failure{{err={err!r}}} did not count a {r.status}"
    assert after.value("te_request_count") == before.value("te_request_count") + 1


def test_metrics_count_http_statuses(port):
    e2e.get(port, "/nope")
    m = e2e.metrics(port)
    assert any(labels.get("status") == "404" for n, labels, _ in m.samples
               if n == "fanin_http_requests_total"), "no 404 in fanin_http_requests_total"


def test_prometheus_parser_rejects_bad_text():
    """The parser used above fails on what Prometheus would refuse."""
    for bad in ("metric{le=1} 2", "metric 1 2 3", "0metric 1", "metric{a=\"x\",a=\"y\"} 1",
                "metric abc", "# TYPE metric nonsense"):
        with pytest.raises(AssertionError):
            e2e.parse_prometheus(bad + "\n")
    m = e2e.parse_prometheus('# HELP a b\n# TYPE a counter\na{x="1",y="q\\"z"} 3 1700000000\n'
                             "b +Inf\nc NaN\n")
    assert m.value("a", x=1) == 3 and m.types["a"] == "counter"
