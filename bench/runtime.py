"""The interpreter the benchmark's servers run on: a virtual environment with Rollbot's runtime
dependencies only (``pip install -e .``, no extras), as production installs it.

The development venv would do, but its tools change what is measured: import-linter brings
`rich`, which structlog loads whenever it is installed, about 3 MiB in every server process that
a production install does not have. Both apps (Rollbot and bare Bolt) run on this one, so they
load the same gunicorn and Bolt.

    python = runtime_python()   # .venvs/bench-py3.X, created or brought up to date first
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def runtime_python() -> str:
    """The runtime venv's interpreter, created the first time and reinstalled when
    pyproject.toml changes (as ``tasks.py`` does for the development one)."""
    where = ROOT / ".venvs" / f"bench-py{sys.version_info[0]}.{sys.version_info[1]}"
    python = where / "bin" / "python"
    stamp = where / ".rollbot-installed"
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return str(python)
    print(f"… installing Rollbot's runtime dependencies into {where.relative_to(ROOT)} (once)", file=sys.stderr,
          flush=True)
    if not python.exists():
        venv.EnvBuilder(with_pip=True).create(where)
    done = subprocess.run([str(python), "-m", "pip", "--disable-pip-version-check", "-q", "install", "-e", str(ROOT)],
                          cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"installing the runtime venv failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    stamp.write_text(wanted)
    return str(python)
