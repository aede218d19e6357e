"""The load generator: signed Slack requests at a fixed concurrency, one new connection each.

It runs in its own process (`python -m bench.load`, a JSON job on stdin, a JSON result on
stdout), so its work never shares an interpreter with the emulators or the servers it measures.
Each request is signed just before it is sent, as Slack does, and timed from the connect to the
last byte of the answer. asyncio keeps 200 requests in flight on one thread without the load
generator itself becoming what is measured.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import sys
import time
from typing import Any


def sign(secret: str, body: bytes, timestamp: int) -> str:
    base = b"v0:" + str(timestamp).encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


async def _one(host: str, port: int, path: str, secret: str, body: bytes) -> tuple[float, float, int]:
    """(wall-clock start, milliseconds, HTTP status; 0 when the connection failed)."""
    wall, started = time.time(), time.perf_counter()
    timestamp = int(wall)
    head = (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {len(body)}\r\nX-Slack-Request-Timestamp: {timestamp}\r\n"
            f"X-Slack-Signature: {sign(secret, body, timestamp)}\r\nConnection: close\r\n\r\n").encode()
    status = 0
    try:
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(head + body)
        await writer.drain()
        status_line = await reader.readline()
        length = 0
        while True:
            line = await reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        if length:
            await reader.readexactly(length)
        status = int(status_line.split()[1])
        writer.close()
    except (OSError, ValueError, IndexError, asyncio.IncompleteReadError):
        status = 0
    return wall, (time.perf_counter() - started) * 1000, status


async def run(job: dict[str, Any]) -> dict[str, Any]:
    limit = asyncio.Semaphore(int(job["concurrency"]))

    async def bounded(body: str) -> tuple[float, float, int]:
        async with limit:
            return await _one(job["host"], int(job["port"]), job["path"], job["secret"], body.encode())

    results = await asyncio.gather(*(bounded(body) for body in job["bodies"]))
    return {"started": [r[0] for r in results], "ms": [r[1] for r in results], "status": [r[2] for r in results]}


def main() -> int:
    job = json.load(sys.stdin)
    json.dump(asyncio.run(run(job)), sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
