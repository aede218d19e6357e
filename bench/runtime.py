"""The interpreter the benchmark's servers run on: a virtual environment with Rollbot's runtime
dependencies only (``pip install -e .``, no extras), as production installs it.

The development venv would do, but its tools change what is measured: import-linter brings
`rich`, which structlog loads whenever it is installed, 2-3 MiB in each of Rollbot's server
processes (its web workers and `rollbot worker`) that a production install does not have. Both
apps (Rollbot and bare Bolt) run on this one, so they load the same gunicorn and Bolt.

    python = runtime_python()   # .venvs/bench-py3.X, created or brought up to date first
"""

from __future__ import annotations

import fcntl
import hashlib
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def runtime_python() -> str:
    """The runtime venv's interpreter, created the first time and installed into again when
    pyproject.toml changes (as ``tasks.py`` does for the development one). One benchmark at a
    time sets it up (a lock beside it); a venv that cannot run pip is made again."""
    where = ROOT / ".venvs" / f"bench-py{sys.version_info[0]}.{sys.version_info[1]}"
    python = where / "bin" / "python"
    stamp = where / ".rollbot-installed"
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    where.parent.mkdir(parents=True, exist_ok=True)
    with open(where.parent / f".{where.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if python.exists() and stamp.exists() and stamp.read_text() == wanted:
            return str(python)
        print(f"… installing Rollbot's runtime dependencies into {where.relative_to(ROOT)}", file=sys.stderr,
              flush=True)
        pip = [str(python), "-m", "pip", "--disable-pip-version-check", "-q"]
        if not python.exists() or subprocess.run([*pip, "--version"], capture_output=True).returncode != 0:
            venv.EnvBuilder(with_pip=True, clear=True).create(where)  # new, or left half-made
        stamp.unlink(missing_ok=True)
        done = subprocess.run([*pip, "install", "-e", str(ROOT)], cwd=ROOT, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"installing the benchmark's runtime venv failed (--current-python runs the servers "
                               f"on this interpreter instead):\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
        stamp.write_text(wanted)
    return str(python)
