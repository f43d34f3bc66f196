"""A throwaway PostgreSQL cluster for the boto3 suites' fleet-store run (EDGESPLIT_TEST_STORE=postgres).

Debian's `postgresql` package (CI installs it), binaries from /usr/lib/postgresql/<highest>/bin; run as
the `postgres` user when the suite runs as root. Listens on 127.0.0.1 on a free port, trust auth, its
socket in its own folder. The Rust tests have the same harness in tests/support/postgres.rs.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

TIMEOUT = 30


def _bin_dir() -> Path:
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda d: [int(x) for x in Path(d).parent.name.split(".")])
    if not dirs:
        raise RuntimeError("PostgreSQL is not installed: install Debian's postgresql package")
    return Path(dirs[-1])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    def __init__(self) -> None:
        self.bin = _bin_dir()
        self.root = Path(tempfile.mkdtemp(prefix="edgesplit-pytest-pg-", dir="/tmp"))
        self.data, self.sock = self.root / "data", self.root / "sock"
        self.sock.mkdir()
        self.port = _free_port()
        self.as_postgres = os.geteuid() == 0
        if self.as_postgres:
            shutil.chown(self.root, "postgres")
            shutil.chown(self.sock, "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--locale=C")
        opts = f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories={self.sock} -c fsync=on"
        self._run("pg_ctl", "start", "-w", "-t", str(TIMEOUT), "-D", str(self.data), "-l", str(self.root / "log"), "-o", opts)
        self.psql("CREATE DATABASE edgesplit")

    def _run(self, tool: str, *args: str) -> str:
        cmd = [str(self.bin / tool), *args]
        if self.as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")} | {"LC_ALL": "C"}
        out = subprocess.run(cmd, cwd=self.root, env=env, capture_output=True, text=True, timeout=TIMEOUT)
        if out.returncode != 0:
            log = (self.root / "log").read_text()[-2000:] if (self.root / "log").exists() else ""
            raise RuntimeError(f"{tool} failed: {out.stderr}\n{log}")
        return out.stdout

    def psql(self, sql: str, db: str = "postgres") -> str:
        cmd = [str(self.bin / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", db]
        out = subprocess.run([*cmd, "-v", "ON_ERROR_STOP=1", "-qAtc", sql], capture_output=True, text=True, timeout=TIMEOUT)
        if out.returncode != 0:
            raise RuntimeError(f"psql failed: {out.stderr}")
        return out.stdout

    def url(self, schema: str) -> str:
        """The database URL with `schema` first in the search path (one schema per test)."""
        return f"postgres://postgres@127.0.0.1:{self.port}/edgesplit?options=-c%20search_path%3D{schema}"

    def close(self) -> None:
        try:
            self._run("pg_ctl", "stop", "-m", "immediate", "-w", "-t", "15", "-D", str(self.data))
        except (RuntimeError, subprocess.TimeoutExpired):
            pass
        shutil.rmtree(self.root, ignore_errors=True)
