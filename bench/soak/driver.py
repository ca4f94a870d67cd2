#!/usr/bin/env python3
"""The soak's traffic, chaos and sampler (bench/soak.sh runs it; bench/soak/README.md says why).

One asyncio loop drives mixed traffic against one corral-server for --minutes minutes:
  hot    GETs of user:1..HOT over persistent RESP connections (hits; 80 % on the first 100 ids)
  miss   GETs of item:1..ITEMS (TTL 60 s over 200 000 rows, a 1 MiB store: misses, loads and
         evictions), 5 % of them for ids past the table (not found, negatively cached)
  http   keep-alive GET /v1/cache/user/ID and /v1/cache/item/ID
  del    RESP DEL user:ID (an invalidation from the cache side)
  update UPDATE users / items on the primary (the trigger's NOTIFY invalidates), over one
         PostgreSQL connection of the driver's own
  herd   every --herd-every s, --herd-size connections GET one brand-new key at once
  vanish connections that connect, make 0-3 requests and vanish: FIN or RST, after reading, with
         a request still in flight, or half-way through a request
and, every --kill-every minutes (the first at 1:15), SIGKILLs a replica (deploy/pg-local.sh
kill-node, replica1 and replica2 in turn) and starts it again --down-s seconds later; corral must
mark it down (noted) and up again within --back-within-s (else an error), read from its /metrics.

Every answer is checked where it is cheap: a user or item value must be that row's JSON (its id,
its name or body); a user's version must not be older than a version committed more than
--outdated-s seconds before the request was sent; a herd's answers must all be equal; a key past
the table must be nil / 404. At the end of every minute it samples the server process: RSS and
CPU time from /proc/PID, and threads and open fds as the smallest of --fd-samples samples one
second apart (so that a connection being opened or closed at that instant is not counted), and
corral's /v1/stats. Writes --out (JSON; bench/soak/report.py turns it into the table and verdict).
"""

import argparse
import asyncio
import bisect
import collections
import json
import math
import os
import random
import sys
import time

from clients import Http, Pg, ProtocolError, Resp, RespError, abort, http_request, resp_command

HOT = 1000  # user ids 1..HOT are the hot set (the seeded table has 10 000)
ITEMS = 200_000  # item ids 1..ITEMS exist (bench/soak.sh creates them)
NOT_FOUND_BASE = 5_000_000  # item ids past this never exist
HERD_BASE = 10_000_000  # item ids HERD_BASE+1 .. HERD_BASE+HERD_KEYS exist, each read by one herd
HERD_KEYS = 10_000
CONNECTION_ERRORS = (OSError, asyncio.IncompleteReadError, ConnectionError)

# Default request rates (per second, before --rate-scale) and connections per traffic class.
RATES = {"hot": 450, "miss": 200, "http": 60, "del": 5, "update": 6, "vanish": 10}
CONNECTIONS = {"hot": 24, "miss": 20, "http": 4, "del": 1}


def percentile(sorted_values, q):
    """Nearest rank: the smallest value with at least q of the values at or below it."""
    if not sorted_values:
        return None
    return sorted_values[min(len(sorted_values) - 1, max(0, math.ceil(q * len(sorted_values)) - 1))]


class Minute:
    def __init__(self):
        self.latencies = []
        self.steady = []  # latencies of everything but the herds
        self.outcomes = collections.Counter()  # ok, busy, upstream, error
        self.error_kinds = collections.Counter()
        self.classes = collections.Counter()  # requests per traffic class
        self.lag = []
        self.events = []
        self.updates = 0


