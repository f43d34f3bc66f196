#!/usr/bin/env python3
"""Markdown tables from run.sh's manifest: one table per protocol, medians across rounds.

manifest.tsv lines: round, protocol, contender, raw client output file, primary origin requests,
staging origin requests (stub_status deltas over the measured run), the proxy's CPU µs (user + system)
and its user-space part, over the measured run.
"""

import re
import statistics
import sys
from collections import defaultdict

PROTO_TITLES = {
    "h1": "HTTP/1.1 (wrk)",
    "h1tls": "HTTPS, HTTP/1.1 (wrk)",
    "h2c": "HTTP/2 cleartext, prior knowledge (h2load)",
    "h2tls": "HTTP/2 over TLS, ALPN h2 (h2load)",
}
ORDER = ["direct", "relay", "edgesplit", "nginx", "haproxy"]


def parse_wrk(text):
    m = re.search(r"^RESULT (.*)$", text, re.M)
    if not m:
        raise ValueError("no RESULT line (wrk failed?)")
    kv = {k: int(v) for k, v in (p.split("=") for p in m.group(1).split())}
    errors = kv["status"] + kv["connect"] + kv["read"] + kv["write"] + kv["timeout"]
    # Cross-check with wrk's own summary lines (the same counters).
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    summary_errors = (int(non2xx.group(1)) if non2xx else 0) + (sum(int(x) for x in sock.groups()) if sock else 0)
    return {
        "requests": kv["requests"],
        "rps": kv["requests"] / (kv["duration_us"] / 1e6),
        "p50": kv["p50_us"] / 1000,
        "p99": kv["p99_us"] / 1000,
        "p999": kv["p999_us"] / 1000,
        "errors": max(errors, summary_errors),
    }


def to_ms(v):
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", v)
    if not m:
        raise ValueError(f"bad duration {v!r}")
    x = float(m.group(1))
    return {"us": x / 1000, "ms": x, "s": x * 1000}[m.group(2)]


def parse_h2load(text):
    fin = re.search(r"finished in [\d.]+\w*, ([\d.]+) req/s", text)
    req = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
                    r"(\d+) errored, (\d+) timeout", text)
    codes = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", text)
    lat = re.search(r"time for request:\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)", text)
    if not (fin and req and codes and lat):
        raise ValueError("h2load output not understood (h2load failed?)")
    mn, mx, mean, sd = (to_ms(x) for x in lat.groups())
    errored = int(req.group(6))
    non2xx = sum(int(x) for x in codes.groups()[1:])
    return {
        "requests": int(codes.group(1)),
        "rps": float(fin.group(1)),
        "min": mn,
        "max": mx,
        "mean": mean,
        "sd": sd,
        "errors": errored + non2xx,
    }


def fmt_rps(x):
    return f"{x:,.0f}"


def fmt_ms(x):
    return f"{x:.2f} ms" if x < 100 else f"{x:.0f} ms"


def ratio(a, b):
    return f"{a / b:.2f}" if a and b else "–"


