"""gunicorn's logs in the service's format, without credentials or client addresses.

A practitioner link's token is a bearer credential (whoever holds it opens the record), so it
must not reach a log file: link tokens in paths are replaced by ``<token>``. The client's
address is personal data and is not logged either (the audit trail keeps a keyed hash of it).
Both of gunicorn's logs use the formatter of ``SHAREWISE_LOG_FORMAT``
(:mod:`sharewise.plugin.logs`); in JSON an access line carries ``method``, ``path``,
``status``, ``bytes`` and ``duration_ms`` as fields. Used by ``sharewise web`` / ``serve``
(``--logger-class``).
"""

from __future__ import annotations

import re
from typing import Any

from gunicorn.glogging import Logger

from sharewise.plugin.logs import fields, formatter, redact, redact_text
from sharewise.plugin.settings import build

#: gunicorn's error lines name the client ("Invalid request from ip=203.0.113.9: ...").
_CLIENT_ADDRESS = re.compile(r"ip=[0-9A-Fa-f.:\[\]]+[0-9A-Fa-f\]]")


class RedactingLogger(Logger):
    """gunicorn's logger with link tokens removed from the access log (``%(U)s``, ``%(r)s``,
    the referer) and from error-log messages (a malformed request line is quoted there)."""

    def setup(self, cfg: Any) -> None:
        """gunicorn's handlers, then the service's log format on them."""
        super().setup(cfg)
        self.log_format = build().log_format
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                if getattr(handler, "_gunicorn", False):  # gunicorn's own, not another's
                    handler.setFormatter(formatter(self.log_format))

    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> None:
        """One access line; in JSON its parts are fields too."""
        if getattr(self, "log_format", "text") != "json":
            super().access(resp, req, environ, request_time)
            return
        if not self.access_log_enabled:
            return
        atoms = self.atoms(resp, req, environ, request_time)
        self.access_log.info(
            "%s %s %s", atoms["m"], atoms["U"], atoms["s"],
            extra=fields(method=atoms["m"], path=atoms["U"], status=atoms["s"],
                         bytes=atoms["B"], duration_ms=round(atoms["D"] / 1000, 1)))

    def _clean(self, msg: object, args: tuple) -> str:
        try:
            text = str(msg) % args if args else str(msg)
        except (TypeError, ValueError):
            text = " ".join([str(msg), *map(str, args)])
        return _CLIENT_ADDRESS.sub("ip=<client>", redact_text(text))

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
