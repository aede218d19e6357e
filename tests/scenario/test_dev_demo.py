"""`rollbot dev --demo` plays the whole story on its own and exits 0."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path


def test_dev_demo_plays_the_story(database_url: str, redis_url: str, tmp_path: Path) -> None:
    env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": redis_url, "ROLLBOT_DEV_DIR": str(tmp_path)}
    for name in ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "VERCEL_TOKEN", "ROLLBOT_CONFIG"):
        env.pop(name, None)
    result = subprocess.run([sys.executable, "-m", "bot.cli", "dev", "--demo"], env=env, capture_output=True,
                            text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "Demo complete" in out and "Vercel rollback calls: 1" in out
    assert "four eyes" in out  # alice was told why she cannot approve her own request
    assert "you hold `engineer`" in out  # bob was told why he cannot approve
    assert "Monitoring 3/3" in out and "Post-incident summary" in out


def test_dev_uses_another_port_when_its_port_is_taken(database_url: str, redis_url: str, tmp_path: Path) -> None:
    """Another process holds the preferred port (3000, or $PORT; as a second `rollbot dev` would):
    dev binds a free port instead of failing with "Address already in use", and says which."""
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    taken = str(holder.getsockname()[1])
    env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": redis_url, "ROLLBOT_DEV_DIR": str(tmp_path),
           "PORT": taken}
    try:
        result = subprocess.run([sys.executable, "-m", "bot.cli", "dev", "--demo"], env=env, capture_output=True,
                                text=True, timeout=120, stdin=subprocess.DEVNULL)
    finally:
        holder.close()
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    url = re.search(r"Slack events URL\s+http://127\.0\.0\.1:(\d+)/slack/events", result.stdout)
    assert url is not None and url.group(1) != taken, result.stdout[-3000:]
    assert "Demo complete" in result.stdout
