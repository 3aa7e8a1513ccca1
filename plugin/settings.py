"""Settings: defaults from ``config/defaults.toml`` and how the final values are derived.

``create_app`` layers the defaults, then a mapping given by the caller (tests), then the
``SHAREWISE_<KEY>`` environment variables, and finally calls :func:`finalise`, which fills the
``{DATA_DIR}`` / ``{PORT}`` placeholders, makes paths absolute and derives what is derived
(the link-signing keys, Flask's own ``SECRET_KEY`` and ``MAX_CONTENT_LENGTH``).
"""

from __future__ import annotations

import os
import secrets
import tempfile
import tomllib
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

DEFAULTS = resources.files("sharewise.config").joinpath("defaults.toml")
ENV_PREFIX = "SHAREWISE"


@dataclass(frozen=True)
class Setting:
    """One documented setting: its key (``SHAREWISE_<key>`` in the environment)."""

    key: str
    default: Any
    doc: str

    @property
    def env(self) -> str:
        """The environment variable that overrides it."""
        return f"{ENV_PREFIX}_{self.key}"


@cache
def settings() -> tuple[Setting, ...]:
    """Every documented setting, in file order."""
    with DEFAULTS.open("rb") as f:
        raw = tomllib.load(f)
    return tuple(Setting(key, v["default"], v.get("doc", "")) for key, v in raw.items())


def defaults() -> dict[str, Any]:
    """The default value of every setting (placeholders not yet filled)."""
    return {s.key: s.default for s in settings()}


def _fill(value: Any, data_dir: str, port: Any) -> Any:
    if isinstance(value, str):
        return value.replace("{DATA_DIR}", data_dir).replace("{PORT}", str(port))
    return value


def split_keys(value: Any) -> list[str]:
    """A comma-separated string (or a list) of keys as a list, blanks dropped."""
    items = value.split(",") if isinstance(value, str) else list(value or [])
    return [str(k).strip() for k in items if str(k).strip()]


def ensure_secret_key(data_dir: Path) -> str:
    """The embedded default link-signing key: generated once into ``DATA_DIR/secret_key``.

    Safe when several processes start at once: the key is written to a temporary file and
    hard-linked into place, so every process reads the same complete key.
    """
    path = data_dir / "secret_key"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=data_dir, prefix=".secret_key.")
        try:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(48))
                f.flush()
                os.fsync(f.fileno())
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass
        finally:
            os.unlink(tmp)
    return path.read_text().strip()


def finalise(config: MutableMapping[str, Any]) -> None:
    """Fill placeholders and derive the settings that depend on others (in place)."""
    data_dir = Path(str(config["DATA_DIR"])).expanduser().resolve()
    config["DATA_DIR"] = str(data_dir)
    port = config.get("PORT", 8000)
    for s in settings():
        config[s.key] = _fill(config.get(s.key, s.default), str(data_dir), port)
    config["BASE_URL"] = str(config["BASE_URL"]).rstrip("/")
    tenants = Path(str(config["TENANTS"])).expanduser()
    config["TENANTS"] = str(tenants if tenants.is_absolute() else tenants.resolve())
    keys = split_keys(config.get("SECRET_KEYS"))
    if not keys:
        keys = [ensure_secret_key(data_dir)]
    config["SECRET_KEYS"] = keys
    config.setdefault("SECRET_KEY", keys[0])
    if not config.get("SECRET_KEY"):
        config["SECRET_KEY"] = keys[0]
    for key in ("LINK_MAX_AGE", "MAX_BODY_BYTES", "WEBHOOK_TOLERANCE", "PORT"):
        config[key] = int(config[key])
    config["MAX_CONTENT_LENGTH"] = config["MAX_BODY_BYTES"]
    for key in ("MIGRATE_ON_START", "INTAKE_WRITER"):
        if isinstance(config.get(key), str):
            config[key] = config[key].lower() in ("1", "true", "yes", "on")


def load(config: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The final settings without an app: defaults, ``config``, environment, derived values."""
    from flask import Config

    cfg = Config(root_path=os.getcwd())
    cfg.update(defaults())
    cfg.update(config or {})
    cfg.from_prefixed_env(ENV_PREFIX)
    finalise(cfg)
    return dict(cfg)


def markdown_table() -> str:
    """The settings table for the README."""
    rows = ["| variable | default | meaning |", "| --- | --- | --- |"]
    for s in settings():
        default = f"`{s.default}`" if s.default != "" else "(empty)"
        rows.append(f"| `{s.env}` | {default} | {s.doc} |")
    return "\n".join(rows)
