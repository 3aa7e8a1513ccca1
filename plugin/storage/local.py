"""Local-directory file store: temp file in the same directory, fsync, ``os.replace``.

Every failure of the file system (a full disk, a read-only mount, a permission or I/O error)
is raised as :class:`~sharewise.plugin.storage.StorageError` naming the operation and the
errno (never the path: it holds the record id, and the key is enough for the log), so callers
handle one error type whatever the backend.
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from sharewise.plugin.storage import NotFound, Storage, StorageError, check_key


def _failed(operation: str, exc: OSError) -> StorageError:
    """The :class:`StorageError` for ``exc``: the operation and the errno's name, no path."""
    name = errno.errorcode.get(exc.errno or 0, "unknown")
    return StorageError(f"local store {operation} failed: {name}")


@contextmanager
def _as_storage_error(operation: str) -> Iterator[None]:
    """``OSError`` raised inside the block as :class:`StorageError`."""
    try:
        yield
    except OSError as exc:
        raise _failed(operation, exc) from exc


class LocalStorage(Storage):
    """Objects are files under ``root``; keys map to relative paths (validated)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser().resolve()
        with _as_storage_error("creation"):
            self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        # check_key admits only relative, "/"-separated parts of [A-Za-z0-9._-] without "..",
        # so the joined path is always inside root (no resolve(): it costs a stat per part)
        return self.root / check_key(key)

    def put(self, key: str, data: bytes) -> None:
        """Write atomically: a temp file in the target directory, fsync, rename, fsync dir."""
        path = self._path(key)
        with _as_storage_error("write"):
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, path)
            except BaseException:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
                raise
            dir_fd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)

    def get(self, key: str) -> bytes:
        """The file's bytes."""
        with self.open(key) as f, _as_storage_error("read"):
            return f.read()

    def open(self, key: str) -> BinaryIO:
        """The file, opened for reading."""
        try:
            return self._path(key).open("rb")
        except (FileNotFoundError, IsADirectoryError):
            raise NotFound(key) from None
        except OSError as exc:
            raise _failed("open", exc) from exc

    def exists(self, key: str) -> bool:
        """Whether the file exists."""
        with _as_storage_error("stat"):
            return self._path(key).is_file()

    def delete(self, key: str) -> None:
        """Remove the file if present."""
        try:
            self._path(key).unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise _failed("delete", exc) from exc

    def size(self, key: str) -> int:
        """The file's size."""
        try:
            return self._path(key).stat().st_size
        except FileNotFoundError:
            raise NotFound(key) from None
        except OSError as exc:
            raise _failed("stat", exc) from exc
