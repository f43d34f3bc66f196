#!/usr/bin/env python3
"""The Python half of scripts/soak.sh (run with the repo's .venv, which has boto3).

    soak_driver.py ports N        print N free TCP ports on 127.0.0.1
    soak_driver.py render K       print the soak config, variant K (what each reload toggles)
    soak_driver.py churn          set up the API resources, then change things every few seconds until
                                  SIGTERM (or its own deadline): config rewrites + reloads, CloudFront
                                  policy changes, Evidently feature/launch changes; each one checked
                                  against the data plane where the outcome is deterministic
    soak_driver.py report         read what soak.sh and churn wrote and print the report; exit 1 on FAIL

Everything is passed in the environment by soak.sh: SOAK_WORK (the temp folder), SOAK_PROXY_PORT,
SOAK_ADMIN_PORT, SOAK_PRIMARY_PORT, SOAK_STAGING_PORT, SOAK_ACCESS_KEY_ID,
EDGESPLIT_ADMIN_SECRET_ACCESS_KEY, EDGESPLIT_PID, and the cadence SOAK_RELOAD_EVERY (s),
SOAK_CF_EVERY (s), SOAK_EV_EVERY (s), SOAK_SECONDS.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import sys
import time
import traceback
from pathlib import Path

ENV = os.environ


def env_int(name: str, default: int) -> int:
    return int(ENV.get(name) or default)


WORK = Path(ENV.get("SOAK_WORK", "."))
CONFIG = WORK / "edgesplit.toml"
LOG = WORK / "edgesplit.log"
EVENTS = WORK / "events.jsonl"
READY = WORK / "churn.ready"

PROJECT = "soak"
API_STAGING = "staging.api.soak"
CD_HEADER = "aws-cf-cd-soak"
# The exposure log's bound: [evidently] max_exposures, default 100,000 (a fixed 1,000,000 before commit
# c8723c5); the soak config leaves it at the default. Only used to annotate the RSS table.
EXPOSURE_CAP = env_int("SOAK_EXPOSURE_CAP", 100_000)
RELOAD_TIMEOUT = 10.0  # SIGHUP: at once; a file change: within config_poll (2 s) + the reload


# --- config -------------------------------------------------------------------------------------------


def render(k: int) -> str:
    """The soak config, variant k. Each reload moves k by one; what changes with k:

    - the file-written policy of `file.soak`: weight 0.05 / 0.10 / 0.15 / 0 (k % 4), stickiness on
      unless k % 3 == 2 (switching it starts a new session epoch);
    - timeouts.upstream_response 30s / 20s and client_idle 60s / 45s (k % 2; a change of an upstream
      timeout rebuilds the upstream clients, so their pools are dropped and refilled);
    - the staging pool's Host override of `file.soak` on odd k;
    - `api.soak`'s injected Evidently header: response_headers on even k, and on k // 2 odd the
      header is renamed (x-banner) with a value header (x-banner-value);
    - [continuous_deployment] cache_control_private on odd k.
    [admin], [store], [log] and the listeners never change (they would need a restart).
    """
    p, s = ENV["SOAK_PRIMARY_PORT"], ENV["SOAK_STAGING_PORT"]
    weight = (0.05, 0.10, 0.15, 0.0)[k % 4]
    sticky = k % 3 != 2
    odd = k % 2 == 1
    renamed = (k // 2) % 2 == 1
    features = (
        '[{ feature = "banner", header = "x-banner", value_header = "x-banner-value" }]'
        if renamed
        else '[{ feature = "banner" }]'
    )
    return f"""\
# scripts/soak.sh: variant {k} (written by soak_driver.py; the soak rewrites it every few seconds)
[[listener]]
name = "http"
listen = "127.0.0.1:{ENV["SOAK_PROXY_PORT"]}"

[admin]
listen = "127.0.0.1:{ENV["SOAK_ADMIN_PORT"]}"
access_key_id = "{ENV["SOAK_ACCESS_KEY_ID"]}"
secret_access_key_env = "EDGESPLIT_ADMIN_SECRET_ACCESS_KEY"

