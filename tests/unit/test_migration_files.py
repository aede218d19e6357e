"""Migration files: which files are migrations, where their reverse SQL comes from, and what
makes a reverse SQL unusable."""

from __future__ import annotations

from pathlib import Path

import pytest

from handlers.db_ports import DatabaseError, MigrationFile
from integrations.migration_files import MigrationFolder


def _folder(tmp_path: Path, files: dict[str, str | bytes]) -> dict[str, MigrationFile]:
    for name, text in files.items():
        path = tmp_path / name
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text, encoding="utf-8")
    return MigrationFolder().migrations(str(tmp_path))


def test_migrations_are_version_underscore_name_dot_sql(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    found = _folder(tmp_path, {
        "20240101000000_create_orders.sql": "CREATE TABLE orders (id int);\n",
        "20240102000000_add_note_to_orders.sql": "ALTER TABLE orders ADD COLUMN note text;\n",
        "20240102000000_add_note_to_orders.down.sql": "ALTER TABLE orders DROP COLUMN note;\n",
        "20240103000000_orphan.down.sql": "DROP TABLE x;\n",
        "seed.sql": "INSERT INTO orders VALUES (1);\n",
        "README.md": "notes",
        "_20240104_x.sql": "",
    })
    assert sorted(found) == ["20240101000000", "20240102000000"]
    assert found["20240101000000"] == MigrationFile("20240101000000", "create_orders", None, None)
    note = found["20240102000000"]
    assert (note.name, note.reverse_sql, note.problem) == (
        "add_note_to_orders", "ALTER TABLE orders DROP COLUMN note;\n", None)
    assert note.reverse_source == "20240102000000_add_note_to_orders.down.sql"


def test_a_rollback_section_of_comments_is_the_reverse_sql(tmp_path: Path) -> None:
    found = _folder(tmp_path, {"1_orders.sql": (
        "CREATE TABLE orders (id int);\n"
        "CREATE INDEX orders_id ON orders (id);\n"
        "\n"
        "  -- ROLLBACK:  \n"
        "-- DROP INDEX orders_id;\n"
        "\n"
        "--DROP TABLE orders;\n"
        "    --   -- a comment kept as a comment\n")})["1"]
    assert found.reverse_sql == "DROP INDEX orders_id;\n\nDROP TABLE orders;\n  -- a comment kept as a comment\n"
    assert found.reverse_source == "the -- rollback section of 1_orders.sql"
    assert found.problem is None


@pytest.mark.parametrize("marker", ["-- rollback", "--rollback", "-- Rollback:", "\t-- rollback \r"])
def test_the_marker_is_a_line_of_its_own_in_any_case(tmp_path: Path, marker: str) -> None:
    found = _folder(tmp_path, {"1_x.sql": f"CREATE TABLE x ();\n{marker}\n-- DROP TABLE x;\n"})["1"]
    assert (found.reverse_sql, found.problem) == ("DROP TABLE x;\n", None)


def test_a_mention_of_rollback_is_not_a_marker(tmp_path: Path) -> None:
    found = _folder(tmp_path, {"1_x.sql": "-- rollback plan: see below\nCREATE TABLE x ();\n"
                                          "-- rollback by hand\n"})["1"]
    assert found.reverse_sql is None and found.problem is None


def test_an_uncommented_line_after_the_marker_ran_forward(tmp_path: Path) -> None:
    found = _folder(tmp_path, {"1_x.sql": "CREATE TABLE x ();\n-- rollback\n-- DROP INDEX i;\nDROP TABLE x;\n"})["1"]
    assert found.problem == ("line 4 of 1_x.sql after `-- rollback` is not commented out, "
                             "so Supabase ran it forward")
    assert found.reverse_sql == "DROP INDEX i;\n"


def test_a_second_marker_is_a_problem(tmp_path: Path) -> None:
    found = _folder(tmp_path, {"1_x.sql": "CREATE TABLE x ();\n-- rollback\n-- DROP TABLE x;\n-- rollback\n"})["1"]
    assert found.problem is not None and "line 4" in found.problem and "second" in found.problem


@pytest.mark.parametrize("section", ["", "\n\n", "-- -- nothing to do\n"])
def test_an_empty_section_is_a_problem(tmp_path: Path, section: str) -> None:
    found = _folder(tmp_path, {"1_x.sql": f"CREATE TABLE x ();\n-- rollback\n{section}"})["1"]
    assert found.problem == "the -- rollback section of 1_x.sql is empty: there is no reverse SQL in it"


def test_an_empty_down_file_is_a_problem(tmp_path: Path) -> None:
    found = _folder(tmp_path, {"1_x.sql": "CREATE TABLE x ();\n", "1_x.down.sql": "-- later\n  \n"})["1"]
    assert found.problem == "1_x.down.sql is empty: there is no reverse SQL in it"


def test_a_down_file_wins_over_a_section_and_no_problem_is_set(tmp_path: Path) -> None:
    found = _folder(tmp_path, {"1_x.sql": "CREATE TABLE x ();\n-- rollback\nDROP TABLE x;\n",
                               "1_x.down.sql": "DROP TABLE x CASCADE;\n"})["1"]
    assert (found.reverse_sql, found.reverse_source, found.problem) == (
        "DROP TABLE x CASCADE;\n", "1_x.down.sql", None)


def test_a_down_file_must_match_the_name_too(tmp_path: Path) -> None:
    found = _folder(tmp_path, {"1_x.sql": "CREATE TABLE x ();\n", "1_y.down.sql": "DROP TABLE x;\n"})
    assert found["1"].reverse_sql is None


def test_unreadable_files_are_problems_of_their_migration(tmp_path: Path) -> None:
    found = _folder(tmp_path, {"1_x.sql": b"\xff\xfe CREATE", "2_y.sql": "CREATE TABLE y ();\n",
                               "2_y.down.sql": b"DROP \xff"})
    assert found["1"].problem == "1_x.sql is not UTF-8 text" and found["1"].reverse_sql is None
    assert found["2"].problem == "2_y.down.sql is not UTF-8 text" and found["2"].reverse_source == "2_y.down.sql"


def test_a_byte_order_mark_and_crlf_are_read(tmp_path: Path) -> None:
    found = _folder(tmp_path, {"1_x.sql": b"\xef\xbb\xbf-- rollback\r\n-- DROP TABLE x;\r\n"})["1"]
    assert (found.reverse_sql, found.problem) == ("DROP TABLE x;\n", None)


def test_two_files_with_one_version_are_a_problem(tmp_path: Path) -> None:
    found = _folder(tmp_path, {"1_a.sql": "SELECT 1;\n", "1_b.sql": "SELECT 2;\n"})
    assert found["1"].problem == "two migration files have version 1: 1_a.sql and 1_b.sql"


def test_a_missing_folder_or_a_file_in_its_place_is_a_database_error(tmp_path: Path) -> None:
    with pytest.raises(DatabaseError, match="the migrations folder .*nope cannot be read"):
        MigrationFolder().migrations(str(tmp_path / "nope"))
    (tmp_path / "file").write_text("x")
    with pytest.raises(DatabaseError, match="cannot be read"):
        MigrationFolder().migrations(str(tmp_path / "file"))
