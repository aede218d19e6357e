#!/usr/bin/env python3
"""The two quickstart commands, on a machine with only Python 3.11+:

    python3 tasks.py dev     # start the bot in the local sandbox (`rollbot dev`)
    python3 tasks.py test    # run the whole test suite

Each creates ./.venv and installs the project into it the first time (and again when
pyproject.toml changes). Extra arguments are passed through: `python3 tasks.py dev --demo`,
`python3 tasks.py test -k approvals`.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
STAMP = VENV / ".rollbot-installed"


def ensure_venv() -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 - this script may be started by an older python3
        sys.exit(f"Rollbot needs Python 3.11 or newer; this is {sys.version.split()[0]}.")
    if not (BIN / "python").exists():
        print("• creating .venv", flush=True)
        try:
            venv.EnvBuilder(with_pip=True).create(VENV)
        except Exception as error:  # e.g. Debian/Ubuntu without the python3-venv package
            sys.exit(f"could not create .venv ({error}). On Debian/Ubuntu: apt install python3-venv")
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text() == wanted:
        return
    print("• installing Rollbot and its test tools into .venv", flush=True)
    pip = [str(BIN / "python"), "-m", "pip", "--disable-pip-version-check", "-q"]
    result = subprocess.run([*pip, "install", "-e", f"{ROOT}[dev]"], cwd=ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"installing failed:\n{result.stdout[-4000:]}{result.stderr[-4000:]}")
    STAMP.write_text(wanted)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("dev", "test"):
        print(__doc__)
        return 2
    ensure_venv()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if argv[0] == "dev":
        return subprocess.call([str(BIN / "rollbot"), "dev", *argv[1:]], cwd=ROOT, env=env)
    return subprocess.call([str(BIN / "python"), "-m", "pytest", *argv[1:]], cwd=ROOT, env=env)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
