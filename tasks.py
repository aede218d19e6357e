#!/usr/bin/env python3
"""The two quickstart commands, on a machine with only Python 3.11+:

    python3 tasks.py dev     # start the bot in the local sandbox (`rollbot dev`)
    python3 tasks.py test    # run the whole test suite

and one check for a Python that is not installed here:

    python3 tasks.py wheels 3.14   # can every dependency install from a wheel on Python 3.14?

Each creates a virtual environment for the interpreter that runs this script,
``./.venvs/py3.X``, and installs the project into it the first time (and again when
pyproject.toml changes). So ``python3.13 tasks.py test`` runs the suite under Python 3.13 in
``.venvs/py3.13``, next to the one ``python3.11 tasks.py test`` uses. Extra arguments are passed
through: ``python3 tasks.py dev --demo``, ``python3 tasks.py test -k approvals``.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venvs" / f"py{sys.version_info[0]}.{sys.version_info[1]}"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
STAMP = VENV / ".rollbot-installed"


def ensure_venv() -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 - this script may be started by an older python3
        sys.exit(f"Rollbot needs Python 3.11 or newer; this is {sys.version.split()[0]}.")
    if not (BIN / "python").exists():
        print(f"• creating {VENV.relative_to(ROOT)} for Python {sys.version.split()[0]}", flush=True)
        try:
            venv.EnvBuilder(with_pip=True).create(VENV)
        except Exception as error:  # e.g. Debian/Ubuntu without the python3-venv package
            sys.exit(f"could not create {VENV.relative_to(ROOT)} ({error}). "
                     "On Debian/Ubuntu: apt install python3-venv")
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text() == wanted:
        return
    print(f"• installing Rollbot and its test tools into {VENV.relative_to(ROOT)}", flush=True)
    pip = [str(BIN / "python"), "-m", "pip", "--disable-pip-version-check", "-q"]
    result = subprocess.run([*pip, "install", "-e", f"{ROOT}[dev]"], cwd=ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"installing failed:\n{result.stdout[-4000:]}{result.stderr[-4000:]}")
    STAMP.write_text(wanted)


# (platform tags tried together, label): Linux x86_64 and aarch64, macOS on Apple silicon.
WHEEL_PLATFORMS = (
    (("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"), "Linux x86_64"),
    (("manylinux_2_28_aarch64", "manylinux_2_17_aarch64", "manylinux2014_aarch64"), "Linux aarch64"),
    (("macosx_14_0_arm64", "macosx_11_0_arm64"), "macOS arm64"),
)


def wheels(version: str) -> int:
    """Resolve the project with its test tools from wheels only, as Python ``version`` would,
    without that Python: a dependency with no wheel for it (so a compiler or a failure on a
    newcomer's machine) fails here, named by pip."""
    major, _, minor = version.partition(".")
    if not (major.isdigit() and minor.isdigit()):
        print(f"wheels: {version!r} is not a Python version like 3.14")
        return 2
    failed = 0
    for tags, label in WHEEL_PLATFORMS:
        with tempfile.TemporaryDirectory() as target:
            argv = [sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check",
                    "--only-binary=:all:", "--python-version", version, "--implementation", "cp",
                    "--abi", f"cp{major}{minor}", "--abi", "abi3", "--abi", "none", "-d", target,
                    *[arg for tag in tags for arg in ("--platform", tag)], f"{ROOT}[dev]"]
            result = subprocess.run(argv, capture_output=True, text=True)
            if result.returncode == 0:
                compiled = sorted(name for name in os.listdir(target) if "-none-any" not in name)
                print(f"ok    Python {version} on {label}: every dependency has a wheel "
                      f"({len(os.listdir(target))} wheels, {len(compiled)} platform-specific)")
            else:
                failed += 1
                errors = [line for line in result.stderr.splitlines() if line.startswith("ERROR")]
                print(f"FAIL  Python {version} on {label}: " + (" ".join(errors) or result.stderr[-800:]))
    return 1 if failed else 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["wheels"]:
        return wheels(argv[1] if len(argv) > 1 else "3.14")
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