class Driver:
    def __init__(self, args):
        self.a = args
        self.loop = asyncio.get_running_loop()
        self.minute_s = args.minute_seconds
        self.minutes = [Minute() for _ in range(args.minutes)]
        self.t0 = 0.0
        self.end = 0.0
        self.stopping = False
        self.rng = random.Random(args.seed)
        self.commits = collections.defaultdict(list)  # user id -> [(time, version)], in order
        self.commit_times = collections.defaultdict(list)
        self.busy_times = []  # (time, class) of every busy answer, classified after the run
        self.upstream_times = []
        self.kill_windows = []  # [start, end] around each replica kill
        self.samples = []
        self.error_log = []
        self.herds = 0
        self.vanish_tasks = set()
        self.log_file = open(args.log, "a", buffering=1) if args.log else None

    # ---- bookkeeping -------------------------------------------------------------------------

    def now(self):
        return self.loop.time()

    def minute_of(self, t):
        i = int((t - self.t0) // self.minute_s)
        return self.minutes[i] if 0 <= i < len(self.minutes) else None

    def log(self, text):
        line = f"[{self.clock()}] {text}"
        if self.log_file:
            self.log_file.write(line + "\n")

    def clock(self, t=None):
        s = max(0.0, (self.now() if t is None else t) - self.t0)
        return f"{int(s // 60):02d}:{s % 60:06.3f}"

    def record(self, cls, t_send, outcome, kind=None, detail=None, latency=True):
        """One request sent at t_send (loop time) finished now with outcome."""
        if t_send >= self.end or t_send < self.t0:
            return
        m = self.minute_of(t_send)
        if m is None:
            return
        if latency:
            m.latencies.append(self.now() - t_send)
            if cls != "herd":
                m.steady.append(m.latencies[-1])
        m.classes[cls] += 1
        m.outcomes[outcome] += 1
        if outcome == "error":
            m.error_kinds[kind] += 1
            if len(self.error_log) < 1000:
                entry = f"{self.clock(t_send)} {cls} {kind}: {detail}"
                self.error_log.append(entry)
                self.log("error " + entry)
        elif outcome == "busy":
            self.busy_times.append((t_send, cls))
        elif outcome == "upstream":
            self.upstream_times.append((t_send, cls, detail))

    def fail(self, cls, t, kind, detail):
        """An error that is not a request's answer (no latency): a connect, a sample, a kill."""
        self.record(cls, t, "error", kind, detail, latency=False)

    def event(self, text):
        self.log(text)
        m = self.minute_of(self.now())
        if m is not None:
            m.events.append(f"{self.clock()} {text}")
        print(f"soak: [{self.clock()}] {text}", file=sys.stderr, flush=True)

    async def sleep_until(self, t):
        """Sleeps until loop time t, or until the run stops."""
        while not self.stopping:
            d = t - self.now()
            if d <= 0:
                return
            await asyncio.sleep(min(d, 1.0))

    # ---- answers -----------------------------------------------------------------------------

    @staticmethod
    def classify_error(err):
        text = str(err)
        if err.prefix == "BUSY":
            return "busy", None, text
        if text.startswith("ERR upstream"):
            return "upstream", None, text
        return "error", "err", text

    def committed_before(self, uid, t):
        """The newest version of user uid whose UPDATE had returned before t (0 if none)."""
        times = self.commit_times.get(uid)
        if not times:
            return 0
        i = bisect.bisect_left(times, t)
        return self.commits[uid][i - 1][1] if i else 0

    def check_user(self, uid, value, t_send):
        try:
            row = json.loads(value)
        except ValueError:
            return "error", "wrong", f"user:{uid} is not JSON: {value[:80]!r}"
        if (
            not isinstance(row, dict)
            or row.get("id") != uid
            or row.get("name") != f"user {uid}"
            or row.get("email") != f"user{uid}@example.com"
            or not isinstance(row.get("version"), int)
        ):
            return "error", "wrong", f"user:{uid} has another row's shape: {value[:120]!r}"
        floor = self.committed_before(uid, t_send - self.a.outdated_s)
        if row["version"] < floor:
            return (
                "error",
                "outdated",
                f"user:{uid} version {row['version']}, but {floor} was committed more than "
                f"{self.a.outdated_s} s before the request",
            )
        return "ok", None, None

    @staticmethod
    def check_item(iid, value):
        try:
            row = json.loads(value)
        except ValueError:
            return "error", "wrong", f"item:{iid} is not JSON: {value[:80]!r}"
        if (
            not isinstance(row, dict)
            or row.get("id") != iid
            or row.get("body") != f"item {iid}"
            or not isinstance(row.get("version"), int)
        ):
            return "error", "wrong", f"item:{iid} has another row's shape: {value[:120]!r}"
        return "ok", None, None

    def check_resp_get(self, ns, ident, reply, t_send):
        if isinstance(reply, RespError):
            return self.classify_error(reply)
        exists = ns == "user" or ident <= ITEMS or ident > HERD_BASE
        if reply is None:
            return ("error", "wrong", f"{ns}:{ident} nil") if exists else ("ok", None, None)
        if not isinstance(reply, bytes):
            return "error", "protocol", f"GET {ns}:{ident} answered {reply!r:.80}"
        if not exists:
            return "error", "wrong", f"{ns}:{ident} should not exist: {reply[:80]!r}"
        if ns == "user":
            return self.check_user(ident, reply, t_send)
        return self.check_item(ident, reply)

    def check_http_get(self, ns, ident, status, body, t_send):
        exists = ns == "user" or ident <= ITEMS or ident > HERD_BASE
        if status == 200 and exists:
            if ns == "user":
                return self.check_user(ident, body, t_send)
            return self.check_item(ident, body)
        if status == 404 and not exists:
            return "ok", None, None
        if status in (200, 404):
            return "error", "wrong", f"GET /v1/cache/{ns}/{ident}: {status} {body[:80]!r}"
        if status == 503:
            return "busy", None, body.decode(errors="replace")[:120]
        if status == 502:
            return "upstream", None, body.decode(errors="replace")[:120]
        return "error", "http", f"GET /v1/cache/{ns}/{ident}: {status} {body[:80]!r}"

    # ---- requests ----------------------------------------------------------------------------

    def hot_id(self):
        return self.rng.randint(1, 100) if self.rng.random() < 0.8 else self.rng.randint(1, HOT)

    def miss_id(self):
        if self.rng.random() < 0.05:
            return self.rng.randint(NOT_FOUND_BASE - ITEMS, NOT_FOUND_BASE)
        return self.rng.randint(1, ITEMS)

    def next_request(self, cls):
        """(args, check(reply, t_send)) for one request of a persistent RESP class."""
        if cls == "hot":
            uid = self.hot_id()
            return ("GET", f"user:{uid}"), lambda r, t: self.check_resp_get("user", uid, r, t)
        if cls == "miss":
            iid = self.miss_id()
            return ("GET", f"item:{iid}"), lambda r, t: self.check_resp_get("item", iid, r, t)
        if cls == "del":
            uid = self.hot_id()

            def check_del(reply, _t):
                if isinstance(reply, RespError):
                    return self.classify_error(reply)
                if isinstance(reply, int) and reply in (0, 1):
                    return "ok", None, None
                return "error", "protocol", f"DEL user:{uid} answered {reply!r:.80}"

            return ("DEL", f"user:{uid}"), check_del
        raise ValueError(cls)

    async def paced(self, rate):
        """Yields once per 1/rate seconds (phase randomised) until the run stops."""
        interval = 1.0 / rate
        t = self.now() + self.rng.random() * interval
        while not self.stopping:
            if t > self.now():
                await asyncio.sleep(t - self.now())
            if self.stopping:
                return
            yield
            t += interval
            if t < self.now() - 1.0:  # fell more than a second behind: do not burst to catch up
                t = self.now()

    async def resp_worker(self, cls, rate):
        conn = None
        async for _ in self.paced(rate):
            t = self.now()
            if conn is None:
                try:
                    conn = await Resp.connect(self.a.host, self.a.resp_port, self.a.timeout_s)
                except (*CONNECTION_ERRORS, TimeoutError) as e:
                    self.fail(cls, t, "connect", repr(e))
                    await asyncio.sleep(0.5)
                    continue
                t = self.now()
            args, check = self.next_request(cls)
            try:
                async with asyncio.timeout(self.a.timeout_s):
                    reply = await conn.call(*args)
            except TimeoutError:
                self.record(cls, t, "error", "timeout", " ".join(args))
                conn.close()
                conn = None
                continue
            except ProtocolError as e:
                self.record(cls, t, "error", "protocol", f"{' '.join(args)}: {e}")
                conn.close()
                conn = None
                continue
            except CONNECTION_ERRORS as e:
                self.record(cls, t, "error", "conn", f"{' '.join(args)}: {e!r}")
                conn.close()
                conn = None
                continue
            self.record(cls, t, *check(reply, t))
        if conn:
            conn.close()

    async def http_worker(self, rate):
        conn = None
        async for _ in self.paced(rate):
            t = self.now()
            if conn is None or conn.writer.is_closing():
                try:
                    conn = await Http.connect(self.a.host, self.a.http_port, self.a.timeout_s)
                except (*CONNECTION_ERRORS, TimeoutError) as e:
                    self.fail("http", t, "connect", repr(e))
                    await asyncio.sleep(0.5)
                    continue
                t = self.now()
            if self.rng.random() < 0.6:
                ns, ident = "user", self.hot_id()
            else:
                ns, ident = "item", self.miss_id()
            path = f"/v1/cache/{ns}/{ident}"
            try:
                async with asyncio.timeout(self.a.timeout_s):
                    status, _, body = await conn.get(path)
            except TimeoutError:
                self.record("http", t, "error", "timeout", path)
                conn.close()
                conn = None
                continue
            except ProtocolError as e:
                self.record("http", t, "error", "protocol", f"{path}: {e}")
                conn.close()
                conn = None
                continue
            except CONNECTION_ERRORS as e:
                self.record("http", t, "error", "conn", f"{path}: {e!r}")
                conn.close()
                conn = None
                continue
            self.record("http", t, *self.check_http_get(ns, ident, status, body, t))
        if conn:
            conn.close()

    async def updater(self, rate):
        """UPDATEs on the primary (5 of 6 on the hot users): the trigger's NOTIFY invalidates."""
        pg = None
        async for _ in self.paced(rate):
            t = self.now()
            try:
                if pg is None:
                    pg = await Pg.connect(self.a.host, self.a.pg_port, "app", "app")
                if self.rng.random() < 5 / 6:
                    uid = self.hot_id()
                    async with asyncio.timeout(10):
                        rows = await pg.query(
                            "UPDATE users SET version = version + 1 "
                            f"WHERE id = {uid} RETURNING version"
                        )
                    done = self.now()
                    self.commits[uid].append((done, int(rows[0][0])))
                    self.commit_times[uid].append(done)
                else:
                    async with asyncio.timeout(10):
                        iid = self.rng.randint(1, ITEMS)
                        await pg.query(f"UPDATE items SET version = version + 1 WHERE id = {iid}")
                m = self.minute_of(t)
                if m is not None and t < self.end:
                    m.updates += 1
            except Exception as e:
                # Not corral's answer, but an invalidation the run meant to make is lost: counted.
                self.fail("update", t, "db", repr(e))
                if pg:
                    pg.close()
                pg = None
                await asyncio.sleep(0.5)
        if pg:
            pg.close()

    # ---- herds -------------------------------------------------------------------------------

    async def herd_loop(self, conns):
        k = 0
        t = self.t0 + self.a.herd_offset_s
        while True:
            await self.sleep_until(t)
            if self.stopping or self.now() >= self.end:
                break
            k += 1
            iid = HERD_BASE + k
            t_send = self.now()
            gets = (self.herd_get(conns, i, iid) for i in range(len(conns)))
            replies = await asyncio.gather(*gets)
            values = {r for r in replies if r is not None}
            if len(values) > 1:
                self.fail("herd", t_send, "herd", f"item:{iid}: {len(values)} values")
            self.herds += 1
            t += self.a.herd_every_s
        for c in conns:
            if c:
                c.close()

    async def herd_get(self, conns, i, iid):
        t = self.now()
        if conns[i] is None:
            try:
                conns[i] = await Resp.connect(self.a.host, self.a.resp_port, self.a.timeout_s)
            except (*CONNECTION_ERRORS, TimeoutError) as e:
                self.fail("herd", t, "connect", repr(e))
                return None
        try:
            async with asyncio.timeout(self.a.timeout_s):
                reply = await conns[i].call("GET", f"item:{iid}")
        except (*CONNECTION_ERRORS, TimeoutError, ProtocolError) as e:
            kind = "timeout" if isinstance(e, TimeoutError) else "conn"
            self.record("herd", t, "error", kind, f"item:{iid}: {e!r}")
            conns[i].close()
            conns[i] = None
            return None
        outcome = self.check_resp_get("item", iid, reply, t)
        self.record("herd", t, *outcome)
        return reply if outcome[0] == "ok" else None

    # ---- vanishing clients -------------------------------------------------------------------

    async def vanisher(self, rate):
        async for _ in self.paced(rate):
            coro = self.vanish_http() if self.rng.random() < 0.2 else self.vanish_resp()
            task = asyncio.create_task(coro)
            self.vanish_tasks.add(task)
            task.add_done_callback(self.vanish_tasks.discard)

    async def vanish_resp(self):
        t = self.now()
        try:
            conn = await Resp.connect(self.a.host, self.a.resp_port, self.a.timeout_s)
        except (*CONNECTION_ERRORS, TimeoutError) as e:
            self.fail("vanish", t, "connect", repr(e))
            return
        mode = self.rng.choice(("fin", "rst", "inflight", "partial"))
        try:
            for _ in range(self.rng.randint(0 if mode in ("inflight", "partial") else 1, 3)):
                args, check = self.next_request(self.rng.choice(("hot", "miss")))
                t = self.now()
                async with asyncio.timeout(self.a.timeout_s):
                    reply = await conn.call(*args)
                self.record("vanish", t, *check(reply, t))
            if mode == "inflight":  # a miss, so that a load is in flight when the client goes
                conn.writer.write(resp_command("GET", f"item:{self.miss_id()}"))
                await conn.writer.drain()
            elif mode == "partial":
                cmd = resp_command("GET", f"user:{self.hot_id()}")
                conn.writer.write(cmd[: self.rng.randint(1, len(cmd) - 1)])
                await conn.writer.drain()
        except TimeoutError:
            self.record("vanish", t, "error", "timeout", "vanishing client's request")
        except ProtocolError as e:
            self.record("vanish", t, "error", "protocol", str(e))
        except CONNECTION_ERRORS as e:
            self.record("vanish", t, "error", "conn", f"before vanishing: {e!r}")
        abort(conn.writer, reset=mode == "rst" or self.rng.random() < 0.5)

    async def vanish_http(self):
        t = self.now()
        try:
            conn = await Http.connect(self.a.host, self.a.http_port, self.a.timeout_s)
        except (*CONNECTION_ERRORS, TimeoutError) as e:
            self.fail("vanish", t, "connect", repr(e))
            return
        mode = self.rng.choice(("fin", "rst", "inflight", "partial"))
        try:
            for _ in range(self.rng.randint(0 if mode in ("inflight", "partial") else 1, 2)):
                if self.rng.random() < 0.5:
                    ns, ident = "user", self.hot_id()
                else:
                    ns, ident = "item", self.miss_id()
                t = self.now()
                async with asyncio.timeout(self.a.timeout_s):
                    status, _, body = await conn.get(f"/v1/cache/{ns}/{ident}")
                self.record("vanish", t, *self.check_http_get(ns, ident, status, body, t))
            if mode == "inflight":
                conn.writer.write(http_request(f"/v1/cache/item/{self.miss_id()}"))
                await conn.writer.drain()
            elif mode == "partial":
                req = http_request(f"/v1/cache/user/{self.hot_id()}")
                conn.writer.write(req[: self.rng.randint(1, len(req) - 1)])
                await conn.writer.drain()
        except TimeoutError:
            self.record("vanish", t, "error", "timeout", "vanishing client's request")
        except ProtocolError as e:
            self.record("vanish", t, "error", "protocol", str(e))
        except CONNECTION_ERRORS as e:
            self.record("vanish", t, "error", "conn", f"before vanishing: {e!r}")
        abort(conn.writer, reset=mode == "rst" or self.rng.random() < 0.5)

    # ---- chaos: a replica killed and restarted -----------------------------------------------

    async def pg_local(self, *args):
        proc = await asyncio.create_subprocess_exec(
            self.a.pg_local, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        try:
            async with asyncio.timeout(180):
                out, _ = await proc.communicate()
        except TimeoutError:
            proc.kill()
            out, _ = await proc.communicate()
        return proc.returncode, out.decode(errors="replace").strip()

    async def replica_up(self):
        """corral_replica_up from corral's /metrics: {"replica0": 1, ...}, or None."""
        try:
            conn = await Http.connect(self.a.host, self.a.http_port, 2)
            try:
                async with asyncio.timeout(2):
                    status, _, body = await conn.get("/metrics")
            finally:
                conn.close()
        except (*CONNECTION_ERRORS, TimeoutError, ProtocolError):
            return None
        if status != 200:
            return None
        up = {}
        for line in body.decode(errors="replace").splitlines():
            if line.startswith('corral_replica_up{replica="'):
                name = line.split('"')[1]
                up[name] = int(float(line.rsplit(" ", 1)[1]))
        return up

    async def watch_replica(self, replica, want, until):
        """Seconds until corral reports replica up (want 1) or down (want 0), or None by until."""
        t = self.now()
        while self.now() < until and not self.stopping:
            up = await self.replica_up()
            if up is not None and up.get(replica) == want:
                return self.now() - t
            await asyncio.sleep(0.25)
        return None

    async def chaos(self):
        if self.a.kill_every <= 0:
            return
        k = 0
        while True:
            t_kill = self.t0 + self.a.first_kill_s + k * self.a.kill_every * self.minute_s
            # Leave the replica time to come back before the end of the run.
            if t_kill + self.a.down_s + self.a.back_within_s > self.end:
                return
            await self.sleep_until(t_kill)
            node = ("replica1", "replica2")[k % 2]
            replica = ("replica0", "replica1")[k % 2]  # corral's name: its index in the config
            t_start = self.now()
            rc, out = await self.pg_local("kill-node", node)
            self.event(f"kill-node {node}: exit {rc}")
            if rc != 0:
                self.fail("chaos", t_start, "chaos", f"kill-node {node}: {out}")
            seen = await self.watch_replica(replica, 0, t_kill + self.a.down_s - 1)
            self.event(
                f"corral marked {replica} down {seen:.1f} s after kill-node returned"
                if seen is not None
                else f"corral did not mark {replica} down while it was dead"
            )
            await self.sleep_until(t_kill + self.a.down_s)
            rc, out = await self.pg_local("start-node", node)
            self.event(f"start-node {node}: exit {rc} (streams again)")
            if rc != 0:
                self.fail("chaos", self.now(), "chaos", f"start-node {node}: {out}")
            back = await self.watch_replica(replica, 1, self.now() + self.a.back_within_s)
            if back is None:
                self.fail(
                    "chaos",
                    self.now(),
                    "replica-not-back",
                    f"corral did not mark {replica} up within {self.a.back_within_s:g} s of the "
                    "restart",
                )
            else:
                self.event(f"corral marked {replica} up {back:.1f} s after start-node returned")
            self.kill_windows.append((t_start - 1.0, self.now() + self.a.settle_s))
            k += 1

    # ---- sampling ----------------------------------------------------------------------------

    def proc_sample(self):
        pid = self.a.server_pid
        status = {}
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                status[key] = value.strip()
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        return {
            "rss_kib": int(status["VmRSS"].split()[0]),
            "threads": int(status["Threads"]),
            "fds": len(os.listdir(f"/proc/{pid}/fd")),
            "cpu_s": (int(fields[11]) + int(fields[12])) / ticks,
        }

    async def server_stats(self):
        try:
            conn = await Http.connect(self.a.host, self.a.http_port, 5)
            try:
                async with asyncio.timeout(5):
                    status, _, body = await conn.get("/v1/stats")
            finally:
                conn.close()
            return json.loads(body) if status == 200 else {"status": status}
        except Exception as e:  # diagnostics only
            return {"error": repr(e)}

    async def sampler(self):
        for i in range(1, len(self.minutes) + 1):
            t_end = self.t0 + i * self.minute_s
            fds, threads = [], []
            sample = None
            for k in range(self.a.fd_samples - 1, -1, -1):
                await self.sleep_until(t_end - k)
                try:
                    sample = self.proc_sample()
                except (OSError, KeyError, ValueError) as e:
                    sample = None
                    self.fail("sampler", t_end - 1, "server-gone", repr(e))
                    break
                fds.append(sample["fds"])
                threads.append(sample["threads"])
            if sample is not None:
                sample["fds"], sample["threads"] = min(fds), min(threads)
                sample["fds_max"], sample["threads_max"] = max(fds), max(threads)
            stats = await self.server_stats()
            self.samples.append({"minute": i, "proc": sample, "stats": stats})
            self.progress(i)

    def progress(self, i):
        m = self.minutes[i - 1]
        s = self.samples[-1]["proc"] or {}
        lat = sorted(m.latencies)
        p99 = percentile(lat, 0.99)
        print(
            f"soak: minute {i:3d}: rss {s.get('rss_kib', 0) / 1024:7.1f} MiB  "
            f"fds {s.get('fds', '?'):>4}  threads {s.get('threads', '?'):>3}  "
            f"p99 {p99 * 1e3 if p99 else 0:7.2f} ms  "
            f"requests {sum(m.outcomes.values()):7d}  errors {m.outcomes['error']}  "
            f"busy {m.outcomes['busy']}  upstream {m.outcomes['upstream']}",
            file=sys.stderr,
            flush=True,
        )

    async def lag_monitor(self):
        """The driver's own event-loop lag: a starved driver inflates every latency it measures."""
        while not self.stopping:
            t = self.now()
            await asyncio.sleep(0.1)
            m = self.minute_of(t)
            if m is not None:
                m.lag.append(self.now() - t - 0.1)

    # ---- the run -----------------------------------------------------------------------------

    async def run(self):
        a = self.a
        scale = a.rate_scale
        herd_conns = []
        for _ in range(a.herd_size):
            herd_conns.append(await Resp.connect(a.host, a.resp_port, a.timeout_s))
        self.t0 = self.now()
        self.end = self.t0 + a.minutes * self.minute_s
        self.wall_start = time.time()
        self.event(
            f"start: {a.minutes} min ({a.warmup_minutes} warm-up), pid {a.server_pid}, "
            f"herd {a.herd_size} connections every {a.herd_every_s} s, rate scale {scale}"
        )
        workers = []
        for cls in ("hot", "miss", "del"):
            n = CONNECTIONS[cls]
            for _ in range(n):
                workers.append(self.resp_worker(cls, RATES[cls] * scale / n))
        for _ in range(CONNECTIONS["http"]):
            workers.append(self.http_worker(RATES["http"] * scale / CONNECTIONS["http"]))
        workers.append(self.updater(RATES["update"] * scale))
        workers.append(self.vanisher(RATES["vanish"] * scale))
        workers.append(self.herd_loop(herd_conns))
        workers.append(self.chaos())
        tasks = [asyncio.create_task(w) for w in workers]
        lag = asyncio.create_task(self.lag_monitor())
        await self.sampler()  # returns after the last minute's sample, at the end of the run
        self.stopping = True
        self.event("stop")
        done, pending = await asyncio.wait(tasks + list(self.vanish_tasks), timeout=a.timeout_s + 5)
        for t in pending:
            t.cancel()
        lag.cancel()
        await asyncio.gather(*pending, lag, return_exceptions=True)
        for t in done:
            if t.exception() is not None:
                self.fail("driver", self.end - 1, "driver", repr(t.exception()))

    def in_kill_window(self, t):
        return any(s <= t <= e for s, e in self.kill_windows)

    def result(self):
        busy_outside = collections.Counter()
        upstream_outside = collections.Counter()
        for t, _ in self.busy_times:
            if not self.in_kill_window(t):
                busy_outside[int((t - self.t0) // self.minute_s)] += 1
        for t, cls, detail in self.upstream_times:
            if not self.in_kill_window(t):
                upstream_outside[int((t - self.t0) // self.minute_s)] += 1
                if len(self.error_log) < 1000:
                    self.error_log.append(
                        f"{self.clock(t)} {cls} upstream outside a kill window: {detail}"
                    )
        rows = []
        for i, m in enumerate(self.minutes):
            lat = sorted(m.latencies)
            steady = sorted(m.steady)
            lag = sorted(m.lag)
            sample = self.samples[i] if i < len(self.samples) else {"proc": None, "stats": {}}
            proc = sample["proc"] or {}

            def ms(v):
                return None if v is None else round(v * 1e3, 3)

            errors = m.outcomes["error"] + upstream_outside[i]
            kinds = dict(m.error_kinds)
            if upstream_outside[i]:
                kinds["upstream-outside-kill"] = upstream_outside[i]
            rows.append(
                {
                    "minute": i + 1,
                    "rss_mib": round(proc["rss_kib"] / 1024, 2) if proc else None,
                    "fds": proc.get("fds"),
                    "fds_max": proc.get("fds_max"),
                    "threads": proc.get("threads"),
                    "threads_max": proc.get("threads_max"),
                    "cpu_s": proc.get("cpu_s"),
                    "requests": sum(m.outcomes.values()),
                    "ok": m.outcomes["ok"],
                    "busy": m.outcomes["busy"],
                    "busy_outside_kill": busy_outside[i],
                    "upstream": m.outcomes["upstream"],
                    "errors": errors,
                    "error_kinds": kinds,
                    "by_class": dict(m.classes),
                    "updates": m.updates,
                    "p50_ms": ms(percentile(lat, 0.5)),
                    "p99_ms": ms(percentile(lat, 0.99)),
                    "p99_steady_ms": ms(percentile(steady, 0.99)),
                    "max_ms": ms(lat[-1] if lat else None),
                    "loop_lag_p99_ms": ms(percentile(lag, 0.99)),
                    "events": m.events,
                    "server_stats": sample["stats"],
                }
            )
        a = self.a
        return {
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.wall_start)),
            "settings": {
                "minutes": a.minutes,
                "warmup_minutes": a.warmup_minutes,
                "minute_seconds": self.minute_s,
                "rates_per_s": {k: v * a.rate_scale for k, v in RATES.items()},
                "connections": CONNECTIONS,
                "herd_size": a.herd_size,
                "herd_every_s": a.herd_every_s,
                "kill_every_minutes": a.kill_every,
                "down_s": a.down_s,
                "timeout_s": a.timeout_s,
                "outdated_s": a.outdated_s,
                "seed": a.seed,
                "server_pid": a.server_pid,
            },
            "herds": self.herds,
            "driver_cpu_s": round(sum(os.times()[:2]), 1),
            "kill_windows_s": [
                [round(s - self.t0, 1), round(e - self.t0, 1)] for s, e in self.kill_windows
            ],
            "minutes": rows,
            "errors_sample": self.error_log[:200],
        }


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = p.add_argument
    add("--host", default="127.0.0.1", help="corral-server's and PostgreSQL's address")
    add("--resp-port", type=int, required=True)
    add("--http-port", type=int, required=True)
    add("--pg-port", type=int, required=True, help="the primary's port")
    add("--pg-local", required=True, help="deploy/pg-local.sh, with CORRAL_PG_DIR set")
    add("--server-pid", type=int, required=True, help="the corral-server process to sample")
    add("--minutes", type=int, default=30)
    add("--warmup-minutes", type=int, default=10, help="recorded only for the report")
    add("--minute-seconds", type=float, default=60.0, help="shorter to try the driver out")
    add("--rate-scale", type=float, default=1.0, help=f"times the default rates {RATES}")
    add("--herd-size", type=int, default=300, help="connections in each herd")
    add("--herd-every-s", type=float, default=30.0)
    add("--herd-offset-s", type=float, default=5.0, help="the first herd's start")
    add("--kill-every", type=float, default=4.0, help="minutes between kills; 0: none")
    add("--first-kill-s", type=float, default=75.0)
    add("--down-s", type=float, default=20.0, help="from kill-node to start-node")
    add("--back-within-s", type=float, default=30.0, help="corral must use it again by then")
    add("--settle-s", type=float, default=10.0, help="the kill window's tail after that")
    add("--fd-samples", type=int, default=5, help="one a second at each minute's end")
    add("--timeout-s", type=float, default=5.0, help="per request")
    add("--outdated-s", type=float, default=30.0, help="see the version check above")
    add("--seed", type=int, default=1)
    add("--out", required=True, help="the JSON results")
    add("--log", help="events and error details, appended")
    a = p.parse_args(argv)
    if a.minutes < 2 or not 0 <= a.warmup_minutes < a.minutes:
        p.error("need --minutes >= 2 and 0 <= --warmup-minutes < --minutes")
    if a.minutes * a.minute_seconds / a.herd_every_s > HERD_KEYS:
        p.error(f"more than {HERD_KEYS} herds: raise --herd-every-s")
    return a


async def amain(argv):
    args = parse_args(argv)
    driver = Driver(args)
    await driver.run()
    result = driver.result()
    tmp = args.out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(result, f, indent=1)
    os.replace(tmp, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(amain(sys.argv[1:])))
