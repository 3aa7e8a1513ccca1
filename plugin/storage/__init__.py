"""File store interface for PDFs: keys like ``<tenant>/<record>/prefill-1.pdf``.

``storage_from_url(url)`` picks the backend: a local directory (a path or ``file://`` URL,
:mod:`sharewise.plugin.storage.local`) or S3-compatible object storage (``s3://bucket/prefix``,
:mod:`sharewise.plugin.storage.s3`). ``storage()`` is the current app's store: the backend
wrapped in :class:`EncryptedStorage`, so every object is encrypted (:mod:`..crypto`) with its
own storage key as associated data (a file copied under another record's key does not
decrypt). A PDF stored before encryption existed still reads, as it is, until ``sharewise keys
rotate`` seals it.
"""

from __future__ import annotations

import io
import logging
import re
from abc import ABC, abstractmethod
from typing import BinaryIO

from flask import Flask, current_app

from sharewise.plugin.crypto import DecryptionError, Keyring, is_sealed, keyring
from sharewise.plugin.settings import settings_of

log = logging.getLogger(__name__)

_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}(/[A-Za-z0-9][A-Za-z0-9._-]{0,127}){0,7}$")


class StorageError(Exception):
    """A storage operation failed."""


class InvalidKey(StorageError, ValueError):
    """The key is not a valid storage key (e.g. it tries to leave the store)."""


class NotFound(StorageError, KeyError):
    """No object has this key."""


def check_key(key: str) -> str:
    """Return ``key`` if it is valid: ``/``-separated parts of ``[A-Za-z0-9._-]``, no ``..``."""
    if not isinstance(key, str) or not _KEY.match(key) or ".." in key:
        raise InvalidKey(f"invalid storage key {key!r}")
    return key


class Storage(ABC):
    """A key/value store of immutable-ish blobs with atomic writes."""

    @abstractmethod
    def put(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key`` atomically (readers see the old or the new, never half)."""

    @abstractmethod
    def get(self, key: str) -> bytes:
        """The bytes under ``key``; raises :class:`NotFound`."""

    @abstractmethod
    def open(self, key: str) -> BinaryIO:
        """A readable binary stream of ``key``; raises :class:`NotFound`."""

    @abstractmethod
    def exists(self, key: str) -> bool:
        """Whether ``key`` exists."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove ``key`` (no error if it does not exist)."""

    def size(self, key: str) -> int:
        """Size in bytes of ``key``."""
        return len(self.get(key))


class EncryptedStorage(Storage):
    """``inner`` with every object sealed by ``keys`` (the storage key as context)."""

    def __init__(self, inner: Storage, keys: Keyring) -> None:
        self.inner = inner
        self.keys = keys

    @staticmethod
    def _context(key: str) -> str:
        return f"file:{key}"

    def put(self, key: str, data: bytes) -> None:
        """Seal ``data`` and store it under ``key``."""
        self.inner.put(check_key(key), self.keys.encrypt(data, self._context(key)))

    def get(self, key: str) -> bytes:
        """The plaintext under ``key`` (a PDF stored before encryption: as it is)."""
        raw = self.inner.get(key)
        if not is_sealed(raw):
            if raw.startswith(b"%PDF-"):
                return raw
            raise StorageError(f"object {key} is neither sealed nor a PDF")
        try:
            return self.keys.decrypt(raw, self._context(key))
        except DecryptionError as exc:
            raise StorageError(f"object {key} does not decrypt: {exc}") from None

    def open(self, key: str) -> BinaryIO:
        """A stream of the plaintext (objects are PDFs of at most a few MB)."""
        return io.BytesIO(self.get(key))

    def exists(self, key: str) -> bool:
        """Whether ``key`` exists."""
        return self.inner.exists(key)

    def delete(self, key: str) -> None:
        """Remove ``key``."""
        self.inner.delete(key)

    def reseal(self, key: str) -> bool:
        """Seal ``key`` again with the newest key if it is not already (a rotation step);
        whether it was rewritten. A missing object is left alone."""
        try:
            raw = self.inner.get(key)
        except NotFound:
            return False
        if self.keys.is_current(raw):
            return False
        plain = self.keys.decrypt(raw, self._context(key)) if is_sealed(raw) else raw
        self.put(key, plain)
        return True


def storage_from_url(url: str, *, endpoint_url: str | None = None) -> Storage:
    """The store for ``url``: ``s3://bucket/prefix`` or a local directory (path / ``file://``).

    ``endpoint_url``: of a non-AWS S3 store (default: ``SHAREWISE_S3_ENDPOINT_URL``, else AWS).
    """
    if url.startswith("s3://"):
        from sharewise.plugin.storage.s3 import S3Storage  # added by the practitioner-journey work

        return S3Storage.from_url(url, endpoint_url=endpoint_url)
    from sharewise.plugin.storage.local import LocalStorage

    path = url[len("file://") :] if url.startswith("file://") else url
    return LocalStorage(path)


def init_app(app: Flask) -> None:
    """Create the app's store from ``STORAGE_URL`` (and ``S3_ENDPOINT_URL``)."""
    s = settings_of(app)
    app.extensions["sharewise.storage"] = EncryptedStorage(
        storage_from_url(s.storage_url, endpoint_url=s.s3_endpoint_url or None), keyring(app))


def storage(app: Flask | None = None) -> Storage:
    """The current app's store."""
    return (app or current_app).extensions["sharewise.storage"]
