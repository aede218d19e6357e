"""The picture in DESIGN.md stays true: import-linter contracts and ruff, run as tests."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _tool(name: str) -> str:
    found = shutil.which(name, path=str(Path(sys.executable).parent))
    assert found, f"{name} is not installed in this environment"
    return found


def test_import_contracts_hold() -> None:
    result = subprocess.run([_tool("lint-imports")], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_core_contract_actually_forbids_slack_httpx_psycopg_redis() -> None:
    import tomllib

    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    core = next(c for c in contracts if c["source_modules"] == ["handlers"])
    assert {"slack_sdk", "slack_bolt", "httpx", "psycopg", "redis"} <= set(core["forbidden_modules"])


def test_ruff_is_clean() -> None:
    result = subprocess.run([_tool("ruff"), "check", "."], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_is_clean() -> None:
    result = subprocess.run([_tool("mypy")], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_web_worker_does_not_load_what_only_the_worker_uses() -> None:
    """Each web worker imports what `bot.web_master` loads; the SQL parser (pglast, 3 MiB) and
    cryptography's bindings (7 MiB) load only where a migration is planned or reverted and a
    snapshot sealed or opened, httpx (6 MiB) where Vercel or a health check is first called."""
    probe = ("import sys; from bot import logs; from bot.bootstrap import build; from bot.cli import secrets_of; "
             "from bot.settings import Settings; from bot.wsgi import RollbotWSGI; "
             "print(sorted(m for m in ('pglast', 'cryptography.hazmat', 'httpx') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