def main(path):
    runs = defaultdict(list)
    notes = []
    for line in open(path):
        rnd, proto, who, raw, dp, ds, cpu_us, user_us = line.rstrip("\n").split("\t")
        text = open(raw, errors="replace").read()
        try:
            r = parse_wrk(text) if proto in ("h1", "h1tls") else parse_h2load(text)
        except ValueError as e:
            notes.append(f"round {rnd} {proto} {who}: {e}; left out")
            continue
        r["dp"], r["ds"] = int(dp), int(ds)
        per_request = 1 / r["requests"] if r["requests"] else 0.0
        r["cpu"], r["user"] = int(cpu_us) * per_request, int(user_us) * per_request
        origin_total = r["dp"] + r["ds"]
        # Every request a client counted must have reached an origin (a few more may have: the ones in
        # flight when the client stopped).
        if abs(origin_total - r["requests"]) > 0.01 * r["requests"] + 1000:
            notes.append(f"round {rnd} {proto} {who}: the client counted {r['requests']} responses, "
                         f"the origins {origin_total} requests")
        if who in ("direct", "relay") and r["ds"]:
            notes.append(f"round {rnd} {proto} {who}: the staging origin served {r['ds']} requests")
        runs[(proto, who)].append(r)

    protos = [p for p in PROTO_TITLES if any(k[0] == p for k in runs)]
    for proto in protos:
        h2 = proto.startswith("h2")
        whos = [w for w in ORDER if (proto, w) in runs]
        med = {}
        for w in whos:
            rs = runs[(proto, w)]
            keys = ["rps", "cpu", "user"] + (["min", "max", "mean", "sd"] if h2 else ["p50", "p99", "p999"])
            med[w] = {k: statistics.median(r[k] for r in rs) for k in keys}
            med[w]["lo"] = min(r["rps"] for r in rs)
            med[w]["hi"] = max(r["rps"] for r in rs)
            med[w]["n"] = len(rs)
            med[w]["errors"] = sum(r["errors"] for r in rs)
            dp, ds = sum(r["dp"] for r in rs), sum(r["ds"] for r in rs)
            med[w]["share"] = None if w in ("direct", "relay") or dp + ds == 0 else ds / (dp + ds)
        print(f"#### {PROTO_TITLES[proto]}")
        print()
        if h2:
            print("| contender | req/s (median) | spread (min–max) | mean | sd | max | errors | staging share "
                  "| CPU µs/req (user) | ÷ direct | ÷ nginx | ÷ haproxy |")
        else:
            print("| contender | req/s (median) | spread (min–max) | p50 | p99 | p99.9 | errors | staging share "
                  "| CPU µs/req (user) | ÷ direct | ÷ nginx | ÷ haproxy |")
        print("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
        for w in whos:
            m = med[w]
            share = "–" if m["share"] is None else f"{100 * m['share']:.2f} %"
            if m["share"] is not None and not 0.09 <= m["share"] <= 0.11:
                share += " (!)"
            lat = [m["mean"], m["sd"], m["max"]] if h2 else [m["p50"], m["p99"], m["p999"]]
            cells = [w, fmt_rps(m["rps"]), f"{fmt_rps(m['lo'])}–{fmt_rps(m['hi'])}", *map(fmt_ms, lat),
                     str(m["errors"]), share, f"{m['cpu']:.1f} ({m['user']:.1f})"]
            for peer in ("direct", "nginx", "haproxy"):
                cells.append("–" if peer == w or peer not in med else ratio(m["rps"], med[peer]["rps"]))
            print("| " + " | ".join(cells) + " |")
        print()
        rounds = sorted({m["n"] for m in med.values()})
        extra = ("Latency: h2load reports per-request min/max/mean/sd, not percentiles; the columns are the "
                 "medians across rounds of its mean, sd and max. " if h2 else
                 "Latency percentiles are wrk's (closed loop, so not corrected for coordinated omission), "
                 "each the median across rounds. ")
        print(f"{extra}Rounds: {'/'.join(map(str, rounds))}. Errors: socket errors + non-2xx, summed over the "
              "rounds. Staging share: staging origin's requests / both origins', pooled over the rounds. "
              "CPU µs/req: user + system CPU time of the proxy's processes (direct: the primary origin's) over the "
              "measured run, per response the client counted, median across rounds (in brackets: the "
              "user-space part; the rest is the kernel's, mostly the socket calls); it is less sensitive than "
              "req/s to what else the box runs. ÷ columns: ratio of median req/s."
              + (" relay: HAProxy in TCP mode, bytes copied to the primary origin with no HTTP work: the "
                 "floor of any proxy here, not a contender." if "relay" in med else ""))
        print()
    for n in notes:
        print(f"- note: {n}")


if __name__ == "__main__":
    main(sys.argv[1])
