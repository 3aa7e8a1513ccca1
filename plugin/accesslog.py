"""gunicorn access log without credentials: link tokens in paths are replaced by ``<token>``.

A practitioner link's token is a bearer credential (whoever holds it opens the record), so it
must not reach a log file. Used by ``sharewise web`` / ``serve`` (``--logger-class``).
"""

from __future__ import annotations

import re
from typing import Any

from gunicorn.glogging import Logger

#: ``/<first segment>/<token>``: the link paths of :mod:`plugin.links`.
_TOKEN_PATH = re.compile(r"^(/(?:form|upload|status)/)[^/?\s]+")


def redact(path: str | None) -> str | None:
    """``path`` with a link token replaced by ``<token>``."""
    return _TOKEN_PATH.sub(r"\1<token>", path) if path else path


class RedactingLogger(Logger):
    """gunicorn's logger with link tokens removed from ``%(U)s``, ``%(r)s`` and the referer."""

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
