"""Fixtures for the boto3 conformance suite of edgesplit's CloudFront continuous-deployment-policy API.

Everything runs on 127.0.0.1 with port 0: two tiny Python origins (primary, staging) for the whole session,
and a fresh `edgesplit run --config FILE` per test (each with its own temporary store), so no test sees
another's policies. Every wait is bounded.

The binary comes from $EDGESPLIT_BIN, default <repo>/target/debug/edgesplit. With
EDGESPLIT_TEST_STORE=postgres each test's store is a schema of its own in one throwaway PostgreSQL cluster
(pg.py) instead of a redb folder: the same suites, against the fleet store.
"""

from __future__ import annotations

import http.client
import os
import re
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0
RELOAD_TIMEOUT = 10.0

# The admin API's key pair in every config this suite writes; boto3 clients sign with it (SigV4).
ACCESS_KEY_ID = "AKIDEDGESPLITTEST"
SECRET_ACCESS_KEY = "edgesplit-suite-secret"

WEB_STAGING = "d111111abcdef8.cloudfront.net"
SHOP_STAGING = "dshop.cloudfront.net"
BLOG_STAGING = "dblog.cloudfront.net"

# One boto3 session for the whole run: it caches the loaded service model, so a client per test is cheap.
_BOTO = boto3.session.Session()
_BOTO_CONFIG = Config(
    retries={"total_max_attempts": 1, "mode": "standard"},  # a 5xx must show up, not be retried away
    connect_timeout=5,
    read_timeout=10,
)


# --- origins ------------------------------------------------------------------------------------------


class _OriginHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so edgesplit's pool can reuse connections
    server_version = "origin"
    # Head and body in one segment: with Nagle on, the body write would wait for a delayed ACK (~40 ms).
    disable_nagle_algorithm = True
    wbufsize = 64 * 1024  # flushed after each request by handle_one_request

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        body = self.server.side.encode()  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-seen-cookie", ", ".join(self.headers.get_all("Cookie") or []))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _answer

    def log_message(self, format, *args):  # noqa: A002 - quiet
        pass


