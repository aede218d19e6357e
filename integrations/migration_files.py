"""Migration files of a Supabase project's folder (implements ``handlers.db_ports.MigrationSource``).

A migration is ``<version>_<name>.sql`` (version: the leading digits). Its reverse SQL comes from

* ``<version>_<name>.down.sql`` beside it, or else
* a ``-- rollback`` section at the end of the migration itself: a line that is just
  ``-- rollback`` (any case, an optional colon, spaces around) starts it, and every line after it
  must be a SQL comment; the reverse SQL is those lines with ``--`` and one following space taken
  off. Supabase runs the whole file forward, so a line after the marker that is not commented out
  has already run: that is a ``problem``, as is a second marker.

When both exist the ``.down.sql`` is the reverse SQL and the section is not read at all (no
problem is reported about it). Reverse SQL with nothing but blank lines and comments is a
problem. A migration with neither has ``reverse_sql`` None and no problem: the caller says there
is no reverse SQL. Two files with the same version are a problem on that version.

Usage::

    files = MigrationFolder().migrations("supabase/migrations")
    files["20240101120000"].reverse_sql
"""

from __future__ import annotations

import re
from pathlib import Path

from handlers.db_ports import DatabaseError, MigrationFile

_MIGRATION = re.compile(r"^(\d+)_(.+)\.sql$")
_MARKER = re.compile(r"^\s*--\s*rollback\s*:?\s*$", re.IGNORECASE)
_DOWN = ".down.sql"


class MigrationFolder:
    """Reads a folder each time it is asked: files change between a plan and its execution."""

    def migrations(self, directory: str) -> dict[str, MigrationFile]:
        folder = Path(directory)
        try:
            names = sorted(entry.name for entry in folder.iterdir() if entry.is_file())
        except OSError as error:
            reason = error.strerror or type(error).__name__
            raise DatabaseError(f"the migrations folder {directory} cannot be read: {reason}") from error
        found: dict[str, MigrationFile] = {}
        for filename in names:
            match = _MIGRATION.match(filename)
            if match is None or filename.endswith(_DOWN):
                continue
            version, name = match.groups()
            migration = _read(folder, filename, version, name, names)
            if version in found:
                earlier = f"{version}_{found[version].name}.sql"
                migration = MigrationFile(version, name, None, None,
                                          f"two migration files have version {version}: {earlier} and {filename}")
            found[version] = migration
        return found


def _read(folder: Path, filename: str, version: str, name: str, names: list[str]) -> MigrationFile:
    down = f"{version}_{name}{_DOWN}"
    if down in names:
        text, problem = _text(folder / down)
        if text is None:
            return MigrationFile(version, name, None, down, problem)
        return MigrationFile(version, name, text, down, _empty(text, down))
    forward, problem = _text(folder / filename)
    if forward is None:
        return MigrationFile(version, name, None, None, problem)
    return _section(forward, filename, version, name)


def _section(forward: str, filename: str, version: str, name: str) -> MigrationFile:
    """The reverse SQL of the ``-- rollback`` section of ``forward``, if it has one."""
    lines = forward.splitlines()
    start = next((i for i, line in enumerate(lines) if _MARKER.match(line)), None)
    if start is None:
        return MigrationFile(version, name, None, None)
    source = f"the -- rollback section of {filename}"
    reverse: list[str] = []
    problem: str | None = None
    for number, line in enumerate(lines[start + 1:], start=start + 2):
        stripped = line.strip()
        if not stripped:
            reverse.append("")
        elif _MARKER.match(line):
            problem = problem or (f"line {number} of {filename} is a second `-- rollback` line; "
                                  f"the section starts at line {start + 1}")
        elif stripped.startswith("--"):
            text = stripped[2:]
            reverse.append(text[1:] if text.startswith(" ") else text)
        else:
            problem = problem or (f"line {number} of {filename} after `-- rollback` is not commented out, "
                                  f"so Supabase ran it forward")
    sql = "\n".join(reverse).strip("\n") + "\n"
    return MigrationFile(version, name, sql, source, problem or _empty(sql, source))


def _text(path: Path) -> tuple[str | None, str | None]:
    """The file's text, or None and why it cannot be read."""
    try:
        return path.read_text(encoding="utf-8-sig"), None
    except UnicodeDecodeError:
        return None, f"{path.name} is not UTF-8 text"
    except OSError as error:
        return None, f"{path.name} cannot be read: {error.strerror or type(error).__name__}"


def _empty(sql: str, source: str) -> str | None:
    """A problem when ``sql`` holds no statement (only blank lines and ``--`` comments)."""
    if any(line.strip() and not line.strip().startswith("--") for line in sql.splitlines()):
        return None
    return f"{source} is empty: there is no reverse SQL in it"
