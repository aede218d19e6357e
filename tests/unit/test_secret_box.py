"""Encryption at rest for env-var snapshots: sealed data never shows, a rotated key keeps the old
snapshots readable, a wrong or malformed key is a clear error, fingerprints tell values apart."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from integrations.secret_box import SecretBox, SecretKeyError, fingerprint, new_key


def test_sealed_data_opens_with_the_key_and_shows_nothing() -> None:
    box = SecretBox(new_key())
    token = box.seal(b'{"API_URL": "https://api.internal/v2"}')
    assert b"api.internal" not in token and box.open(token) == b'{"API_URL": "https://api.internal/v2"}'


def test_a_rotated_key_still_opens_old_snapshots_and_rotate_moves_them_to_the_new_key() -> None:
    old, new = new_key(), new_key()
    token = SecretBox(old).seal(b"value")
    rotating = SecretBox(f"{new},{old}")
    assert rotating.open(token) == b"value"
    moved = rotating.rotate(token)
    assert SecretBox(new).open(moved) == b"value"
    with pytest.raises(SecretKeyError, match="keep the old key after the new one"):
        SecretBox(new).open(token)


@pytest.mark.parametrize("keys, message", [
    ("", "not set; make one with `rollbot secret-key`"),
    (" , ", "not set"),
    ("not-a-fernet-key", "must be Fernet keys"),
])
def test_a_missing_or_malformed_key_says_how_to_fix_it(keys: str, message: str) -> None:
    with pytest.raises(SecretKeyError, match=message):
        SecretBox(keys)


def test_a_malformed_key_never_appears_in_the_error() -> None:
    with pytest.raises(SecretKeyError) as raised:
        SecretBox("s3cr3t-but-wrong")
    assert "s3cr3t" not in str(raised.value)


def test_fingerprints_match_equal_values_differ_otherwise_and_depend_on_the_key_and_the_variable() -> None:
    key = b"k" * 32
    assert fingerprint(key, "prj/A", "on") == fingerprint(key, "prj/A", "on") != fingerprint(key, "prj/A", "off")
    assert len(fingerprint(key, "prj/A", "on")) == 8
    assert fingerprint(b"j" * 32, "prj/A", "on") != fingerprint(key, "prj/A", "on")
    assert fingerprint(key, "prj/B", "on") != fingerprint(key, "prj/A", "on")  # equal values of two variables


@pytest.mark.parametrize("key", [
    new_key(), new_key().rstrip("="), "A" * 43 + "=", "A" * 44 + "=", "+" * 43 + "=", "-" * 43 + "=", "_" * 43,
    "A" * 42 + "==", "A" * 42 + "B", "A" * 43 + "==", "é" * 43 + "=", "AAAA", "A" * 43 + "=" + "A",
    " " + "A" * 43 + "= ", "A" * 21 + "." + "A" * 21,
])
def test_a_key_is_checked_at_start_up_exactly_as_fernet_checks_it(key: str) -> None:
    from cryptography.fernet import Fernet

    try:
        Fernet(key.strip().encode())  # each key of the list is stripped
        fernet_takes_it = True
    except ValueError:  # binascii.Error is one
        fernet_takes_it = False
    try:
        SecretBox(key)
        we_take_it = True
    except SecretKeyError:
        we_take_it = False
    assert we_take_it == fernet_takes_it


def test_the_encryption_library_loads_on_the_first_seal_not_at_start_up() -> None:
    """The web checks the key and never seals: it does not carry cryptography's 7 MiB."""
    probe = ("import sys; from integrations.secret_box import SecretBox; "
             "box = SecretBox('A' * 43 + '='); "
             "loaded = lambda: any(m.startswith('cryptography.hazmat') for m in sys.modules); "
             "before = loaded(); box.open(box.seal(b'x')); print(before, loaded())")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.stdout.split() == ["False", "True"]
