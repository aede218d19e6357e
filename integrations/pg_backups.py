"""Backups of a target database with ``pg_dump -Fc`` and ``pg_restore``, catalogued in the bot's
own Postgres (implements ``handlers.db_ports.Backups``).

The target's URL is read by its env var name and never leaves this process: the tools get the
password in ``PGPASSWORD`` and the rest as a ``--dbname`` conninfo string without it, and every
message from them or from psycopg is scrubbed of the URL and the password before it is raised.
A URL with any other password (``sslpassword``) is refused: it could only be passed on the command line.
A restore is one ``pg_restore --single-transaction``: a failed one changes nothing. Nothing here
runs migrations down or resets a database.

A dump is written to ``<name>.dump.partial`` and renamed to ``<name>.dump`` only once its catalogue
row is written: a worker killed mid-dump leaves a ``.partial`` file, which ``prune`` deletes once it
is a day old (``PARTIAL_MAX_AGE``).

``pg_restore`` opens its script with ``SET lock_timeout = 0`` (so ``PGOPTIONS`` cannot bound its lock
waits): with ``lock_wait``, a watcher on a second connection cancels its statement once it has
waited that long for a lock (``pg_cancel_backend``; the one transaction rolls back).

Usage::

    backups = PgBackups(pool)  # the bot's own database; target URLs come from os.environ
    b = backups.backup("production", "APP_DATABASE_URL", "/var/lib/rollbot/backups", "before RB-12", 12, [], print)
    backups.restore("APP_DATABASE_URL", b, print, lock_wait=timedelta(seconds=5))
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import IO, Any

import psycopg
from psycopg import Connection
from psycopg.conninfo import make_conninfo
from psycopg.rows import DictRow
from psycopg_pool import ConnectionPool

from handlers.db_ports import Backup, DatabaseError, Progress
from integrations import pg_tools
from integrations.pg_tools import Major, PgTools, ToolTarget

COLUMNS = ("id, env, database, path, size, sha256, taken_at, duration, server_version, tool_version, reason, "
           "incident_id, versions")
CHUNK = 1 << 16
PROGRESS_EVERY = 0.5  # seconds between progress calls
PARTIAL = ".partial"
PARTIAL_MAX_AGE = timedelta(days=1)  # a .partial file this old is a dead worker's


class PgBackups:
    """``tool_dirs``: where to look for pg_dump/pg_restore instead of ``pg_tools.candidate_dirs()``."""

    def __init__(self, pool: ConnectionPool[Connection[DictRow]], environ: Mapping[str, str] = os.environ, *,
                 tool_dirs: Sequence[str | Path] | None = None, connect_timeout: int = 10,
                 clock: Callable[[], datetime] = partial(datetime.now, UTC)) -> None:
        self._pool = pool
        self._environ = environ
        self._tool_dirs = None if tool_dirs is None else [Path(d) for d in tool_dirs]
        self._connect_timeout = connect_timeout
        self._clock = clock

    def tools(self, database: str) -> str | None:
        try:
            self._tools(database, self._target(database))
        except DatabaseError as error:
            return error.message
        return None

    def backup(self, env: str, database: str, directory: str, reason: str, incident_id: int | None,
               versions: Sequence[str], progress: Progress, lock_wait: timedelta | None = None) -> Backup:
        target = self._target(database)
        tools, server_version = self._tools(database, target)
        taken_at = self._clock()
        started = time.monotonic()
        path, fd = _create(Path(directory), env, taken_at, reason)
        partial = _partial(path)
        row = None
        try:
            size, sha256 = self._dump(tools, target, fd, progress, lock_wait)
            with self._pool.connection() as conn:
                row = conn.execute(
                    f"INSERT INTO db_backups ({COLUMNS.removeprefix('id, ')}) VALUES "
                    f"(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING {COLUMNS}",
                    (env, database, str(path), size, sha256, taken_at, timedelta(seconds=time.monotonic() - started),
                     server_version, tools.version, reason, incident_id, list(versions))).fetchone()
            assert row is not None
            try:
                os.rename(partial, path)
            except OSError as error:
                raise DatabaseError(f"cannot rename the backup file {partial.name} to {path.name}: "
                                    f"{error.strerror or error}") from None
            _fsync_dir(path.parent)
        except BaseException:
            partial.unlink(missing_ok=True)
            if row is not None:  # catalogued, but its file is not there: the row goes too
                with contextlib.suppress(Exception), self._pool.connection() as conn:
                    conn.execute("DELETE FROM db_backups WHERE id = %s", (row["id"],))
            raise
        return _backup(row)

    def restore(self, database: str, backup: Backup, progress: Progress, lock_wait: timedelta | None = None) -> None:
        target = self._target(database)
        with self._pool.connection() as conn:
            row = conn.execute(f"SELECT {COLUMNS} FROM db_backups WHERE id = %s AND pruned_at IS NULL",
                               (backup.id,)).fetchone()
        if row is None:
            raise DatabaseError(f"{backup.ref} is not in the backup catalogue, or was pruned")
        kept = _backup(row)
        try:
            source = open(kept.path, "rb")
        except OSError as error:
            raise DatabaseError(f"the file of {kept.ref} ({kept.path}) cannot be read: {error.strerror or error}") from None
        with source:
            sha256 = hashlib.file_digest(source, "sha256").hexdigest()
            if sha256 != kept.sha256:
                raise DatabaseError(f"the file of {kept.ref} ({kept.path}) does not match its catalogued sha256 "
                                    f"(file {sha256[:12]}…, catalogue {kept.sha256[:12]}…): not restoring it")
            tools, _ = self._tools(database, target, _made_by(kept))
            source.seek(0)
            self._restore(database, tools, target, source, progress, lock_wait)

    def restore_tools(self, database: str, backup: Backup) -> str | None:
        try:
            self._tools(database, self._target(database), _made_by(backup))
        except DatabaseError as error:
            return error.message
        return None

    def get(self, backup_id: int) -> Backup | None:
        with self._pool.connection() as conn:
            row = conn.execute(f"SELECT {COLUMNS} FROM db_backups WHERE id = %s", (backup_id,)).fetchone()
        return _backup(row) if row else None

    def recent(self, env: str, limit: int) -> list[Backup]:
        with self._pool.connection() as conn:
            rows = conn.execute(f"SELECT {COLUMNS} FROM db_backups WHERE env = %s AND pruned_at IS NULL "
                                "ORDER BY taken_at DESC, id DESC LIMIT %s", (env, limit)).fetchall()
        return [_backup(r) for r in rows]

    def prune(self, env: str, older_than: datetime, keep: Callable[[Backup], bool]) -> list[Backup]:
        with self._pool.connection() as conn:
            rows = conn.execute(f"SELECT {COLUMNS} FROM db_backups WHERE env = %s AND taken_at < %s "
                                "AND pruned_at IS NULL ORDER BY id", (env, older_than)).fetchall()
        pruned = []
        for backup in (_backup(r) for r in rows):
            if keep(backup):
                continue
            Path(backup.path).unlink(missing_ok=True)
            with self._pool.connection() as conn:
                marked = conn.execute("UPDATE db_backups SET pruned_at = now() WHERE id = %s AND pruned_at IS NULL "
                                      "RETURNING id", (backup.id,)).fetchone()
            if marked is not None:
                pruned.append(backup)
        self._prune_partials(env)
        return pruned

    def _prune_partials(self, env: str) -> None:
        """Delete the ``.partial`` files older than PARTIAL_MAX_AGE in the directories of ``env``'s
        backups: dumps of workers that died (a live dump's file is written to all along)."""
        with self._pool.connection() as conn:
            rows = conn.execute("SELECT DISTINCT path FROM db_backups WHERE env = %s", (env,)).fetchall()
        stale = time.time() - PARTIAL_MAX_AGE.total_seconds()
        for directory in sorted({Path(r["path"]).parent for r in rows}):
            with contextlib.suppress(OSError):
                for leftover in directory.glob(f"*{PARTIAL}"):
                    with contextlib.suppress(OSError):
                        if leftover.is_file() and leftover.stat().st_mtime < stale:
                            leftover.unlink()

    # -- the target and its tools ---------------------------------------------------------------
    def _target(self, database: str) -> ToolTarget:
        url = self._environ.get(database, "")
        if not url:
            raise DatabaseError(f"${database} is not set (it should hold the target database's URL)")
        try:
            return ToolTarget.from_url(url)
        except ValueError as error:
            raise DatabaseError(f"${database}: {error}") from None

    def _tools(self, database: str, target: ToolTarget, minimum: Major = ()) -> tuple[PgTools, str]:
        """The tools for the target's server, and its ``server_version``. Raises DatabaseError."""
        try:
            with psycopg.connect(target.url, connect_timeout=self._connect_timeout, autocommit=True) as conn:
                row = conn.execute("SELECT current_setting('server_version'), "
                                   "current_setting('server_version_num')::int").fetchone()
        except psycopg.Error as error:
            raise DatabaseError(f"cannot reach ${database}: {target.scrub(str(error)).strip()}") from None
        assert row is not None
        tools, why = pg_tools.find_tools(pg_tools.server_major(row[1]), self._tool_dirs, minimum)
        if tools is None:
            raise DatabaseError(target.scrub(why or "no pg_dump/pg_restore"))
        return tools, str(row[0])

    # -- running them ---------------------------------------------------------------------------
    def _start(self, argv: list[str], target: ToolTarget, errors: IO[bytes], stdin: int = subprocess.DEVNULL,
               stdout: int = subprocess.DEVNULL, bufsize: int = -1) -> subprocess.Popen[bytes]:
        try:
            return pg_tools.start(argv, target.env(self._connect_timeout), errors, stdin, stdout, bufsize)
        except OSError as error:
            raise DatabaseError(f"cannot run {argv[0]}: {error.strerror or error}") from None

    def _dump(self, tools: PgTools, target: ToolTarget, fd: int, progress: Progress,
              lock_wait: timedelta | None) -> tuple[int, str]:
        argv = [str(tools.pg_dump), "-Fc", "--no-password", "--dbname", target.conninfo]
        if lock_wait is not None:  # a table locked by someone else fails the backup, instead of waiting forever
            argv.insert(2, f"--lock-wait-timeout={max(int(lock_wait.total_seconds() * 1000), 1)}")
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out, tempfile.TemporaryFile() as errors:
            def write(chunk: bytes) -> None:
                out.write(chunk)
                digest.update(chunk)

            proc = self._start(argv, target, errors, stdout=subprocess.PIPE, bufsize=0)
            try:
                assert proc.stdout is not None
                size = _copy(proc.stdout.read, write, progress)
                code = proc.wait()
                if code == 0 and size > 0:
                    out.flush()
                    os.fsync(out.fileno())
            except OSError as error:
                raise DatabaseError(f"writing the backup failed: {error.strerror or error}") from None
            finally:
                pg_tools.end(proc)
            if code != 0 or size == 0:
                raise DatabaseError(f"pg_dump failed (exit {code}): {pg_tools.stderr_tail(errors, target)}")
        progress(size)
        return size, digest.hexdigest()

    def _restore(self, database: str, tools: PgTools, target: ToolTarget, source: IO[bytes], progress: Progress,
                 lock_wait: timedelta | None) -> None:
        name = f"rollbot-restore-{secrets.token_hex(6)}"  # how the watcher finds its session
        argv = [str(tools.pg_restore), "--clean", "--if-exists", "--single-transaction", "--no-owner",
                "--no-password", "--exit-on-error", "--dbname", make_conninfo(target.conninfo, application_name=name)]
        with tempfile.TemporaryFile() as errors, _LockWatch(database, target, name, lock_wait,
                                                           self._connect_timeout) as watch:
            proc = self._start(argv, target, errors, stdin=subprocess.PIPE)
            fed = 0
            try:
                assert proc.stdin is not None
                with contextlib.suppress(BrokenPipeError):  # it stopped reading: its exit and stderr say why
                    fed = _copy(source.read, proc.stdin.write, progress)
                    proc.stdin.close()
                code = proc.wait()
            finally:
                pg_tools.end(proc)
                watch.stop()
            if code != 0:
                message = pg_tools.stderr_tail(errors, target)
                uncertain = code < 0 or "Command was: COMMIT" in message
                state = ("whether its transaction committed is not known" if uncertain
                         else "nothing was changed (one transaction)")
                if watch.cancelled and not uncertain:
                    raise DatabaseError(f"pg_restore waited longer than {_human(lock_wait)} for a lock another "
                                        f"session holds, and was stopped; {state}: {message}", timed_out=True)
                raise DatabaseError(f"pg_restore failed (exit {code}); {state}: {message}", uncertain=uncertain)
        progress(fed)


class _LockWatch:
    """Cancels the statement of the session named ``name`` once it has waited ``wait`` for a lock
    (``wait`` None: watches nothing). Its own connection is opened on entry (DatabaseError when it
    cannot be); its watching is best effort after that."""

    def __init__(self, database: str, target: ToolTarget, name: str, wait: timedelta | None,
                 connect_timeout: int) -> None:
        self._database, self._target, self._name, self._wait = database, target, name, wait
        self._connect_timeout = connect_timeout
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._conn: psycopg.Connection[Any] | None = None
        self.cancelled = False

    def __enter__(self) -> _LockWatch:
        if self._wait is None:
            return self
        try:
            self._conn = psycopg.connect(self._target.url, connect_timeout=self._connect_timeout, autocommit=True,
                                         application_name="rollbot-restore-watch")
        except psycopg.Error as error:
            raise DatabaseError(f"cannot reach ${self._database}: {self._target.scrub(str(error)).strip()}") from None
        self._thread = threading.Thread(target=self._watch, name="rollbot-restore-watch", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _watch(self) -> None:
        assert self._conn is not None and self._wait is not None
        limit = self._wait.total_seconds()
        every = min(0.2, max(limit / 5, 0.02))
        since: dict[int, float] = {}  # pid -> when it was first seen waiting for a lock
        try:
            while not self._stop.wait(every):
                rows = self._conn.execute("SELECT pid, wait_event_type = 'Lock' FROM pg_stat_activity "
                                          "WHERE application_name = %s", (self._name,)).fetchall()
                now = time.monotonic()
                since = {pid: since.get(pid, now) for pid, waiting in rows if waiting}
                for pid, started in since.items():
                    if now - started >= limit:
                        self._conn.execute("SELECT pg_cancel_backend(%s)", (pid,))
                        self.cancelled = True
                        return
        except psycopg.Error:
            return  # the restore goes on unwatched; its own errors still end it


def _made_by(backup: Backup) -> Major:
    """The major of the pg_dump that made ``backup``: pg_restore must be at least as new."""
    made_by = pg_tools.parse_version(backup.tool_version)
    return made_by[1] if made_by else ()


def _human(duration: timedelta | None) -> str:
    ms = round((duration or timedelta(0)).total_seconds() * 1000)
    return f"{ms // 1000} s" if ms % 1000 == 0 else f"{ms} ms"


def _copy(read: Callable[[int], bytes], write: Callable[[bytes], object], progress: Progress) -> int:
    """Copy until EOF, calling ``progress(bytes so far)`` at most every PROGRESS_EVERY seconds."""
    done, last = 0, time.monotonic()
    while chunk := read(CHUNK):
        write(chunk)
        done += len(chunk)
        if time.monotonic() - last >= PROGRESS_EVERY:
            progress(done)
            last = time.monotonic()
    return done


def _slug(text: str, limit: int = 40) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:limit].strip("-") or "backup"


def _create(directory: Path, env: str, taken_at: datetime, reason: str) -> tuple[Path, int]:
    """A free final name in ``directory`` (made 0700 if missing), and a new ``<name>.partial`` file
    opened for it, mode 0600 from its first byte."""
    stem = f"{_slug(env)}-{taken_at.astimezone(UTC):%Y%m%dT%H%M%SZ}-{_slug(reason)}"
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        for n in range(1, 100):
            path = directory / (f"{stem}.dump" if n == 1 else f"{stem}-{n}.dump")
            if path.exists():
                continue
            try:
                return path, os.open(_partial(path), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
            except FileExistsError:
                continue
    except OSError as error:
        raise DatabaseError(f"cannot create a backup file in {directory}: {error.strerror or error}") from None
    raise DatabaseError(f"cannot create a backup file in {directory}: {stem}.dump and 98 more exist")


def _partial(path: Path) -> Path:
    return path.with_name(path.name + PARTIAL)


def _fsync_dir(directory: Path) -> None:
    """Best effort: make the new file's name durable too."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _backup(row: Mapping[str, Any]) -> Backup:
    return Backup(row["id"], row["env"], row["database"], row["path"], row["size"], row["sha256"], row["taken_at"],
                  row["duration"], row["server_version"], row["tool_version"], row["reason"], row["incident_id"],
                  tuple(row["versions"]))
