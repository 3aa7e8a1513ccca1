"""Encryption at rest: AES-256-GCM (``cryptography``) with rotating keys, and keyed hashes.

A :class:`Keyring` holds the keys of ``ENCRYPTION_KEYS``, newest first (each 32 random bytes,
URL-safe base64; ``sharewise keys generate`` makes one). Without that setting the embedded
default generates one key into ``DATA_DIR/encryption_key`` on first start and logs that it did.

:meth:`Keyring.encrypt` seals with the newest key and a random 96-bit nonce per object, binding
the ciphertext to a *context* (associated data, not secret: the storage key of a file, or the
record and column of a field), so a ciphertext copied to another record or field does not
decrypt. The sealed form is ``b"SWE1" + key id (4 bytes) + nonce (12) + ciphertext and tag``;
the key id (the start of the key's SHA-256) says which key opens it, so data sealed with an
older key still reads after a new key is put first, and ``sharewise keys rotate`` re-seals it
with the newest key in batches while the service runs.

:meth:`Keyring.keyed_hashes` is HMAC-SHA256 under a key derived from each encryption key, for
lookups that need equality without the plain value (the host's request id): the newest key's
is stored, and during a rotation a lookup tries them all.

Limits: a context is a label, not a secret; the key id tells which key sealed an object, not
anything about its content; and the length of a ciphertext gives away the length of its
plaintext (16 + 20 bytes longer).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import secrets
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from flask import Flask, current_app

log = logging.getLogger(__name__)

MAGIC = b"SWE1"
KEY_BYTES = 32
_ID_BYTES = 4
_NONCE_BYTES = 12
_HEADER = len(MAGIC) + _ID_BYTES + _NONCE_BYTES


class DecryptionError(Exception):
    """A sealed object that no configured key opens in this context (a key missing from the
    configuration, a ciphertext moved to another record or field, or damaged bytes)."""


def generate_key() -> str:
    """A new key for ``ENCRYPTION_KEYS`` (32 random bytes, URL-safe base64)."""
    return base64.urlsafe_b64encode(secrets.token_bytes(KEY_BYTES)).decode()


def parse_key(text: str) -> bytes:
    """The 32 bytes of one configured key; ``ValueError`` when it is not one."""
    raw = base64.urlsafe_b64decode(text.strip().encode() + b"=" * (-len(text.strip()) % 4))
    if len(raw) != KEY_BYTES:
        raise ValueError("an encryption key is 32 bytes in URL-safe base64")
    return raw


def is_sealed(blob: bytes) -> bool:
    """Whether ``blob`` is in the sealed form (a PDF or JSON written before encryption is not)."""
    return blob[: len(MAGIC)] == MAGIC and len(blob) >= _HEADER + 16


class Keyring:
    """The encryption keys, newest first."""

    def __init__(self, keys: Sequence[bytes]) -> None:
        if not keys:
            raise ValueError("a keyring needs at least one key")
        self._keys = [(hashlib.sha256(k).digest()[:_ID_BYTES], AESGCM(k), k) for k in keys]
        self._by_id = {key_id: aead for key_id, aead, _ in reversed(self._keys)}
        self._hash_keys = [hmac.new(k, b"sharewise keyed hash", hashlib.sha256).digest()
                           for _, _, k in self._keys]

    @classmethod
    def from_text(cls, keys: Sequence[str]) -> Keyring:
        """The keyring of configured text keys (``ENCRYPTION_KEYS``, or a key file's text)."""
        return cls([parse_key(k) for k in keys])

    def __len__(self) -> int:
        """How many keys (more than one: a rotation may be under way)."""
        return len(self._keys)

    def encrypt(self, data: bytes, context: str) -> bytes:
        """``data`` sealed with the newest key, bound to ``context``."""
        key_id, aead, _ = self._keys[0]
        nonce = os.urandom(_NONCE_BYTES)
        return MAGIC + key_id + nonce + aead.encrypt(nonce, data, context.encode())

    def decrypt(self, blob: bytes, context: str) -> bytes:
        """The plaintext of a sealed ``blob``; :class:`DecryptionError` when it does not open."""
        if not is_sealed(blob):
            raise DecryptionError("not a sealed object")
        aead = self._by_id.get(blob[len(MAGIC) : len(MAGIC) + _ID_BYTES])
        if aead is None:
            raise DecryptionError("sealed with a key that is not configured")
        nonce = blob[len(MAGIC) + _ID_BYTES : _HEADER]
        try:
            return aead.decrypt(nonce, blob[_HEADER:], context.encode())
        except InvalidTag:
            raise DecryptionError("does not open in this context (moved or damaged)") from None

    def is_current(self, blob: bytes) -> bool:
        """Whether ``blob`` is sealed with the newest key (else a rotation re-seals it)."""
        return is_sealed(blob) and blob[len(MAGIC) : len(MAGIC) + _ID_BYTES] == self._keys[0][0]

    def keyed_hashes(self, value: str, purpose: str) -> list[str]:
        """HMAC-SHA256 of ``value`` for ``purpose`` (64 hex characters) under every key,
        newest first: the first is the one to store, all of them are for a look-up during a
        rotation."""
        message = f"{purpose}\0{value}".encode()
        return [hmac.new(k, message, hashlib.sha256).hexdigest() for k in self._hash_keys]


def init_app(app: Flask, keys: Sequence[str]) -> None:
    """Give ``app`` the keyring of ``keys`` (configured text keys, newest first)."""
    app.extensions["sharewise.keyring"] = Keyring.from_text(keys)


def keyring(app: Flask | None = None) -> Keyring:
    """The current app's keyring."""
    return (app or current_app).extensions["sharewise.keyring"]
