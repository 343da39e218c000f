#!/usr/bin/env python3
"""Load driver of the nginx failover test (tests/server/nginx/run.sh).

CLIENTS threads each post single sentences to nginx's /embed over one
keep-alive connection, back to back, for DURATION seconds. At KILL_AT seconds
the victim replica gets SIGKILL. Then every request is checked, and nginx's
access log (format `fanin_failover`, written by run.sh) tells which replica
answered each request and which were retried on the other one.

Standard library only. Exit 0 when every check passes, 1 otherwise; the
summary goes to stdout as `key: value` lines and to --summary as JSON.
"""

import argparse
import http.client
import json
import os
import signal
import sys
import threading
import time


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--nginx", required=True, help="host:port of nginx")
    p.add_argument("--victim-pid", type=int, required=True)
    p.add_argument("--victim-addr", required=True, help="host:port of the replica to kill")
    p.add_argument("--survivor-addr", required=True, help="host:port of the other replica")
    p.add_argument("--access-log", required=True)
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--kill-at", type=float, default=3.0)
    p.add_argument("--timeout", type=float, default=20.0,
                   help="a request without a response by then is a hang (a failure)")
    p.add_argument("--retry-post", type=int, choices=(0, 1), default=1,
                   help="1: nginx retries POSTs (non_idempotent): expect zero non-200s; "
                        "0: expect non-200s only from requests in flight at the kill, 502/504")
    p.add_argument("--dim", type=int, default=384, help="embedding width to check")
    p.add_argument("--summary", help="write the summary here as JSON")
    return p.parse_args()


class Record:
    __slots__ = ("client", "start", "end", "status", "error")

    def __init__(self, client, start, end, status, error):
        self.client, self.start, self.end, self.status, self.error = client, start, end, status, error