class Origin:
    """An HTTP origin that answers 200 with its side's name and echoes the Cookie header in x-seen-cookie."""

    def __init__(self, side: str):
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _OriginHandler)
        self.server.daemon_threads = True
        self.server.side = side  # type: ignore[attr-defined]
        self.thread = threading.Thread(target=self.server.serve_forever, name=f"origin-{side}", daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Origins:
    primary: Origin
    staging: Origin


@pytest.fixture(scope="session")
def origins():
    o = Origins(primary=Origin("primary"), staging=Origin("staging"))
    yield o
    o.primary.close()
    o.staging.close()


# --- config -------------------------------------------------------------------------------------------


def render_config(
    store: str,
    origins: Origins,
    *,
    max_policies: int = 20,
    pins: dict[str, str] | None = None,
    admin: str | None = None,
) -> str:
    """The suite's config: three distributions (web, shop, blog), each with a staging pool and staging DNS name.

    `pins` maps a distribution id to the policy id it pins with `continuous_deployment_policy_id`. `admin`
    replaces the [admin] keys after `listen` (default: the suite's SigV4 key pair). `store` is the body of
    the [store] table.
    """
    pins = pins or {}
    if admin is None:
        admin = f'access_key_id = "{ACCESS_KEY_ID}"\nsecret_access_key = "{SECRET_ACCESS_KEY}"\n'
    out = f"""\
[[listener]]
name = "http"
listen = "127.0.0.1:0"

[admin]
listen = "127.0.0.1:0"
{admin}
[store]
{store}

[log]
level = "info"

[timeouts]
config_poll = "0s"

[continuous_deployment]
max_policies = {max_policies}
"""
    for dist_id, domain, staging_name in (
        ("web", "web.test", WEB_STAGING),
        ("shop", "shop.test", SHOP_STAGING),
        ("blog", "blog.test", BLOG_STAGING),
    ):
        out += f"""
[[distribution]]
id = "{dist_id}"
domains = ["{domain}"]
staging_dns_name = "{staging_name}"
"""
        if dist_id in pins:
            out += f'continuous_deployment_policy_id = "{pins[dist_id]}"\n'
        out += f"""[distribution.primary]
origins = ["{origins.primary.url}"]
[distribution.staging]
origins = ["{origins.staging.url}"]
"""
    return out


# --- the edgesplit process ----------------------------------------------------------------------------


def _field(line: str, name: str) -> str:
    m = re.search(rf'(?:^|\s){name}=("(?:[^"\\]|\\.)*"|\S+)', line)
    assert m, f"no {name}= in log line: {line}"
    return m.group(1).strip('"')


class EdgeSplit:
    """One running `edgesplit run --config FILE`; stdout (and stderr) collected line by line in a thread."""

    def __init__(self, binary: Path, config_path: Path, env: dict[str, str] | None = None):
        self.config_path = config_path
        self.lines: list[str] = []
        self._lock = threading.Lock()
        self.proc = subprocess.Popen(
            [str(binary), "run", "--config", str(config_path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            errors="replace",
            env={**os.environ, **env} if env else None,
        )
        self._reader = threading.Thread(target=self._read, name="edgesplit-stdout", daemon=True)
        self._reader.start()
        try:
            self.proxy = _field(self.wait_for("msg=Listening", "listener=http "), "addr")
            self.admin = _field(self.wait_for("Admin listening"), "addr")
        except BaseException:
            self.stop()
            raise

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._lock:
                self.lines.append(line.rstrip("\n"))

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        with self._lock:
            return "\n".join(self.lines[-200:])

    def wait_for(self, *needles: str, after: int = 0, timeout: float = START_TIMEOUT, fail_on: tuple = ()) -> str:
        """The first log line at index >= `after` containing every needle; fails after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                for line in self.lines[after:]:
                    if all(n in line for n in needles):
                        return line
                    for bad in fail_on:
                        if bad in line:
                            pytest.fail(f"edgesplit logged {bad!r} while waiting for {needles}:\n{self.log()}")
            if self.proc.poll() is not None:
                self._reader.join(timeout=1)
                with self._lock:
                    if any(all(n in line for n in needles) for line in self.lines[after:]):
                        continue
                pytest.fail(
                    f"edgesplit exited with {self.proc.returncode} while waiting for {needles}; output:\n{self.log()}"
                )
            if time.monotonic() > deadline:
                pytest.fail(f"no log line with {needles} within {timeout}s; output:\n{self.log()}")
            time.sleep(0.02)

    def reload(self, new_config: str) -> None:
        """Rewrites the config file, sends SIGHUP and waits for `Config reloaded`."""
        self.config_path.write_text(new_config)
        with self._lock:
            mark = len(self.lines)
        os.kill(self.pid, signal.SIGHUP)
        self.wait_for("Config reloaded", after=mark, timeout=RELOAD_TIMEOUT, fail_on=("Reload failed", "Config rejected"))

    def stop(self) -> int:
        """SIGTERM, then a bounded wait (SIGKILL past it). Returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=STOP_TIMEOUT)
                pytest.fail(f"edgesplit did not exit within {STOP_TIMEOUT}s of SIGTERM; output:\n{self.log()}")
        self._reader.join(timeout=2)
        return self.proc.returncode

    # --- clients ---

    def cloudfront(self):
        return _BOTO.client(
            "cloudfront",
            endpoint_url=f"http://{self.admin}",
            region_name="us-east-1",
            aws_access_key_id=ACCESS_KEY_ID,
            aws_secret_access_key=SECRET_ACCESS_KEY,
            config=_BOTO_CONFIG,
        )

    def metrics(self) -> str:
        conn = http.client.HTTPConnection(self.admin, timeout=5)
        try:
            conn.request("GET", "/metrics")
            resp = conn.getresponse()
            body = resp.read().decode()
            assert resp.status == 200, f"GET /metrics: {resp.status} {body[:500]}"
            return body
        finally:
            conn.close()

    def routing_decisions(self, distribution: str, reason: str) -> int:
        """The value of edgesplit_routing_decisions_total{distribution,reason}, 0 when absent."""
        pattern = re.compile(
            r'^edgesplit_routing_decisions_total\{distribution="%s",reason="%s"\}\s+(\d+(?:\.\d+)?)\s*$'
            % (re.escape(distribution), re.escape(reason)),
            re.M,
        )
        m = pattern.search(self.metrics())
        return int(float(m.group(1))) if m else 0


@pytest.fixture(scope="session")
def edgesplit_bin() -> Path:
    path = Path(os.environ.get("EDGESPLIT_BIN") or REPO / "target" / "debug" / "edgesplit")
    if not path.is_file() or not os.access(path, os.X_OK):
        pytest.exit(f"edgesplit binary not found at {path}: build it with cargo build (or set EDGESPLIT_BIN)", returncode=2)
    return path


STORE_BACKEND = os.environ.get("EDGESPLIT_TEST_STORE", "redb")
_SCHEMAS = __import__("itertools").count()


@pytest.fixture(scope="session")
def pg_cluster():
    """The session's PostgreSQL cluster, when the suites run against the fleet store."""
    if STORE_BACKEND != "postgres":
        yield None
        return
    from pg import Cluster

    cluster = Cluster()
    yield cluster
    cluster.close()


@dataclass
class Launcher:
    """Starts edgesplit processes for one test and stops every one of them at teardown."""

    binary: Path
    tmp: Path
    origins: Origins
    running: list[EdgeSplit] = field(default_factory=list)
    pg: object = None
    schema: str = ""

    @property
    def store(self) -> str:
        """The [store] table's body: this test's redb folder, or its PostgreSQL schema."""
        if self.pg is None:
            return f'path = "{self.tmp / "store"}"'
        return f'backend = "postgres"\nurl = "{self.pg.url(self.schema)}"'

    @property
    def config_path(self) -> Path:
        return self.tmp / "edgesplit.toml"

    def config(self, **kwargs) -> str:
        return render_config(self.store, self.origins, **kwargs)

    def start(self, config_text: str | None = None, env: dict[str, str] | None = None, **kwargs) -> EdgeSplit:
        self.config_path.write_text(config_text if config_text is not None else self.config(**kwargs))
        es = EdgeSplit(self.binary, self.config_path, env)
        self.running.append(es)
        return es

    def stop_all(self) -> None:
        for es in self.running:
            try:
                es.stop()
            except BaseException:  # noqa: BLE001 - teardown keeps going
                pass


@pytest.fixture
def launcher(edgesplit_bin, origins, tmp_path, pg_cluster):
    lau = Launcher(binary=edgesplit_bin, tmp=tmp_path, origins=origins, pg=pg_cluster)
    if pg_cluster is not None:
        lau.schema = f"t{os.getpid()}_{next(_SCHEMAS)}"
        pg_cluster.psql(f"CREATE SCHEMA {lau.schema}", db="edgesplit")
    yield lau
    lau.stop_all()


@pytest.fixture
def es(launcher) -> EdgeSplit:
    """A fresh edgesplit with the default suite config (max_policies = 20) and an empty store."""
    return launcher.start()


@pytest.fixture
def cf(es):
    """A boto3 CloudFront client pointed at `es`'s admin listener."""
    return es.cloudfront()
