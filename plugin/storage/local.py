"""Local-directory file store: temp file in the same directory, fsync, ``os.replace``."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import BinaryIO

from sharewise.plugin.storage import NotFound, Storage, check_key


class LocalStorage(Storage):
    """Objects are files under ``root``; keys map to relative paths (validated)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser().resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        # check_key admits only relative, "/"-separated parts of [A-Za-z0-9._-] without "..",
        # so the joined path is always inside root (no resolve(): it costs a stat per part)
        return self.root / check_key(key)

    def put(self, key: str, data: bytes) -> None:
        """Write atomically: a temp file in the target directory, fsync, rename, fsync dir."""
        path = self._path(key)
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
            except FileNotFoundError:
                pass
            raise
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def get(self, key: str) -> bytes:
        """The file's bytes."""
        with self.open(key) as f:
            return f.read()

    def open(self, key: str) -> BinaryIO:
        """The file, opened for reading."""
        try:
            return self._path(key).open("rb")
        except (FileNotFoundError, IsADirectoryError):
            raise NotFound(key) from None

    def exists(self, key: str) -> bool:
        """Whether the file exists."""
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        """Remove the file if present."""
        try:
            self._path(key).unlink()
        except FileNotFoundError:
            pass

    def size(self, key: str) -> int:
        """The file's size."""
        try:
            return self._path(key).stat().st_size
        except FileNotFoundError:
            raise NotFound(key) from None
