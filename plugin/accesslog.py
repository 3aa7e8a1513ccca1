"""gunicorn logs without credentials: link tokens in paths are replaced by ``<token>``.

A practitioner link's token is a bearer credential (whoever holds it opens the record), so it
must not reach a log file. Used by ``sharewise web`` / ``serve`` (``--logger-class``).
"""

from __future__ import annotations

import re
from typing import Any

from gunicorn.glogging import Logger

#: ``/<first segment>/<token>``: the link paths of :mod:`sharewise.plugin.links`.
_TOKEN_PATH = re.compile(r"^(/(?:form|upload|status)/)[^/?\s]+")
#: The same paths anywhere in a message (gunicorn quotes a bad request line in its error log).
_TOKEN_ANYWHERE = re.compile(r"(/(?:form|upload|status)/)[^/?\s'\"]+")


def redact(path: str | None) -> str | None:
    """``path`` with a link token replaced by ``<token>``."""
    return _TOKEN_PATH.sub(r"\1<token>", path) if path else path


def redact_text(text: str) -> str:
    """``text`` with every link token after a link path replaced by ``<token>``."""
    return _TOKEN_ANYWHERE.sub(r"\1<token>", text)


class RedactingLogger(Logger):
    """gunicorn's logger with link tokens removed from the access log (``%(U)s``, ``%(r)s``,
    the referer) and from error-log messages (a malformed request line is quoted there)."""

    def _clean(self, msg: object, args: tuple) -> str:
        try:
            text = str(msg) % args if args else str(msg)
        except (TypeError, ValueError):
            text = " ".join([str(msg), *map(str, args)])
        return redact_text(text)

    def critical(self, msg: object, *args: Any, **kwargs: Any) -> None:
        super().critical(self._clean(msg, args), **kwargs)

    def error(self, msg: object, *args: Any, **kwargs: Any) -> None:
        super().error(self._clean(msg, args), **kwargs)

    def warning(self, msg: object, *args: Any, **kwargs: Any) -> None:
        super().warning(self._clean(msg, args), **kwargs)

    def info(self, msg: object, *args: Any, **kwargs: Any) -> None:
        super().info(self._clean(msg, args), **kwargs)

    def debug(self, msg: object, *args: Any, **kwargs: Any) -> None:
        super().debug(self._clean(msg, args), **kwargs)

    def exception(self, msg: object, *args: Any, **kwargs: Any) -> None:
        super().exception(self._clean(msg, args), **kwargs)

    def atoms(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> dict:
        """The log atoms, redacted."""
        atoms = super().atoms(resp, req, environ, request_time)
        atoms["U"] = redact(atoms.get("U"))
        method, _, rest = str(atoms.get("r", "")).partition(" ")
        uri, _, protocol = rest.rpartition(" ")
        atoms["r"] = f"{method} {redact(uri.split('?', 1)[0])} {protocol}"
        atoms["f"] = "-"
        atoms["q"] = "-"
        return atoms