def main():
    a = parse_args()
    host, port = a.nginx.rsplit(":", 1)
    port = int(port)
    records = []
    lock = threading.Lock()
    in_flight = [0]
    stop = threading.Event()
    bad_bodies = []

    def client(c):
        conn = None
        i = 0
        while not stop.is_set():
            body = json.dumps({"inputs": f"client {c} asks for sentence {i}: the quick brown fox "
                                         f"jumps over {i % 7} lazy dogs"})
            i += 1
            with lock:
                in_flight[0] += 1
            start = time.monotonic()
            status, error = None, None
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(host, port, timeout=a.timeout)
                conn.request("POST", "/embed", body=body,
                             headers={"Content-Type": "application/json"})
                r = conn.getresponse()
                data = r.read()
                status = r.status
                if status == 200:
                    rows = json.loads(data)
                    if not (isinstance(rows, list) and len(rows) == 1 and len(rows[0]) == a.dim):
                        bad_bodies.append(data[:200])
                if r.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = None
            except Exception as e:  # noqa: BLE001 - any failure to get a response is recorded
                error = f"{type(e).__name__}: {e}"
                if conn is not None:
                    conn.close()
                conn = None
            end = time.monotonic()
            with lock:
                in_flight[0] -= 1
                records.append(Record(c, start, end, status, error))
        if conn is not None:
            conn.close()

    threads = [threading.Thread(target=client, args=(c,), daemon=True) for c in range(a.clients)]
    t0 = time.monotonic()
    wall0 = time.time()
    for t in threads:
        t.start()

    time.sleep(max(0.0, a.kill_at - (time.monotonic() - t0)))
    with lock:
        in_flight_at_kill = in_flight[0]
    t_kill = time.monotonic()
    wall_kill = time.time()
    os.kill(a.victim_pid, signal.SIGKILL)

    time.sleep(max(0.0, a.duration - (time.monotonic() - t0)))
    stop.set()
    t_stop = time.monotonic()
    for t in threads:
        t.join(a.timeout + 5)
    hung_threads = sum(t.is_alive() for t in threads)

    # ---- the clients' view ----
    statuses = {}
    for r in records:
        key = str(r.status) if r.error is None else "error"
        statuses[key] = statuses.get(key, 0) + 1
    errors = [r for r in records if r.error is not None]
    non200 = [r for r in records if r.error is None and r.status != 200]
    last_second = [r for r in records if r.end >= t_stop - 1.0]
    after_kill = [r for r in records if r.start >= t_kill]
    before_kill = [r for r in records if r.end < t_kill]
    max_latency = max((r.end - r.start for r in records), default=0.0)

    # ---- nginx's view: which replica answered, which requests were retried ----
    time.sleep(0.5)  # nginx writes a request's log line just after its response
    # Format (run.sh): $msec $status $request_time "$upstream_addr" "$upstream_status" $request_method $uri
    served_by = {a.victim_addr: {"before": 0, "after": 0}, a.survivor_addr: {"before": 0, "after": 0}}
    retried, retried_statuses, log_lines = 0, {}, 0
    with open(a.access_log) as f:
        for line in f:
            parts = line.split('"')
            if len(parts) < 5 or "/embed" not in parts[4]:
                continue
            log_lines += 1
            msec = float(parts[0].split()[0])
            addrs = [x.strip() for x in parts[1].split(",")]
            ups = [x.strip() for x in parts[3].split(",")]
            when = "before" if msec < wall_kill else "after"
            final = addrs[-1]
            if final in served_by:
                served_by[final][when] += 1
            if len(addrs) > 1:
                retried += 1
                k = ",".join(ups)
                retried_statuses[k] = retried_statuses.get(k, 0) + 1

    summary = {
        "clients": a.clients,
        "duration_s": round(t_stop - t0, 3),
        "kill_at_s": round(t_kill - t0, 3),
        "requests": len(records),
        "requests_before_kill": len(before_kill),
        "requests_started_after_kill": len(after_kill),
        "in_flight_at_kill": in_flight_at_kill,
        "statuses": statuses,
        "non200": len(non200),
        "client_errors": len(errors),
        "first_errors": [r.error for r in errors[:5]],
        "bad_bodies": len(bad_bodies),
        "max_latency_s": round(max_latency, 3),
        "last_second_requests": len(last_second),
        "last_second_non200": sum(1 for r in last_second if r.error is not None or r.status != 200),
        "rps_before_kill": round(len(before_kill) / max(1e-9, t_kill - t0), 1),
        "rps_after_kill": round(sum(1 for r in records if r.start >= t_kill + 1.0) /
                                max(1e-9, t_stop - t_kill - 1.0), 1),
        "access_log_requests": log_lines,
        "served_by_victim": served_by[a.victim_addr],
        "served_by_survivor": served_by[a.survivor_addr],
        "retried_on_other_replica": retried,
        "retried_upstream_statuses": retried_statuses,
        "hung_threads": hung_threads,
        "retry_post": a.retry_post,
        "started_wall": wall0,
    }
    for k, v in summary.items():
        print(f"{k}: {json.dumps(v)}")
    if a.summary:
        with open(a.summary, "w") as f:
            json.dump(summary, f, indent=1)

    # ---- checks ----
    failures = []
    if hung_threads or errors:
        failures.append(f"{len(errors)} requests got no HTTP response from nginx and "
                        f"{hung_threads} clients hung (first: {summary['first_errors']})")
    if bad_bodies:
        failures.append(f"{len(bad_bodies)} 200 bodies were not one row of {a.dim} floats: {bad_bodies[0]!r}")
    if a.retry_post:
        if non200:
            failures.append(f"{len(non200)} non-200 responses with POST retry on: {statuses}")
    else:
        if len(non200) > in_flight_at_kill:
            failures.append(f"{len(non200)} non-200 responses > {in_flight_at_kill} requests in flight at the kill")
        odd = sorted({r.status for r in non200} - {502, 504})
        if odd:
            failures.append(f"non-200 statuses other than 502/504: {odd}")
        late = [r for r in non200 if r.start > t_kill + 0.5]
        if late:
            failures.append(f"{len(late)} non-200s for requests started more than 0.5 s after the kill")
    if not last_second or summary["last_second_non200"]:
        failures.append(f"the last second: {len(last_second)} requests, "
                        f"{summary['last_second_non200']} not 200 (the survivor must keep serving)")
    if served_by[a.victim_addr]["before"] == 0 or served_by[a.survivor_addr]["before"] == 0:
        failures.append(f"before the kill both replicas must serve: {served_by}")
    if served_by[a.victim_addr]["after"] > 0:
        # A response the victim wrote just before the kill can be logged just after it.
        late_victim = served_by[a.victim_addr]["after"]
        if late_victim > in_flight_at_kill:
            failures.append(f"{late_victim} responses from the killed replica after the kill")
    if served_by[a.survivor_addr]["after"] == 0:
        failures.append("the survivor served nothing after the kill")
    if log_lines != len(records):
        failures.append(f"nginx logged {log_lines} /embed requests, the clients sent {len(records)}")
    for f_ in failures:
        print(f"FAIL: {f_}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
