#!/usr/bin/env python3
"""The soak's table and verdict from the driver's JSON (bench/soak/README.md states the rule).

Usage: report.py SOAK_JSON [--md OUT.md]   writes the verdict into SOAK_JSON, the markdown table
                                           to OUT.md (and stdout); exit 0 pass, 1 fail
       report.py --self-test               the rule against synthetic leaks and noise

The rule: the minutes after the warm-up form the window (minutes 11-30 by default). For each of
RSS, open fds, threads and p99 the trend is the Theil-Sen slope (the median of the slopes between
every pair of minutes, so that one odd minute does not move it) and the rise is that slope times the
window's span (its last minute minus its first). A metric fails when its rise exceeds its limit AND
the median of the window's last 5 minutes is above the median of its first 5 (it ends higher than it
began, not just tilted). Limits: RSS max(8 MiB, 5 % of the first median); fds 3; threads 2; p99
max(5 ms, 75 % of the first median), judged on the minutes without a replica kill or restart (those
minutes measure the kill). Besides, the run fails on any error in any minute (warm-up included), on
busy answers outside the kill windows beyond 0.1 % of the requests, or if a minute has no sample
(the server was gone).
"""

import json
import os
import random
import statistics
import sys

# metric: (label, unit, absolute floor, fraction of the window's first-5 median)
THRESHOLDS = {
    "rss_mib": ("RSS", "MiB", 8.0, 0.05),
    "fds": ("open fds", "", 3.0, 0.0),
    "threads": ("threads", "", 2.0, 0.0),
    "p99_ms": ("p99", "ms", 5.0, 0.75),
}
EDGE = 5  # minutes at each end of the window whose medians must differ
BUSY_OUTSIDE_MAX = 0.001  # busy answers outside the kill windows, as a fraction of all requests


def theil_sen(xs, ys):
    slopes = [
        (ys[j] - ys[i]) / (xs[j] - xs[i])
        for i in range(len(xs))
        for j in range(i + 1, len(xs))
        if xs[j] != xs[i]
    ]
    return statistics.median(slopes) if slopes else 0.0