[store]
path = "{WORK / "store"}"

[log]
level = "info"
access_log = false

[timeouts]
upstream_response = "{"20s" if odd else "30s"}"
client_idle = "{"45s" if odd else "60s"}"
shutdown_grace = "5s"
config_poll = "2s"

[continuous_deployment]
cookie_key = "soak-test-cookie-key-0123456789abcdef0123456789"
cache_control_private = {"true" if odd else "false"}

# file.soak: a SingleWeight policy written in this file (its weight moves with every reload).
[[distribution]]
id = "file"
domains = ["file.soak"]
staging_dns_name = "staging.file.soak"
[distribution.primary]
origins = ["http://127.0.0.1:{p}"]
[distribution.staging]
origins = ["http://127.0.0.1:{s}"]
{'host = "staging.soak.internal"' if odd else ""}
[distribution.policy]
type = "SingleWeight"
weight = {weight}
{"idle_ttl = 300" if sticky else ""}
{"maximum_ttl = 600" if sticky else ""}

# api.soak: routed by the CloudFront API's policy naming {API_STAGING}; Evidently's banner injected.
[[distribution]]
id = "api"
domains = ["api.soak"]
staging_dns_name = "{API_STAGING}"
[distribution.primary]
origins = ["http://127.0.0.1:{p}"]
[distribution.staging]
origins = ["http://127.0.0.1:{s}"]
[distribution.evidently]
project = "{PROJECT}"
entity = ["header:x-user-id"]
response_headers = {"false" if odd else "true"}
features = {features}

