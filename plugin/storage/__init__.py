"""File store interface for PDFs: keys like ``<tenant>/<record>/prefill-1.pdf``.

``storage_from_url(url)`` picks the backend: a local directory (a path or ``file://`` URL,
:mod:`sharewise.plugin.storage.local`) or S3-compatible object storage (``s3://bucket/prefix``,
:mod:`sharewise.plugin.storage.s3`). ``storage()`` is the current app's store.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from typing import BinaryIO

from flask import Flask, current_app

from sharewise.plugin.settings import settings_of

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
    app.extensions["sharewise.storage"] = storage_from_url(
        s.storage_url, endpoint_url=s.s3_endpoint_url or None)


def storage(app: Flask | None = None) -> Storage:
    """The current app's store."""
    return (app or current_app).extensions["sharewise.storage"]