def judge_metric(name, xs, ys):
    label, unit, floor, frac = THRESHOLDS[name]
    k = max(1, min(EDGE, len(ys) // 2))
    head, tail = statistics.median(ys[:k]), statistics.median(ys[-k:])
    slope = theil_sen(xs, ys)
    rise = slope * (xs[-1] - xs[0])
    limit = max(floor, frac * head)
    failed = rise > limit and tail > head
    return {
        "metric": name,
        "label": label,
        "unit": unit,
        "slope_per_min": round(slope, 4),
        "rise": round(rise, 3),
        "limit": round(limit, 3),
        "head_median": head,
        "tail_median": tail,
        "edge_minutes": k,
        "failed": failed,
    }


def kill_minute(row):
    """Whether a replica was killed or restarted in this minute (its p99 measures that)."""
    return any(" kill-node " in e or " start-node " in e for e in row.get("events", []))


def judge(result):
    s = result["settings"]
    rows = result["minutes"]
    window = [r for r in rows if r["minute"] > s["warmup_minutes"]]
    reasons = []
    metrics = []
    missing = [r["minute"] for r in rows if r["rss_mib"] is None or r["p99_ms"] is None]
    if missing:
        reasons.append(f"no sample for minute(s) {missing} (server gone?)")
    if len(window) >= 2 and not missing:
        for name in THRESHOLDS:
            rows_used = window
            if name == "p99_ms":
                quiet = [r for r in window if not kill_minute(r)]
                rows_used = quiet if len(quiet) >= 2 else window
            xs = [r["minute"] for r in rows_used]
            m = judge_metric(name, xs, [float(r[name]) for r in rows_used])
            m["minutes_used"] = len(rows_used)
            metrics.append(m)
            if m["failed"]:
                reasons.append(
                    f"{m['label']} keeps rising: +{m['rise']:g} {m['unit']} over the window "
                    f"(limit {m['limit']:g}), last-{m['edge_minutes']} median "
                    f"{m['tail_median']:g} > first-{m['edge_minutes']} median {m['head_median']:g}"
                )
    elif not missing:
        reasons.append("fewer than 2 minutes after the warm-up: nothing to judge")
    notes = []
    p99 = next((m for m in metrics if m["metric"] == "p99_ms"), None)
    lags = [r.get("loop_lag_p99_ms") for r in window]
    if p99 and p99["failed"] and all(v is not None for v in lags) and len(lags) >= 2:
        k = p99["edge_minutes"]
        head, tail = statistics.median(lags[:k]), statistics.median(lags[-k:])
        if tail > 1.5 * head + 1:
            notes.append(
                f"the driver's own event-loop lag rose too (p99 {head:g} -> {tail:g} ms): the "
                "machine may have been busy; run it again at a quiet moment before blaming corral"
            )
    errors = sum(r["errors"] for r in rows)
    if errors:
        kinds = {}
        for r in rows:
            for k, v in r["error_kinds"].items():
                kinds[k] = kinds.get(k, 0) + v
        by_kind = ", ".join(f"{k} {v}" for k, v in sorted(kinds.items()))
        reasons.append(f"{errors} errors ({by_kind})")
    requests = sum(r["requests"] for r in rows)
    busy_outside = sum(r["busy_outside_kill"] for r in rows)
    if requests and busy_outside > BUSY_OUTSIDE_MAX * requests:
        reasons.append(
            f"{busy_outside} busy answers outside the kill windows "
            f"(over {BUSY_OUTSIDE_MAX:.1%} of {requests} requests)"
        )
    return {
        "pass": not reasons,
        "reasons": reasons,
        "notes": notes,
        "window_minutes": [window[0]["minute"], window[-1]["minute"]] if window else None,
        "metrics": metrics,
        "requests": requests,
        "errors": errors,
        "busy": sum(r["busy"] for r in rows),
        "busy_outside_kill": busy_outside,
        "upstream": sum(r["upstream"] for r in rows),
    }


def fmt(v, digits=1):
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def request_results(stats):
    """corral's cumulative answers by result (hit, miss, ...) over RESP and HTTP, from /v1/stats."""
    out = {}
    for proto in (stats or {}).get("requests", {}).values():
        for k, v in proto.items():
            out[k] = out.get(k, 0) + v
    return out


def short_events(events):
    out = []
    for e in events:
        parts = e.split()
        if len(parts) >= 3 and parts[1] in ("kill-node", "start-node"):
            out.append(f"{parts[0][:5]} {parts[1].split('-')[0]} {parts[2].rstrip(':')}")
        elif len(parts) >= 6 and parts[1:3] == ["corral", "marked"]:
            out.append(f"{parts[0][:5]} corral: {parts[4]} after {parts[5]} s")
    return "; ".join(out)


def markdown(result, verdict):
    s = result["settings"]
    rows = result["minutes"]
    lines = [
        f"# corral soak: {s['minutes']} minutes, {s['warmup_minutes']} of warm-up "
        f"(started {result['started_at']})",
        "",
        f"Traffic per second: {', '.join(f'{k} {v:g}' for k, v in s['rates_per_s'].items())}; "
        f"a herd of {s['herd_size']} GETs of a new key every {s['herd_every_s']:g} s "
        f"({result['herds']} herds); a replica SIGKILLed every {s['kill_every_minutes']:g} min and "
        f"restarted {s['down_s']:g} s later. fds and threads: the smallest of the last 5 "
        "one-second samples of each minute; p99 over every request sent in that minute; errors: "
        "wrong or outdated answers, timeouts, lost connections, protocol errors; busy: `-BUSY`/503 "
        "(in parentheses: outside the kill windows); upstream: `-ERR upstream`/502 inside a kill "
        "window (outside one it is an error).",
        "",
        "| min | RSS MiB | fds | threads | p99 ms | p99 w/o herds | p50 ms | requests | errors "
        "| busy | upstream | hit % | CPU % | driver lag p99 ms | events |",
        "|" + " ---: |" * 14 + " --- |",
    ]
    prev_cpu, prev_results = None, {}
    for r in rows:
        cpu = None
        if r["cpu_s"] is not None and prev_cpu is not None:
            cpu = 100.0 * (r["cpu_s"] - prev_cpu) / s["minute_seconds"]
        prev_cpu = r["cpu_s"]
        results = request_results(r.get("server_stats"))
        delta = {k: v - prev_results.get(k, 0) for k, v in results.items()}
        prev_results = results
        answered = sum(delta.values())
        hit = 100.0 * delta.get("hit", 0) / answered if answered > 0 else None
        minute = f"{r['minute']}" + (" (w)" if r["minute"] <= s["warmup_minutes"] else "")
        busy = f"{r['busy']}" + (f" ({r['busy_outside_kill']})" if r["busy_outside_kill"] else "")
        lines.append(
            f"| {minute} | {fmt(r['rss_mib'])} | {fmt(r['fds'])} | {fmt(r['threads'])} | "
            f"{fmt(r['p99_ms'], 2)} | {fmt(r.get('p99_steady_ms'), 2)} | {fmt(r['p50_ms'], 2)} | "
            f"{r['requests']} | {r['errors']} | {busy} | {r['upstream']} | {fmt(hit, 0)} | "
            f"{fmt(cpu, 0)} | {fmt(r['loop_lag_p99_ms'], 1)} | "
            f"{short_events(r['events'])} |"
        )
    lines += ["", "(w): warm-up, not judged for trends.", ""]
    if verdict["metrics"]:
        a, b = verdict["window_minutes"]
        lines += [
            f"Window: minutes {a}-{b} (p99: those without a replica kill or restart). Rise = the "
            "Theil-Sen slope x the minutes between the first and last used; a metric fails if its "
            "rise exceeds the limit and the median of its last minutes is above that of its first.",
            "",
            "| metric | minutes used | slope / min | rise | limit | first median | last median "
            "| result |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
        ]
        for m in verdict["metrics"]:
            lines.append(
                f"| {m['label']}{' (' + m['unit'] + ')' if m['unit'] else ''} | "
                f"{m['minutes_used']} | {m['slope_per_min']:+.3f} | {m['rise']:+.2f} | "
                f"{m['limit']:g} | {m['head_median']:g} | {m['tail_median']:g} | "
                f"{'RISING' if m['failed'] else 'flat'} |"
            )
        lines.append("")
    lines.append(
        f"Totals: {verdict['requests']} requests, {verdict['errors']} errors, "
        f"{verdict['busy']} busy ({verdict['busy_outside_kill']} outside kill windows), "
        f"{verdict['upstream']} upstream."
    )
    if result.get("errors_sample"):
        lines += ["", "First errors:", ""] + [f"    {e}" for e in result["errors_sample"][:20]]
    lines += ["", f"**Verdict: {'PASS (flat)' if verdict['pass'] else 'FAIL'}**"]
    lines += [f"- {r}" for r in verdict["reasons"]]
    lines += [f"- note: {n}" for n in verdict.get("notes", [])]
    return "\n".join(lines) + "\n"


# ---- self-test: the rule against synthetic runs ----------------------------------------------


def synthetic(minutes=30, warmup=10, seed=0, rss=0.0, fd_every=0, thread_every=0, p99=0.0):
    """A run with realistic noise (the quick runs' spread, widened) and optional leaks after the
    warm-up: rss MiB per minute, one fd every fd_every minutes, one thread every thread_every
    minutes, p99 growing by the fraction p99 per minute."""
    rng = random.Random(seed)
    rows = []
    for m in range(1, minutes + 1):
        after = max(0, m - warmup)
        row = {
            "minute": m,
            # allocator noise, plus a store that is still settling early on
            "rss_mib": 17 + 1.5 * min(m, 3) / 3 + rng.gauss(0, 0.7) + rss * after,
            # a sample may catch a replica's pool still reconnecting (fewer fds) or a herd
            # connection being replaced (one more)
            "fds": 374 - (8 if rng.random() < 0.1 else 0) + (1 if rng.random() < 0.2 else 0),
            "threads": 16 + (1 if rng.random() < 0.05 else 0),
            # lognormal noise around 15 ms, much worse in a replica kill's minute
            "p99_ms": 15 * (1 + p99) ** after * rng.lognormvariate(0, 0.25)
            + (30 if m % 4 == 2 else 0),
            "events": ["01:15.000 kill-node replica1: exit 0"] if m % 4 == 2 else [],
            "loop_lag_p99_ms": 3.0,
            "errors": 0,
            "error_kinds": {},
            "requests": 44000,
            "busy_outside_kill": 0,
            "busy": 0,
            "upstream": 0,
        }
        if fd_every:
            row["fds"] += after // fd_every
        if thread_every:
            row["threads"] += after // thread_every
        rows.append(row)
    return {"settings": {"warmup_minutes": warmup}, "minutes": rows}


def self_test(seeds=500):
    """The rule against synthetic runs: how often it says what it should, over many seeds."""
    cases = [  # name, leaks, expected pass, least share of seeds that must agree
        ("flat, with noise and replica-kill spikes", {}, True, 0.99),
        ("RSS +0.6 MiB/min (12 MiB over the window)", {"rss": 0.6}, False, 0.99),
        ("RSS +0.2 MiB/min (4 MiB: under the 8 MiB floor)", {"rss": 0.2}, True, 0.99),
        ("one fd per replica kill (every 4 minutes)", {"fd_every": 4}, False, 0.97),
        ("one thread every 5 minutes", {"thread_every": 5}, False, 0.99),
        ("p99 +8 %/min (x4.7 over the window)", {"p99": 0.08}, False, 0.97),
        ("p99 +5 %/min (x2.7)", {"p99": 0.05}, False, 0.8),
    ]
    ok = True
    for name, leaks, expect, least in cases:
        outcomes = [judge(synthetic(seed=seed, **leaks))["pass"] for seed in range(seeds)]
        share = sum(o == expect for o in outcomes) / seeds
        ok &= share >= least
        print(
            f"self-test: {name}: {'pass' if expect else 'fail'} expected, "
            f"{share:.1%} of {seeds} seeds agree (at least {least:.0%})"
            f"{'' if share >= least else ': WRONG'}"
        )
    return 0 if ok else 1


def main(argv):
    if argv[:1] == ["--self-test"]:
        return self_test()
    if not argv or argv[0].startswith("-"):
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    path = argv[0]
    md_path = argv[argv.index("--md") + 1] if "--md" in argv else None
    with open(path) as f:
        result = json.load(f)
    verdict = judge(result)
    result["verdict"] = verdict
    result["rule"] = __doc__.split("\n\n")[2].replace("\n", " ")
    with open(path + ".tmp", "w") as f:
        json.dump(result, f, indent=1)
    os.replace(path + ".tmp", path)
    text = markdown(result, verdict)
    if md_path:
        with open(md_path, "w") as f:
            f.write(text)
    sys.stdout.write(text)
    return 0 if verdict["pass"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
