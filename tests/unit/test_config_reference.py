"""docs/configuration.md is what the configuration's models say, and every key in it has a type,
a default, an example and a meaning (bot.config_reference)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic.fields import FieldInfo

from bot import config_reference
from bot.config_reference import DOC, TABLES, Undocumented, render
from bot.settings import Settings


def test_the_page_is_what_the_models_say() -> None:
    assert config_reference.main(["--check"]) == 0, "run `python -m bot.config_reference`"


def test_every_variable_and_every_key_of_every_table_has_a_row() -> None:
    page = DOC.read_text()
    for name in Settings.model_fields:
        assert f"| `{name.upper()}` |" in page
    for table, model, _ in TABLES:
        section = page.split(f"### `[{table}]`", 1)[1].split("\n### ", 1)[0]
        for name in model.model_fields:
            row = next(line for line in section.splitlines() if line.startswith(f"| `{name}` |"))
            kind, default, example, meaning = (cell.strip() for cell in row.split(" | ")[1:5])
            assert kind and default and example and meaning.rstrip(" |"), row


def test_a_key_without_a_docstring_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    fields = dict(Settings.model_fields)
    bare = FieldInfo.merge_field_infos(fields["port"])
    bare.description = None
    monkeypatch.setitem(Settings.model_fields, "port", bare)
    with pytest.raises(Undocumented, match="PORT has no docstring"):
        render()


def test_a_key_without_an_example_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    example = tmp_path / "rollbot.toml"
    example.write_text(config_reference.TOML_EXAMPLE.read_text().replace("lock_timeout = ", "# lock_timeout = "))
    monkeypatch.setattr(config_reference, "TOML_EXAMPLE", example)
    with pytest.raises(Undocumented, match=r"environments.<env>.lock_timeout has no example"):
        render()
    env = tmp_path / ".env.example"
    env.write_text(config_reference.ENV_EXAMPLE.read_text().replace("ROLLBOT_WORKER_NICE=", "ROLLBOT_NICE="))
    monkeypatch.setattr(config_reference, "ENV_EXAMPLE", env)
    with pytest.raises(Undocumented, match="ROLLBOT_WORKER_NICE is not in .env.example"):
        config_reference.env_rows()


def test_every_table_of_the_policy_file_is_in_the_reference() -> None:
    """A new table (a model inside Policy) must be added to TABLES, or its keys go undocumented."""
    import typing

    from pydantic import BaseModel

    from handlers.config import Policy

    def models(model: type[BaseModel]) -> set[type[BaseModel]]:
        found: set[type[BaseModel]] = set()
        for field in model.model_fields.values():
            pending = [field.annotation]
            while pending:
                annotation = pending.pop()
                if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                    found |= {annotation} | models(annotation)
                pending += typing.get_args(annotation)
        return found

    assert models(Policy) == {model for _, model, _ in TABLES}
