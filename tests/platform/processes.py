"""Real processes for the platform tests: Celery workers and beats, a web server, and PRIVATE
PostgreSQL and Redis servers that a test may restart, freeze or kill (never the shared ones).

Every process is started in its own session and killed with its group when the ``with`` block
ends, whatever happened inside it, so a failing test leaves nothing running.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]
CELERY = [sys.executable, "-m", "celery", "-A", "marketing_ai"]
MANAGE = [sys.executable, str(ROOT / "manage.py")]
PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))


def test_database_url() -> str:
    d = connection.settings_dict
    auth = d["USER"] + (f":{d['PASSWORD']}" if d["PASSWORD"] else "")
    return f"postgres://{auth}@{d['HOST'] or '127.0.0.1'}:{d['PORT'] or 5432}/{d['NAME']}"


test_database_url.__test__ = False  # a helper, not a test


def subprocess_env(redis_url: str | None, database_url: str | None = None, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url or test_database_url(),
        "DJANGO_SETTINGS_MODULE": "marketing_ai.settings",
        "PYTHONPATH": str(ROOT),
        "CONN_MAX_AGE": "0",  # the test database is dropped at the end: hold no idle connection
        **extra,
    }
    if redis_url:
        env["REDIS_URL"] = redis_url
    else:
        env.pop("REDIS_URL", None)
    return env


@contextmanager
def background(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    with log.open("w") as out:
        proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield proc
    finally:
        stop_group(proc)


def stop_group(proc: subprocess.Popen, *, grace: float = 20) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        except ProcessLookupError:
            pass
    try:  # children that outlived their parent (e.g. prefork pool processes)
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def wait_for(condition, *, timeout: float, proc: subprocess.Popen | None = None, log: Path | None = None, what: str,
             every: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"{what}: the process exited with {proc.returncode}:\n{log.read_text()[-4000:] if log else ''}")
        time.sleep(every)
    pytest.fail(f"{what}: nothing after {timeout}s:\n{log.read_text()[-4000:] if log else ''}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- A private PostgreSQL ------------------------------------------------------------------------


@dataclass
class PrivatePostgres:
    datadir: Path
    port: int
    log: Path
    as_user: list[str]  # runuser prefix when the tests run as root (initdb refuses root)

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/marketing_ai"

    def ctl(self, *args: str, timeout: float = 60) -> None:
        subprocess.run(
            [*self.as_user, str(PG_BIN / "pg_ctl"), "-D", str(self.datadir), "-l", str(self.log), *args],
            check=True, capture_output=True, timeout=timeout,
        )

    def start(self) -> None:
        self.ctl("-w", "-o", f"-p {self.port} -k {self.datadir} -c listen_addresses=127.0.0.1 -c fsync=off", "start")

    def stop(self, mode: str = "fast") -> None:
        self.ctl("-w", "-m", mode, "stop")

    def restart(self) -> None:
        self.stop("fast")
        self.start()

    def sql(self, query: str, dbname: str = "marketing_ai"):
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.port, user="postgres", dbname=dbname, autocommit=True) as conn:
            cur = conn.execute(query)
            return cur.fetchall() if cur.description else None


@contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    """A throw-away PostgreSQL cluster on a free loopback port, with a ``marketing_ai`` database."""
    if not (PG_BIN / "initdb").exists():
        pytest.fail(f"PostgreSQL binaries not found in {PG_BIN} (set PG_BIN)")
    base = Path(tempfile.mkdtemp(prefix="mai-private-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        postgres = pwd.getpwnam("postgres")
        os.chown(base, postgres.pw_uid, postgres.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    server = PrivatePostgres(datadir=base / "data", port=free_port(), log=base / "server.log", as_user=as_user)
    try:
        subprocess.run([*as_user, str(PG_BIN / "initdb"), "-D", str(server.datadir), "-U", "postgres", "--auth=trust",
                        "-E", "UTF8", "--no-sync"], check=True, capture_output=True, timeout=120)
        server.start()
        server.sql("CREATE DATABASE marketing_ai", dbname="postgres")
        yield server
    finally:
        try:
            server.ctl("-m", "immediate", "stop", timeout=30)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
            pass
        shutil.rmtree(base, ignore_errors=True)


# --- A private Redis -----------------------------------------------------------------------------


@dataclass
class PrivateRedis:
    port: int
    workdir: Path
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--dir", str(self.workdir)]
        log = (self.workdir / f"redis-{self.port}.log").open("a")
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        import redis

        client = redis.Redis(port=self.port, socket_connect_timeout=1, socket_timeout=1)
        wait_for(lambda: _pings(client), timeout=15, proc=self.proc, what="private redis-server start", every=0.1)

    def kill(self) -> None:
        """What a crash (or a restart without persistence) does: everything in memory is gone."""
        if self.proc is not None and self.proc.poll() is None:
            self.thaw()
            self.proc.kill()
            self.proc.wait(10)

    def restart(self) -> None:
        self.kill()
        self.start()

    def freeze(self) -> None:
        os.kill(self.proc.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        os.kill(self.proc.pid, signal.SIGCONT)


@contextmanager
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    """A throw-away redis-server without persistence on a free loopback port (killed at the end, frozen or not)."""
    server = PrivateRedis(port=free_port(), workdir=tmp_path)
    try:
        server.start()
        yield server
    finally:
        server.kill()


def _pings(client) -> bool:
    try:
        return bool(client.ping())
    except Exception:
        return False


# --- A real web server ---------------------------------------------------------------------------


@dataclass
class Answer:
    status: int
    body: object  # parsed JSON, or the text
    headers: dict[str, str]
    seconds: float


def http(method: str, url: str, *, body=None, token: str | None = None, timeout: float = 30) -> Answer:
    """One HTTP request with the standard library; a refused connection is status 0."""
    import json
    import urllib.error
    import urllib.request

    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Token {token}")
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, raw, headers = response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as exc:
        status, raw, headers = exc.code, exc.read(), dict(exc.headers)
    except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
        return Answer(0, str(exc), {}, time.monotonic() - started)
    try:
        parsed = json.loads(raw)
    except ValueError:
        parsed = raw.decode(errors="replace")
    return Answer(status, parsed, headers, time.monotonic() - started)


@contextmanager
def web_server(env: dict[str, str], log: Path, *, threads: int = 4) -> Iterator[str]:
    """gunicorn (one process, ``threads`` threads: one database connection each), as in production."""
    port = free_port()
    args = [sys.executable, "-m", "gunicorn", "marketing_ai.wsgi", "-b", f"127.0.0.1:{port}", "--workers", "1",
            "--worker-class", "gthread", "--threads", str(threads), "--timeout", "60", "--graceful-timeout", "5"]
    base = f"http://127.0.0.1:{port}"
    with background(args, env, log) as proc:
        wait_for(lambda: http("GET", f"{base}/healthz", timeout=2).status == 200, timeout=60, proc=proc, log=log,
                 what="gunicorn start")
        yield base


def manage(*args: str, env: dict[str, str], timeout: float = 300) -> str:
    done = subprocess.run([*MANAGE, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        pytest.fail(f"manage.py {' '.join(args)} exited {done.returncode}:\n{done.stderr[-4000:]}")
    return done.stdout