# route.soak: the Evidently feature `canary` (driven by a launch the API keeps changing) picks the pool.
[[distribution]]
id = "route"
domains = ["route.soak"]
[distribution.primary]
origins = ["http://127.0.0.1:{p}"]
[distribution.staging]
origins = ["http://127.0.0.1:{s}"]
[distribution.evidently]
project = "{PROJECT}"
entity = ["header:x-user-id"]
route = {{ feature = "canary", staging_variations = ["on"] }}
"""


def write_config(k: int) -> None:
    tmp = CONFIG.with_suffix(".tmp")
    tmp.write_text(render(k))
    os.replace(tmp, CONFIG)  # atomic: the poller never reads half a file


def free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


# --- the data plane -------------------------------------------------------------------------------------


def proxy_get(host: str, headers: dict[str, str] | None = None) -> tuple[int, str, dict[str, str]]:
    conn = http.client.HTTPConnection("127.0.0.1", int(ENV["SOAK_PROXY_PORT"]), timeout=10)
    try:
        conn.request("GET", "/verify", headers={"Host": host, **(headers or {})})
        r = conn.getresponse()
        body = r.read().decode(errors="replace").strip()
        return r.status, body, {k.lower(): v for k, v in r.getheaders()}
    finally:
        conn.close()


def expect_sides(host: str, want: str, n: int = 5, headers: dict[str, str] | None = None) -> None:
    """n fresh requests (no cookie) to `host` are all 200 from the `want` origin."""
    for _ in range(n):
        status, body, _ = proxy_get(host, headers)
        if status != 200 or body != want:
            raise AssertionError(f"{host} {headers or ''}: got {status} {body!r}, want 200 {want!r}")


# --- the churn ------------------------------------------------------------------------------------------


class Churn:
    def __init__(self) -> None:
        import boto3
        from botocore.config import Config

        session = boto3.session.Session()
        common = dict(
            endpoint_url=f"http://127.0.0.1:{ENV['SOAK_ADMIN_PORT']}",
            region_name="us-east-1",
            aws_access_key_id=ENV["SOAK_ACCESS_KEY_ID"],
            aws_secret_access_key=ENV["EDGESPLIT_ADMIN_SECRET_ACCESS_KEY"],
        )
        retries = {"total_max_attempts": 1, "mode": "standard"}  # a failure must show, not be retried away
        self.cf = session.client("cloudfront", config=Config(retries=retries, connect_timeout=5, read_timeout=15), **common)
        self.ev = session.client(
            "evidently",
            config=Config(inject_host_prefix=False, retries=retries, connect_timeout=5, read_timeout=15),
            **common,
        )
        self.pid = int(ENV["EDGESPLIT_PID"])
        self.events = EVENTS.open("a", buffering=1)
        self.stop = False
        self.k = 0  # config variant in force
        self.cf_step = 0
        self.ev_step = 0
        self.policy_id: str | None = None
        self.etag: str | None = None
        self.canary_launch = 0  # canary-rollout-N
        self.banner_default = "classic"
        self.override_on = False

    # --- bookkeeping ---

    def record(self, kind: str, op: str, fn) -> bool:
        """Runs fn (a change plus its check); one line in events.jsonl either way."""
        t0 = time.time()
        err = None
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - every failure is recorded, the soak goes on
            err = f"{type(e).__name__}: {e}"[:500]
            if not isinstance(e, AssertionError) and not hasattr(e, "response"):
                err += " | " + traceback.format_exc(limit=3).replace("\n", " ")[-300:]
        ev = {"t": round(t0, 3), "kind": kind, "op": op, "ok": err is None, "ms": round((time.time() - t0) * 1000, 1)}
        if err:
            ev["error"] = err
            print(f"[churn] {kind} {op} FAILED: {err}", file=sys.stderr, flush=True)
        self.events.write(json.dumps(ev) + "\n")
        return err is None

    # --- reloads ---

    def _log_size(self) -> int:
        try:
            return LOG.stat().st_size
        except FileNotFoundError:
            return 0

    def _wait_reload(self, mark: int) -> str:
        deadline = time.monotonic() + RELOAD_TIMEOUT
        while time.monotonic() < deadline:
            with LOG.open("rb") as f:
                f.seek(mark)
                text = f.read().decode(errors="replace")
            for line in text.splitlines():
                if "Reload failed" in line or "Config rejected" in line:
                    raise RuntimeError(f"edgesplit: {line.strip()}")
                if "Config reloaded" in line:
                    m = re.search(r'trigger=("[^"]*"|\S+)', line)
                    return m.group(1).strip('"') if m else "?"
            time.sleep(0.05)
        raise TimeoutError(f"no 'Config reloaded' within {RELOAD_TIMEOUT}s")

    def reload(self, n: int) -> None:
        """Writes variant k+1; three times in four SIGHUP, the fourth by the file change alone."""
        by_poll = n % 4 == 3
        k = self.k + 1

        def go() -> None:
            mark = self._log_size()
            write_config(k)
            if not by_poll:
                os.kill(self.pid, signal.SIGHUP)
            self._wait_reload(mark)
            self.k = k
            self.verify_config()

        self.record("reload", "file-change" if by_poll else "SIGHUP", go)

    def verify_config(self) -> None:
        """The variant just loaded is in force: api.soak's response headers, file.soak at weight 0."""
        odd = self.k % 2 == 1
        renamed = (self.k // 2) % 2 == 1
        status, _, hdrs = proxy_get("api.soak", {"x-user-id": "verify-1"})
        if status != 200:
            raise AssertionError(f"api.soak answered {status} after reload to variant {self.k}")
        name = "x-banner" if renamed else "x-evidently-banner"
        if odd and (name in hdrs or "x-evidently-banner" in hdrs):
            raise AssertionError(f"variant {self.k}: response_headers is off but the response has {name}")
        if not odd and hdrs.get(name) not in ("classic", "bold"):
            raise AssertionError(f"variant {self.k}: want {name}: classic|bold on the response, got headers {hdrs}")
        if self.k % 4 == 3:  # weight 0: every fresh request to primary
            expect_sides("file.soak", "primary")

    # --- CloudFront ---

    def _policy(self, *, enabled=True, weight=None, sticky=False, header=False) -> dict:
        if header:
            traffic = {"Type": "SingleHeader", "SingleHeaderConfig": {"Header": CD_HEADER, "Value": "on"}}
        else:
            w = {"Weight": weight}
            if sticky:
                w["SessionStickinessConfig"] = {"IdleTTL": 300, "MaximumTTL": 600}
            traffic = {"Type": "SingleWeight", "SingleWeightConfig": w}
        return {
            "StagingDistributionDnsNames": {"Quantity": 1, "Items": [API_STAGING]},
            "Enabled": enabled,
            "TrafficConfig": traffic,
        }

    def _update(self, cfg: dict) -> None:
        r = self.cf.update_continuous_deployment_policy(
            Id=self.policy_id, IfMatch=self.etag, ContinuousDeploymentPolicyConfig=cfg
        )
        self.etag = r["ETag"]

    def cf_change(self) -> None:
        """One step of a 9-step cycle: create, reweigh, drop stickiness, disable, enable, header mode,
        weight again, read back, delete."""
        step = self.cf_step % 9
        self.cf_step += 1

        def create():
            r = self.cf.create_continuous_deployment_policy(
                ContinuousDeploymentPolicyConfig=self._policy(weight=0.05, sticky=True)
            )
            self.policy_id, self.etag = r["ContinuousDeploymentPolicy"]["Id"], r["ETag"]

        def disable():
            self._update(self._policy(enabled=False, weight=0.15))
            expect_sides("api.soak", "primary", headers={CD_HEADER: "on"})

        def header():
            self._update(self._policy(header=True))
            expect_sides("api.soak", "staging", headers={CD_HEADER: "on"})
            expect_sides("api.soak", "primary", headers={CD_HEADER: "off"})

        def read_back():
            r = self.cf.get_continuous_deployment_policy_config(Id=self.policy_id)
            if r["ETag"] != self.etag:
                raise AssertionError(f"GetConfig ETag {r['ETag']} != {self.etag}")
            n = self.cf.list_continuous_deployment_policies()["ContinuousDeploymentPolicyList"]["Quantity"]
            if n != 1:
                raise AssertionError(f"{n} policies listed, want 1")

        def delete():
            self.cf.delete_continuous_deployment_policy(Id=self.policy_id, IfMatch=self.etag)
            self.policy_id = self.etag = None
            expect_sides("api.soak", "primary", headers={CD_HEADER: "on"})

        ops = [
            ("create", create),
            ("update-weight", lambda: self._update(self._policy(weight=0.10, sticky=True))),
            ("update-unsticky", lambda: self._update(self._policy(weight=0.15))),
            ("disable", disable),
            ("enable", lambda: self._update(self._policy(weight=0.15))),
            ("update-header", header),
            ("update-weight", lambda: self._update(self._policy(weight=0.02, sticky=True))),
            ("get-list", read_back),
            ("delete", delete),
        ]
        name, fn = ops[step]
        if self.policy_id is None and name != "create":
            name, fn = "create", create  # the create failed last time: start the cycle again
            self.cf_step = 1
        self.record("cloudfront", name, fn)

    # --- Evidently ---

    def ev_setup(self) -> None:
        ev = self.ev
        ev.create_project(name=PROJECT, description="scripts/soak.sh")
        ev.create_feature(
            project=PROJECT,
            name="banner",
            variations=[
                {"name": "classic", "value": {"stringValue": "Welcome"}},
                {"name": "bold", "value": {"stringValue": "WELCOME!"}},
            ],
            defaultVariation="classic",
        )
        ev.create_feature(
            project=PROJECT,
            name="canary",
            variations=[{"name": "off", "value": {"boolValue": False}}, {"name": "on", "value": {"boolValue": True}}],
            defaultVariation="off",
        )
        ev.create_launch(
            project=PROJECT,
            name="banner-rollout",
            groups=[
                {"name": "classic", "feature": "banner", "variation": "classic"},
                {"name": "bold", "feature": "banner", "variation": "bold"},
            ],
            scheduledSplitsConfig={"steps": [{"startTime": 0, "groupWeights": {"classic": 50000, "bold": 50000}}]},
            # A monitor makes its evaluations exposures (edgesplit remembers none for a launch without
            # one), so the soak keeps filling the exposure log to its bound.
            metricMonitors=[
                {"metricDefinition": {"name": "clicks", "entityIdKey": "userDetails.userId", "valueKey": "details.clicks"}}
            ],
        )
        ev.start_launch(project=PROJECT, launch="banner-rollout")
        self._new_canary_launch()

    def _canary_steps(self, on: int) -> dict:
        return {"steps": [{"startTime": 0, "groupWeights": {"off": 100000 - on, "on": on}}]}

    def _new_canary_launch(self) -> None:
        self.canary_launch += 1
        name = f"canary-rollout-{self.canary_launch}"
        self.ev.create_launch(
            project=PROJECT,
            name=name,
            groups=[{"name": "off", "feature": "canary", "variation": "off"}, {"name": "on", "feature": "canary", "variation": "on"}],
            scheduledSplitsConfig=self._canary_steps(10000),
        )
        self.ev.start_launch(project=PROJECT, launch=name)

    def check_route(self, n: int = 4) -> None:
        """route.soak agrees with EvaluateFeature for a few entities (the churn is sequential, so nothing
        changes in between)."""
        for i in range(n):
            entity = f"user-{(self.ev_step * 7 + i) % 1000}"
            variation = self.ev.evaluate_feature(project=PROJECT, feature="canary", entityId=entity)["variation"]
            want = "staging" if variation == "on" else "primary"
            status, body, _ = proxy_get("route.soak", {"x-user-id": entity})
            if status != 200 or body != want:
                raise AssertionError(f"route.soak for {entity}: got {status} {body!r}, EvaluateFeature says {variation}")

    def ev_change(self) -> None:
        """One step of a 5-step cycle: banner weights, banner default, canary weights, canary entity
        override, a new canary launch (stop + delete the running one, create + start the next)."""
        step = self.ev_step % 5
        self.ev_step += 1
        ev = self.ev

        def banner_weights():
            bold = (self.ev_step * 13_000) % 100_001
            ev.update_launch(
                project=PROJECT,
                launch="banner-rollout",
                scheduledSplitsConfig={"steps": [{"startTime": 0, "groupWeights": {"classic": 100000 - bold, "bold": bold}}]},
            )

        def banner_default():
            self.banner_default = "bold" if self.banner_default == "classic" else "classic"
            ev.update_feature(project=PROJECT, feature="banner", defaultVariation=self.banner_default)

        def canary_weights():
            ev.update_launch(
                project=PROJECT,
                launch=f"canary-rollout-{self.canary_launch}",
                scheduledSplitsConfig=self._canary_steps((self.ev_step * 9_000) % 60_001),
            )
            self.check_route()

        def canary_override():
            self.override_on = not self.override_on
            # UpdateFeature's entityOverrides replaces the whole map.
            ev.update_feature(
                project=PROJECT, feature="canary", entityOverrides={"pinned-user": "on"} if self.override_on else {}
            )
            status, body, _ = proxy_get("route.soak", {"x-user-id": "pinned-user"})
            if status != 200 or (self.override_on and body != "staging"):
                raise AssertionError(f"route.soak for the overridden entity: {status} {body!r}")

        def relaunch():
            old = f"canary-rollout-{self.canary_launch}"
            ev.stop_launch(project=PROJECT, launch=old)
            ev.delete_launch(project=PROJECT, launch=old)
            self._new_canary_launch()
            self.check_route()

        name, fn = [
            ("update-launch", banner_weights),
            ("update-feature", banner_default),
            ("update-launch", canary_weights),
            ("update-feature", canary_override),
            ("relaunch", relaunch),
        ][step]
        self.record("evidently", name, fn)

    # --- the loop ---

    def run(self) -> None:
        signal.signal(signal.SIGTERM, lambda *_: setattr(self, "stop", True))
        signal.signal(signal.SIGINT, lambda *_: setattr(self, "stop", True))
        if not self.record("setup", "evidently", self.ev_setup):
            sys.exit("churn: the Evidently setup failed (see events.jsonl)")
        if not self.record("setup", "check", lambda: (expect_sides("api.soak", "primary"), self.check_route())):
            sys.exit("churn: the data plane does not answer as set up")
        READY.write_text("ready\n")
        every = {
            "reload": float(ENV.get("SOAK_RELOAD_EVERY") or 5),
            "cloudfront": float(ENV.get("SOAK_CF_EVERY") or 3),
            "evidently": float(ENV.get("SOAK_EV_EVERY") or 4),
        }
        # Staggered starts so the three do not always fall on the same second.
        now = time.monotonic()
        due = {"cloudfront": now + 1.0, "evidently": now + 2.0, "reload": now + 3.0}
        deadline = now + env_int("SOAK_SECONDS", 600) + 60  # soak.sh stops it first; this is a backstop
        n_reload = 0
        while not self.stop and time.monotonic() < deadline:
            kind = min(due, key=due.get)
            wait = due[kind] - time.monotonic()
            if wait > 0:
                time.sleep(min(wait, 0.2))
                continue
            if kind == "reload":
                self.reload(n_reload)
                n_reload += 1
            elif kind == "cloudfront":
                self.cf_change()
            else:
                self.ev_change()
            due[kind] = max(due[kind] + every[kind], time.monotonic())
        self.events.close()


# --- the report -----------------------------------------------------------------------------------------


def kv(line: str) -> dict[str, str]:
    return dict(m.groups() for m in re.finditer(r"(\w+)=(\S*)", line))


def metric_sum(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            try:
                total += float(line.rsplit(None, 1)[1])
            except (ValueError, IndexError):
                pass
    return total


def report() -> int:
    failures: list[str] = []
    seconds = env_int("SOAK_SECONDS", 600)
    out = []
    p = out.append

    # wrk slices
    slices = []
    for line in (WORK / "slices.txt").read_text().splitlines() if (WORK / "slices.txt").exists() else []:
        if line.startswith("SLICE "):
            slices.append(kv(line))
    bad_samples = [line[len("SOAKBAD "):] for line in (WORK / "slices.txt").read_text().splitlines()
                   if line.startswith("SOAKBAD ")] if (WORK / "slices.txt").exists() else []
    events = [json.loads(line) for line in EVENTS.read_text().splitlines()] if EVENTS.exists() else []

    def in_slice(s, kind):
        a, b = float(s["start"]), float(s["end"])
        return sum(1 for e in events if e["kind"] == kind and a <= e["t"] < b)

    p("Per slice (wrk; non-2xx counted by a Lua response() hook; origin counts from nginx stub_status):")
    p("")
    p("| slice | t (s) | requests | req/s | p50 ms | p99 ms | max ms | non-2xx | sock err c/r/w/t | primary | staging | reloads | cf | ev |")
    p("|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|")
    tot = dict(requests=0, non2xx=0, connect=0, read=0, write=0, timeout=0, primary=0, staging=0)
    codes: dict[str, int] = {}
    t0 = float(slices[0]["start"]) if slices else 0.0
    missing = 0
    for i, s in enumerate(slices, 1):
        if s.get("ok") != "1":
            missing += 1
            p(f"| {i} | {float(s['start']) - t0:.0f} | wrk failed (exit {s.get('rc')}) | | | | | | | | | | | |")
            continue
        for k in ("requests", "non2xx", "connect", "read", "write", "timeout", "primary", "staging"):
            tot[k] += int(s[k])
        for c in filter(None, s.get("codes", "").split(",")):
            code, n = c.split(":")
            codes[code] = codes.get(code, 0) + int(n)
        dur = int(s["duration_us"]) / 1e6
        p(
            f"| {i} | {float(s['start']) - t0:.0f} | {int(s['requests'])} | {int(s['requests']) / dur:.0f} | "
            f"{int(s['p50_us']) / 1000:.2f} | {int(s['p99_us']) / 1000:.2f} | {int(s['max_us']) / 1000:.1f} | "
            f"{s['non2xx']} | {s['connect']}/{s['read']}/{s['write']}/{s['timeout']} | {s['primary']} | {s['staging']} | "
            f"{in_slice(s, 'reload')} | {in_slice(s, 'cloudfront')} | {in_slice(s, 'evidently')} |"
        )
    p("")
    sock = tot["connect"] + tot["read"] + tot["write"] + tot["timeout"]
    origin_total = tot["primary"] + tot["staging"]
    p(f"Total requests: {tot['requests']} in {len(slices)} slices"
      + (f" ({tot['staging'] / origin_total * 100:.1f} % reached the staging origin)" if origin_total else ""))
    p(f"Non-2xx responses: {tot['non2xx']}" + (f" (by status: {codes})" if codes else ""))
    for b in bad_samples[:5]:
        p(f"  first non-2xx seen by a wrk thread: {b}")
    p(f"Socket errors: connect {tot['connect']}, read {tot['read']}, write {tot['write']}, timeout {tot['timeout']}")
    if not slices or tot["requests"] == 0:
        failures.append("no requests were made")
    if missing:
        failures.append(f"{missing} wrk slice(s) failed to run or report")
    if tot["non2xx"]:
        failures.append(f"{tot['non2xx']} non-2xx responses")
    if sock:
        failures.append(f"{sock} socket errors")

    # changes
    p("")
    p("Changes while under load (each checked against the data plane where the outcome is deterministic):")
    by: dict[tuple[str, str], list[int]] = {}
    for e in events:
        key = (e["kind"], e["op"])
        by.setdefault(key, [0, 0])[0 if e["ok"] else 1] += 1
    for kind in ("setup", "reload", "cloudfront", "evidently"):
        rows = [(op, okf) for (k, op), okf in sorted(by.items()) if k == kind]
        if not rows:
            continue
        ok = sum(r[1][0] for r in rows)
        bad = sum(r[1][1] for r in rows)
        detail = ", ".join(f"{op} {o}" + (f" ({f} failed)" if f else "") for op, (o, f) in rows)
        p(f"  {kind}: {ok} ok, {bad} failed   [{detail}]")
        if bad:
            failures.append(f"{bad} {kind} change(s) failed")
    errs = [e for e in events if not e["ok"]]
    for e in errs[:10]:
        p(f"  FAILED at t={e['t'] - t0:.0f}s {e['kind']} {e['op']}: {e.get('error')}")
    if not any(e["kind"] == "reload" for e in events):
        failures.append("no reload was done")

    # edgesplit's own view
    metrics = (WORK / "metrics.txt").read_text() if (WORK / "metrics.txt").exists() else ""
    if metrics:
        p("")
        rel_ok = metric_sum(metrics, "edgesplit_config_reloads_total", result="ok")
        rel_err = metric_sum(metrics, "edgesplit_config_reloads_total") - rel_ok
        p(f"edgesplit's metrics: reloads ok {rel_ok:.0f}, failed {rel_err:.0f}; requests by status class: "
          + ", ".join(f"{c} {metric_sum(metrics, 'edgesplit_requests_total', status=c):.0f}"
                      for c in ("2xx", "3xx", "4xx", "5xx"))
          + f"; upstream errors {metric_sum(metrics, 'edgesplit_upstream_errors_total'):.0f}"
          + f"; exposures recorded {metric_sum(metrics, 'edgesplit_exposures_total', result='recorded'):.0f}, "
          f"dropped {metric_sum(metrics, 'edgesplit_exposures_total', result='dropped'):.0f}")
        if rel_err:
            failures.append(f"edgesplit counted {rel_err:.0f} failed reloads")

    # log
    log = LOG.read_text(errors="replace") if LOG.exists() else ""
    err_lines = [ln for ln in log.splitlines() if "level=error" in ln or "level=ERROR" in ln]
    warn_lines = [ln for ln in log.splitlines() if "level=warn" in ln or "level=WARN" in ln]
    p(f"edgesplit log: {len(err_lines)} error lines, {len(warn_lines)} warnings")
    for ln in err_lines[:5]:
        p(f"  {ln[:300]}")
    if err_lines:
        failures.append(f"{len(err_lines)} error lines in edgesplit's log")
    stop_rc = ENV.get("SOAK_STOP_RC", "")
    p(f"edgesplit at the end: {'exited ' + stop_rc + ' after SIGTERM' if stop_rc else 'not stopped yet'}")
    if stop_rc and stop_rc != "0":
        failures.append(f"edgesplit exited {stop_rc} on SIGTERM (want 0 after a clean drain)")

    # RSS
    p("")
    rss = []
    if (WORK / "rss.tsv").exists():
        for line in (WORK / "rss.tsv").read_text().splitlines():
            t, kib, fds, exp = line.split()
            rss.append((int(t), int(kib), int(fds), int(float(exp))))
    p("RSS of edgesplit (VmRSS, every 10 s from the start of the load; exposures: Evidently assignments")
    p(f"recorded so far, of which the exposure log keeps the last hour, at most {EXPOSURE_CAP:,}):")
    p("")
    p("| t (s) | RSS MiB | open fds | exposures |")
    p("|---:|---:|---:|---:|")
    for t, kib, fds, exp in rss:
        p(f"| {t} | {kib / 1024:.1f} | {fds} | {exp} |")
    p("")
    if len(rss) >= 2:
        base_t = min(60, (seconds // 2) // 10 * 10)
        base = next((r for r in rss if r[0] >= base_t), rss[0])
        end = rss[-1]
        growth = (end[1] - base[1]) / 1024
        pct = growth / (base[1] / 1024) * 100 if base[1] else 0.0
        verdict = "PASS" if (pct < 10 or growth < 8) else "FAIL"
        p(f"RSS growth from t={base[0]}s ({base[1] / 1024:.1f} MiB) to t={end[0]}s ({end[1] / 1024:.1f} MiB): "
          f"{growth:+.1f} MiB ({pct:+.1f} %) -> {verdict} (criterion: < 10 % or < 8 MiB); "
          f"peak {max(r[1] for r in rss) / 1024:.1f} MiB")
        if verdict == "FAIL":
            failures.append(f"RSS grew {growth:+.1f} MiB ({pct:+.1f} %)")
        # Not a criterion: the same growth measured from the first sample at which the exposure log was
        # full (it then stops growing), to tell a leak from the log filling up to its bound.
        full = next((r for r in rss if r[3] >= EXPOSURE_CAP), None)
        if full and full is not end:
            g = (end[1] - full[1]) / 1024
            p(f"  (for diagnosis, not a criterion: the exposure log reached its {EXPOSURE_CAP:,}-entry bound by "
              f"t={full[0]}s at {full[1] / 1024:.1f} MiB; growth from there to the end {g:+.1f} MiB "
              f"({g / (full[1] / 1024) * 100:+.1f} %))")
        elif not full:
            p(f"  (the exposure log had not reached its {EXPOSURE_CAP:,}-entry bound by the end: it is still filling)")
    else:
        failures.append("fewer than two RSS samples")
        p("RSS: fewer than two samples")

    p("")
    if failures:
        p("SOAK FAIL: " + "; ".join(failures))
    else:
        p("SOAK PASS: 0 non-2xx, 0 socket errors, every reload and API change applied, RSS flat")
    print("\n".join(out))
    return 1 if failures else 0


def main() -> None:
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "ports":
        print(" ".join(map(str, free_ports(int(sys.argv[2])))))
    elif cmd == "render":
        sys.stdout.write(render(int(sys.argv[2])))
    elif cmd == "churn":
        Churn().run()
    elif cmd == "report":
        sys.exit(report())
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
