"""`rollbot dev --demo` plays the whole story on its own and exits 0."""

from __future__ import annotations

import os
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
