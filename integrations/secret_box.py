"""Encryption at rest for what Rollbot must keep but never show (env-var snapshots).

``ROLLBOT_SECRET_KEY`` holds one or more Fernet keys (32 url-safe base64 bytes each), comma
separated, newest first. The newest encrypts; every one decrypts (``cryptography``'s
MultiFernet), so a key is rotated by putting the new one first, re-encrypting (``rotate``), then
dropping the old one. Fingerprints are keyed hashes (``fingerprint``: HMAC-SHA256 under a random
key the store keeps sealed, so a rotation does not change them, bound to the variable they
belong to): two values can be told apart in Slack without showing either.

``cryptography`` is imported on the first seal or open, not with this module: its bindings are
7 MiB of every process's memory, and only the worker's env-var snapshots use them (the web checks
the keys' form at start-up, as Fernet does, and never opens a snapshot).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cryptography.fernet import MultiFernet

KEY = re.compile(r"[A-Za-z0-9_-]{43}=?")  # a Fernet key: 32 bytes, url-safe base64 (what Fernet takes)
MALFORMED = ("ROLLBOT_SECRET_KEY must be Fernet keys (32 url-safe base64-encoded bytes), comma separated, newest "
             "first; make one with `rollbot secret-key`")


class SecretKeyError(Exception):
    """The key is missing, malformed, or cannot open what was sealed; the message says how to fix it."""


def new_key() -> str:
    """A fresh Fernet key, for ``ROLLBOT_SECRET_KEY``."""
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


class SecretBox:
    def __init__(self, keys: str) -> None:
        parts = [part.strip() for part in keys.split(",") if part.strip()]
        if not parts:
            raise SecretKeyError("ROLLBOT_SECRET_KEY is not set; make one with `rollbot secret-key`")
        if not all(KEY.fullmatch(part) for part in parts):
            raise SecretKeyError(MALFORMED)
        self._parts = parts
        self._fernets: MultiFernet | None = None
        self._lock = threading.Lock()

    @property
    def _box(self) -> MultiFernet:
        with self._lock:
            if self._fernets is None:
                from cryptography.fernet import Fernet, MultiFernet

                try:
                    self._fernets = MultiFernet([Fernet(part.encode()) for part in self._parts])
                except ValueError:  # a cryptography release stricter than KEY
                    raise SecretKeyError(MALFORMED) from None
            return self._fernets

    def seal(self, data: bytes) -> bytes:
        return self._box.encrypt(data)

    def open(self, token: bytes) -> bytes:
        from cryptography.fernet import InvalidToken

        try:
            return self._box.decrypt(token)
        except InvalidToken:
            raise SecretKeyError("ROLLBOT_SECRET_KEY cannot decrypt this snapshot: it was sealed with a key that is "
                                 "not in ROLLBOT_SECRET_KEY (when rotating, keep the old key after the new one until "
                                 "every snapshot is re-encrypted)") from None

    def rotate(self, token: bytes) -> bytes:
        """The same data sealed with the newest key."""
        from cryptography.fernet import InvalidToken

        try:
            return self._box.rotate(token)
        except InvalidToken:
            raise SecretKeyError("ROLLBOT_SECRET_KEY cannot decrypt this snapshot to re-encrypt it") from None


def fingerprint(mac_key: bytes, scope: str, value: str) -> str:
    """A short keyed hash of ``value`` as the value of ``scope`` (a project's variable): equal
    values of the same variable match; nothing about the value can be read back or guessed
    without the key, and equal values of two variables cannot be linked."""
    return hmac.new(mac_key, f"{scope}\0{value}".encode(), hashlib.sha256).hexdigest()[:8]

