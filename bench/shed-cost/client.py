#!/usr/bin/env python3
"""Server CPU per answer, hit against shed (issue 15: "CPU per shed answer <= CPU per hit").

Drives one corral-server over RESP with CONNECTIONS connections at once, each sending GET after
GET (one in flight per connection) for SECONDS per phase, and counts the server's CPU in the
phase (user + system time from /proc/PID/stat, from when every connection is open). Two phases alternate for ROUNDS rounds, the order rotating:

  hit   GET hot:<n>, n over keys loaded before the run: every answer a cached value;
  shed  GET cold:<unique>: every key is new, its load would wait behind loads stuck at the
        database, so corral answers -BUSY at once (the shed path).

redis-benchmark cannot do this: it stops at its first error reply, and a shed answer is one.
Both phases use this same client, so the server sees the same arrivals (one command per read).
Prints one line per phase and round, then the medians; exits 1 if a phase's answers were not what
it is for (a hit phase with a miss, a shed phase with under 99 % -BUSY).
"""

import argparse
import asyncio
import itertools
import json
import os
import statistics
import sys
import time


def resp_get(key: bytes) -> bytes:
    return b"*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n" % (len(key), key)


async def read_reply(reader: asyncio.StreamReader) -> bytes:
    """Reads one RESP2 reply to GET; returns its type byte (and the error's first word)."""
    line = await reader.readline()
    if not line:
        raise ConnectionError("the server closed the connection")
    kind = line[:1]
    if kind == b"$":
        size = int(line[1:])
        if size >= 0:
            await reader.readexactly(size + 2)
        return b"$" if size >= 0 else b"nil"
    if kind == b"-":
        return b"-" + line[1:].split(b" ", 1)[0].strip()
    return kind


class Phase:
    def __init__(self, name: str, keys):
        self.name = name
        self.keys = keys  # an iterator of keys
        self.counts: dict = {}


async def run_phase(args, phase: Phase):
    """Runs `phase` for args.seconds over args.connections connections, all opened before it
    starts; returns the elapsed time and the server's CPU time in it."""
    stop = None
    started = asyncio.Event()
    ready = 0

    async def one():
        nonlocal ready, stop
        reader, writer = await asyncio.open_connection(args.host, args.port)
        ready += 1
        if ready == args.connections:
            stop = time.monotonic() + args.seconds
            started.set()
        await started.wait()
        try:
            while time.monotonic() < stop:
                writer.write(resp_get(next(phase.keys)))
                kind = await read_reply(reader)
                phase.counts[kind] = phase.counts.get(kind, 0) + 1
        finally:
            writer.close()

    tasks = [asyncio.create_task(one()) for _ in range(args.connections)]
    await started.wait()
    begin, cpu = time.monotonic(), cpu_seconds(args.pid)
    await asyncio.gather(*tasks)
    return time.monotonic() - begin, cpu_seconds(args.pid) - cpu


def cpu_seconds(pid: int) -> float:
    """The process's user + system CPU time (clock ticks: 10 ms resolution, ample over seconds)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True, help="corral's RESP port")
    p.add_argument("--pid", type=int, required=True, help="corral-server's pid")
    p.add_argument("--connections", type=int, default=2000)
    p.add_argument("--seconds", type=float, default=8)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--hot-keys", type=int, default=1000)
    p.add_argument("--json", help="write the per-round figures here")
    args = p.parse_args()

    cold = (b"cold:%d" % n for n in itertools.count())
    hot = (b"hot:%d" % (n % args.hot_keys) for n in itertools.count())
    rows = []
    ok = True
    for rnd in range(args.rounds):
        order = ["hit", "shed"] if rnd % 2 == 0 else ["shed", "hit"]
        for name in order:
            phase = Phase(name, hot if name == "hit" else cold)
            elapsed, cpu = asyncio.run(run_phase(args, phase))
            answers = sum(phase.counts.values())
            busy = sum(v for k, v in phase.counts.items() if k.startswith(b"-BUSY"))
            good = phase.counts.get(b"$", 0) if name == "hit" else busy
            row = {"round": rnd + 1, "phase": name, "answers": answers, "per_s": answers / elapsed,
                   "cpu_s": cpu, "cpu_us_per_answer": cpu * 1e6 / max(answers, 1),
                   "counts": {k.decode(): v for k, v in phase.counts.items()}}
            rows.append(row)
            print(f"round {rnd + 1} {name:4}: {answers:7d} answers, {row['per_s']:8.0f}/s, server "
                  f"CPU {cpu:6.2f} s = {row['cpu_us_per_answer']:6.2f} us/answer  {row['counts']}")
            if name == "hit" and good != answers:
                print(f"shed-cost: the hit phase got {answers - good} answers that were not hits")
                ok = False
            if name == "shed" and busy < 0.99 * answers:
                print(f"shed-cost: the shed phase got only {busy} -BUSY of {answers}")
                ok = False
    med = {name: statistics.median(r["cpu_us_per_answer"] for r in rows if r["phase"] == name)
           for name in ("hit", "shed")}
    print(f"median server CPU per answer over {args.rounds} rounds, {args.connections} "
          f"connections: hit {med['hit']:.2f} us, shed {med['shed']:.2f} us "
          f"(shed/hit {med['shed'] / med['hit']:.2f})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rounds": rows, "median_us_per_answer": med,
                       "connections": args.connections}, f, indent=1)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
