#!/usr/bin/env python3
"""CPU time of a process split by thread group, per request of a load.

  thread_cpu.py snap PID > before.txt     # per thread: tid comm user_ticks sys_ticks run_ns
  thread_cpu.py split BEFORE AFTER LOAD.json [--json]

Groups by thread name (src/core/thread_name.h, src/server/http/http_server.cpp):
  io       fanin-io-N   HTTP I/O threads: parse, JSON, tokenization, formatting, sockets
  workers  fanin-wk-N   engine workers: batching, launch, result split, callbacks
  compute  fanin-cpu-N  the CPU backend's stream threads (the model's ops)
  other    everything else (main thread, CUDA's own threads, ...)
`split` divides each group's CPU time between the two snapshots by the
requests the load got answered over its whole run (http_load's
whole_run.status, warm-up included, as the snapshots bracket the whole
load), and prints microseconds per request (user + system) per group.
A thread present in only one snapshot counts from 0 (started) or is
dropped (ended): a load should not start or end threads.
Where /proc/PID/task/TID/schedstat exists, its run time (nanoseconds) is
the CPU time and user/system split it in the ticks' ratio; else the ticks
of /proc/PID/task/TID/stat are, which the kernel samples (a thread that ran
less than a tick or two in all reads 0: use loads of several seconds).
"""
import json
import os
import sys

GROUPS = (("io", "fanin-io-"), ("workers", "fanin-wk-"), ("compute", "fanin-cpu-"))


def snap(pid):
    out = []
    task = f"/proc/{pid}/task"
    for tid in sorted(os.listdir(task), key=int):
        try:
            with open(f"{task}/{tid}/comm") as f:
                comm = f.read().strip().replace(" ", "_") or "?"
            with open(f"{task}/{tid}/stat") as f:
                rest = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the thread ended meanwhile
        run_ns = -1
        try:
            with open(f"{task}/{tid}/schedstat") as f:
                run_ns = int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass
        # After "pid (comm)": state is field 3, utime 14, stime 15.
        out.append(f"{tid} {comm} {rest[11]} {rest[12]} {run_ns}")
    print("\n".join(out))


def read_snap(path):
    threads = {}
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 4:
                run_ns = int(parts[4]) if len(parts) >= 5 else -1
                threads[parts[0]] = (parts[1], int(parts[2]), int(parts[3]), run_ns)
    return threads


def group_of(comm):
    for name, prefix in GROUPS:
        if comm.startswith(prefix):
            return name
    return "other"


def split(before, after, load):
    hz = os.sysconf("SC_CLK_TCK")
    b, a = read_snap(before), read_snap(after)
    with open(load) as f:
        r = json.load(f)
    requests = sum(r["whole_run"]["status"].values())
    inputs = r.get("inputs_per_request", 1)
    groups = {name: {"threads": 0, "user_s": 0.0, "sys_s": 0.0} for name, _ in GROUPS}
    groups["other"] = {"threads": 0, "user_s": 0.0, "sys_s": 0.0}
    precise = all(t[3] >= 0 for t in a.values()) and all(t[3] >= 0 for t in b.values())
    for tid, (comm, u1, s1, r1) in a.items():
        _, u0, s0, r0 = b.get(tid, (comm, 0, 0, 0))
        g = groups[group_of(comm)]
        g["threads"] += 1
        user, sys_ = (u1 - u0) / hz, (s1 - s0) / hz
        if precise:  # schedstat's run time, split in the ticks' ratio
            run = (r1 - r0) / 1e9
            ticks = user + sys_
            user, sys_ = (run * user / ticks, run * sys_ / ticks) if ticks > 0 else (run, 0.0)
        g["user_s"] += user
        g["sys_s"] += sys_
    total = 0.0
    for g in groups.values():
        cpu = g["user_s"] + g["sys_s"]
        total += cpu
        g["us_per_request"] = cpu * 1e6 / requests if requests else None
        g["sys_us_per_request"] = g["sys_s"] * 1e6 / requests if requests else None
    return {"requests": requests, "inputs_per_request": inputs, "clock_ticks_per_s": hz,
            "source": "schedstat" if precise else "stat ticks",
            "total_cpu_s": total,
            "total_us_per_request": total * 1e6 / requests if requests else None,
            "groups": groups}


def main():
    if len(sys.argv) >= 3 and sys.argv[1] == "snap":
        snap(sys.argv[2])
    elif len(sys.argv) >= 5 and sys.argv[1] == "split":
        s = split(sys.argv[2], sys.argv[3], sys.argv[4])
        if "--json" in sys.argv[5:]:
            print(json.dumps(s))
        else:
            parts = [f"{k} {g['us_per_request']:.1f}" for k, g in s["groups"].items()
                     if g["threads"] and g["us_per_request"] is not None]
            print(f"server CPU us/request: total {s['total_us_per_request']:.1f} = " +
                  " + ".join(parts) + f" ({s['requests']} requests)")
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
